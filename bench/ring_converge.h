/* Membership convergence measurement of `coord-bench ring` (needs servers). */
#ifndef COORD_BENCH_RING_CONVERGE_H
#define COORD_BENCH_RING_CONVERGE_H

typedef struct ring_converge {
    int samples, observers;
    double join_p50_ms, join_p99_ms;   /* join returns -> every observer shows the member */
    double leave_p50_ms, leave_p99_ms; /* leave starts -> every observer shows it gone */
    double write_p50_ms;               /* the join call itself: one write and one listing */
} ring_converge;

/* `samples` join/leave rounds of one member of `group`, watched by 3 observer clients.
 * 0, or a coord error (printed on stderr). */
int ring_converge_run(const char *uri, const char *group, int samples, ring_converge *out);

#endif
