/*
 * etcd backend, watches: one thread per connection drives every watch stream of the connection
 * with a curl multi handle.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_int.h"

/* ---------- watches ---------- */

static void watch_deliver(coord_watch *w, coord_watch_event ev, int64_t rev) {
    /* A key goes once: the check after the stream starts and the stream's own event may both
     * see the same deletion. */
    if (ev == COORD_EV_DELETED) {
        if (w->deleted_reported) return;
        w->deleted_reported = true;
    }
    w->fn(w->payload, ev, rev);
    if (ev == COORD_EV_DELETED && w->kind == COORD_WATCH_KEY) {
        /* Nothing is left to report: close the stream now, so the unwatch that follows (a lock
         * waiter's, on its hand-off path) finds it gone instead of waiting for this thread. */
        w->removing = true;
        curl_multi_wakeup(w->e->multi);
    }
}

int etcd_watch_apply(coord_watch *w, etcd_watch_msg *mp) {
    etcd_watch_msg m = *mp;
    memset(mp, 0, sizeof *mp); /* consumed */
    if (m.is_error) {
        int err = m.err ? m.err : COORD_EBACKEND;
        coord_seterr(err, "etcd watch: %s", m.msg);
        etcd_watch_msg_clear(&m);
        return err;
    }
    bool changed = false;
    if (m.created && w->next_rev == 0) w->next_rev = m.header_revision + 1;
    if (m.created && w->verify) {
        w->verify = false;
        if (m.header_revision > w->after) {
            if (w->kind == COORD_WATCH_KEY)
                w->need_check = true; /* did it go meanwhile? */
            else if (w->after > 0)
                changed = true; /* list again to be sure */
        }
    }
    if (m.canceled) {
        if (strstr(m.msg, "Unauthenticated") || strstr(m.msg, "invalid auth token"))
            w->unauth = true;
        int64_t compact = m.compact_revision;
        etcd_watch_msg_clear(&m);
        if (compact > 0) {
            /* History before `compact` is gone: the owner lists again; resume from there. */
            w->next_rev = compact;
            watch_deliver(w, COORD_EV_RESET, compact);
            return 1; /* end this stream, reconnect */
        }
        return coord_seterr(COORD_EBACKEND, "etcd watch canceled by the server");
    }
    int64_t rev = m.header_revision;
    for (size_t i = 0; i < m.nevents; i++) {
        etcd_event *ev = &m.events[i];
        if (ev->mod_revision < w->next_rev) continue; /* replay after reconnect */
        rev = ev->mod_revision;
        w->next_rev = rev + 1;
        if (w->kind == COORD_WATCH_KEY) {
            if (ev->is_delete) watch_deliver(w, COORD_EV_DELETED, rev);
        } else if (w->kind == COORD_WATCH_DATA) {
            changed = true; /* the stream carries that one key's events only */
        } else if (ev->keylen > w->dirlen &&
                   !memchr(ev->key + w->dirlen, '/', ev->keylen - w->dirlen)) {
            changed = true;
        }
    }
    etcd_watch_msg_clear(&m);
    if (changed) watch_deliver(w, COORD_EV_CHANGED, rev);
    return 0;
}

static int on_watch_line(void *ctx, const char *line, size_t len) {
    etcd_watch_msg m;
    int rc = etcd_parse_watch_line(line, len, &m);
    return rc ? rc : etcd_watch_apply(ctx, &m);
}

static size_t on_watch_data(char *p, size_t sz, size_t n, void *ud) {
    coord_watch *w = ud;
    size_t len = sz * n;
    if (w->status == 0) curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &w->status);
    if (w->status != 200) {
        size_t take =
            len < sizeof w->errbody - 1 - w->errlen ? len : sizeof w->errbody - 1 - w->errlen;
        memcpy(w->errbody + w->errlen, p, take);
        w->errlen += take;
        return len;
    }
    if (w->removing) return 0;
    int rc = etcd_lines_feed(&w->lines, p, len, on_watch_line, w);
    if (rc != 0) return 0; /* abort: reconnect (or reset) */
    w->failures = 0;
    return len;
}

/* Prepare `*h` (made on first use) to POST `json` to `path` of endpoint `ep` on the watch
 * thread's multi handle; the caller adds it. Nonzero when out of memory. */
static int multi_post(etcd *e, CURL **h, struct curl_slist **hdrs, uint64_t *gen, coord_watch *w,
                      int ep, const char *path, const char *json, curl_write_callback fn,
                      void *ud) {
    if (!*h && !(*h = curl_easy_init())) return 1;
    curl_slist_free_all(*hdrs);
    *hdrs = etcd_make_headers(e, gen);
    char url[600];
    snprintf(url, sizeof url, "%s%s", e->endpoints[ep], path);
    curl_easy_reset(*h);
    etcd_setup_handle(e, *h);
    curl_easy_setopt(*h, CURLOPT_URL, url);
    curl_easy_setopt(*h, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(*h, CURLOPT_HTTPHEADER, *hdrs);
    curl_easy_setopt(*h, CURLOPT_WRITEFUNCTION, fn);
    curl_easy_setopt(*h, CURLOPT_WRITEDATA, ud);
    curl_easy_setopt(*h, CURLOPT_PRIVATE, w);
    curl_easy_setopt(*h, CURLOPT_CONNECTTIMEOUT_MS, (long)e->cfg->connect_timeout_ms);
    return 0;
}

static int watch_start(etcd *e, coord_watch *w) {
    cJSON *req = cJSON_CreateObject();
    cJSON *cr = cJSON_AddObjectToObject(req, "create_request");
    if (!cr || !etcd_add_bytes(cr, "key", w->key, w->keylen) ||
        (w->relen && !etcd_add_bytes(cr, "range_end", w->range_end, w->relen)) ||
        (w->next_rev > 0 && !etcd_add_i64(cr, "start_revision", w->next_rev))) {
        cJSON_Delete(req);
        return COORD_ENOMEM;
    }
    free(w->body);
    w->body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (!w->body) return COORD_ENOMEM;
    w->endpoint = atomic_load(&e->current);
    if (multi_post(e, &w->h, &w->hdrs, &w->gen, w, w->endpoint, "/v3/watch", w->body, on_watch_data,
                   w))
        return COORD_ENOMEM;
    /* A silent member (paused, partitioned) is noticed by TCP keepalive probes. */
    curl_easy_setopt(w->h, CURLOPT_TCP_KEEPIDLE, 2L);
    curl_easy_setopt(w->h, CURLOPT_TCP_KEEPINTVL, 1L);
    etcd_lines_reset(&w->lines);
    w->status = 0;
    w->errlen = 0;
    w->unauth = false;
    return curl_multi_add_handle(e->multi, w->h) == CURLM_OK ? 0 : COORD_EBACKEND;
}

/* Start the read that tells whether a KEY watch's key went before its stream started. */
static int check_start(etcd *e, coord_watch *w) {
    cJSON *req = cJSON_CreateObject();
    bool ok = req && etcd_add_bytes(req, "key", w->key, w->keylen) &&
              cJSON_AddBoolToObject(req, "keys_only", 1);
    free(w->cbody);
    w->cbody = ok ? cJSON_PrintUnformatted(req) : NULL;
    cJSON_Delete(req);
    free(w->cresp.body);
    memset(&w->cresp, 0, sizeof w->cresp);
    if (!w->cbody || multi_post(e, &w->ch, &w->chdrs, &w->cgen, w, atomic_load(&e->current),
                                "/v3/kv/range", w->cbody, etcd_on_body, &w->cresp))
        return COORD_ENOMEM;
    curl_easy_setopt(w->ch, CURLOPT_TIMEOUT_MS, (long)e->cfg->timeout_ms);
    return curl_multi_add_handle(e->multi, w->ch) == CURLM_OK ? 0 : COORD_EBACKEND;
}

/* A token the server refused on the watch thread: replace it (unless another thread did), so
 * the streams and checks sent next carry a good one. Nothing else would: a watch can wait while
 * the application makes no call. */
static int watch_reauth(etcd *e, int ep, uint64_t gen) {
    if (!e->cfg->uri->user) return COORD_EAUTH;
    CURL *h = etcd_handle_get(e);
    int rc = h ? etcd_authenticate(e, h, ep, e->cfg->timeout_ms, gen) : COORD_ENOMEM;
    etcd_handle_put(e, h);
    return rc;
}

/* The check finished: report the deletion, or look again a little later (at once after a
 * refused token was replaced). */
static void check_done(etcd *e, coord_watch *w, CURLcode cc) {
    long status = 0;
    curl_easy_getinfo(w->ch, CURLINFO_RESPONSE_CODE, &status);
    cJSON *res = NULL;
    if (cc == CURLE_OK && status == 200 &&
        etcd_parse_body(w->cresp.body, w->cresp.len, &res) == 0) {
        /* Gone, or made again since the caller saw it (a lock handle reuses its key): either
         * way the entry the caller watches has been deleted. */
        const cJSON *kv = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "kvs"), 0);
        int64_t created = 0;
        if (!kv || (etcd_get_i64(kv, "create_revision", &created) == 0 && created > w->after))
            watch_deliver(w, COORD_EV_DELETED, 0);
    } else {
        w->need_check = true;
        w->check_at = coord__now_ms() + 200;
        if (status == 401 && watch_reauth(e, atomic_load(&e->current), w->cgen) == 0)
            w->check_at = 0;
    }
    cJSON_Delete(res);
    free(w->cresp.body);
    memset(&w->cresp, 0, sizeof w->cresp);
}

void etcd_watch_retry(coord_watch *w) {
    w->failures++;
    int64_t backoff = w->failures <= 1 ? 0 : w->failures < 8 ? 50L << w->failures : 5000;
    w->retry_at = coord__now_ms() + backoff + 1;
}

static void watch_free(coord_watch *w) {
    if (w->ch) curl_easy_cleanup(w->ch);
    curl_slist_free_all(w->chdrs);
    free(w->cbody);
    free(w->cresp.body);
    if (w->h) curl_easy_cleanup(w->h);
    curl_slist_free_all(w->hdrs);
    free(w->body);
    free(w->key);
    free(w->range_end);
    etcd_lines_free(&w->lines);
    free(w);
}

void *etcd_watch_main(void *arg) {
    etcd *e = arg;
    while (1) {
        pthread_mutex_lock(&e->mu);
        if (e->stopping && !e->watches) {
            pthread_mutex_unlock(&e->mu);
            break;
        }
        /* Removals requested by unwatch, and streams that are due to (re)start. */
        int64_t now = coord__now_ms(), next_wake = now + 1000;
        bool ws_up = e->ws_mode && etcd_ws_up(e);
        coord_watch **pp = &e->watches;
        coord_watch *start[64];
        int nstart = 0;
        while (*pp) {
            coord_watch *w = *pp;
            if (w->removing) {
                if (w->h) curl_multi_remove_handle(e->multi, w->h);
                if (w->ch) curl_multi_remove_handle(e->multi, w->ch);
                etcd_ws_forget(e, w); /* a cancel frame, or none if it is not on the stream */
                *pp = w->next;
                w->removed = true;
                continue;
            }
            if (w->retry_at && e->ws_mode && !ws_up && !w->pending_deleted) {
                /* waits for the stream: created when it is up */
            } else if (w->retry_at && w->retry_at <= now && nstart < 64) {
                w->retry_at = 0;
                start[nstart++] = w;
            } else if (w->retry_at && w->retry_at < next_wake) {
                next_wake = w->retry_at;
            }
            pp = &w->next;
        }
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&e->mu);

        for (int i = 0; i < nstart; i++) {
            coord_watch *w = start[i];
            if (w->pending_deleted) {
                w->pending_deleted = false;
                watch_deliver(w, COORD_EV_DELETED, w->next_rev);
            }
            if (w->removing) continue; /* its key was gone already: no stream to open */
            if (!e->ws_mode) {
                if (watch_start(e, w)) w->retry_at = coord__now_ms() + 500;
            } else if (!ws_up) {
                w->retry_at = 1; /* when the stream is up */
            } else if (etcd_ws_create(e, w)) {
                w->retry_at = coord__now_ms() + 500;
            }
        }
        /* The WebSocket stream: connect, move frames, route what came (callbacks run here). */
        struct curl_waitfd wfd = {CURL_SOCKET_BAD, 0, 0};
        if (e->ws_mode) etcd_ws_step(e, &next_wake, &wfd.fd, &wfd.events);
        if (!e->ws_mode) etcd_ws_close(e); /* fell back to HTTP streams */
        int running = 0;
        curl_multi_perform(e->multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(e->multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            coord_watch *w = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&w);
            curl_multi_remove_handle(e->multi, msg->easy_handle);
            if (!w) continue;
            if (msg->easy_handle == w->ch) {
                check_done(e, w, msg->data.result);
                continue;
            }
            /* The stream ended: an error, a dead member, a compaction reset or an auth error.
             * Resume from next_rev, on the next member if this one failed. */
            /* A refused token: a new one, then a new stream at once (with the usual back-off
             * while no new one can be had, e.g. the password was changed). */
            if ((w->status == 401 || w->unauth) && watch_reauth(e, w->endpoint, w->gen) == 0)
                w->failures = 0;
            if (w->status != 200 || msg->data.result != CURLE_WRITE_ERROR) {
                int cur = atomic_load(&e->current);
                if (cur == w->endpoint)
                    atomic_compare_exchange_strong(&e->current, &cur,
                                                   (w->endpoint + 1) % (int)e->nendpoints);
            }
            etcd_watch_retry(w);
        }
        /* Key watches whose stream started after the caller's revision: is the key still
         * there? */
        coord_watch *check[64];
        int ncheck = 0;
        now = coord__now_ms();
        pthread_mutex_lock(&e->mu);
        for (coord_watch *w = e->watches; w && ncheck < 64; w = w->next) {
            if (!w->need_check || w->removing) continue;
            if (w->check_at > now) {
                if (w->check_at < next_wake) next_wake = w->check_at;
                continue;
            }
            w->need_check = false;
            check[ncheck++] = w;
        }
        pthread_mutex_unlock(&e->mu);
        for (int i = 0; i < ncheck; i++)
            if (check_start(e, check[i])) {
                check[i]->need_check = true;
                check[i]->check_at = coord__now_ms() + 200;
            }
        if (ncheck) curl_multi_perform(e->multi, &running);
        int64_t wait = next_wake - coord__now_ms();
        if (wait > 1000) wait = 1000;
        if (wait < 0) wait = 0;
        curl_multi_poll(e->multi, &wfd, wfd.fd != CURL_SOCKET_BAD, (int)wait, NULL);
    }
    etcd_ws_close(e);
    return NULL;
}

int etcd_watch(coord_conn *c, const char *path, int kind, int64_t after, coord_watch_fn fn,
               void *payload, coord_watch **out) {
    etcd *e = (etcd *)c;
    coord_watch *w = calloc(1, sizeof *w);
    if (!w) return coord_seterr(COORD_ENOMEM, "out of memory");
    w->e = e;
    w->kind = kind;
    w->fn = fn;
    w->payload = payload;
    w->lines.max = MAX_LINE;
    size_t pl = strlen(path);
    if (kind == COORD_WATCH_CHILDREN) {
        w->key = malloc(pl + 2);
        w->range_end = malloc(pl + 2);
        if (!w->key || !w->range_end) goto oom;
        memcpy(w->key, path, pl);
        w->key[pl] = '/';
        w->key[pl + 1] = 0;
        w->keylen = w->dirlen = pl + 1;
        w->relen = etcd_prefix_end(w->key, w->keylen, w->range_end);
        w->range_end[w->relen] = 0;
    } else {
        if (!(w->key = strdup(path))) goto oom;
        w->keylen = pl;
    }
    w->after = after;
    w->verify = kind == COORD_WATCH_KEY;
    if (kind != COORD_WATCH_KEY && after > 0) {
        /* A set or data watch resumes exactly after `after`, so a compacted history reports
         * RESET. */
        w->next_rev = after + 1;
    } else if (after <= 0) {
        /* "From now" means from this call: learn the current revision (and, for a key, whether
         * it is already gone) so the stream's start can be compared with it. */
        cJSON *req = cJSON_CreateObject();
        if (!req || !etcd_add_bytes(req, "key", w->key, w->keylen) ||
            (w->relen && (!etcd_add_bytes(req, "range_end", w->range_end, w->relen) ||
                          !cJSON_AddBoolToObject(req, "count_only", 1)))) {
            cJSON_Delete(req);
            goto oom;
        }
        cJSON *res = NULL;
        int rc = etcd_call(e, "/v3/kv/range", req, true, e->cfg->timeout_ms, &res);
        cJSON_Delete(req);
        int64_t rev = 0;
        if (!rc) rc = etcd_header_rev(res, &rev);
        const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(res, "kvs");
        w->pending_deleted = kind == COORD_WATCH_KEY && !cJSON_GetArraySize(kvs);
        cJSON_Delete(res);
        if (rc) {
            watch_free(w);
            return rc;
        }
        w->after = rev;
        if (kind != COORD_WATCH_KEY) w->next_rev = rev + 1;
    }
    w->retry_at = 1; /* start at the next loop */
    pthread_mutex_lock(&e->mu);
    w->next = e->watches;
    e->watches = w;
    pthread_mutex_unlock(&e->mu);
    curl_multi_wakeup(e->multi);
    *out = w;
    return 0;
oom:
    watch_free(w);
    return coord_seterr(COORD_ENOMEM, "out of memory");
}

void etcd_unwatch(coord_conn *c, coord_watch *w) {
    etcd *e = (etcd *)c;
    if (!w) return;
    pthread_mutex_lock(&e->mu);
    w->removing = true;
    while (!w->removed) {
        pthread_mutex_unlock(&e->mu);
        curl_multi_wakeup(e->multi);
        pthread_mutex_lock(&e->mu);
        if (w->removed) break;
        struct timespec dl = coord__deadline(100);
        pthread_cond_timedwait(&e->cv, &e->mu, &dl);
    }
    pthread_mutex_unlock(&e->mu);
    watch_free(w);
}
