/* The auth example: a plugin other plugins call. It provides "auth", keeps API tokens
 * in SQLite and serves one function through pulp_on_call:
 *
 *   verify(token) -> the token's user, or PULP_DENIED with "unknown token"
 *
 * The tokens come from the manifest's [config] tokens = { "<token>" = "<user>" }
 * (in production, from [secrets]).
 */
#define PULP_IMPLEMENTATION
#include "pulp.h"

#include <string.h>

PULP_EXPORT(pulp_init) int32_t pulp_init(const uint8_t *cfg, uint32_t len) {
    if (pulp_sqlite_exec("CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, user TEXT NOT NULL)", NULL, NULL,
                         NULL) != PULP_OK)
        return 1;
    pulp_mpr r, tokens;
    uint32_t n = 0;
    pulp_mpr_init(&r, cfg, len);
    if (len == 0 || !pulp_mpr_find(&r, "tokens")) return 0;
    tokens = r;
    if (!pulp_mpr_map(&tokens, &n)) return 2;
    for (uint32_t i = 0; i < n; i++) {
        const char *token, *user;
        uint32_t tn, un;
        if (!pulp_mpr_str(&tokens, &token, &tn) || !pulp_mpr_str(&tokens, &user, &un)) return 2;
        pulp_mpw params;
        pulp_mpw_init(&params);
        pulp_mpw_array(&params, 2);
        pulp_mpw_strn(&params, token, tn);
        pulp_mpw_strn(&params, user, un);
        int32_t st = pulp_sqlite_exec("INSERT OR REPLACE INTO tokens (token, user) VALUES (?, ?)", &params, NULL, NULL);
        pulp_mpw_free(&params);
        if (st != PULP_OK) return 3;
    }
    return 0;
}

/* verify(token): the user as the answer; PULP_DENIED for an unknown token. */
static int32_t verify(const uint8_t *token, uint32_t len, uint8_t **out, uint32_t *out_len) {
    pulp_mpw params;
    uint8_t *res = NULL;
    uint32_t n = 0;
    pulp_mpw_init(&params);
    pulp_mpw_array(&params, 1);
    pulp_mpw_strn(&params, (const char *)token, len);
    int32_t st = pulp_sqlite_query("SELECT user FROM tokens WHERE token = ?", &params, &res, &n);
    pulp_mpw_free(&params);
    if (st != PULP_OK) return pulp_call_answer(out, out_len, "the token store failed", 22, PULP_FAILED);
    pulp_mpr r;
    uint32_t rows = 0, cols = 0;
    const char *user = NULL;
    uint32_t un = 0;
    pulp_mpr_init(&r, res, n);
    bool found = pulp_mpr_find(&r, "rows") && pulp_mpr_array(&r, &rows) && rows == 1 && pulp_mpr_array(&r, &cols) &&
                 cols == 1 && pulp_mpr_str(&r, &user, &un);
    int32_t answer = found ? pulp_call_answer(out, out_len, user, un, PULP_OK)
                           : pulp_call_answer(out, out_len, "unknown token", 13, PULP_DENIED);
    free(res);
    return answer;
}

PULP_EXPORT(pulp_on_call)
int32_t pulp_on_call(const char *name, uint32_t name_len, const uint8_t *args, uint32_t args_len, uint8_t **out,
                     uint32_t *out_len) {
    if (name_len == 6 && memcmp(name, "verify", 6) == 0) return verify(args, args_len, out, out_len);
    return pulp_call_answer(out, out_len, "auth serves verify(token)", 25, PULP_NOT_FOUND);
}

PULP_EXPORT(pulp_step) int32_t pulp_step(const uint8_t *in, uint32_t len) {
    (void)in;
    (void)len;
    return 0;
}

PULP_EXPORT(pulp_shutdown) int32_t pulp_shutdown(void) { return 0; }
