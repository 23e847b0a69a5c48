/*
 * notes: a JSON notes API on storage.sqlite; the notes survive a restart.
 *
 *   POST   /notes      {"text": "..."}  -> 201 {"id": N, "text": "..."}
 *   GET    /notes                       -> 200 [{"id": N, "text": "..."}, ...]
 *   GET    /notes/:id                   -> 200 {"id": N, "text": "..."}, or 404
 *   DELETE /notes/:id                   -> 204, or 404
 *   malformed JSON, or no "text" string -> 400 {"error": "..."}
 *
 *   clang --target=wasm32-wasi -mexec-model=reactor -O2 -I ../../pdk/c \
 *         -o notes.wasm notes.c
 */
#define PULP_IMPLEMENTATION
#include "pulp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a growable string ---- */

typedef struct {
    char *p;
    size_t len, cap;
} buf;

static void put(buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}
static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

/* A JSON string literal of the UTF-8 bytes s[0..n). */
static void put_json_str(buf *b, const char *s, size_t n) {
    puts_(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; put(b, esc, 2); }
        else if (c == '\n') puts_(b, "\\n");
        else if (c == '\r') puts_(b, "\\r");
        else if (c == '\t') puts_(b, "\\t");
        else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); puts_(b, esc); }
        else put(b, (const char *)&c, 1);
    }
    puts_(b, "\"");
}

static void put_note(buf *b, int64_t id, const char *text, size_t n) {
    char num[32];
    snprintf(num, sizeof num, "{\"id\": %lld, \"text\": ", (long long)id);
    puts_(b, num);
    put_json_str(b, text, n);
    puts_(b, "}");
}

/* ---- just enough JSON to read {"text": "..."} ---- */

typedef struct {
    const char *p, *end;
    const char *error;
} json;

static void ws(json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static void utf8(buf *out, unsigned cp) {
    char u[4];
    if (cp < 0x80) { u[0] = (char)cp; put(out, u, 1); }
    else if (cp < 0x800) { u[0] = (char)(0xc0 | cp >> 6); u[1] = (char)(0x80 | (cp & 0x3f)); put(out, u, 2); }
    else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12); u[1] = (char)(0x80 | ((cp >> 6) & 0x3f)); u[2] = (char)(0x80 | (cp & 0x3f));
        put(out, u, 3);
    } else {
        u[0] = (char)(0xf0 | cp >> 18); u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); u[3] = (char)(0x80 | (cp & 0x3f));
        put(out, u, 4);
    }
}

static int hex4(json *j, unsigned *v) {
    *v = 0;
    for (int i = 0; i < 4; i++, j->p++) {
        if (j->p >= j->end) return 0;
        char c = *j->p;
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return 0; /* not a hex digit */
        *v = *v * 16 + (unsigned)d;
    }
    return 1;
}

/* Reads a string into `out` (NULL to skip it). */
static int str(json *j, buf *out) {
    buf skip = {0};
    if (!out) out = &skip;
    if (j->p >= j->end || *j->p != '"') { j->error = "expected a string"; return 0; }
    j->p++;
    while (j->p < j->end && *j->p != '"') {
        unsigned char c = (unsigned char)*j->p++;
        if (c < 0x20) { j->error = "a control character in a string"; free(skip.p); return 0; }
        if (c != '\\') { put(out, (const char *)&c, 1); continue; }
        if (j->p >= j->end) break;
        char e = *j->p++;
        unsigned cp;
        switch (e) {
        case '"': case '\\': case '/': put(out, &e, 1); break;
        case 'b': puts_(out, "\b"); break;
        case 'f': puts_(out, "\f"); break;
        case 'n': puts_(out, "\n"); break;
        case 'r': puts_(out, "\r"); break;
        case 't': puts_(out, "\t"); break;
        case 'u':
            if (!hex4(j, &cp)) { j->error = "a bad \\u escape"; free(skip.p); return 0; }
            if (cp >= 0xd800 && cp < 0xdc00 && j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u') {
                unsigned lo;
                j->p += 2;
                if (!hex4(j, &lo) || lo < 0xdc00 || lo > 0xdfff) { j->error = "a bad surrogate pair"; free(skip.p); return 0; }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xd800 && cp < 0xe000) { j->error = "a lone surrogate"; free(skip.p); return 0; }
            utf8(out, cp);
            break;
        default: j->error = "a bad escape"; free(skip.p); return 0;
        }
    }
    free(skip.p);
    if (j->p >= j->end) { j->error = "an unterminated string"; return 0; }
    j->p++;
    return 1;
}

/* Skips any JSON value (depth-limited). */
static int value(json *j, int depth) {
    ws(j);
    if (depth > 32) { j->error = "nested too deeply"; return 0; }
    if (j->p >= j->end) { j->error = "unexpected end"; return 0; }
    char c = *j->p;
    if (c == '"') return str(j, NULL);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        ws(j);
        if (j->p < j->end && *j->p == close) { j->p++; return 1; }
        for (;;) {
            if (c == '{') {
                ws(j);
                if (!str(j, NULL)) return 0;
                ws(j);
                if (j->p >= j->end || *j->p++ != ':') { j->error = "expected :"; return 0; }
            }
            if (!value(j, depth + 1)) return 0;
            ws(j);
            if (j->p < j->end && *j->p == ',') { j->p++; continue; }
            if (j->p < j->end && *j->p == close) { j->p++; return 1; }
            j->error = "expected , or a closing bracket";
            return 0;
        }
    }
    if (c == 't' || c == 'f' || c == 'n') {
        const char *lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
        size_t n = strlen(lit);
        if ((size_t)(j->end - j->p) >= n && !memcmp(j->p, lit, n)) { j->p += n; return 1; }
        j->error = "an unexpected word";
        return 0;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        while (j->p < j->end && *j->p && strchr("+-0123456789.eE", *j->p)) j->p++;
        return 1;
    }
    j->error = "an unexpected character";
    return 0;
}

/* Parses a JSON object and returns its "text" string; NULL with `*error` set otherwise. */
/* Well-formed UTF-8: no stray or missing continuation bytes, overlong forms,
 * surrogates or code points past U+10FFFF (what Rust's and Go's checks refuse). */
static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], cp, min;
        size_t k;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xe0) == 0xc0) { k = 1; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { k = 2; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { k = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (n - i <= k) return 0;
        for (size_t m = 1; m <= k; m++) {
            if ((s[i + m] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (s[i + m] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000)) return 0;
        i += k + 1;
    }
    return 1;
}

static int read_text(const uint8_t *body, uint32_t len, buf *text, const char **error) {
    json j = {(const char *)body, (const char *)body + len, NULL};
    int found = 0;
    ws(&j);
    if (j.p >= j.end || *j.p != '{') { *error = "the body must be a JSON object"; return 0; }
    j.p++;
    ws(&j);
    if (j.p < j.end && *j.p == '}') j.p++;
    else for (;;) {
        buf key = {0};
        ws(&j);
        if (!str(&j, &key)) { free(key.p); *error = j.error; return 0; }
        ws(&j);
        if (j.p >= j.end || *j.p++ != ':') { free(key.p); *error = "expected : after a key"; return 0; }
        ws(&j);
        int is_text = key.len == 4 && !memcmp(key.p, "text", 4);
        free(key.p);
        if (is_text) {
            text->len = 0;
            if (j.p >= j.end || *j.p != '"') { *error = "\"text\" must be a string"; return 0; }
            if (!str(&j, text)) { *error = j.error; return 0; }
            found = 1;
        } else if (!value(&j, 1)) { *error = j.error; return 0; }
        ws(&j);
        if (j.p < j.end && *j.p == ',') { j.p++; continue; }
        if (j.p < j.end && *j.p == '}') { j.p++; break; }
        *error = "expected , or } in the object";
        return 0;
    }
    ws(&j);
    if (j.p != j.end) { *error = "text after the JSON object"; return 0; }
    if (!found) { *error = "the object has no \"text\" string"; return 0; }
    /* Raw bytes in a string were the body's own: keep them if they are UTF-8. */
    if (!valid_utf8((const unsigned char *)text->p, text->len)) { *error = "a string that is not UTF-8"; return 0; }
    if (!text->p) puts_(text, "");
    return 1;
}

/* ---- the API ---- */

static void reply(uint64_t id, uint16_t status, buf *body) {
    const char *headers[] = {"Content-Type", "application/json", NULL};
    pulp_http_respond(id, status, status == 204 ? NULL : headers, body ? body->p : NULL, body ? body->len : 0);
}

static void reply_error_n(uint64_t id, uint16_t status, const char *message, size_t n) {
    buf b = {0};
    puts_(&b, "{\"error\": ");
    put_json_str(&b, message, n);
    puts_(&b, "}");
    reply(id, status, &b);
    free(b.p);
}

static void reply_error(uint64_t id, uint16_t status, const char *message) {
    reply_error_n(id, status, message, strlen(message));
}

static void failed(uint64_t id, const char *what) {
    char why[300], msg[400];
    pulp_last_error(why, sizeof why);
    snprintf(msg, sizeof msg, "%s: %s", what, why);
    reply_error(id, 500, msg);
}

PULP_EXPORT(pulp_init) int32_t pulp_init(const uint8_t *cfg, uint32_t len) {
    (void)cfg;
    (void)len;
    if (pulp_sqlite_exec("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL)",
                         NULL, NULL, NULL) != PULP_OK)
        return 1;
    if (pulp_http_register("POST", "/notes") || pulp_http_register("GET", "/notes") ||
        pulp_http_register("GET", "/notes/:id") || pulp_http_register("DELETE", "/notes/:id"))
        return 2;
    return 0;
}

/* The :id parameter as a positive integer; 0 when it is not one. */
static int64_t note_id(const pulp_http_request *q) {
    const char *s;
    uint32_t n;
    int64_t v = 0;
    pulp_mp_map_str(q->params, "id", &s, &n);
    if (n == 0 || n > 18) return 0;
    for (uint32_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Writes the rows of a {columns, rows} result ([[id, text], ...]) as notes. */
static int put_rows(buf *b, const uint8_t *res, uint32_t len, int as_array) {
    pulp_mpr r;
    uint32_t nrows, ncols;
    int count = 0;
    pulp_mpr_init(&r, res, len);
    if (!pulp_mpr_find(&r, "rows") || !pulp_mpr_array(&r, &nrows)) return -1;
    if (as_array) puts_(b, "[");
    for (uint32_t i = 0; i < nrows; i++) {
        int64_t id;
        const char *text;
        uint32_t tn;
        if (!pulp_mpr_array(&r, &ncols) || ncols != 2 || !pulp_mpr_int(&r, &id) || !pulp_mpr_str(&r, &text, &tn)) return -1;
        if (count++) puts_(b, ", ");
        put_note(b, id, text, tn);
    }
    if (as_array) puts_(b, "]");
    return count;
}

static void on_request(const pulp_http_request *q) {
    int post = pulp_mp_str_eq(q->method, q->method_len, "POST");
    int del = pulp_mp_str_eq(q->method, q->method_len, "DELETE");
    int all = pulp_mp_str_eq(q->path, q->path_len, "/notes");
    buf b = {0};
    if (post) {
        buf text = {0};
        const char *error = NULL;
        if (!read_text(q->body, q->body_len, &text, &error)) {
            char msg[200];
            snprintf(msg, sizeof msg, "malformed JSON: %s", error ? error : "unreadable");
            reply_error(q->id, 400, msg);
            free(text.p);
            return;
        }
        pulp_mpw params;
        int64_t id = 0;
        pulp_mpw_init(&params);
        pulp_mpw_array(&params, 1);
        pulp_mpw_strn(&params, text.p, text.len);
        int32_t st = pulp_sqlite_exec("INSERT INTO notes (text) VALUES (?)", &params, NULL, &id);
        pulp_mpw_free(&params);
        if (st != PULP_OK) { failed(q->id, "insert"); free(text.p); return; }
        put_note(&b, id, text.p, text.len);
        reply(q->id, 201, &b);
        free(text.p);
    } else if (all) {
        uint8_t *res;
        uint32_t len;
        if (pulp_sqlite_query("SELECT id, text FROM notes ORDER BY id", NULL, &res, &len) != PULP_OK) {
            failed(q->id, "query");
            return;
        }
        if (put_rows(&b, res, len, 1) < 0) reply_error(q->id, 500, "unreadable rows");
        else reply(q->id, 200, &b);
        free(res);
    } else {
        int64_t id = note_id(q);
        /* "no note <the rest of the path>", at most 63 bytes, never cut inside a
         * UTF-8 character; the path may hold any byte, NUL included. */
        char msg[64] = "no note ";
        size_t rest = q->path_len > 7 ? q->path_len - 7 : 0;
        if (rest > sizeof msg - 9) {
            rest = sizeof msg - 9;
            while (rest > 0 && ((unsigned char)q->path[7 + rest] & 0xc0) == 0x80) rest--;
        }
        memcpy(msg + 8, q->path + 7, rest);
        size_t msg_len = 8 + rest;
        pulp_mpw params;
        pulp_mpw_init(&params);
        pulp_mpw_array(&params, 1);
        pulp_mpw_int(&params, id);
        if (del) {
            int64_t n = 0;
            int32_t st = id ? pulp_sqlite_exec("DELETE FROM notes WHERE id = ?", &params, &n, NULL) : PULP_OK;
            if (st != PULP_OK) failed(q->id, "delete");
            else if (n == 0) reply_error_n(q->id, 404, msg, msg_len);
            else reply(q->id, 204, NULL);
        } else {
            uint8_t *res = NULL;
            uint32_t len = 0;
            int32_t st = id ? pulp_sqlite_query("SELECT id, text FROM notes WHERE id = ?", &params, &res, &len) : PULP_OK;
            int found = st == PULP_OK && res ? put_rows(&b, res, len, 0) : 0;
            if (st != PULP_OK) failed(q->id, "query");
            else if (found <= 0) reply_error_n(q->id, 404, msg, msg_len);
            else reply(q->id, 200, &b);
            free(res);
        }
        pulp_mpw_free(&params);
    }
    free(b.p);
}

PULP_EXPORT(pulp_step) int32_t pulp_step(const uint8_t *in, uint32_t len) {
    pulp_http_request q;
    if (pulp_step_http_request(in, len, &q)) on_request(&q);
    return 0;
}

PULP_EXPORT(pulp_shutdown) int32_t pulp_shutdown(void) { return 0; }
