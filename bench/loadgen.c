/* A compiled HTTP/1.1 load generator for the benchmarks (python -m nubis.bench s3|swift).
 *
 * The Python load generator (bench/loadgen.py) costs ~50 us of CPU per request on
 * these 2-core hosts, the same order as the servers it measures, and it takes that
 * CPU from them: more from a faster server, because it sends more requests per
 * second. This client does the same job with a few microseconds per request: it
 * sends requests that bench/loadgen.py built and signed beforehand (read from a
 * file), over `concurrency` keep-alive connections to one loopback address, parses
 * each answer (Content-Length, chunked, or until close), checks the status and,
 * when asked, compares the body with the expected bytes.
 *
 * Usage: loadgen <ipv4> <port> <concurrency> <requests file> <latencies out>
 *                <time limit s> <expected statuses, comma separated>
 * The requests file: "NLG1", u32 count, then per request: u32 request length,
 * the request bytes, u32 payload length (counted on success), u32 expected body
 * length (0xffffffff: not checked), the expected body, u8 1 if HEAD.
 * Prints "ok N", "failed N", "bad_body N", "seconds S", "bytes N" and one
 * "status CODE N" per status seen; writes each latency as a double (seconds).
 * Bounded: no new request starts after the time limit; a request waits at most
 * 60 s. Only the given IPv4 address is contacted (the benchmarks pass 127.0.0.1).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REQUEST_TIMEOUT 60.0
#define NO_CHECK 0xffffffffu

typedef struct {
    const char *req;
    uint32_t req_len, payload, expect_len;
    const char *expect;
    int head;
} Req;

typedef struct {
    int fd;
    long idx;          /* request in flight, -1 if none */
    size_t wpos;       /* bytes of it written */
    char *rbuf;
    size_t rlen, rcap;
    double t0;
    int keep;          /* server did not say Connection: close */
    size_t need;       /* bytes a Content-Length answer needs in rbuf (0: unknown) */
} Conn;

static Req *reqs;
static long nreqs, next_req;
static long ok_n, failed_n, bad_n, bytes_n;
static long statuses[1000];
static double *lat;
static long nlat;
static int expected[1000];
static struct sockaddr_in addr;
static int epfd;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int load(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(size > 0 ? size : 1);
    if (!buf || fread(buf, 1, size, f) != (size_t)size || size < 8 || memcmp(buf, "NLG1", 4)) {
        fclose(f);
        return -1;
    }
    fclose(f);
    nreqs = rd32(buf + 4);
    reqs = calloc(nreqs ? nreqs : 1, sizeof(Req));
    lat = calloc(nreqs ? nreqs : 1, sizeof(double));
    unsigned char *p = buf + 8, *end = buf + size;
    for (long i = 0; i < nreqs; i++) {
        if (end - p < 4) return -1;
        reqs[i].req_len = rd32(p); p += 4;
        if ((size_t)(end - p) < reqs[i].req_len + 8u) return -1;
        reqs[i].req = (const char *)p; p += reqs[i].req_len;
        reqs[i].payload = rd32(p); p += 4;
        reqs[i].expect_len = rd32(p); p += 4;
        if (reqs[i].expect_len != NO_CHECK) {
            if ((size_t)(end - p) < reqs[i].expect_len) return -1;
            reqs[i].expect = (const char *)p; p += reqs[i].expect_len;
        }
        if (end - p < 1) return -1;
        reqs[i].head = *p++;
    }
    return 0;
}

static int open_conn(Conn *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    c->rlen = 0;
    c->keep = 1;
    return 0;
}

static void close_conn(Conn *c) {
    c->need = 0;
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->rlen = 0;
}

static void want_write(Conn *c, int on) {
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Write what is left of the request in flight; 0 done, 1 would block, -1 error. */
static int flush_req(Conn *c) {
    const Req *r = &reqs[c->idx];
    while (c->wpos < r->req_len) {
        ssize_t n = send(c->fd, r->req + c->wpos, r->req_len - c->wpos, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 1;
            if (errno == EINTR) continue;
            return -1;
        }
        c->wpos += n;
    }
    return 0;
}

static void fail_current(Conn *c) {
    if (c->idx >= 0) failed_n++;
    c->idx = -1;
    close_conn(c);
}

/* Start the next request on c (reconnecting if needed); 0 if none left.
 * A request that cannot even be sent fails and the next one is tried. */
static int start_next(Conn *c, double deadline) {
    while (next_req < nreqs && now() < deadline) {
        c->idx = next_req++;
        c->wpos = 0;
        c->t0 = now();
        if (c->fd < 0 && open_conn(c) < 0) {
            fail_current(c);
            continue;
        }
        int w = flush_req(c);
        if (w < 0) {
            fail_current(c);
            continue;
        }
        want_write(c, w == 1);
        return 1;
    }
    return 0;
}

static const char *find_crlf(const char *p, const char *end) {
    for (; p + 1 < end; p++)
        if (p[0] == '\r' && p[1] == '\n') return p;
    return NULL;
}

/* Decode a chunked body starting at p into out; return bytes consumed, 0 if incomplete. */
static size_t dechunk(const char *p, const char *end, char *out, size_t *out_len) {
    const char *start = p;
    *out_len = 0;
    for (;;) {
        const char *eol = find_crlf(p, end);
        if (!eol) return 0;
        size_t size = strtoul(p, NULL, 16);
        p = eol + 2;
        if (size == 0) {  /* trailer fields, then an empty line */
            for (;;) {
                const char *e = find_crlf(p, end);
                if (!e) return 0;
                if (e == p) return (size_t)(e + 2 - start);
                p = e + 2;
            }
        }
        if ((size_t)(end - p) < size + 2) return 0;
        memcpy(out + *out_len, p, size);
        *out_len += size;
        p += size + 2;
    }
}

static void finish(Conn *c, int status, const char *body, size_t body_len) {
    const Req *r = &reqs[c->idx];
    lat[nlat++] = now() - c->t0;
    if (status >= 0 && status < 1000) statuses[status]++;
    if (status < 0 || status >= 1000 || !expected[status]) {
        failed_n++;
    } else if (r->expect_len != NO_CHECK &&
               (body_len != r->expect_len || memcmp(body, r->expect, body_len))) {
        bad_n++;
        failed_n++;
    } else {
        ok_n++;
        bytes_n += r->payload;
    }
    c->idx = -1;
}

/* Parse a whole answer from c->rbuf; 1 done, 0 need more, -1 broken. */
static int parse(Conn *c, int eof) {
    if (c->need && c->rlen < c->need && !eof) return 0;  /* no rescans of a long body */
    c->need = 0;
    char *buf = c->rbuf, *end = c->rbuf + c->rlen;
    char *head_end = memmem(buf, c->rlen, "\r\n\r\n", 4);
    if (!head_end) return eof ? -1 : 0;
    if (c->rlen < 12 || memcmp(buf, "HTTP/1.", 7)) return -1;
    int status = atoi(buf + 9);
    long clen = -1;
    int chunked = 0;
    c->keep = buf[7] == '1';
    for (char *line = (char *)find_crlf(buf, head_end + 2) + 2; line < head_end;) {
        char *eol = (char *)find_crlf(line, head_end + 2);
        char *colon = memchr(line, ':', eol - line);
        if (colon) {
            size_t nlen = colon - line;
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t') v++;
            if (nlen == 14 && !strncasecmp(line, "content-length", 14)) clen = atol(v);
            else if (nlen == 17 && !strncasecmp(line, "transfer-encoding", 17))
                chunked = !strncasecmp(v, "chunked", 7);
            else if (nlen == 10 && !strncasecmp(line, "connection", 10))
                c->keep = strncasecmp(v, "close", 5) != 0;
        }
        line = eol + 2;
    }
    char *body = head_end + 4;
    size_t have = end - body;
    if (status == 100) {  /* an interim answer: drop it, wait for the real one */
        memmove(buf, body, have);
        c->rlen = have;
        return parse(c, eof);
    }
    if (reqs[c->idx].head || status == 204 || status == 304) {
        finish(c, status, body, 0);
        c->rlen = have;
        memmove(buf, body, have);
        return 1;
    }
    if (chunked) {
        char *out = malloc(have ? have : 1);
        size_t out_len;
        size_t used = dechunk(body, end, out, &out_len);
        if (!used) {
            free(out);
            return eof ? -1 : 0;
        }
        finish(c, status, out, out_len);
        free(out);
        memmove(buf, body + used, have - used);
        c->rlen = have - used;
        return 1;
    }
    if (clen < 0) {  /* the body runs to the end of the connection */
        if (!eof) return 0;
        finish(c, status, body, have);
        c->keep = 0;
        c->rlen = 0;
        return 1;
    }
    if (have < (size_t)clen) {
        c->need = (size_t)(body - buf) + (size_t)clen;
        return eof ? -1 : 0;
    }
    finish(c, status, body, clen);
    memmove(buf, body + clen, have - clen);
    c->rlen = have - clen;
    return 1;
}

static void on_readable(Conn *c, double deadline) {
    int eof = 0;
    for (;;) {
        if (c->rcap - c->rlen < 65536) {
            c->rcap = c->rcap * 2 + 65536;
            c->rbuf = realloc(c->rbuf, c->rcap);
        }
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
        if (n > 0) {
            c->rlen += n;
            if ((size_t)n < c->rcap - c->rlen + n) break;
            continue;
        }
        if (n == 0) { eof = 1; break; }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        fail_current(c);
        start_next(c, deadline);
        return;
    }
    if (c->idx < 0) {  /* nothing asked: the server closed an idle connection */
        if (eof) close_conn(c);
        return;
    }
    int done = parse(c, eof);
    if (done < 0) {
        fail_current(c);
    } else if (done == 0) {
        if (eof) fail_current(c);
        return;
    } else if (!c->keep || eof) {
        close_conn(c);
    }
    start_next(c, deadline);
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: loadgen ip port concurrency requests latencies limit statuses\n");
        return 2;
    }
    addr.sin_family = AF_INET;
    addr.sin_port = htons(atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) return 2;
    int conc = atoi(argv[3]);
    double limit = atof(argv[6]);
    for (char *s = argv[7]; *s;) {
        int code = (int)strtol(s, &s, 10);
        if (code > 0 && code < 1000) expected[code] = 1;
        if (*s == ',') s++;
        else if (*s) return 2;
    }
    if (conc < 1 || load(argv[4]) < 0) {
        fprintf(stderr, "loadgen: bad arguments or requests file\n");
        return 2;
    }
    epfd = epoll_create1(0);
    Conn *conns = calloc(conc, sizeof(Conn));
    double t0 = now(), deadline = t0 + limit;
    for (int i = 0; i < conc; i++) {
        conns[i].fd = -1;
        conns[i].idx = -1;
        start_next(&conns[i], deadline);
    }
    struct epoll_event evs[256];
    for (;;) {
        int busy = 0;
        for (int i = 0; i < conc; i++) busy |= conns[i].idx >= 0;
        if (!busy) break;
        int n = epoll_wait(epfd, evs, 256, 100);
        for (int k = 0; k < n; k++) {
            Conn *c = evs[k].data.ptr;
            if (c->fd < 0 || c->idx < 0) {
                if (c->fd >= 0 && (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                    on_readable(c, deadline);
                continue;
            }
            if (evs[k].events & EPOLLOUT) {
                int w = flush_req(c);
                if (w < 0) { fail_current(c); start_next(c, deadline); continue; }
                if (w == 0) want_write(c, 0);
            }
            if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c, deadline);
        }
        double t = now();
        for (int i = 0; i < conc; i++)
            if (conns[i].idx >= 0 && t - conns[i].t0 > REQUEST_TIMEOUT) {
                fail_current(&conns[i]);
                start_next(&conns[i], deadline);
            }
    }
    double seconds = now() - t0;
    printf("ok %ld\nfailed %ld\nbad_body %ld\nseconds %.6f\nbytes %ld\n", ok_n, failed_n,
           bad_n, seconds, bytes_n);
    for (int s = 0; s < 1000; s++)
        if (statuses[s]) printf("status %d %ld\n", s, statuses[s]);
    FILE *lf = fopen(argv[5], "wb");
    if (lf) {
        fwrite(lat, sizeof(double), nlat, lf);
        fclose(lf);
    }
    return 0;
}
