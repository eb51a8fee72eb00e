/*
 * sseload: an epoll load client for SSE fan-out benchmarks (bench/fanout_vs_nchan.py).
 *
 * One process, one thread, non-blocking sockets, so one client can hold 10 000+
 * connections while taking little of the CPU the server under test needs. It opens N
 * HTTP/1.1 GETs to one URL and, for every event received, records receipt time
 * minus the event's append time (the `"ts"` field of its JSON data, RFC 3339 UTC,
 * both on CLOCK_REALTIME of this machine) in a log-linear histogram.
 *
 *   sseload --port P --path /sub [--host 127.0.0.1] [--connections N]
 *           [--header 'Name: value']... [--mode sse|poll] [--after ID]
 *           [--max-pending 256] [--reconnect] [--duration S]
 *
 * Modes:
 *   sse   a stream per connection (chunked or not); id:/event:/data: lines, `:`
 *         comments (keepalives: counted, with the silences between activity).
 *   poll  genwire's long-poll: GET PATH?after=<last>&wait=30 on a keep-alive
 *         connection, again as soon as the answer ends, until `"done":true`.
 * --after ID is the first cursor (poll) or Last-Event-ID; --reconnect reopens a
 * stream that ended, from its last id (a 204 ends it for good). Any `:` comment
 * counts as a keepalive, Nchan's opening `: hi` too.
 *
 * Output, one JSON object a line on stdout:
 *   {"kind":"ready",...}  once every connection is established (or failed)
 *   {"kind":"mark",...}   on SIGUSR1: the window since the previous mark; starts a new one
 *   {"kind":"final",...}  on SIGINT/SIGTERM, after --duration, or when every
 *                         connection has ended: the window since the last mark
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEADERS 8
#define READ_SIZE (256 * 1024)
#define MAX_LINE (1024 * 1024)
/* Histogram: exact below 128 µs, then 64 sub-buckets per power of two (< 1.6 % error). */
#define SUB_BITS 6
#define HIST_BUCKETS (128 + 58 * 64)

enum mode { MODE_SSE, MODE_POLL };
enum state { CONNECTING, HEADERS, BODY, CLOSED };
enum chunk_state { CHUNK_SIZE, CHUNK_DATA, CHUNK_CRLF };

typedef struct {
    char *data;
    size_t len, cap;
} buffer;

typedef struct {
    int fd;
    enum state state;
    int chunked;
    enum chunk_state chunk_state;
    long chunk_left;
    long content_left; /* poll: bytes of body still to come; -1 until headers */
    int established;   /* counted once towards "ready" */
    int finished;      /* no reconnect: the server said the stream is over */
    int event_has_data, event_is_ping;
    buffer raw;  /* bytes not yet decoded (headers, partial chunk-size line) */
    buffer line; /* sse: a partial line; poll: the body so far */
    char last_id[40];
    int64_t last_activity_us; /* headers, an event or a keepalive */
    uint64_t window_events, window_keepalives;
} connection;

typedef struct {
    uint64_t counts[HIST_BUCKETS];
    uint64_t n, sum_us, max_us, min_us;
} histogram;

/* What a window (between marks) counts. */
typedef struct {
    int64_t started_us;
    uint64_t deliveries, keepalives, no_ts, errors, reconnects, closed, bad_status;
    int64_t silence_max_us, keepalive_gap_min_us, keepalive_gap_max_us;
    struct rusage usage;
    histogram latency;
} window;

static struct {
    const char *host, *path, *after;
    int port, connections, max_pending, reconnect;
    double duration_s;
    enum mode mode;
    const char *headers[MAX_HEADERS];
    int header_count;
} opt = {.host = "127.0.0.1", .path = "/", .connections = 1, .max_pending = 256};

static struct sockaddr_storage address;
static socklen_t address_len;
static connection *conns;
static int epoll_fd, opened, pending, live, ready_sent;
static uint64_t established_ok, established_failed;
static window win;
static volatile sig_atomic_t mark_requested, stop_requested;
static char read_buffer[READ_SIZE];

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_signal(int sig) {
    if (sig == SIGUSR1)
        mark_requested = 1;
    else
        stop_requested = 1;
}

/* ---- histogram ---------------------------------------------------------------- */

static int bucket_of(uint64_t v) {
    if (v < 128) return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - SUB_BITS;
    int index = 128 + (msb - 7) * 64 + (int)((v >> shift) & 63);
    return index < HIST_BUCKETS ? index : HIST_BUCKETS - 1;
}

static uint64_t bucket_value(int index) {
    if (index < 128) return (uint64_t)index;
    int msb = (index - 128) / 64 + 7, shift = msb - SUB_BITS;
    uint64_t top = 64 + (uint64_t)((index - 128) % 64);
    return (top << shift) + ((1ULL << shift) >> 1);
}

static void hist_add(histogram *h, int64_t us) {
    uint64_t v = us < 0 ? 0 : (uint64_t)us;
    h->counts[bucket_of(v)]++;
    h->n++;
    h->sum_us += v;
    if (v > h->max_us) h->max_us = v;
    if (h->n == 1 || v < h->min_us) h->min_us = v;
}

static double hist_percentile_ms(const histogram *h, double percent) {
    if (h->n == 0) return -1;
    uint64_t rank = (uint64_t)(percent / 100.0 * (double)h->n + 0.999999), seen = 0;
    if (rank < 1) rank = 1;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) return (double)bucket_value(i) / 1000.0;
    }
    return (double)h->max_us / 1000.0;
}

/* ---- the append time of an event ---------------------------------------------- */

static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits(const char *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* "2026-11-21T10:00:00.123456Z" (fraction optional, any length) → µs since the epoch. */
static int parse_rfc3339_us(const char *s, const char *end, int64_t *out) {
    if (end - s < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':')
        return -1;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), sec = digits(s + 17, 2);
    if (y < 0 || mo < 1 || d < 1 || h < 0 || mi < 0 || sec < 0) return -1;
    int64_t us = 0, scale = 100000;
    const char *p = s + 19;
    if (p < end && *p == '.')
        for (p++; p < end && *p >= '0' && *p <= '9'; p++, scale /= 10) us += (*p - '0') * scale;
    int64_t seconds = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    *out = seconds * 1000000 + us;
    return 0;
}

/* Finds `"ts":"…"` in [p, end) and records its latency; returns where the search can
   go on, or NULL when there is none. */
static const char *record_ts(const char *p, const char *end, int64_t received_us) {
    const char *key = memmem(p, (size_t)(end - p), "\"ts\"", 4);
    if (!key) return NULL;
    const char *v = key + 4;
    while (v < end && (*v == ' ' || *v == ':')) v++;
    if (v >= end || *v != '"') return v;
    const char *close = memchr(v + 1, '"', (size_t)(end - v - 1));
    int64_t appended_us;
    if (close && parse_rfc3339_us(v + 1, close, &appended_us) == 0)
        hist_add(&win.latency, received_us - appended_us);
    else
        win.no_ts++;
    return close ? close + 1 : end;
}

/* ---- buffers ------------------------------------------------------------------ */

static int buf_append(buffer *b, const char *data, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n) cap *= 2;
        if (cap > MAX_LINE * 4) return -1;
        char *grown = realloc(b->data, cap);
        if (!grown) return -1;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return 0;
}

static void buf_consume(buffer *b, size_t n) {
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

static void buf_free(buffer *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- connections -------------------------------------------------------------- */

/* The longest silence of a window: from the last activity (headers, an event, a
   keepalive) to the next, whenever it began; what "keepalives on time" is about. */
static void note_activity(connection *c, int64_t at_us) {
    int64_t silence = at_us - c->last_activity_us;
    if (c->last_activity_us && silence > win.silence_max_us) win.silence_max_us = silence;
    c->last_activity_us = at_us;
}

static int send_request(connection *c) {
    char request[2048];
    int n;
    if (opt.mode == MODE_POLL) {
        const char *after = c->last_id[0] ? c->last_id : NULL;
        n = snprintf(request, sizeof request,
                     "GET %s?%s%s%swait=30 HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\n",
                     opt.path, after ? "after=" : "", after ? after : "", after ? "&" : "",
                     opt.host);
    } else {
        n = snprintf(request, sizeof request,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n"
                     "Cache-Control: no-cache\r\n",
                     opt.path, opt.host);
        if (c->last_id[0])
            n += snprintf(request + n, sizeof request - (size_t)n, "Last-Event-ID: %s\r\n",
                          c->last_id);
    }
    for (int i = 0; i < opt.header_count; i++)
        n += snprintf(request + n, sizeof request - (size_t)n, "%s\r\n", opt.headers[i]);
    n += snprintf(request + n, sizeof request - (size_t)n, "\r\n");
    /* A request this small always fits an empty send buffer: no partial writes. */
    if (write(c->fd, request, (size_t)n) != n) return -1;
    c->state = HEADERS;
    c->chunked = 0;
    c->chunk_state = CHUNK_SIZE;
    c->content_left = -1;
    c->line.len = 0;
    return 0;
}

static void open_connection(int index) {
    connection *c = &conns[index];
    c->fd = socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        perror("socket");
        exit(2);
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = CONNECTING;
    c->raw.len = c->line.len = 0;
    c->event_has_data = c->event_is_ping = 0;
    pending++;
    live++;
    int rc = connect(c->fd, (struct sockaddr *)&address, address_len);
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)index};
    if (rc < 0 && errno != EINPROGRESS) ev.events = EPOLLOUT | EPOLLERR;
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c->fd, &ev);
}

static void settle(connection *c, int ok) {
    if (c->established) return;
    c->established = 1;
    pending--;
    if (ok)
        established_ok++;
    else
        established_failed++;
}

static void close_connection(connection *c, int failed) {
    if (c->state == CLOSED) return;
    int was_streaming = c->state == BODY;
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->state = CLOSED;
    live--;
    settle(c, 0);
    if (failed) win.errors++;
    win.closed++;
    buf_free(&c->raw);
    buf_free(&c->line);
    /* Only a stream that had worked reconnects: a refused one would spin. */
    if (opt.reconnect && was_streaming && !c->finished && !stop_requested) {
        win.reconnects++;
        c->established = 1; /* a reconnect does not count towards "ready" again */
        open_connection((int)(c - conns));
        pending--;
    }
}

/* ---- SSE ---------------------------------------------------------------------- */

static int starts_with(const char *line, size_t len, const char *prefix) {
    size_t n = strlen(prefix);
    return len >= n && memcmp(line, prefix, n) == 0;
}

static void sse_line(connection *c, const char *line, size_t len, int64_t received_us) {
    if (len && line[len - 1] == '\r') len--;
    if (len == 0) {
        if (c->event_has_data && !c->event_is_ping) {
            win.deliveries++;
            c->window_events++;
            note_activity(c, received_us);
        }
        c->event_has_data = c->event_is_ping = 0;
    } else if (line[0] == ':') {
        int64_t gap = received_us - c->last_activity_us;
        if (c->last_activity_us && c->last_activity_us >= win.started_us) {
            if (!win.keepalive_gap_min_us || gap < win.keepalive_gap_min_us)
                win.keepalive_gap_min_us = gap;
            if (gap > win.keepalive_gap_max_us) win.keepalive_gap_max_us = gap;
        }
        win.keepalives++;
        c->window_keepalives++;
        note_activity(c, received_us);
    } else if (starts_with(line, len, "data:")) {
        c->event_has_data = 1;
        if (!c->event_is_ping && !record_ts(line + 5, line + len, received_us)) win.no_ts++;
    } else if (starts_with(line, len, "id:")) {
        size_t skip = len > 3 && line[3] == ' ' ? 4 : 3, n = len - skip;
        if (n >= sizeof c->last_id) n = sizeof c->last_id - 1;
        memcpy(c->last_id, line + skip, n);
        c->last_id[n] = 0;
    } else if (starts_with(line, len, "event:")) {
        /* Nchan's pings are events named "ping" unless configured as comments. */
        c->event_is_ping = starts_with(line, len, "event: ping") || starts_with(line, len, "event:ping");
        if (c->event_is_ping) {
            win.keepalives++;
            c->window_keepalives++;
            note_activity(c, received_us);
        }
    }
}

static int sse_body(connection *c, const char *data, size_t n, int64_t received_us) {
    const char *p = data, *end = data + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) return buf_append(&c->line, p, (size_t)(end - p));
        if (c->line.len) {
            if (buf_append(&c->line, p, (size_t)(nl - p)) < 0) return -1;
            sse_line(c, c->line.data, c->line.len, received_us);
            c->line.len = 0;
        } else {
            sse_line(c, p, (size_t)(nl - p), received_us);
        }
        p = nl + 1;
    }
    return 0;
}

/* ---- long-poll ---------------------------------------------------------------- */

/* A whole poll answer: {"events":[…],"last_event_id":"…","status":"…","done":…}. */
static int poll_answer(connection *c, int64_t received_us) {
    const char *p = c->line.data, *end = c->line.data + c->line.len;
    const char *events_end = memmem(p, c->line.len, "],\"last_event_id\"", 17);
    if (!events_end) return -1;
    for (const char *q = p; q && q < events_end;) {
        q = record_ts(q, events_end, received_us);
        if (q) {
            win.deliveries++;
            c->window_events++;
        }
    }
    const char *id = events_end + 17;
    while (id < end && (*id == ':' || *id == ' ')) id++;
    if (id < end && *id == '"') {
        const char *close = memchr(id + 1, '"', (size_t)(end - id - 1));
        size_t n = close ? (size_t)(close - id - 1) : 0;
        if (n && n < sizeof c->last_id) {
            memcpy(c->last_id, id + 1, n);
            c->last_id[n] = 0;
        }
    }
    note_activity(c, received_us);
    if (memmem(p, c->line.len, "\"done\":true", 11)) {
        c->finished = 1;
        return 1;
    }
    return send_request(c) == 0 ? 0 : -1;
}

/* ---- HTTP --------------------------------------------------------------------- */

/* Body bytes, de-chunked, to the mode's consumer: <0 error, >0 the answer ended. */
static int body_bytes(connection *c, const char *data, size_t n, int64_t received_us) {
    if (opt.mode == MODE_SSE) return sse_body(c, data, n, received_us);
    if (buf_append(&c->line, data, n) < 0) return -1;
    if (c->content_left >= 0) {
        c->content_left -= (long)n;
        if (c->content_left == 0) return poll_answer(c, received_us);
    }
    return 0;
}

static int parse_headers(connection *c, int64_t received_us) {
    char *end = memmem(c->raw.data, c->raw.len, "\r\n\r\n", 4);
    if (!end) return c->raw.len > 65536 ? -1 : 0;
    *end = 0;
    int status = 0;
    if (sscanf(c->raw.data, "HTTP/1.%*d %d", &status) != 1) return -1;
    for (char *h = strstr(c->raw.data, "\r\n"); h; h = strstr(h + 2, "\r\n")) {
        if (!strncasecmp(h + 2, "transfer-encoding:", 18) && strcasestr(h + 2, "chunked"))
            c->chunked = 1;
        if (!strncasecmp(h + 2, "content-length:", 15)) c->content_left = atol(h + 17);
    }
    buf_consume(&c->raw, (size_t)(end + 4 - c->raw.data));
    if (status == 204) { /* genwire: nothing will follow this cursor */
        c->finished = 1;
        return -2;
    }
    if (status != 200) {
        win.bad_status++;
        return -1;
    }
    settle(c, 1);
    c->state = BODY;
    if (opt.mode == MODE_SSE) note_activity(c, received_us);
    if (opt.mode == MODE_POLL && c->content_left == 0) {
        int rc = poll_answer(c, received_us);
        return rc < 0 ? -1 : rc > 0 ? -2 : 0;
    }
    return 1;
}

/* Decodes what sits in c->raw; returns <0 to close the connection (-1: an error). */
static int decode(connection *c, int64_t received_us) {
    for (;;) {
        if (c->state == HEADERS) {
            int rc = parse_headers(c, received_us);
            if (rc <= 0) return rc;
            continue;
        }
        if (!c->chunked) {
            if (!c->raw.len) return 0;
            size_t n = c->raw.len;
            c->raw.len = 0;
            int rc = body_bytes(c, c->raw.data, n, received_us);
            return rc < 0 ? -1 : rc > 0 ? -2 : 0;
        }
        if (c->chunk_state == CHUNK_SIZE) {
            char *nl = memmem(c->raw.data, c->raw.len, "\r\n", 2);
            if (!nl) return c->raw.len > 1024 ? -1 : 0;
            c->chunk_left = strtol(c->raw.data, NULL, 16);
            buf_consume(&c->raw, (size_t)(nl + 2 - c->raw.data));
            if (c->chunk_left == 0) { /* the last chunk: the server ended the body */
                if (opt.mode == MODE_SSE) return -2; /* --reconnect resumes it */
                if (c->raw.len >= 2) buf_consume(&c->raw, 2);
                int rc = poll_answer(c, received_us);
                if (rc != 0) return rc < 0 ? -1 : -2;
                continue;
            }
            c->chunk_state = CHUNK_DATA;
        } else if (c->chunk_state == CHUNK_DATA) {
            if (!c->raw.len) return 0;
            size_t n = c->raw.len < (size_t)c->chunk_left ? c->raw.len : (size_t)c->chunk_left;
            if (body_bytes(c, c->raw.data, n, received_us) < 0) return -1;
            buf_consume(&c->raw, n);
            c->chunk_left -= (long)n;
            if (c->chunk_left == 0) c->chunk_state = CHUNK_CRLF;
        } else {
            if (c->raw.len < 2) return 0;
            buf_consume(&c->raw, 2);
            c->chunk_state = CHUNK_SIZE;
        }
    }
}

static void on_readable(connection *c) {
    ssize_t n = read(c->fd, read_buffer, sizeof read_buffer);
    if (n == 0) {
        close_connection(c, c->state == HEADERS && !c->finished);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) close_connection(c, 1);
        return;
    }
    if (buf_append(&c->raw, read_buffer, (size_t)n) < 0) {
        close_connection(c, 1);
        return;
    }
    int rc = decode(c, now_us());
    if (rc == -1) close_connection(c, 1);
    if (rc == -2) close_connection(c, 0);
}

static void on_writable(connection *c, uint32_t events) {
    int error = 0;
    socklen_t len = sizeof error;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error || (events & (EPOLLERR | EPOLLHUP)) || send_request(c) < 0) {
        close_connection(c, 1);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)(c - conns)};
    epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
    /* A long-poll has no headers before its first answer: it counts once sent. */
    if (opt.mode == MODE_POLL) settle(c, 1);
}

/* ---- reports ------------------------------------------------------------------ */

static double cpu_s(const struct rusage *u) {
    return (double)(u->ru_utime.tv_sec + u->ru_stime.tv_sec) +
           (double)(u->ru_utime.tv_usec + u->ru_stime.tv_usec) / 1e6;
}

static void report(const char *kind) {
    int64_t now = now_us();
    uint64_t events_min = UINT64_MAX, events_max = 0, ka_min = UINT64_MAX, ka_max = 0;
    int open_count = 0;
    for (int i = 0; i < opened; i++) {
        connection *c = &conns[i];
        if (c->window_events < events_min) events_min = c->window_events;
        if (c->window_events > events_max) events_max = c->window_events;
        if (c->window_keepalives < ka_min) ka_min = c->window_keepalives;
        if (c->window_keepalives > ka_max) ka_max = c->window_keepalives;
        c->window_events = c->window_keepalives = 0;
        if (c->state == CLOSED) continue;
        open_count++;
        /* A silence still running counts too: a keepalive that never came is late. */
        int64_t trailing = now - c->last_activity_us;
        if (c->last_activity_us && trailing > win.silence_max_us) win.silence_max_us = trailing;
    }
    if (!opened) events_min = ka_min = 0;
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    const histogram *h = &win.latency;
    printf("{\"kind\":\"%s\",\"window_s\":%.6f,\"open\":%d,\"ready\":%llu,\"failed\":%llu,"
           "\"deliveries\":%llu,\"events_per_conn_min\":%llu,\"events_per_conn_max\":%llu,"
           "\"keepalives\":%llu,\"keepalives_per_conn_min\":%llu,\"keepalives_per_conn_max\":%llu,"
           "\"keepalive_gap_min_ms\":%.1f,\"keepalive_gap_max_ms\":%.1f,\"silence_max_ms\":%.1f,"
           "\"no_ts\":%llu,\"errors\":%llu,\"bad_status\":%llu,\"closed\":%llu,\"reconnects\":%llu,"
           "\"client_cpu_s\":%.3f,\"latency_ms\":{\"n\":%llu,\"min\":%.3f,\"mean\":%.3f,"
           "\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}}\n",
           kind, (double)(now - win.started_us) / 1e6, open_count,
           (unsigned long long)established_ok, (unsigned long long)established_failed,
           (unsigned long long)win.deliveries, (unsigned long long)events_min,
           (unsigned long long)events_max, (unsigned long long)win.keepalives,
           (unsigned long long)ka_min, (unsigned long long)ka_max,
           (double)win.keepalive_gap_min_us / 1000.0, (double)win.keepalive_gap_max_us / 1000.0,
           (double)win.silence_max_us / 1000.0, (unsigned long long)win.no_ts,
           (unsigned long long)win.errors, (unsigned long long)win.bad_status,
           (unsigned long long)win.closed, (unsigned long long)win.reconnects,
           cpu_s(&usage) - cpu_s(&win.usage), (unsigned long long)h->n,
           h->n ? (double)h->min_us / 1000.0 : -1.0,
           h->n ? (double)h->sum_us / (double)h->n / 1000.0 : -1.0, hist_percentile_ms(h, 50),
           hist_percentile_ms(h, 90), hist_percentile_ms(h, 99), hist_percentile_ms(h, 99.9),
           h->n ? (double)h->max_us / 1000.0 : -1.0);
    fflush(stdout);
    memset(&win, 0, sizeof win);
    win.started_us = now;
    win.usage = usage;
}

/* ---- setup -------------------------------------------------------------------- */

static void usage_exit(void) {
    fprintf(stderr,
            "usage: sseload --port P --path PATH [--host H] [--connections N] "
            "[--header 'K: V']... [--mode sse|poll] [--after ID] [--max-pending K] "
            "[--reconnect] [--duration S]\n");
    exit(2);
}

static void parse_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--reconnect")) {
            opt.reconnect = 1;
            continue;
        }
        if (i + 1 >= argc) usage_exit();
        const char *v = argv[++i];
        if (!strcmp(a, "--host")) opt.host = v;
        else if (!strcmp(a, "--port")) opt.port = atoi(v);
        else if (!strcmp(a, "--path")) opt.path = v;
        else if (!strcmp(a, "--connections")) opt.connections = atoi(v);
        else if (!strcmp(a, "--max-pending")) opt.max_pending = atoi(v);
        else if (!strcmp(a, "--duration")) opt.duration_s = atof(v);
        else if (!strcmp(a, "--after")) opt.after = v;
        else if (!strcmp(a, "--mode") && !strcmp(v, "poll")) opt.mode = MODE_POLL;
        else if (!strcmp(a, "--mode") && !strcmp(v, "sse")) opt.mode = MODE_SSE;
        else if (!strcmp(a, "--header") && opt.header_count < MAX_HEADERS)
            opt.headers[opt.header_count++] = v;
        else usage_exit();
    }
    if (opt.port <= 0 || opt.connections <= 0 || opt.max_pending <= 0) usage_exit();
}

static void resolve(void) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *found;
    char port[16];
    snprintf(port, sizeof port, "%d", opt.port);
    int rc = getaddrinfo(opt.host, port, &hints, &found);
    if (rc) {
        fprintf(stderr, "sseload: %s: %s\n", opt.host, gai_strerror(rc));
        exit(2);
    }
    memcpy(&address, found->ai_addr, found->ai_addrlen);
    address_len = found->ai_addrlen;
    freeaddrinfo(found);
}

/* Each connection is a descriptor: raise the soft limit rather than ask the caller to. */
static void raise_fd_limit(void) {
    rlim_t want = (rlim_t)opt.connections + 64;
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur >= want) return;
    if (limit.rlim_max < want) {
        fprintf(stderr, "sseload: %d connections need %llu descriptors; the hard limit is %llu\n",
                opt.connections, (unsigned long long)want, (unsigned long long)limit.rlim_max);
        exit(2);
    }
    limit.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &limit) < 0) {
        perror("sseload: setrlimit(RLIMIT_NOFILE)");
        exit(2);
    }
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    resolve();
    raise_fd_limit();
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* ends with the harness, however it ends */
    conns = calloc((size_t)opt.connections, sizeof *conns);
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || epoll_fd < 0) {
        perror("sseload");
        return 2;
    }
    if (opt.after)
        for (int i = 0; i < opt.connections; i++)
            snprintf(conns[i].last_id, sizeof conns[i].last_id, "%s", opt.after);
    int64_t started = now_us();
    win.started_us = started;
    getrusage(RUSAGE_SELF, &win.usage);
    static struct epoll_event events[1024];
    while (!stop_requested) {
        /* Open at most max_pending at a time: a burst of 10 000 SYNs would overflow
           the server's accept backlog and cost seconds of SYN retries. */
        while (opened < opt.connections && pending < opt.max_pending) open_connection(opened++);
        if (!ready_sent && opened == opt.connections && pending == 0) {
            ready_sent = 1;
            report("ready");
        }
        if (mark_requested) {
            mark_requested = 0;
            report("mark");
        }
        if (opt.duration_s > 0 && (double)(now_us() - started) / 1e6 >= opt.duration_s) break;
        if (ready_sent && live == 0) break;
        int n = epoll_wait(epoll_fd, events, 1024, 100);
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            return 2;
        }
        for (int i = 0; i < n; i++) {
            connection *c = &conns[events[i].data.u32];
            if (c->state == CONNECTING)
                on_writable(c, events[i].events);
            else if (c->state != CLOSED)
                on_readable(c);
        }
    }
    report("final");
    return 0;
}
