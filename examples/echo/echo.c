/*
 * echo: HTTP in, WebSocket echo and an SSE clock, on the shared listener.
 *
 *   GET  /echo/:msg   -> 200 "<msg>" (+ the query's `suffix`); the request's X-Echo
 *                        header comes back as X-Echo
 *   POST /echo        -> 200 with the request's body and Content-Type
 *   GET  /later/:msg  -> "later: <msg>", answered two steps after it arrived
 *   WS   /ws          -> every frame back as it came; the text "bye" closes (4000)
 *   GET  /clock       -> SSE: a "tick" event every second; POST /clock sends its
 *                        body to every subscriber as a "message" event
 *
 *   clang --target=wasm32-wasi -mexec-model=reactor -O2 -I ../../pdk/c \
 *         -o echo.wasm echo.c
 */
#define PULP_IMPLEMENTATION
#include "pulp.h"

#include <stdio.h>
#include <string.h>

#define LATER_MAX 64

static struct {
    uint64_t id, due;
    char msg[128];
} later[LATER_MAX];
static uint64_t last_second, ticks;

static int32_t route(const char *method, const char *path) {
    int32_t st = pulp_http_register(method, path);
    if (st != PULP_OK) {
        char why[300];
        pulp_last_error(why, sizeof why);
        pulp_logf(PULP_ERROR, "echo: cannot route %s %s: %s", method, path, why);
    }
    return st;
}

PULP_EXPORT(pulp_init) int32_t pulp_init(const uint8_t *cfg, uint32_t len) {
    (void)cfg;
    (void)len;
    if (route("GET", "/echo/:msg") || route("POST", "/echo") || route("GET", "/later/:msg") ||
        route("POST", "/clock"))
        return 1;
    if (pulp_ws_register("/ws") != PULP_OK || pulp_sse_register("/clock") != PULP_OK) return 2;
    pulp_log(PULP_INFO, "echo: routes registered");
    return 0;
}

static void text_reply(uint64_t id, uint16_t status, const char *extra_name, const char *extra_value,
                       const void *body, size_t len) {
    const char *headers[] = {"Content-Type", "text/plain; charset=utf-8", extra_name, extra_value, NULL};
    pulp_http_respond(id, status, headers, body, len);
}

static void on_request(const pulp_http_request *q, uint64_t call) {
    const char *s = "", *x = "";
    uint32_t n = 0, xn = 0;
    char buf[512];
    if (pulp_mp_str_eq(q->method, q->method_len, "POST") && pulp_mp_str_eq(q->path, q->path_len, "/echo")) {
        char type[128] = "application/octet-stream";
        if (pulp_mp_map_str(q->headers, "Content-Type", &s, &n) && n < sizeof type)
            snprintf(type, sizeof type, "%.*s", (int)n, s);
        const char *headers[] = {"Content-Type", type, NULL};
        pulp_http_respond(q->id, 200, headers, q->body, q->body_len);
    } else if (pulp_mp_str_eq(q->method, q->method_len, "POST")) { /* /clock */
        snprintf(buf, sizeof buf, "%.*s", (int)q->body_len, (const char *)q->body);
        int32_t st = pulp_sse_emit("/clock", NULL, "message", buf);
        text_reply(q->id, st == PULP_OK ? 202 : 400, NULL, NULL, "", 0);
    } else if (q->path_len > 7 && memcmp(q->path, "/later/", 7) == 0) {
        for (int i = 0; i < LATER_MAX; i++) {
            if (later[i].id) continue;
            pulp_mp_map_str(q->params, "msg", &s, &n);
            later[i].id = q->id;
            later[i].due = call + 2;
            snprintf(later[i].msg, sizeof later[i].msg, "later: %.*s", (int)n, s);
            return;
        }
        text_reply(q->id, 503, NULL, NULL, "too many", 8);
    } else { /* GET /echo/:msg */
        pulp_mp_map_str(q->params, "msg", &s, &n);
        pulp_mp_map_str(q->query, "suffix", &x, &xn); /* "" when absent */
        int len = snprintf(buf, sizeof buf, "%.*s%.*s", (int)n, s, (int)xn, x);
        char echo[128] = "";
        if (pulp_mp_map_str(q->headers, "X-Echo", &s, &n) && n < sizeof echo)
            snprintf(echo, sizeof echo, "%.*s", (int)n, s);
        text_reply(q->id, 200, echo[0] ? "X-Echo" : NULL, echo, buf, len < (int)sizeof buf ? (size_t)len : sizeof buf - 1);
    }
}

PULP_EXPORT(pulp_step) int32_t pulp_step(const uint8_t *in, uint32_t len) {
    pulp_envelope e;
    if (!pulp_envelope_parse(in, len, &e)) return 0;
    for (int i = 0; i < LATER_MAX; i++) {
        if (later[i].id && e.call_number >= later[i].due) {
            text_reply(later[i].id, 200, NULL, NULL, later[i].msg, strlen(later[i].msg));
            later[i].id = 0;
        }
    }
    uint64_t second = e.wall_time / 1000000000ull;
    if (second != last_second) {
        char id[24], data[32];
        last_second = second;
        snprintf(id, sizeof id, "%llu", (unsigned long long)++ticks);
        snprintf(data, sizeof data, "%llu", (unsigned long long)second);
        pulp_sse_emit("/clock", id, "tick", data);
    }
    const char *kind;
    uint32_t kn;
    pulp_mpr payload;
    if (!pulp_event_parse(&e, &kind, &kn, &payload)) return 0;
    if (pulp_event_is(kind, kn, "http.request")) {
        pulp_http_request q;
        if (pulp_http_request_parse(payload, &q)) on_request(&q, e.call_number);
    } else if (pulp_event_is(kind, kn, "ws.frame")) {
        pulp_ws_event f;
        if (!pulp_ws_event_parse(payload, &f)) return 0;
        if (f.opcode == 1 && f.payload_len == 3 && memcmp(f.payload, "bye", 3) == 0)
            pulp_ws_close(f.conn_id, 4000, "bye");
        else
            pulp_ws_send(f.conn_id, f.opcode, f.payload, f.payload_len);
    }
    return 0;
}

PULP_EXPORT(pulp_shutdown) int32_t pulp_shutdown(void) { return 0; }
