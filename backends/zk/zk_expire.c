/*
 * ZooKeeper backend, the test tool that ends a session from outside (the `expire` slot).
 *
 * A session is ended the way a client attached to it would end it: a ConnectRequest carrying the
 * session's id and password, then closeSession. Both go out in one write. A second zhandle cannot
 * do this reliably: the server moves a session to its newest connection and drops the older
 * one, whose client reconnects at once and takes the session back, often before the second
 * handle has got its "connected" event through its threads and sent its close (about half of
 * the attempts here). Written together, the close is in the server's buffer before the session's
 * own client can come back. The C client does not export its jute serializers, so the two
 * packets (a few fixed fields, big-endian, each after its length) are written here.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "zk_expire.h"

#define ZK_CLOSE_OP (-11)

static uint8_t *put32(uint8_t *p, uint32_t v) {
    for (int i = 3; i >= 0; i--)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint8_t *put64(uint8_t *p, uint64_t v) {
    p = put32(p, (uint32_t)(v >> 32));
    return put32(p, (uint32_t)v);
}

static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Read exactly n bytes before the deadline. 0, or -1. */
static int read_full(int fd, uint8_t *buf, size_t n, int64_t deadline) {
    size_t got = 0;
    while (got < n) {
        int64_t left = deadline - coord__now_ms();
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) return -1;
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

/* One framed packet's payload (at most cap bytes) into buf; its length, or -1. */
static long read_packet(int fd, uint8_t *buf, size_t cap, int64_t deadline) {
    uint8_t len[4];
    if (read_full(fd, len, 4, deadline)) return -1;
    uint32_t n = get32(len);
    if (n > cap || read_full(fd, buf, n, deadline)) return -1;
    return (long)n;
}

/* A connected socket to "host:port" ("[v6]:port" too) within the deadline, or -1. */
static int connect_to(const char *server, int64_t deadline) {
    char host[256];
    snprintf(host, sizeof host, "%s", server[0] == '[' ? server + 1 : server);
    char *colon = strrchr(host, ':');
    if (!colon) return -1;
    *colon = 0;
    if (colon > host && colon[-1] == ']') colon[-1] = 0;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST}, *ai;
    if (getaddrinfo(host, colon + 1, &hints, &ai)) return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) return -1;
    struct pollfd p = {fd, POLLOUT, 0};
    int64_t left = deadline - coord__now_ms();
    int err = 0;
    socklen_t len = sizeof err;
    if (left <= 0 || poll(&p, 1, (int)left) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
        close(fd);
        errno = err ? err : ETIMEDOUT;
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK); /* reads below poll with their own deadline */
    return fd;
}

int zk_close_session(const char *server, int64_t session_id, const char *passwd, int ttl_ms,
                     int timeout_ms) {
    int64_t deadline = coord__now_ms() + timeout_ms;
    int fd = connect_to(server, deadline);
    if (fd < 0)
        return coord_seterr(COORD_EUNAVAILABLE, "expire: cannot connect to %s: %s", server,
                            strerror(errno));
    /* ConnectRequest {protocolVersion, lastZxidSeen, timeOut, sessionId, passwd, readOnly}, then
     * RequestHeader {xid, type = closeSession}. */
    uint8_t out[4 + 45 + 4 + 8], *p = out;
    p = put32(p, 45);
    p = put32(p, 0);
    p = put64(p, 0);
    p = put32(p, (uint32_t)ttl_ms);
    p = put64(p, (uint64_t)session_id);
    p = put32(p, 16);
    memcpy(p, passwd, 16);
    p += 16;
    *p++ = 0;
    p = put32(p, 8);
    p = put32(p, 1);
    p = put32(p, (uint32_t)ZK_CLOSE_OP);
    int rc = 0;
    if (write(fd, out, (size_t)(p - out)) != p - out) {
        rc = coord_seterr(COORD_EUNAVAILABLE, "expire: write to %s failed", server);
        goto out;
    }
    /* ConnectResponse {protocolVersion, timeOut, sessionId, passwd, readOnly} (a timeOut of 0:
     * the session had already ended), then the close's ReplyHeader {xid, zxid, err}. Either may
     * be missing: the server drops the connection when the session's own client takes the
     * session back first, and sometimes as it ends the session. */
    uint8_t in[64];
    long n = read_packet(fd, in, sizeof in, deadline);
    if (n >= 16 && get32(in + 4) == 0)
        rc = 1;
    else if (n >= 16 && read_packet(fd, in, sizeof in, deadline) >= 16)
        rc = get32(in + 12) == 0 ? 1
                                 : coord_seterr(COORD_EBACKEND, "expire: %s refused the close: %d",
                                                server, (int)get32(in + 12));
out:
    close(fd);
    return rc;
}
