/*
 * A test driver: each step's event {kind: "call", payload: {fn, a: bin, b: bin}}
 * names an import and its arguments; the driver calls it and records, through
 * test_record, {status: int, result: bin, error: str}.
 *
 *   sqlite_exec / sqlite_query: a = SQL text, b = parameters (msgpack array) or empty
 *   fs_read / fs_delete: a = path;  fs_write: a = path, b = data
 *   http_fetch: a = the request map (msgpack)
 *   http_register, http_respond, ws_send, ws_close, sse_emit: a = the request map
 *   ws_register, sse_register: a = the path
 *   docker_*: a = the request map
 *   trap: traps, so the instance must be replaced
 */

#define PULP_IMPLEMENTATION
#include "pulp.h"

#include <stdlib.h>
#include <string.h>

PULP_IMPORT(test_record) int32_t test_record(const void *p, uint32_t n);


static void record(int32_t status, const uint8_t *result, uint32_t len) {
    char err[1024] = "";
    if (status != PULP_OK) pulp_last_error(err, sizeof err);
    pulp_mpw w;
    pulp_mpw_init(&w);
    pulp_mpw_map(&w, 3);
    pulp_mpw_str(&w, "status");
    pulp_mpw_int(&w, status);
    pulp_mpw_str(&w, "result");
    pulp_mpw_bin(&w, result, len);
    pulp_mpw_str(&w, "error");
    pulp_mpw_str(&w, err);
    test_record(w.buf, (uint32_t)w.len);
    pulp_mpw_free(&w);
}

PULP_EXPORT(pulp_init) int32_t pulp_init(const uint8_t *cfg, uint32_t len) {
    (void)cfg;
    (void)len;
    return 0;
}

PULP_EXPORT(pulp_step) int32_t pulp_step(const uint8_t *in, uint32_t len) {
    pulp_envelope e;
    if (!pulp_envelope_parse(in, len, &e) || !e.payload) return 0;
    pulp_mpr r;
    uint32_t n;
    const char *fn = NULL;
    uint32_t fn_len = 0;
    const uint8_t *a = NULL, *b = NULL;
    uint32_t a_len = 0, b_len = 0;
    pulp_mpr_init(&r, e.payload, e.payload_len);
    if (!pulp_mpr_find(&r, "payload") || !pulp_mpr_map(&r, &n)) return 1;
    while (n--) {
        const char *k;
        uint32_t kn;
        if (!pulp_mpr_str(&r, &k, &kn)) return 1;
        if (pulp_mp_str_eq(k, kn, "fn")) pulp_mpr_str(&r, &fn, &fn_len);
        else if (pulp_mp_str_eq(k, kn, "a")) pulp_mpr_bin(&r, &a, &a_len);
        else if (pulp_mp_str_eq(k, kn, "b")) pulp_mpr_bin(&r, &b, &b_len);
        else pulp_mpr_skip(&r);
    }
    if (r.failed || !fn) return 1;
    if (pulp_mp_str_eq(fn, fn_len, "trap")) __builtin_trap();
    uint8_t *out = NULL;
    uint32_t out_len = 0;
    int32_t st;
    if (pulp_mp_str_eq(fn, fn_len, "sqlite_exec"))
        st = pulp_import_sqlite_exec(a, a_len, b, b_len, &out, &out_len);
    else if (pulp_mp_str_eq(fn, fn_len, "sqlite_query"))
        st = pulp_import_sqlite_query(a, a_len, b, b_len, &out, &out_len);
    else if (pulp_mp_str_eq(fn, fn_len, "fs_read"))
        st = pulp_import_fs_read(a, a_len, &out, &out_len);
    else if (pulp_mp_str_eq(fn, fn_len, "fs_write"))
        st = pulp_import_fs_write(a, a_len, b, b_len);
    else if (pulp_mp_str_eq(fn, fn_len, "fs_delete"))
        st = pulp_import_fs_delete(a, a_len);
    else if (pulp_mp_str_eq(fn, fn_len, "http_fetch"))
        st = pulp_import_http_fetch(a, a_len, &out, &out_len);
    else if (pulp_mp_str_eq(fn, fn_len, "http_register"))
        st = pulp_import_http_register(a, a_len);
    else if (pulp_mp_str_eq(fn, fn_len, "http_respond"))
        st = pulp_import_http_respond(a, a_len);
    else if (pulp_mp_str_eq(fn, fn_len, "ws_register"))
        st = pulp_import_ws_register(a, a_len);
    else if (pulp_mp_str_eq(fn, fn_len, "ws_send"))
        st = pulp_import_ws_send(a, a_len);
    else if (pulp_mp_str_eq(fn, fn_len, "ws_close"))
        st = pulp_import_ws_close(a, a_len);
    else if (pulp_mp_str_eq(fn, fn_len, "sse_register"))
        st = pulp_import_sse_register(a, a_len);
    else if (pulp_mp_str_eq(fn, fn_len, "sse_emit"))
        st = pulp_import_sse_emit(a, a_len);
#define CALL4(n) else if (pulp_mp_str_eq(fn, fn_len, #n)) st = pulp_import_##n(a, a_len, &out, &out_len);
#define CALL2(n) else if (pulp_mp_str_eq(fn, fn_len, #n)) st = pulp_import_##n(a, a_len);
    CALL4(docker_run) CALL4(docker_create) CALL4(docker_get) CALL4(docker_list) CALL4(docker_exec)
    CALL4(docker_logs) CALL4(docker_stats) CALL4(docker_files_read) CALL4(docker_events_poll)
    CALL2(docker_files_write) CALL2(docker_restart) CALL2(docker_destroy)
    else
        return 2;
    record(st, out, out_len);
    free(out);
    return 0;
}

PULP_EXPORT(pulp_shutdown) int32_t pulp_shutdown(void) { return 0; }
