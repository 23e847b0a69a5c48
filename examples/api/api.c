/* The api example: an HTTP API that asks the auth plugin, in process, who each
 * request's bearer token belongs to:
 *
 *   GET /whoami  with "Authorization: Bearer <token>"  ->  200 "hello <user>"
 *                                                           401 for an unknown token
 */
#define PULP_IMPLEMENTATION
#include "pulp.h"

#include <stdio.h>
#include <string.h>

PULP_EXPORT(pulp_init) int32_t pulp_init(const uint8_t *cfg, uint32_t len) {
    (void)cfg;
    (void)len;
    return pulp_http_register("GET", "/whoami") == PULP_OK ? 0 : 1;
}

static void answer(uint64_t id, uint16_t status, const char *text) {
    static const char *const headers[] = {"Content-Type", "text/plain", NULL};
    pulp_http_respond(id, status, headers, text, strlen(text));
}

PULP_EXPORT(pulp_step) int32_t pulp_step(const uint8_t *in, uint32_t len) {
    pulp_http_request q;
    if (!pulp_step_http_request(in, len, &q)) return 0;
    const char *auth;
    uint32_t n = 0;
    pulp_mp_map_str(q.headers, "Authorization", &auth, &n);
    if (n <= 7 || memcmp(auth, "Bearer ", 7) != 0) {
        answer(q.id, 401, "send Authorization: Bearer <token>\n");
        return 0;
    }
    uint8_t *user = NULL;
    uint32_t un = 0;
    int32_t st = pulp_call("auth", "verify", auth + 7, n - 7, &user, &un);
    char text[256];
    if (st == PULP_OK) {
        snprintf(text, sizeof text, "hello %.*s\n", (int)un, (const char *)user);
        answer(q.id, 200, text);
    } else if (st == PULP_DENIED) {
        answer(q.id, 401, "unknown token\n");
    } else {
        char why[160];
        pulp_last_error(why, sizeof why);
        snprintf(text, sizeof text, "auth failed (%d): %s\n", (int)st, why);
        answer(q.id, 503, text);
    }
    free(user);
    return 0;
}

PULP_EXPORT(pulp_shutdown) int32_t pulp_shutdown(void) { return 0; }
