/*
 * A plugin with a bug one request triggers, for the record-and-replay tests
 * (tests/tests/record.rs).
 *
 *   GET /share/:n -> 200 "share=<1000 / n> seen=<requests so far> rand=<u32> t=<s>"
 *                    with n = 0 it divides by zero: a wasm trap in `share`.
 *   GET /fine     -> 200 "fine <requests so far>"
 *
 * Each answer also depends on entropy, the WASI clock and SQLite (a counter table),
 * so a replay that did not feed those back exactly would answer differently.
 * Built with -DFIXED (buggy_fixed.c) the bug is fixed: n = 0 answers 400.
 */
#define PULP_IMPLEMENTATION
#include "pulp.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static int seen;

PULP_EXPORT(pulp_init) int32_t pulp_init(const uint8_t *cfg, uint32_t len) {
    (void)cfg;
    (void)len;
    if (pulp_http_register("GET", "/share/:n") != PULP_OK) return 1;
    if (pulp_http_register("GET", "/fine") != PULP_OK) return 2;
    if (pulp_sqlite_exec("CREATE TABLE IF NOT EXISTS hits (n INTEGER)", NULL, NULL, NULL) != PULP_OK)
        return 3;
    pulp_logf(PULP_INFO, "buggy: started at %lld", (long long)time(NULL));
    return 0;
}

__attribute__((noinline)) static int share(int n) {
    volatile int d = n;
#ifdef FIXED
    if (d == 0) return -1;
#endif
    return 1000 / d;
}

static void reply(uint64_t id, uint16_t status, const char *body) {
    pulp_http_respond(id, status, NULL, body, strlen(body));
}

PULP_EXPORT(pulp_step) int32_t pulp_step(const uint8_t *in, uint32_t len) {
    pulp_envelope e;
    pulp_http_request q;
    if (!pulp_envelope_parse(in, len, &e) || !pulp_step_http_request(in, len, &q)) return 0;
    char body[160];
    int64_t rows = 0, id = 0;
    seen++;
    if (pulp_sqlite_exec("INSERT INTO hits (n) VALUES (1)", NULL, &rows, &id) != PULP_OK) {
        reply(q.id, 500, "sqlite");
        return 0;
    }
    if (pulp_mp_str_eq(q.path, q.path_len, "/fine")) {
        snprintf(body, sizeof body, "fine %d row=%lld", seen, (long long)id);
        reply(q.id, 200, body);
        return 0;
    }
    const char *s;
    uint32_t n;
    int k = 0;
    if (pulp_mp_map_str(q.params, "n", &s, &n))
        for (uint32_t i = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++) k = k * 10 + (s[i] - '0');
    uint32_t r = 0;
    pulp_entropy_read(&r, sizeof r);
    int v = share(k);
    if (v < 0) {
        reply(q.id, 400, "n must not be 0");
        return 0;
    }
    snprintf(body, sizeof body, "share=%d seen=%d rand=%u t=%lld", v, seen, r, (long long)time(NULL));
    reply(q.id, 200, body);
    return 0;
}

PULP_EXPORT(pulp_shutdown) int32_t pulp_shutdown(void) { return 0; }
