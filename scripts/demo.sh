#!/usr/bin/env bash
# The demo, from a clean clone on Debian, as root: install what is missing, build, start local
# ZooKeeper and etcd servers, run the examples against both backends, stop the servers.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
if [ "${1:-}" != "--inner" ]; then
    bash scripts/deps.sh
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >build.log 2>&1 || { cat build.log; exit 1; }
    cmake --build build -j"$(nproc)" >>build.log 2>&1 || { tail -50 build.log; exit 1; }
    exec bash scripts/servers.sh run single -- bash "$0" --inner
fi

# Checks a run of two `service` instances: the shared report has every (round, job) once, the
# fencing tokens grow, the jobs-done values in it follow each other, and each instance saw the
# counter grow by exactly the number of jobs processed by all.
check_service() { # dir jobs*rounds
    awk -v want="$2" '
        FILENAME ~ /report$/ {
            n++
            if (seen[$3 " " $4]++) { print "service: " $4 " processed twice in " $3; bad = 1 }
            split($6, kv, "=")
            if (n > 1 && $1 + 0 <= tok) { print "service: token " $1 " after " tok; bad = 1 }
            if (n > 1 && kv[2] != prev + 1) { print "service: jobs-done " kv[2] " after " prev; bad = 1 }
            tok = $1 + 0; prev = kv[2] + 0
            next
        }
        / processed [0-9]+ jobs in / {
            sum += $3; runs++
            if ($NF - $(NF - 2) != want) { print "service: " $0 " (want +" want ")"; bad = 1 }
        }
        END {
            printf "service: %d report lines for %d jobs x rounds, %d processed by %d instances, %s\n",
                n, want, sum, runs, (bad || n != want || sum != want || runs != 2) ? "MISMATCH" : "ok"
            exit (bad || n != want || sum != want || runs != 2)
        }' "$1/report" "$1/out"
}

for uri in "zk://$COORD_TEST_ZK/coord-demo" "etcd://$COORD_TEST_ETCD/coord-demo"; do
    echo "== $uri"
    build/examples/hello --uri "$uri"
    build/examples/lock_demo --uri "$uri" --workers 3 --rounds 2
    build/examples/counter_demo --uri "$uri" --workers 4 --adds 50
    # A short session TTL so the demo's killed worker goes within seconds.
    build/examples/ring_demo --uri "$uri?session_ttl_ms=3000" --workers 4 --keys 10000
    # One active instance and two standbys: the leader is killed, then paused (its late write is
    # refused by its term). A short session TTL so that each hand-over takes seconds.
    journal=$(mktemp)
    build/examples/leader --uri "$uri" --standby 2 --ttl-ms 3000 --journal "$journal"
    rm -f "$journal"
    # Ten workers, at most three jobs at once (counted in shared memory); readers and writers of
    # one file, each write stamped with the writer's fencing token.
    build/examples/semaphore --uri "$uri" --workers 10 --max 3 --jobs 2
    build/examples/rwlock --uri "$uri" --readers 4 --writers 2 --rounds 5
    # Three followers apply each version of a configuration key they watch; the writer sets it by
    # compare-and-set, ten versions then "stop" (a watch may skip versions, never the last one).
    build/examples/config_follow --uri "$uri" --followers 3 --versions 10
    # Two writers behind one lock, writes guarded by it: the first is paused past its session
    # (a short TTL), the second takes over, the first one's late write is refused.
    build/examples/fenced_writer --uri "$uri" --ttl-ms 3000 --units 3
    # A producer and three workers over a queue with claims: a worker killed mid-job has its job
    # redone by another once its session (a short TTL) ends; every job acked exactly once.
    build/examples/jobs --uri "$uri" --workers 3 --jobs 10 --ttl-ms 3000
    # Loop mode: 1000 counter adds, 64 in flight, and an async lock from one poll(2) loop; then
    # the libuv server answers five requests of its own while a lock acquire is pending.
    build/examples/loop_poll --uri "$uri" --adds 1000 --inflight 64
    if [ -x build/examples/loop_server ]; then
        timeout 60 build/examples/loop_server --uri "$uri" --self-test 5 --hold-ms 300
    fi
    # Two service instances in parallel: 8 jobs, 3 rounds, one report file behind the lock.
    tmp=$(mktemp -d)
    {
        pids=()
        for id in svc-a svc-b; do
            build/examples/service --uri "$uri" --id "$id" --expect 2 --jobs 8 --rounds 3 \
                --report "$tmp/report" &
            pids+=($!)
        done
        st=0
        for pid in "${pids[@]}"; do wait "$pid" || st=1; done
        exit "$st"
    } 2>&1 | tee "$tmp/out" || { echo "service: an instance failed"; exit 1; }
    check_service "$tmp" 24
    rm -rf "$tmp"
done
