/*
 * Crash-test plugin: every step inserts one row into storage.sqlite and, once
 * sqlite_exec has returned 0, logs "acked <id>". The test kills the host with
 * SIGKILL mid-run and checks every acknowledged id is in the table afterwards.
 */
#define PULP_IMPLEMENTATION
#include "pulp.h"

PULP_EXPORT(pulp_init) int32_t pulp_init(const uint8_t *cfg, uint32_t len) {
    (void)cfg;
    (void)len;
    int32_t st = pulp_sqlite_exec("CREATE TABLE IF NOT EXISTS acks(id INTEGER PRIMARY KEY, at INTEGER NOT NULL)",
                                  NULL, NULL, NULL);
    if (st != PULP_OK) {
        char why[256];
        pulp_last_error(why, sizeof why);
        pulp_logf(PULP_ERROR, "inserter: create failed: %s", why);
    }
    return st;
}

PULP_EXPORT(pulp_step) int32_t pulp_step(const uint8_t *in, uint32_t len) {
    pulp_envelope e;
    if (!pulp_envelope_parse(in, len, &e)) return 0;
    pulp_mpw p;
    pulp_mpw_init(&p);
    pulp_mpw_array(&p, 1);
    pulp_mpw_uint(&p, e.wall_time);
    int64_t id = 0;
    int32_t st = pulp_sqlite_exec("INSERT INTO acks(at) VALUES (?)", &p, NULL, &id);
    pulp_mpw_free(&p);
    if (st == PULP_OK) pulp_logf(PULP_INFO, "acked %lld", (long long)id);
    return 0;
}

PULP_EXPORT(pulp_shutdown) int32_t pulp_shutdown(void) { return 0; }
