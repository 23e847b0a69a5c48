/*
 * One life of the leak test (tests/tests/leaks.rs), using every capability for real.
 *
 * init: logs, reads entropy, creates the table `lives`, registers GET /leak/:n, the
 * WebSocket path /leak-ws and the SSE path /leak-sse. Each step serves one event:
 *
 *   GET /leak/:n[?docker=1] -> inserts n into SQLite, writes n to state/life.txt and
 *       reads it back, fetches config "url", and with docker=1 runs `echo ran-<n>` in
 *       a container (config "image") and creates a `sleep 600` container that only
 *       the host's close removes; then emits the SSE event "life" with data n on
 *       /leak-sse and answers 200
 *       "life=<n> rows=<last insert id> file=<file> fetch=<status> <body> docker=<stdout or ->"
 *       A failing call answers 500 "<call>: <status> <last_error>" instead.
 *   ws.frame -> sends "echo:<payload>" back (a failing ws_send fails the step).
 *
 * shutdown deletes the file.
 */
#define PULP_IMPLEMENTATION
#include "pulp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char url[256], image[128];

static void config_str(pulp_mpr cfg, const char *key, char *out, size_t size) {
    const char *s;
    uint32_t n;
    if (pulp_mp_map_str(cfg, key, &s, &n) && n < size) memcpy(out, s, n);
}

PULP_EXPORT(pulp_init) int32_t pulp_init(const uint8_t *cfg, uint32_t len) {
    pulp_mpr r;
    uint8_t random[16];
    pulp_mpr_init(&r, cfg, len);
    config_str(r, "url", url, sizeof url);
    config_str(r, "image", image, sizeof image);
    pulp_log(PULP_DEBUG, "every_cap: init");
    if (pulp_entropy_read(random, sizeof random) != PULP_OK) return 1;
    if (pulp_sqlite_exec("CREATE TABLE IF NOT EXISTS lives (n TEXT NOT NULL)", NULL, NULL, NULL) != PULP_OK)
        return 2;
    if (pulp_http_register("GET", "/leak/:n") != PULP_OK) return 3;
    if (pulp_ws_register("/leak-ws") != PULP_OK) return 4;
    if (pulp_sse_register("/leak-sse") != PULP_OK) return 5;
    return 0;
}

/* Answers 500 naming the call that failed, its status and last_error. */
static void fail(uint64_t id, const char *what, int32_t st) {
    char why[300], body[400];
    pulp_last_error(why, sizeof why);
    int n = snprintf(body, sizeof body, "%s: %d %s", what, (int)st, why);
    pulp_http_respond(id, 500, NULL, body, n < (int)sizeof body ? (size_t)n : sizeof body - 1);
}

#define TRY(what, call)                        \
    do {                                       \
        int32_t st_ = (call);                  \
        if (st_ != PULP_OK) {                  \
            fail(q->id, what, st_);            \
            return;                            \
        }                                      \
    } while (0)

/* Reads the bin or str field `key` of the msgpack map at `data` into `out` (NUL-ended). */
static bool field_text(const uint8_t *data, uint32_t len, const char *key, char *out, size_t size) {
    pulp_mpr r;
    const uint8_t *b;
    uint32_t n;
    pulp_mpr_init(&r, data, len);
    if (!pulp_mpr_find(&r, key)) return false;
    if (pulp_mpr_peek(&r) == PULP_MP_STR) {
        if (!pulp_mpr_str(&r, (const char **)&b, &n)) return false;
    } else if (!pulp_mpr_bin(&r, &b, &n)) {
        return false;
    }
    if (n >= size) n = (uint32_t)size - 1;
    memcpy(out, b, n);
    out[n] = 0;
    return true;
}

static bool field_int(const uint8_t *data, uint32_t len, const char *key, int64_t *v) {
    pulp_mpr r;
    pulp_mpr_init(&r, data, len);
    return pulp_mpr_find(&r, key) && pulp_mpr_int(&r, v);
}

static void on_request(const pulp_http_request *q) {
    const char *s;
    uint32_t n;
    char life[32], file[32], fetched[64] = "", ran[64] = "-", answer[400];
    uint8_t *res, *data;
    uint32_t res_len, data_len;
    int64_t rowid = 0, status = 0;

    pulp_mp_map_str(q->params, "n", &s, &n);
    if (n == 0 || n >= sizeof life) {
        pulp_http_respond(q->id, 400, NULL, "n?", 2);
        return;
    }
    memcpy(life, s, n);
    life[n] = 0;

    pulp_mpw params;
    pulp_mpw_init(&params);
    pulp_mpw_array(&params, 1);
    pulp_mpw_str(&params, life);
    int32_t st = pulp_sqlite_exec("INSERT INTO lives (n) VALUES (?)", &params, NULL, &rowid);
    pulp_mpw_free(&params);
    TRY("sqlite_exec", st);

    TRY("fs_write", pulp_fs_write("state/life.txt", life, n));
    TRY("fs_read", pulp_fs_read("state/life.txt", &data, &data_len));
    snprintf(file, sizeof file, "%.*s", (int)data_len, (const char *)data);
    free(data);

    TRY("http_fetch", pulp_http_fetch(NULL, url, NULL, NULL, 0, 5000, &res, &res_len));
    char body[48] = "";
    field_int(res, res_len, "status", &status);
    field_text(res, res_len, "body", body, sizeof body);
    snprintf(fetched, sizeof fetched, "%lld %s", (long long)status, body);
    free(res);

    const char *docker;
    uint32_t docker_len;
    pulp_mp_map_str(q->query, "docker", &docker, &docker_len);
    if (pulp_mp_str_eq(docker, docker_len, "1")) {
        char word[48], out[64] = "", id[65];
        int64_t code = -1;
        snprintf(word, sizeof word, "ran-%s", life);
        const char *echo[] = {"echo", word, NULL};
        TRY("docker_run", pulp_docker_run(image, echo, NULL, 0, 20000, &res, &res_len));
        field_int(res, res_len, "exit_code", &code);
        field_text(res, res_len, "stdout", out, sizeof out);
        free(res);
        size_t k = strlen(out);
        while (k && (out[k - 1] == '\n' || out[k - 1] == '\r')) out[--k] = 0;
        snprintf(ran, sizeof ran, "%lld %s", (long long)code, out);
        const char *sleep[] = {"sleep", "600", NULL};
        TRY("docker_create", pulp_docker_create(image, sleep, NULL, id));
    }

    TRY("sse_emit", pulp_sse_emit("/leak-sse", NULL, "life", life));

    int len = snprintf(answer, sizeof answer, "life=%s rows=%lld file=%s fetch=%s docker=%s", life,
                       (long long)rowid, file, fetched, ran);
    const char *headers[] = {"Content-Type", "text/plain", NULL};
    TRY("http_respond", pulp_http_respond(q->id, 200, headers, answer,
                                          len < (int)sizeof answer ? (size_t)len : sizeof answer - 1));
}

PULP_EXPORT(pulp_step) int32_t pulp_step(const uint8_t *in, uint32_t len) {
    pulp_envelope e;
    const char *kind;
    uint32_t kn;
    pulp_mpr payload;
    if (!pulp_envelope_parse(in, len, &e) || !pulp_event_parse(&e, &kind, &kn, &payload)) return 0;
    if (pulp_event_is(kind, kn, "http.request")) {
        pulp_http_request q;
        if (!pulp_http_request_parse(payload, &q)) return 10;
        on_request(&q);
    } else if (pulp_event_is(kind, kn, "ws.frame")) {
        pulp_ws_event f;
        char echo[256];
        if (!pulp_ws_event_parse(payload, &f) || f.payload_len > sizeof echo - 5) return 11;
        memcpy(echo, "echo:", 5);
        memcpy(echo + 5, f.payload, f.payload_len);
        if (pulp_ws_send(f.conn_id, f.opcode, echo, 5 + f.payload_len) != PULP_OK) return 12;
    }
    return 0;
}

PULP_EXPORT(pulp_shutdown) int32_t pulp_shutdown(void) {
    return pulp_fs_delete("state/life.txt") == PULP_OK ? 0 : 1;
}
