/*
 * Uses every capability once per life, for the leak test: init logs, reads
 * entropy, creates a table and inserts, writes a file, fetches from the test server
 * (config "url"), registers an HTTP route, a WebSocket path and an SSE path, and
 * lists its containers; each step queries, reads the file and emits an SSE event;
 * shutdown deletes the file. Any failure fails init (or the step) with its status.
 */
#define PULP_IMPLEMENTATION
#include "pulp.h"

#include <stdlib.h>
#include <string.h>

static char url[256];

#define TRY(call)                                      \
    do {                                               \
        int32_t st_ = (call);                          \
        if (st_ != PULP_OK) {                          \
            char why_[300];                            \
            pulp_last_error(why_, sizeof why_);        \
            pulp_logf(PULP_ERROR, "%s: %s", #call, why_); \
            return 100 + st_;                          \
        }                                              \
    } while (0)

PULP_EXPORT(pulp_init) int32_t pulp_init(const uint8_t *cfg, uint32_t len) {
    pulp_mpr r;
    const char *s;
    uint32_t n;
    uint8_t random[16], *res;
    pulp_mpr_init(&r, cfg, len);
    if (pulp_mp_map_str(r, "url", &s, &n) && n < sizeof url) memcpy(url, s, n);
    pulp_log(PULP_DEBUG, "every_cap: init");
    TRY(pulp_entropy_read(random, sizeof random));
    TRY(pulp_sqlite_exec("CREATE TABLE IF NOT EXISTS t (v BLOB); INSERT INTO t VALUES (randomblob(16))", NULL, NULL, NULL));
    TRY(pulp_fs_write("state/f.bin", random, sizeof random));
    if (url[0]) {
        TRY(pulp_http_fetch(NULL, url, NULL, NULL, 0, 5000, &res, &n));
        free(res);
    }
    TRY(pulp_http_register("GET", "/leak"));
    TRY(pulp_ws_register("/leak-ws"));
    TRY(pulp_sse_register("/leak-sse"));
    TRY(pulp_docker_list(&res, &n));
    free(res);
    return 0;
}

PULP_EXPORT(pulp_step) int32_t pulp_step(const uint8_t *in, uint32_t len) {
    uint8_t *res, *data;
    uint32_t n;
    (void)in;
    (void)len;
    TRY(pulp_sqlite_query("SELECT count(*) FROM t", NULL, &res, &n));
    free(res);
    TRY(pulp_fs_read("state/f.bin", &data, &n));
    free(data);
    TRY(pulp_sse_emit("/leak-sse", NULL, NULL, "tick"));
    return 0;
}

PULP_EXPORT(pulp_shutdown) int32_t pulp_shutdown(void) {
    TRY(pulp_fs_delete("state/f.bin"));
    return 0;
}
