/*
 * A stateless plugin for instance pools: each instance draws a random id at init;
 * GET /who answers with that id after about 5 ms of work, and counts the request in
 * SQLite (the state all instances share).
 */
#define PULP_IMPLEMENTATION
#include "pulp.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static char me[17];

PULP_EXPORT(pulp_init) int32_t pulp_init(const uint8_t *cfg, uint32_t len) {
    (void)cfg;
    (void)len;
    uint64_t id;
    if (pulp_entropy_read(&id, sizeof id) != PULP_OK) return 1;
    snprintf(me, sizeof me, "%016llx", (unsigned long long)id);
    if (pulp_sqlite_exec("CREATE TABLE IF NOT EXISTS hits (n INTEGER NOT NULL); "
                         "INSERT INTO hits SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM hits)",
                         NULL, NULL, NULL) != PULP_OK)
        return 2;
    return pulp_http_register("GET", "/who") == PULP_OK ? 0 : 3;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

PULP_EXPORT(pulp_step) int32_t pulp_step(const uint8_t *in, uint32_t len) {
    pulp_http_request q;
    if (!pulp_step_http_request(in, len, &q)) return 0;
    double until = now() + 0.005;
    while (now() < until) {
    }
    if (pulp_sqlite_exec("UPDATE hits SET n = n + 1", NULL, NULL, NULL) != PULP_OK) {
        pulp_http_respond(q.id, 500, NULL, "db", 2);
        return 0;
    }
    pulp_http_respond(q.id, 200, NULL, me, strlen(me));
    return 0;
}

PULP_EXPORT(pulp_shutdown) int32_t pulp_shutdown(void) { return 0; }
