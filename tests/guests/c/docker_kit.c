/*
 * Exercises pulp.h's typed spawn.docker wrappers in one step: create, exec, files
 * write and read, get, logs, restart, destroy. Records "ok" or the first failure
 * (which wrapper, its status, last_error) through test_record.
 */
#define PULP_IMPLEMENTATION
#include "pulp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

PULP_IMPORT(test_record) int32_t test_record(const void *p, uint32_t n);

static void say(const char *what, int32_t st) {
    char msg[700], why[512] = "";
    if (st != PULP_OK) pulp_last_error(why, sizeof why);
    snprintf(msg, sizeof msg, "%s %d %s", what, (int)st, why);
    test_record(msg, (uint32_t)strlen(msg));
}

PULP_EXPORT(pulp_init) int32_t pulp_init(const uint8_t *cfg, uint32_t len) {
    (void)cfg;
    (void)len;
    return 0;
}

PULP_EXPORT(pulp_step) int32_t pulp_step(const uint8_t *in, uint32_t len) {
    pulp_envelope e;
    if (!pulp_envelope_parse(in, len, &e) || !e.payload) return 0;
    char id[65];
    const char *sleep[] = {"sleep", "3600", NULL};
    int32_t st = pulp_docker_create("pulp-test/busybox:1", sleep, "kit", id);
    if (st) return say("create", st), 0;
    char *out;
    int64_t code;
    const char *cmd[] = {"sh", "-c", "echo kit; exit 5", NULL};
    if ((st = pulp_docker_exec(id, cmd, &out, &code))) return say("exec", st), 0;
    if (strcmp(out, "kit\n") != 0 || code != 5) return say("exec result", -1), 0;
    free(out);
    if ((st = pulp_docker_files_write(id, "/tmp/f", "abc", 3))) return say("files_write", st), 0;
    uint8_t *data;
    uint32_t n;
    if ((st = pulp_docker_files_read(id, "/tmp/f", &data, &n))) return say("files_read", st), 0;
    if (n != 3 || memcmp(data, "abc", 3) != 0) return say("files_read result", -1), 0;
    free(data);
    uint8_t *res;
    const char *state;
    uint32_t sn;
    pulp_mpr r;
    if ((st = pulp_docker_query_id(pulp_import_docker_get, id, &res, &n))) return say("get", st), 0;
    pulp_mpr_init(&r, res, n);
    if (!pulp_mp_map_str(r, "state", &state, &sn) || !pulp_mp_str_eq(state, sn, "running")) return say("get state", -1), 0;
    free(res);
    if ((st = pulp_docker_list(&res, &n))) return say("list", st), 0;
    uint32_t count;
    pulp_mpr_init(&r, res, n);
    if (!pulp_mpr_array(&r, &count) || count != 1) return say("list result", -1), 0;
    free(res);
    if ((st = pulp_docker_events_poll(0, 10, &res, &n))) return say("events_poll", st), 0;
    pulp_mpr_init(&r, res, n);
    if (!pulp_mpr_array(&r, &count) || count == 0) return say("events_poll result", -1), 0;
    free(res);
    if ((st = pulp_docker_by_id(pulp_import_docker_restart, id))) return say("restart", st), 0;
    if ((st = pulp_docker_by_id(pulp_import_docker_destroy, id))) return say("destroy", st), 0;
    if ((st = pulp_docker_query_id(pulp_import_docker_get, id, &res, &n)) != PULP_NOT_FOUND) return say("get after destroy", st), 0;
    say("ok", 0);
    return 0;
}

PULP_EXPORT(pulp_shutdown) int32_t pulp_shutdown(void) { return 0; }
