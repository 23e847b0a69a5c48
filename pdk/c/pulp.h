/*
 * pulp.h — the C guest header for Pulp plugins (ABI v1, docs/ABI.md).
 *
 * One header, no library. In exactly one .c file of your plugin:
 *
 *     #define PULP_IMPLEMENTATION
 *     #include "pulp.h"
 *
 * That file then also defines the exports `pulp_alloc` and `pulp_free` (malloc and
 * free; define PULP_NO_ALLOC to write your own). You write `pulp_init`, `pulp_step`
 * and `pulp_shutdown` with PULP_EXPORT. Build a reactor module with Debian's clang:
 *
 *     clang --target=wasm32-wasi -mexec-model=reactor -O2 -I pdk/c \
 *           -o plugin.wasm plugin.c
 *
 * What is here:
 *   - the status codes (PULP_OK ... PULP_NOT_DECLARED) and every import of the
 *     `core`, `logging`, `entropy`, `calls` (pulp_call; pulp_call_answer for
 *     serving pulp_on_call), `storage.sqlite`, `storage.fs`,
 *     `transport.http.outbound`, `transport.http.inbound`, `transport.ws.inbound`,
 *     `transport.sse` and `spawn.docker` capabilities, most with typed wrappers (an import a
 *     plugin never calls is left out by the linker, so it needs no declaration);
 *   - pulp_envelope_parse: the 20-byte step header and its payload;
 *     pulp_event_parse: the event's kind and payload; pulp_http_request_parse and
 *     pulp_ws_frame_parse for the transport events;
 *   - a msgpack writer (pulp_mpw_*) into a growable buffer and a reader
 *     (pulp_mpr_*) over a byte range, for config, events, requests and results.
 *
 * Buffers the host returns through out-pointers were made with pulp_alloc: the
 * plugin owns them and frees them with free() (the wrappers here do).
 */
#ifndef PULP_H
#define PULP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- statuses (docs/ABI.md §4) ------------------------------------------ */

enum {
    PULP_OK = 0,
    PULP_EMPTY = 1,
    PULP_BAD_POINTER = 2,
    PULP_BAD_ENCODING = 3,
    PULP_INVALID = 4,
    PULP_FAILED = 5,
    PULP_NOT_FOUND = 6,
    PULP_ALLOC_FAILED = 7,
    PULP_WRITE_FAILED = 8,
    PULP_DENIED = 9,
    PULP_UNAVAILABLE = 10,
    PULP_TOO_LARGE = 11,
    PULP_TIMEOUT = 12,
    PULP_NOT_DECLARED = 99,
};

enum { PULP_TRACE = 0, PULP_DEBUG = 1, PULP_INFO = 2, PULP_WARN = 3, PULP_ERROR = 4 };

#define PULP_EXPORT(name) __attribute__((export_name(#name)))

/* The plugin's allocator export (defined with PULP_IMPLEMENTATION unless
   PULP_NO_ALLOC): the host's results, and pulp_call_answer's, are made with it. */
void *pulp_alloc(int32_t size);
#define PULP_IMPORT(name) __attribute__((import_module("pulp"), import_name(#name)))

typedef struct pulp_mpw pulp_mpw_t;

/* ---- raw imports --------------------------------------------------------- */

PULP_IMPORT(log) int32_t pulp_import_log(int32_t level, const void *msg, uint32_t len);
PULP_IMPORT(entropy_fill) int32_t pulp_import_entropy_fill(void *buf, uint32_t len);
PULP_IMPORT(entropy_read)
int32_t pulp_import_entropy_read(const void *req, uint32_t req_len, uint8_t **out, uint32_t *out_len);
PULP_IMPORT(last_error) int32_t pulp_import_last_error(uint8_t **out, uint32_t *out_len);

/* storage.sqlite */
PULP_IMPORT(sqlite_exec)
int32_t pulp_import_sqlite_exec(const void *q, uint32_t q_len, const void *p, uint32_t p_len, uint8_t **out,
                                uint32_t *out_len);
PULP_IMPORT(sqlite_query)
int32_t pulp_import_sqlite_query(const void *q, uint32_t q_len, const void *p, uint32_t p_len, uint8_t **out,
                                 uint32_t *out_len);
/* storage.fs */
PULP_IMPORT(fs_read) int32_t pulp_import_fs_read(const void *path, uint32_t len, uint8_t **out, uint32_t *out_len);
PULP_IMPORT(fs_write) int32_t pulp_import_fs_write(const void *path, uint32_t len, const void *data, uint32_t data_len);
PULP_IMPORT(fs_delete) int32_t pulp_import_fs_delete(const void *path, uint32_t len);

/* transport.http.outbound: req {method, url, headers, body, timeout_ms} -> {status, headers, body} */
PULP_IMPORT(http_fetch)
int32_t pulp_import_http_fetch(const void *req, uint32_t req_len, uint8_t **out, uint32_t *out_len);

/* transport.http.inbound: {method, path}; {id, status, headers, body} */
PULP_IMPORT(http_register) int32_t pulp_import_http_register(const void *req, uint32_t len);
PULP_IMPORT(http_respond) int32_t pulp_import_http_respond(const void *resp, uint32_t len);
/* transport.ws.inbound: a path; {conn_id, opcode, payload}; {conn_id, code, reason} */
PULP_IMPORT(ws_register) int32_t pulp_import_ws_register(const void *path, uint32_t len);
PULP_IMPORT(ws_send) int32_t pulp_import_ws_send(const void *req, uint32_t len);
PULP_IMPORT(ws_close) int32_t pulp_import_ws_close(const void *req, uint32_t len);
/* transport.sse: a path; {path, id?, event?, data} */
PULP_IMPORT(sse_register) int32_t pulp_import_sse_register(const void *path, uint32_t len);
PULP_IMPORT(sse_emit) int32_t pulp_import_sse_emit(const void *req, uint32_t len);

/* spawn.docker: every request is a msgpack map (docs/ABI.md §4 "spawn.docker");
   the first nine return a msgpack result through (out, out_len). */
#define PULP__DOCKER4(n) \
    PULP_IMPORT(n) int32_t pulp_import_##n(const void *req, uint32_t len, uint8_t **out, uint32_t *out_len);
PULP__DOCKER4(docker_run)
PULP__DOCKER4(docker_create)
PULP__DOCKER4(docker_get)
PULP__DOCKER4(docker_list)
PULP__DOCKER4(docker_exec)
PULP__DOCKER4(docker_logs)
PULP__DOCKER4(docker_stats)
PULP__DOCKER4(docker_files_read)
PULP__DOCKER4(docker_events_poll)
PULP_IMPORT(docker_files_write) int32_t pulp_import_docker_files_write(const void *req, uint32_t len);
/* calls (always bound): another plugin's pulp_on_call. */
PULP_IMPORT(pulp_call)
int32_t pulp_import_call(const void *target, uint32_t target_len, const void *name, uint32_t name_len, const void *args,
                         uint32_t args_len, uint8_t **out, uint32_t *out_len);
PULP_IMPORT(docker_restart) int32_t pulp_import_docker_restart(const void *req, uint32_t len);
PULP_IMPORT(docker_destroy) int32_t pulp_import_docker_destroy(const void *req, uint32_t len);

/* ---- typed wrappers ------------------------------------------------------ */

/* Logs a NUL-terminated message at `level`. */
int32_t pulp_log(int32_t level, const char *msg);
/* Logs `len` bytes. */
int32_t pulp_logn(int32_t level, const char *msg, size_t len);
/* Logs a printf-style message (truncated at 1 KiB). */
int32_t pulp_logf(int32_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Fills `len` (<= 65536) bytes from the host's CSPRNG. */
int32_t pulp_entropy_fill(void *buf, size_t len);
/* entropy_read {n} -> {bytes}: copies `n` random bytes into `buf`. */
int32_t pulp_entropy_read(void *buf, uint32_t n);
/* Copies the text of the last failure, NUL-terminated, into `buf` (truncating). */
int32_t pulp_last_error(char *buf, size_t size);

/* storage.sqlite: runs `sql` with `params` (a msgpack array built with pulp_mpw, or
   NULL for none; without parameters `sql` may hold several statements). Either out
   parameter may be NULL. */
int32_t pulp_sqlite_exec(const char *sql, const pulp_mpw_t *params, int64_t *rows_affected, int64_t *last_insert_id);
/* storage.sqlite: runs a query; on PULP_OK `*rows` holds {columns, rows} msgpack of
   `*len` bytes (read it with pulp_mpr; free() it). */
int32_t pulp_sqlite_query(const char *sql, const pulp_mpw_t *params, uint8_t **rows, uint32_t *len);
/* storage.fs: reads a whole file; on PULP_OK free() `*data` (NULL when empty). */
int32_t pulp_fs_read(const char *path, uint8_t **data, uint32_t *len);
/* storage.fs: writes a whole file atomically (parents created). */
int32_t pulp_fs_write(const char *path, const void *data, size_t len);
/* storage.fs: deletes a file or an empty folder. */
int32_t pulp_fs_delete(const char *path);

/* transport.http.inbound: routes `method` `path` (`:name` one segment, a final
   `*name` the rest) to this plugin; requests arrive as "http.request" events. */
int32_t pulp_http_register(const char *method, const char *path);
/* Answers request `id` (now or in a later step, before its deadline). `headers` is
   NULL or a NULL-terminated list of name, value pairs; status 0 means 200. */
int32_t pulp_http_respond(uint64_t id, uint16_t status, const char *const *headers, const void *body, size_t len);
/* transport.ws.inbound: WebSocket upgrades on `path` become ws.open/frame/close events. */
int32_t pulp_ws_register(const char *path);
/* Queues a frame (opcode 1 text, 2 binary); PULP_TIMEOUT when the client is not reading. */
int32_t pulp_ws_send(uint64_t conn_id, uint8_t opcode, const void *data, size_t len);
/* Closes a connection with `code` (0 means 1000) and a reason (may be NULL). */
int32_t pulp_ws_close(uint64_t conn_id, uint16_t code, const char *reason);
/* transport.http.outbound: fetches `url` (`method` NULL means GET; `headers` NULL or
   a NULL-terminated list of name, value pairs; `timeout_ms` 0 means the default); on
   PULP_OK `*result` holds {status, headers, body} msgpack of `*len` bytes (free() it). */
int32_t pulp_http_fetch(const char *method, const char *url, const char *const *headers, const void *body,
                        size_t body_len, uint32_t timeout_ms, uint8_t **result, uint32_t *len);
/* spawn.docker: this plugin's containers as a msgpack array of {id, name, image, state}. */
int32_t pulp_docker_list(uint8_t **result, uint32_t *len);
/* spawn.docker: events of this plugin's containers since `since_nanos` (unix ns), at
   most `limit`, as a msgpack array of {timestamp, container_id, name, action}. */
int32_t pulp_docker_events_poll(int64_t since_nanos, uint32_t limit, uint8_t **result, uint32_t *len);
/* spawn.docker: runs `argv` (NULL-terminated) in `image` to completion with `stdin`
   (may be NULL); on PULP_OK `*result` holds {exit_code, stdout, stderr, timed_out}
   msgpack of `*len` bytes (read it with pulp_mpr; free() it). */
int32_t pulp_docker_run(const char *image, const char *const *argv, const void *stdin_data, size_t stdin_len,
                        uint32_t timeout_ms, uint8_t **result, uint32_t *len);
/* spawn.docker: one of the {id} calls without a result (pulp_import_docker_restart,
   pulp_import_docker_destroy). */
int32_t pulp_docker_by_id(int32_t (*call)(const void *, uint32_t), const char *id);
/* spawn.docker: one of the {id} calls with a msgpack result (pulp_import_docker_get,
   _logs, _stats); on PULP_OK free() `*result`. */
int32_t pulp_docker_query_id(int32_t (*call)(const void *, uint32_t, uint8_t **, uint32_t *), const char *id,
                             uint8_t **result, uint32_t *len);
/* spawn.docker: creates and starts a container running `argv` (NULL-terminated; NULL
   for the image's command); `name` may be NULL. The new id (64 hex digits) goes to
   `id_out` (at least 65 bytes). */
int32_t pulp_docker_create(const char *image, const char *const *argv, const char *name, char *id_out);
/* spawn.docker: runs `argv` in container `id`; on PULP_OK `*output` (free() it) holds
   stdout and stderr together, NUL-terminated, and `*exit_code` the command's code. */
int32_t pulp_docker_exec(const char *id, const char *const *argv, char **output, int64_t *exit_code);
/* spawn.docker: reads a file of container `id`; on PULP_OK free() `*data`. */
int32_t pulp_docker_files_read(const char *id, const char *path, uint8_t **data, uint32_t *len);
/* spawn.docker: writes a file (mode 0644) into an existing folder of container `id`. */
int32_t pulp_docker_files_write(const char *id, const char *path, const void *data, size_t len);
/* calls: runs function `name` of plugin `target` (or of the one plugin that provides
   `target`) with `args`; on PULP_OK free() `*answer` (NULL when empty). The manifest
   must list the target in depends_on, or it or a name it provides in consumes (else
   PULP_DENIED). A call cycle is PULP_INVALID at once, a target busy past this step's
   deadline PULP_TIMEOUT, a stopped one PULP_UNAVAILABLE; pulp_last_error says which. */
int32_t pulp_call(const char *target, const char *name, const void *args, size_t args_len, uint8_t **answer,
                  uint32_t *len);
/* For a plugin's PULP_EXPORT(pulp_on_call): hands `len` bytes of `data` back to the
   caller through the export's out-pointers (copied into a pulp_alloc buffer the host
   frees); returns `status`, so `return pulp_call_answer(out, out_len, buf, n, PULP_OK);`.
   A non-zero status reaches the caller as pulp_call's status (when it is one of the
   PULP_ codes; else PULP_FAILED) with `data` as its pulp_last_error text. */
int32_t pulp_call_answer(uint8_t **out, uint32_t *out_len, const void *data, size_t len, int32_t status);

/* transport.sse: GET `path` subscribes to the events this plugin emits there. */
int32_t pulp_sse_register(const char *path);
/* Sends an event to every subscriber of `path`; `id` and `event` may be NULL. */
int32_t pulp_sse_emit(const char *path, const char *id, const char *event, const char *data);

/* ---- the step envelope --------------------------------------------------- */

typedef struct {
    uint64_t call_number;   /* counts every step from 0 */
    uint64_t wall_time;     /* unix nanoseconds */
    const uint8_t *payload; /* a msgpack StepEvent, or NULL for an idle tick */
    uint32_t payload_len;
} pulp_envelope;

/* Parses pulp_step's input; false if it is shorter than its header says. */
bool pulp_envelope_parse(const uint8_t *in, uint32_t len, pulp_envelope *out);

/* ---- msgpack writer ------------------------------------------------------ */

typedef struct pulp_mpw {
    uint8_t *buf;
    size_t len, cap;
    bool failed; /* set when memory ran out; the buffer is then incomplete */
} pulp_mpw;

void pulp_mpw_init(pulp_mpw *w);
void pulp_mpw_free(pulp_mpw *w);
void pulp_mpw_map(pulp_mpw *w, uint32_t n);
void pulp_mpw_array(pulp_mpw *w, uint32_t n);
void pulp_mpw_nil(pulp_mpw *w);
void pulp_mpw_bool(pulp_mpw *w, bool v);
void pulp_mpw_int(pulp_mpw *w, int64_t v);   /* smallest form */
void pulp_mpw_uint(pulp_mpw *w, uint64_t v); /* smallest form */
void pulp_mpw_f64(pulp_mpw *w, double v);
void pulp_mpw_strn(pulp_mpw *w, const char *s, size_t n);
void pulp_mpw_str(pulp_mpw *w, const char *s);
void pulp_mpw_bin(pulp_mpw *w, const void *b, size_t n);

/* ---- msgpack reader ------------------------------------------------------ */

typedef struct {
    const uint8_t *p, *end;
    bool failed; /* set on truncated or mistyped input; every later read fails */
} pulp_mpr;

typedef enum {
    PULP_MP_NIL, PULP_MP_BOOL, PULP_MP_INT, PULP_MP_UINT, PULP_MP_FLOAT, PULP_MP_STR,
    PULP_MP_BIN, PULP_MP_ARRAY, PULP_MP_MAP, PULP_MP_EXT, PULP_MP_INVALID,
} pulp_mp_type;

void pulp_mpr_init(pulp_mpr *r, const void *data, size_t len);
pulp_mp_type pulp_mpr_peek(const pulp_mpr *r);
bool pulp_mpr_map(pulp_mpr *r, uint32_t *n);
bool pulp_mpr_array(pulp_mpr *r, uint32_t *n);
bool pulp_mpr_nil(pulp_mpr *r);
bool pulp_mpr_bool(pulp_mpr *r, bool *v);
bool pulp_mpr_int(pulp_mpr *r, int64_t *v);   /* any integer form that fits */
bool pulp_mpr_uint(pulp_mpr *r, uint64_t *v); /* any non-negative integer */
bool pulp_mpr_f64(pulp_mpr *r, double *v);    /* float32 or float64 */
bool pulp_mpr_str(pulp_mpr *r, const char **s, uint32_t *n);
bool pulp_mpr_bin(pulp_mpr *r, const uint8_t **b, uint32_t *n);
/* An extension value (a timestamp is type -1). */
bool pulp_mpr_ext(pulp_mpr *r, int8_t *type, const uint8_t **data, uint32_t *n);
/* Skips one value of any type, nested ones included. */
bool pulp_mpr_skip(pulp_mpr *r);
/* Reads a map header, then positions `r` at the value of `key` (string keys only).
   On success `r` reads that value; the rest of the map is left unread. */
bool pulp_mpr_find(pulp_mpr *r, const char *key);
/* True when the string just read equals the NUL-terminated `s`. */
bool pulp_mp_str_eq(const char *str, uint32_t n, const char *s);
/* Looks up `key` in the map `map` reads (without moving `map`) and reads its string;
   when there is none, `*s` is "" and `*n` 0. */
bool pulp_mp_map_str(pulp_mpr map, const char *key, const char **s, uint32_t *n);

/* ---- events (docs/ABI.md §3) --------------------------------------------- */

/* Splits a StepEvent into its kind and a reader positioned at its payload map. */
bool pulp_event_parse(const pulp_envelope *e, const char **kind, uint32_t *kind_len, pulp_mpr *payload);
/* True when the kind just parsed equals `s`. */
#define pulp_event_is(kind, kind_len, s) pulp_mp_str_eq((kind), (kind_len), (s))

typedef struct {
    uint64_t id;
    const char *method, *path;
    uint32_t method_len, path_len;
    const uint8_t *body;
    uint32_t body_len;
    pulp_mpr params, query, headers; /* maps: read them with pulp_mp_map_str */
} pulp_http_request;

/* Reads an "http.request" payload. */
bool pulp_http_request_parse(pulp_mpr payload, pulp_http_request *req);
/* For plugins that only serve HTTP: true when pulp_step's input `in` carries an
   "http.request" event, read into `req` (false for idle ticks and other kinds). */
bool pulp_step_http_request(const uint8_t *in, uint32_t len, pulp_http_request *req);

typedef struct {
    uint64_t conn_id;
    uint8_t opcode; /* 1 text, 2 binary */
    const uint8_t *payload;
    uint32_t payload_len;
    uint16_t code; /* ws.close only: 65535 when no close frame came */
} pulp_ws_event;

/* Reads a "ws.open", "ws.frame" or "ws.close" payload (the fields it has). */
bool pulp_ws_event_parse(pulp_mpr payload, pulp_ws_event *ev);

#ifdef __cplusplus
}
#endif

/* ========================================================================== */
#ifdef PULP_IMPLEMENTATION

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PULP_NO_ALLOC
PULP_EXPORT(pulp_alloc) void *pulp_alloc(int32_t size) { return malloc(size > 0 ? (size_t)size : 1); }
PULP_EXPORT(pulp_free) void pulp_free(void *ptr, int32_t size) { (void)size; free(ptr); }
#endif

int32_t pulp_logn(int32_t level, const char *msg, size_t len) {
    return pulp_import_log(level, msg, (uint32_t)len);
}

int32_t pulp_log(int32_t level, const char *msg) { return pulp_logn(level, msg, strlen(msg)); }

int32_t pulp_logf(int32_t level, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return PULP_INVALID;
    return pulp_logn(level, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

int32_t pulp_entropy_fill(void *buf, size_t len) { return pulp_import_entropy_fill(buf, (uint32_t)len); }

int32_t pulp_entropy_read(void *buf, uint32_t n) {
    pulp_mpw w;
    pulp_mpw_init(&w);
    pulp_mpw_map(&w, 1);
    pulp_mpw_str(&w, "n");
    pulp_mpw_uint(&w, n);
    if (w.failed) { pulp_mpw_free(&w); return PULP_ALLOC_FAILED; }
    uint8_t *out = NULL;
    uint32_t out_len = 0;
    int32_t st = pulp_import_entropy_read(w.buf, (uint32_t)w.len, &out, &out_len);
    pulp_mpw_free(&w);
    if (st != PULP_OK) return st;
    pulp_mpr r;
    const uint8_t *bytes;
    uint32_t got;
    pulp_mpr_init(&r, out, out_len);
    st = (pulp_mpr_find(&r, "bytes") && pulp_mpr_bin(&r, &bytes, &got) && got == n) ? PULP_OK : PULP_BAD_ENCODING;
    if (st == PULP_OK) memcpy(buf, bytes, n);
    free(out);
    return st;
}

int32_t pulp_last_error(char *buf, size_t size) {
    uint8_t *out = NULL;
    uint32_t n = 0;
    int32_t st = pulp_import_last_error(&out, &n);
    if (size == 0) { free(out); return st; }
    size_t k = st == PULP_OK ? (n < size - 1 ? n : size - 1) : 0;
    if (k) memcpy(buf, out, k);
    buf[k] = 0;
    free(out);
    return st;
}

int32_t pulp_sqlite_exec(const char *sql, const pulp_mpw_t *params, int64_t *rows_affected, int64_t *last_insert_id) {
    uint8_t *out = NULL;
    uint32_t n = 0;
    int32_t st = pulp_import_sqlite_exec(sql, (uint32_t)strlen(sql), params ? params->buf : NULL,
                                         params ? (uint32_t)params->len : 0, &out, &n);
    if (st != PULP_OK) return st;
    pulp_mpr r;
    uint32_t k;
    pulp_mpr_init(&r, out, n);
    if (pulp_mpr_map(&r, &k)) {
        while (k--) {
            const char *key;
            uint32_t kn;
            int64_t v = 0;
            if (!pulp_mpr_str(&r, &key, &kn) || !pulp_mpr_int(&r, &v)) break;
            if (rows_affected && pulp_mp_str_eq(key, kn, "rows_affected")) *rows_affected = v;
            if (last_insert_id && pulp_mp_str_eq(key, kn, "last_insert_id")) *last_insert_id = v;
        }
    }
    st = r.failed ? PULP_BAD_ENCODING : PULP_OK;
    free(out);
    return st;
}

int32_t pulp_sqlite_query(const char *sql, const pulp_mpw_t *params, uint8_t **rows, uint32_t *len) {
    *rows = NULL;
    *len = 0;
    return pulp_import_sqlite_query(sql, (uint32_t)strlen(sql), params ? params->buf : NULL,
                                    params ? (uint32_t)params->len : 0, rows, len);
}

int32_t pulp_fs_read(const char *path, uint8_t **data, uint32_t *len) {
    *data = NULL;
    *len = 0;
    return pulp_import_fs_read(path, (uint32_t)strlen(path), data, len);
}

int32_t pulp_fs_write(const char *path, const void *data, size_t len) {
    return pulp_import_fs_write(path, (uint32_t)strlen(path), data, (uint32_t)len);
}

int32_t pulp_fs_delete(const char *path) { return pulp_import_fs_delete(path, (uint32_t)strlen(path)); }

int32_t pulp_call(const char *target, const char *name, const void *args, size_t args_len, uint8_t **answer,
                  uint32_t *len) {
    *answer = NULL;
    *len = 0;
    return pulp_import_call(target, (uint32_t)strlen(target), name, (uint32_t)strlen(name), args, (uint32_t)args_len,
                            answer, len);
}

int32_t pulp_call_answer(uint8_t **out, uint32_t *out_len, const void *data, size_t len, int32_t status) {
    *out = NULL;
    *out_len = 0;
    if (len > 0) {
        uint8_t *buf = (uint8_t *)pulp_alloc((int32_t)len);
        if (!buf) return PULP_ALLOC_FAILED;
        memcpy(buf, data, len);
        *out = buf;
        *out_len = (uint32_t)len;
    }
    return status;
}

bool pulp_envelope_parse(const uint8_t *in, uint32_t len, pulp_envelope *e) {
    if (in == NULL || len < 20) return false;
    memcpy(&e->call_number, in, 8); /* wasm32 is little-endian, like the wire */
    memcpy(&e->wall_time, in + 8, 8);
    memcpy(&e->payload_len, in + 16, 4);
    if (e->payload_len > len - 20) return false;
    e->payload = e->payload_len ? in + 20 : NULL;
    return true;
}

/* writer */

void pulp_mpw_init(pulp_mpw *w) { memset(w, 0, sizeof *w); }
void pulp_mpw_free(pulp_mpw *w) { free(w->buf); pulp_mpw_init(w); }

static bool pulp__reserve(pulp_mpw *w, size_t n) {
    if (w->failed) return false;
    if (w->len + n <= w->cap) return true;
    size_t cap = w->cap ? w->cap * 2 : 64;
    while (cap < w->len + n) cap *= 2;
    uint8_t *b = realloc(w->buf, cap);
    if (!b) { w->failed = true; return false; }
    w->buf = b;
    w->cap = cap;
    return true;
}

static void pulp__put(pulp_mpw *w, const void *p, size_t n) {
    if (pulp__reserve(w, n)) { memcpy(w->buf + w->len, p, n); w->len += n; }
}

static void pulp__be(pulp_mpw *w, uint8_t marker, uint64_t v, int bytes) {
    uint8_t b[9];
    b[0] = marker;
    for (int i = 0; i < bytes; i++) b[1 + i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    pulp__put(w, b, 1 + (size_t)bytes);
}

static void pulp__head(pulp_mpw *w, uint8_t fix, uint32_t fixmax, uint8_t m8, uint8_t m16, uint8_t m32, uint32_t n) {
    if (n <= fixmax) { uint8_t b = (uint8_t)(fix | n); pulp__put(w, &b, 1); }
    else if (m8 && n <= 0xff) pulp__be(w, m8, n, 1);
    else if (n <= 0xffff) pulp__be(w, m16, n, 2);
    else pulp__be(w, m32, n, 4);
}

void pulp_mpw_map(pulp_mpw *w, uint32_t n) { pulp__head(w, 0x80, 15, 0, 0xde, 0xdf, n); }
void pulp_mpw_array(pulp_mpw *w, uint32_t n) { pulp__head(w, 0x90, 15, 0, 0xdc, 0xdd, n); }
void pulp_mpw_nil(pulp_mpw *w) { uint8_t b = 0xc0; pulp__put(w, &b, 1); }
void pulp_mpw_bool(pulp_mpw *w, bool v) { uint8_t b = v ? 0xc3 : 0xc2; pulp__put(w, &b, 1); }

void pulp_mpw_uint(pulp_mpw *w, uint64_t v) {
    if (v < 128) { uint8_t b = (uint8_t)v; pulp__put(w, &b, 1); }
    else if (v <= 0xff) pulp__be(w, 0xcc, v, 1);
    else if (v <= 0xffff) pulp__be(w, 0xcd, v, 2);
    else if (v <= 0xffffffffu) pulp__be(w, 0xce, v, 4);
    else pulp__be(w, 0xcf, v, 8);
}

void pulp_mpw_int(pulp_mpw *w, int64_t v) {
    if (v >= 0) { pulp_mpw_uint(w, (uint64_t)v); return; }
    if (v >= -32) { uint8_t b = (uint8_t)(int8_t)v; pulp__put(w, &b, 1); }
    else if (v >= INT8_MIN) pulp__be(w, 0xd0, (uint64_t)v, 1);
    else if (v >= INT16_MIN) pulp__be(w, 0xd1, (uint64_t)v, 2);
    else if (v >= INT32_MIN) pulp__be(w, 0xd2, (uint64_t)v, 4);
    else pulp__be(w, 0xd3, (uint64_t)v, 8);
}

void pulp_mpw_f64(pulp_mpw *w, double v) {
    uint64_t bits;
    memcpy(&bits, &v, 8);
    pulp__be(w, 0xcb, bits, 8);
}

void pulp_mpw_strn(pulp_mpw *w, const char *s, size_t n) {
    pulp__head(w, 0xa0, 31, 0xd9, 0xda, 0xdb, (uint32_t)n);
    pulp__put(w, s, n);
}

void pulp_mpw_str(pulp_mpw *w, const char *s) { pulp_mpw_strn(w, s, strlen(s)); }

void pulp_mpw_bin(pulp_mpw *w, const void *b, size_t n) {
    if (n <= 0xff) pulp__be(w, 0xc4, n, 1);
    else if (n <= 0xffff) pulp__be(w, 0xc5, n, 2);
    else pulp__be(w, 0xc6, n, 4);
    pulp__put(w, b, n);
}

/* reader */

void pulp_mpr_init(pulp_mpr *r, const void *data, size_t len) {
    r->p = data;
    r->end = r->p + len;
    r->failed = data == NULL && len != 0;
}

static bool pulp__fail(pulp_mpr *r) { r->failed = true; return false; }

static bool pulp__take(pulp_mpr *r, size_t n, const uint8_t **at) {
    if (r->failed || (size_t)(r->end - r->p) < n) return pulp__fail(r);
    *at = r->p;
    r->p += n;
    return true;
}

static bool pulp__uint_be(pulp_mpr *r, int bytes, uint64_t *v) {
    const uint8_t *b;
    if (!pulp__take(r, (size_t)bytes, &b)) return false;
    *v = 0;
    for (int i = 0; i < bytes; i++) *v = (*v << 8) | b[i];
    return true;
}

pulp_mp_type pulp_mpr_peek(const pulp_mpr *r) {
    if (r->failed || r->p >= r->end) return PULP_MP_INVALID;
    uint8_t m = *r->p;
    if (m <= 0x7f || (m >= 0xcc && m <= 0xcf)) return PULP_MP_UINT;
    if (m >= 0xe0 || (m >= 0xd0 && m <= 0xd3)) return PULP_MP_INT;
    if ((m & 0xf0) == 0x80 || m == 0xde || m == 0xdf) return PULP_MP_MAP;
    if ((m & 0xf0) == 0x90 || m == 0xdc || m == 0xdd) return PULP_MP_ARRAY;
    if ((m & 0xe0) == 0xa0 || (m >= 0xd9 && m <= 0xdb)) return PULP_MP_STR;
    if (m >= 0xc4 && m <= 0xc6) return PULP_MP_BIN;
    if (m == 0xca || m == 0xcb) return PULP_MP_FLOAT;
    if (m == 0xc0) return PULP_MP_NIL;
    if (m == 0xc2 || m == 0xc3) return PULP_MP_BOOL;
    if ((m >= 0xc7 && m <= 0xc9) || (m >= 0xd4 && m <= 0xd8)) return PULP_MP_EXT;
    return PULP_MP_INVALID;
}

static bool pulp__len(pulp_mpr *r, uint8_t fixmask, uint8_t fix, uint32_t fixbits, uint8_t m8, uint8_t m16,
                      uint8_t m32, uint32_t *n) {
    const uint8_t *m;
    uint64_t v;
    if (!pulp__take(r, 1, &m)) return false;
    if ((*m & fixmask) == fix) { *n = *m & fixbits; return true; }
    int bytes = (m8 && *m == m8) ? 1 : *m == m16 ? 2 : *m == m32 ? 4 : 0;
    if (!bytes) return pulp__fail(r);
    if (!pulp__uint_be(r, bytes, &v)) return false;
    *n = (uint32_t)v;
    return true;
}

bool pulp_mpr_map(pulp_mpr *r, uint32_t *n) { return pulp__len(r, 0xf0, 0x80, 0x0f, 0, 0xde, 0xdf, n); }
bool pulp_mpr_array(pulp_mpr *r, uint32_t *n) { return pulp__len(r, 0xf0, 0x90, 0x0f, 0, 0xdc, 0xdd, n); }

bool pulp_mpr_nil(pulp_mpr *r) {
    const uint8_t *m;
    return pulp_mpr_peek(r) == PULP_MP_NIL ? pulp__take(r, 1, &m) : pulp__fail(r);
}

bool pulp_mpr_bool(pulp_mpr *r, bool *v) {
    const uint8_t *m;
    if (pulp_mpr_peek(r) != PULP_MP_BOOL) return pulp__fail(r);
    pulp__take(r, 1, &m);
    *v = *m == 0xc3;
    return true;
}

/* Reads any integer into a sign flag and magnitude-free 64-bit pattern. */
static bool pulp__anyint(pulp_mpr *r, bool *neg, uint64_t *u) {
    const uint8_t *m;
    uint64_t v;
    if (!pulp__take(r, 1, &m)) return false;
    uint8_t k = *m;
    *neg = false;
    if (k <= 0x7f) { *u = k; return true; }
    if (k >= 0xe0) { *neg = true; *u = (uint64_t)(int64_t)(int8_t)k; return true; }
    static const int widths[] = {1, 2, 4, 8};
    if (k >= 0xcc && k <= 0xcf) return pulp__uint_be(r, widths[k - 0xcc], u);
    if (k >= 0xd0 && k <= 0xd3) {
        int bytes = widths[k - 0xd0];
        if (!pulp__uint_be(r, bytes, &v)) return false;
        int shift = 64 - 8 * bytes;
        int64_t s = shift ? (int64_t)(v << shift) >> shift : (int64_t)v; /* sign-extend */
        *neg = s < 0;
        *u = (uint64_t)s;
        return true;
    }
    return pulp__fail(r);
}

bool pulp_mpr_int(pulp_mpr *r, int64_t *v) {
    bool neg;
    uint64_t u;
    if (!pulp__anyint(r, &neg, &u)) return false;
    if (!neg && u > (uint64_t)INT64_MAX) return pulp__fail(r);
    *v = (int64_t)u;
    return true;
}

bool pulp_mpr_uint(pulp_mpr *r, uint64_t *v) {
    bool neg;
    if (!pulp__anyint(r, &neg, v)) return false;
    return neg ? pulp__fail(r) : true;
}

bool pulp_mpr_f64(pulp_mpr *r, double *v) {
    const uint8_t *m;
    uint64_t bits;
    if (pulp_mpr_peek(r) != PULP_MP_FLOAT) return pulp__fail(r);
    pulp__take(r, 1, &m);
    if (*m == 0xca) {
        float f;
        uint32_t b32;
        if (!pulp__uint_be(r, 4, &bits)) return false;
        b32 = (uint32_t)bits;
        memcpy(&f, &b32, 4);
        *v = f;
        return true;
    }
    if (!pulp__uint_be(r, 8, &bits)) return false;
    memcpy(v, &bits, 8);
    return true;
}

bool pulp_mpr_str(pulp_mpr *r, const char **s, uint32_t *n) {
    const uint8_t *b;
    if (!pulp__len(r, 0xe0, 0xa0, 0x1f, 0xd9, 0xda, 0xdb, n) || !pulp__take(r, *n, &b)) return false;
    *s = (const char *)b;
    return true;
}

bool pulp_mpr_bin(pulp_mpr *r, const uint8_t **b, uint32_t *n) {
    const uint8_t *m;
    uint64_t v;
    if (!pulp__take(r, 1, &m)) return false;
    if (*m < 0xc4 || *m > 0xc6) return pulp__fail(r);
    if (!pulp__uint_be(r, *m == 0xc4 ? 1 : *m == 0xc5 ? 2 : 4, &v)) return false;
    *n = (uint32_t)v;
    return pulp__take(r, *n, b);
}

bool pulp_mpr_ext(pulp_mpr *r, int8_t *type, const uint8_t **data, uint32_t *n) {
    const uint8_t *m, *t;
    uint64_t v;
    if (!pulp__take(r, 1, &m)) return false;
    if (*m >= 0xd4 && *m <= 0xd8) *n = 1u << (*m - 0xd4);
    else if (*m >= 0xc7 && *m <= 0xc9) {
        if (!pulp__uint_be(r, *m == 0xc7 ? 1 : *m == 0xc8 ? 2 : 4, &v)) return false;
        *n = (uint32_t)v;
    } else return pulp__fail(r);
    if (!pulp__take(r, 1, &t)) return false;
    *type = (int8_t)*t;
    return pulp__take(r, *n, data);
}

bool pulp_mpr_skip(pulp_mpr *r) {
    uint32_t n;
    const char *s;
    const uint8_t *b;
    int64_t i;
    uint64_t u;
    double d;
    bool flag;
    int8_t t;
    switch (pulp_mpr_peek(r)) {
    case PULP_MP_NIL: return pulp_mpr_nil(r);
    case PULP_MP_BOOL: return pulp_mpr_bool(r, &flag);
    case PULP_MP_UINT: return pulp_mpr_uint(r, &u);
    case PULP_MP_INT: return pulp_mpr_int(r, &i);
    case PULP_MP_FLOAT: return pulp_mpr_f64(r, &d);
    case PULP_MP_STR: return pulp_mpr_str(r, &s, &n);
    case PULP_MP_BIN: return pulp_mpr_bin(r, &b, &n);
    case PULP_MP_EXT: return pulp_mpr_ext(r, &t, &b, &n);
    case PULP_MP_ARRAY:
        if (!pulp_mpr_array(r, &n)) return false;
        while (n--) if (!pulp_mpr_skip(r)) return false;
        return true;
    case PULP_MP_MAP:
        if (!pulp_mpr_map(r, &n)) return false;
        while (n--) if (!pulp_mpr_skip(r) || !pulp_mpr_skip(r)) return false;
        return true;
    default: return pulp__fail(r);
    }
}

bool pulp_mp_str_eq(const char *str, uint32_t n, const char *s) {
    return strlen(s) == n && memcmp(str, s, n) == 0;
}

bool pulp_mpr_find(pulp_mpr *r, const char *key) {
    uint32_t n, kn;
    const char *k;
    if (!pulp_mpr_map(r, &n)) return false;
    while (n--) {
        if (pulp_mpr_peek(r) == PULP_MP_STR) {
            if (!pulp_mpr_str(r, &k, &kn)) return false;
            if (pulp_mp_str_eq(k, kn, key)) return true;
        } else if (!pulp_mpr_skip(r)) return false;
        if (!pulp_mpr_skip(r)) return false;
    }
    return false;
}

bool pulp_mp_map_str(pulp_mpr map, const char *key, const char **s, uint32_t *n) {
    if (pulp_mpr_find(&map, key) && pulp_mpr_str(&map, s, n)) return true;
    *s = "";
    *n = 0;
    return false;
}

bool pulp_event_parse(const pulp_envelope *e, const char **kind, uint32_t *kind_len, pulp_mpr *payload) {
    pulp_mpr r;
    if (!e->payload) return false;
    pulp_mpr_init(&r, e->payload, e->payload_len);
    if (!pulp_mpr_find(&r, "kind") || !pulp_mpr_str(&r, kind, kind_len)) return false;
    pulp_mpr_init(payload, e->payload, e->payload_len);
    return pulp_mpr_find(payload, "payload") && pulp_mpr_peek(payload) == PULP_MP_MAP;
}

bool pulp_http_request_parse(pulp_mpr p, pulp_http_request *q) {
    uint32_t n, kn;
    const char *k;
    memset(q, 0, sizeof *q);
    pulp_mpr_init(&q->params, "\x80", 1);
    q->query = q->headers = q->params;
    if (!pulp_mpr_map(&p, &n)) return false;
    while (n--) {
        if (!pulp_mpr_str(&p, &k, &kn)) return false;
        bool ok = true;
        if (pulp_mp_str_eq(k, kn, "id")) ok = pulp_mpr_uint(&p, &q->id);
        else if (pulp_mp_str_eq(k, kn, "method")) ok = pulp_mpr_str(&p, &q->method, &q->method_len);
        else if (pulp_mp_str_eq(k, kn, "path")) ok = pulp_mpr_str(&p, &q->path, &q->path_len);
        else if (pulp_mp_str_eq(k, kn, "body")) ok = pulp_mpr_bin(&p, &q->body, &q->body_len);
        else if (pulp_mp_str_eq(k, kn, "params")) { q->params = p; ok = pulp_mpr_skip(&p); }
        else if (pulp_mp_str_eq(k, kn, "query")) { q->query = p; ok = pulp_mpr_skip(&p); }
        else if (pulp_mp_str_eq(k, kn, "headers")) { q->headers = p; ok = pulp_mpr_skip(&p); }
        else ok = pulp_mpr_skip(&p);
        if (!ok) return false;
    }
    return q->id != 0;
}

bool pulp_step_http_request(const uint8_t *in, uint32_t len, pulp_http_request *req) {
    pulp_envelope e;
    const char *kind;
    uint32_t kn;
    pulp_mpr payload;
    return pulp_envelope_parse(in, len, &e) && pulp_event_parse(&e, &kind, &kn, &payload) &&
           pulp_event_is(kind, kn, "http.request") && pulp_http_request_parse(payload, req);
}

bool pulp_ws_event_parse(pulp_mpr p, pulp_ws_event *ev) {
    uint32_t n, kn;
    const char *k;
    uint64_t v;
    memset(ev, 0, sizeof *ev);
    if (!pulp_mpr_map(&p, &n)) return false;
    while (n--) {
        if (!pulp_mpr_str(&p, &k, &kn)) return false;
        bool ok = true;
        if (pulp_mp_str_eq(k, kn, "conn_id")) ok = pulp_mpr_uint(&p, &ev->conn_id);
        else if (pulp_mp_str_eq(k, kn, "opcode")) { ok = pulp_mpr_uint(&p, &v); ev->opcode = (uint8_t)v; }
        else if (pulp_mp_str_eq(k, kn, "code")) { ok = pulp_mpr_uint(&p, &v); ev->code = (uint16_t)v; }
        else if (pulp_mp_str_eq(k, kn, "payload")) ok = pulp_mpr_bin(&p, &ev->payload, &ev->payload_len);
        else ok = pulp_mpr_skip(&p);
        if (!ok) return false;
    }
    return ev->conn_id != 0;
}

/* inbound transports */

static int32_t pulp__send(int32_t (*imp)(const void *, uint32_t), pulp_mpw *w) {
    int32_t st = w->failed ? PULP_ALLOC_FAILED : imp(w->buf, (uint32_t)w->len);
    pulp_mpw_free(w);
    return st;
}

/* Sends request `w` to an import with a result, then frees `w`. */
static int32_t pulp__call(int32_t (*imp)(const void *, uint32_t, uint8_t **, uint32_t *), pulp_mpw *w,
                          uint8_t **res, uint32_t *len) {
    *res = NULL;
    *len = 0;
    int32_t st = w->failed ? PULP_ALLOC_FAILED : imp(w->buf, (uint32_t)w->len, res, len);
    pulp_mpw_free(w);
    return st;
}

/* A malloc'd copy of n bytes with a NUL after them (NULL when memory runs out). */
static void *pulp__dup(const void *p, uint32_t n) {
    char *d = malloc((size_t)n + 1);
    if (d) {
        if (n) memcpy(d, p, n);
        d[n] = 0;
    }
    return d;
}

/* Starts a request map of `fields` entries whose first is {id: `id`}. */
static void pulp__id_map(pulp_mpw *w, uint32_t fields, const char *id) {
    pulp_mpw_init(w);
    pulp_mpw_map(w, fields);
    pulp_mpw_str(w, "id");
    pulp_mpw_str(w, id);
}

int32_t pulp_http_register(const char *method, const char *path) {
    pulp_mpw w;
    pulp_mpw_init(&w);
    pulp_mpw_map(&w, 2);
    pulp_mpw_str(&w, "method");
    pulp_mpw_str(&w, method);
    pulp_mpw_str(&w, "path");
    pulp_mpw_str(&w, path);
    return pulp__send(pulp_import_http_register, &w);
}

int32_t pulp_http_respond(uint64_t id, uint16_t status, const char *const *headers, const void *body, size_t len) {
    pulp_mpw w;
    uint32_t nh = 0;
    while (headers && headers[2 * nh]) nh++;
    pulp_mpw_init(&w);
    pulp_mpw_map(&w, 4);
    pulp_mpw_str(&w, "id");
    pulp_mpw_uint(&w, id);
    pulp_mpw_str(&w, "status");
    pulp_mpw_uint(&w, status);
    pulp_mpw_str(&w, "headers");
    pulp_mpw_map(&w, nh);
    for (uint32_t i = 0; i < nh; i++) {
        pulp_mpw_str(&w, headers[2 * i]);
        pulp_mpw_str(&w, headers[2 * i + 1]);
    }
    pulp_mpw_str(&w, "body");
    pulp_mpw_bin(&w, body, len);
    return pulp__send(pulp_import_http_respond, &w);
}

int32_t pulp_ws_register(const char *path) { return pulp_import_ws_register(path, (uint32_t)strlen(path)); }

int32_t pulp_ws_send(uint64_t conn_id, uint8_t opcode, const void *data, size_t len) {
    pulp_mpw w;
    pulp_mpw_init(&w);
    pulp_mpw_map(&w, 3);
    pulp_mpw_str(&w, "conn_id");
    pulp_mpw_uint(&w, conn_id);
    pulp_mpw_str(&w, "opcode");
    pulp_mpw_uint(&w, opcode);
    pulp_mpw_str(&w, "payload");
    pulp_mpw_bin(&w, data, len);
    return pulp__send(pulp_import_ws_send, &w);
}

int32_t pulp_ws_close(uint64_t conn_id, uint16_t code, const char *reason) {
    pulp_mpw w;
    pulp_mpw_init(&w);
    pulp_mpw_map(&w, 3);
    pulp_mpw_str(&w, "conn_id");
    pulp_mpw_uint(&w, conn_id);
    pulp_mpw_str(&w, "code");
    pulp_mpw_uint(&w, code);
    pulp_mpw_str(&w, "reason");
    pulp_mpw_str(&w, reason ? reason : "");
    return pulp__send(pulp_import_ws_close, &w);
}

static void pulp__argv(pulp_mpw *w, const char *const *argv) {
    uint32_t argc = 0;
    while (argv && argv[argc]) argc++;
    pulp_mpw_array(w, argc);
    for (uint32_t i = 0; i < argc; i++) pulp_mpw_str(w, argv[i]);
}

int32_t pulp_docker_run(const char *image, const char *const *argv, const void *stdin_data, size_t stdin_len,
                        uint32_t timeout_ms, uint8_t **result, uint32_t *len) {
    pulp_mpw w;
    pulp_mpw_init(&w);
    pulp_mpw_map(&w, 4);
    pulp_mpw_str(&w, "image");
    pulp_mpw_str(&w, image);
    pulp_mpw_str(&w, "cmd");
    pulp__argv(&w, argv);
    pulp_mpw_str(&w, "stdin");
    pulp_mpw_bin(&w, stdin_data, stdin_data ? stdin_len : 0);
    pulp_mpw_str(&w, "timeout_ms");
    pulp_mpw_uint(&w, timeout_ms);
    return pulp__call(pulp_import_docker_run, &w, result, len);
}

int32_t pulp_docker_query_id(int32_t (*call)(const void *, uint32_t, uint8_t **, uint32_t *), const char *id,
                             uint8_t **result, uint32_t *len) {
    pulp_mpw w;
    pulp__id_map(&w, 1, id);
    return pulp__call(call, &w, result, len);
}

int32_t pulp_docker_create(const char *image, const char *const *argv, const char *name, char *id_out) {
    pulp_mpw w;
    uint8_t *res = NULL;
    uint32_t len = 0;
    id_out[0] = 0;
    pulp_mpw_init(&w);
    pulp_mpw_map(&w, 2 + (argv != NULL) + (name != NULL));
    pulp_mpw_str(&w, "image");
    pulp_mpw_str(&w, image);
    pulp_mpw_str(&w, "network");
    pulp_mpw_bool(&w, false);
    if (argv) { pulp_mpw_str(&w, "cmd"); pulp__argv(&w, argv); }
    if (name) { pulp_mpw_str(&w, "name"); pulp_mpw_str(&w, name); }
    int32_t st = pulp__call(pulp_import_docker_create, &w, &res, &len);
    if (st == PULP_OK) {
        pulp_mpr r;
        const char *id;
        uint32_t n;
        pulp_mpr_init(&r, res, len);
        if (pulp_mp_map_str(r, "id", &id, &n) && n < 65) { memcpy(id_out, id, n); id_out[n] = 0; }
        else st = PULP_BAD_ENCODING;
    }
    free(res);
    return st;
}

int32_t pulp_docker_exec(const char *id, const char *const *argv, char **output, int64_t *exit_code) {
    pulp_mpw w;
    uint8_t *res = NULL;
    uint32_t len = 0;
    *output = NULL;
    *exit_code = -1;
    pulp__id_map(&w, 2, id);
    pulp_mpw_str(&w, "cmd");
    pulp__argv(&w, argv);
    int32_t st = pulp__call(pulp_import_docker_exec, &w, &res, &len);
    if (st == PULP_OK) {
        pulp_mpr r;
        const char *out;
        uint32_t n;
        pulp_mpr_init(&r, res, len);
        pulp_mp_map_str(r, "output", &out, &n);
        pulp_mpr_init(&r, res, len);
        if (!pulp_mpr_find(&r, "exit_code") || !pulp_mpr_int(&r, exit_code)) st = PULP_BAD_ENCODING;
        if (st == PULP_OK && (*output = pulp__dup(out, n)) == NULL) st = PULP_ALLOC_FAILED;
    }
    free(res);
    return st;
}

int32_t pulp_docker_files_read(const char *id, const char *path, uint8_t **data, uint32_t *len) {
    pulp_mpw w;
    uint8_t *res = NULL;
    uint32_t n = 0;
    *data = NULL;
    *len = 0;
    pulp__id_map(&w, 2, id);
    pulp_mpw_str(&w, "path");
    pulp_mpw_str(&w, path);
    int32_t st = pulp__call(pulp_import_docker_files_read, &w, &res, &n);
    if (st == PULP_OK) {
        pulp_mpr r;
        const uint8_t *b;
        uint32_t bn;
        pulp_mpr_init(&r, res, n);
        if (!pulp_mpr_bin(&r, &b, &bn)) st = PULP_BAD_ENCODING;
        else if ((*data = pulp__dup(b, bn)) == NULL) st = PULP_ALLOC_FAILED;
        else *len = bn;
    }
    free(res);
    return st;
}

int32_t pulp_docker_files_write(const char *id, const char *path, const void *data, size_t len) {
    pulp_mpw w;
    pulp__id_map(&w, 3, id);
    pulp_mpw_str(&w, "path");
    pulp_mpw_str(&w, path);
    pulp_mpw_str(&w, "data");
    pulp_mpw_bin(&w, data, len);
    return pulp__send(pulp_import_docker_files_write, &w);
}

int32_t pulp_http_fetch(const char *method, const char *url, const char *const *headers, const void *body,
                        size_t body_len, uint32_t timeout_ms, uint8_t **result, uint32_t *len) {
    pulp_mpw w;
    uint32_t nh = 0;
    while (headers && headers[2 * nh]) nh++;
    pulp_mpw_init(&w);
    pulp_mpw_map(&w, 5);
    pulp_mpw_str(&w, "method");
    pulp_mpw_str(&w, method ? method : "GET");
    pulp_mpw_str(&w, "url");
    pulp_mpw_str(&w, url);
    pulp_mpw_str(&w, "headers");
    pulp_mpw_map(&w, nh);
    for (uint32_t i = 0; i < nh; i++) {
        pulp_mpw_str(&w, headers[2 * i]);
        pulp_mpw_str(&w, headers[2 * i + 1]);
    }
    pulp_mpw_str(&w, "body");
    pulp_mpw_bin(&w, body, body ? body_len : 0);
    pulp_mpw_str(&w, "timeout_ms");
    pulp_mpw_uint(&w, timeout_ms);
    return pulp__call(pulp_import_http_fetch, &w, result, len);
}

int32_t pulp_docker_list(uint8_t **result, uint32_t *len) {
    static const uint8_t empty_map = 0x80;
    *result = NULL;
    *len = 0;
    return pulp_import_docker_list(&empty_map, 1, result, len);
}

int32_t pulp_docker_events_poll(int64_t since_nanos, uint32_t limit, uint8_t **result, uint32_t *len) {
    pulp_mpw w;
    pulp_mpw_init(&w);
    pulp_mpw_map(&w, 2);
    pulp_mpw_str(&w, "since_nanos");
    pulp_mpw_int(&w, since_nanos);
    pulp_mpw_str(&w, "limit");
    pulp_mpw_uint(&w, limit);
    return pulp__call(pulp_import_docker_events_poll, &w, result, len);
}

int32_t pulp_docker_by_id(int32_t (*call)(const void *, uint32_t), const char *id) {
    pulp_mpw w;
    pulp__id_map(&w, 1, id);
    return pulp__send(call, &w);
}

int32_t pulp_sse_register(const char *path) { return pulp_import_sse_register(path, (uint32_t)strlen(path)); }

int32_t pulp_sse_emit(const char *path, const char *id, const char *event, const char *data) {
    pulp_mpw w;
    pulp_mpw_init(&w);
    pulp_mpw_map(&w, 2 + (id != NULL) + (event != NULL));
    pulp_mpw_str(&w, "path");
    pulp_mpw_str(&w, path);
    if (id) { pulp_mpw_str(&w, "id"); pulp_mpw_str(&w, id); }
    if (event) { pulp_mpw_str(&w, "event"); pulp_mpw_str(&w, event); }
    pulp_mpw_str(&w, "data");
    pulp_mpw_str(&w, data);
    return pulp__send(pulp_import_sse_emit, &w);
}

#endif /* PULP_IMPLEMENTATION */
#endif /* PULP_H */
