/*
 * fetch: outbound HTTP with an allow-list (transport.http.outbound), behind an
 * inbound route.
 *
 *   GET /fetch?url=<url>  -> the fetched status and body (Content-Type kept);
 *                            403 with the reason when the URL is not allowed
 *                            (allowed_hosts, or an internal address); 502 when the
 *                            fetch fails (the body says why)
 *
 *   clang --target=wasm32-wasi -mexec-model=reactor -O2 -I ../../pdk/c \
 *         -o fetch.wasm fetch.c
 */
#define PULP_IMPLEMENTATION
#include "pulp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

PULP_EXPORT(pulp_init) int32_t pulp_init(const uint8_t *cfg, uint32_t len) {
    (void)cfg;
    (void)len;
    return pulp_http_register("GET", "/fetch") == PULP_OK ? 0 : 1;
}

static void text(uint64_t id, uint16_t status, const char *msg) {
    const char *headers[] = {"Content-Type", "text/plain; charset=utf-8", NULL};
    pulp_http_respond(id, status, headers, msg, strlen(msg));
}

static void fetch(const pulp_http_request *q) {
    const char *url;
    uint32_t url_len;
    if (!pulp_mp_map_str(q->query, "url", &url, &url_len) || url_len == 0) {
        text(q->id, 400, "give the URL to fetch as ?url=\n");
        return;
    }
    char target[2048];
    if (url_len >= sizeof target) {
        text(q->id, 414, "the URL is too long\n");
        return;
    }
    snprintf(target, sizeof target, "%.*s", (int)url_len, url);
    uint8_t *res = NULL;
    uint32_t res_len = 0;
    int32_t st = pulp_http_fetch("GET", target, NULL, NULL, 0, 5000, &res, &res_len);
    if (st != PULP_OK) {
        char why[400], msg[460];
        pulp_last_error(why, sizeof why);
        snprintf(msg, sizeof msg, "%s\n", why);
        text(q->id, st == PULP_DENIED ? 403 : 502, msg);
        return;
    }
    pulp_mpr r;
    uint32_t n;
    uint64_t status = 502;
    const uint8_t *body = NULL;
    uint32_t body_len = 0;
    char type[128] = "application/octet-stream";
    pulp_mpr_init(&r, res, res_len);
    if (pulp_mpr_map(&r, &n)) {
        while (n--) {
            const char *k, *s;
            uint32_t kn, sn;
            if (!pulp_mpr_str(&r, &k, &kn)) break;
            if (pulp_mp_str_eq(k, kn, "status")) pulp_mpr_uint(&r, &status);
            else if (pulp_mp_str_eq(k, kn, "body")) pulp_mpr_bin(&r, &body, &body_len);
            else if (pulp_mp_str_eq(k, kn, "headers")) {
                if (pulp_mp_map_str(r, "Content-Type", &s, &sn) && sn < sizeof type)
                    snprintf(type, sizeof type, "%.*s", (int)sn, s);
                pulp_mpr_skip(&r);
            } else pulp_mpr_skip(&r);
        }
    }
    const char *headers[] = {"Content-Type", type, NULL};
    pulp_http_respond(q->id, (uint16_t)status, headers, body, body_len);
    free(res);
}

PULP_EXPORT(pulp_step) int32_t pulp_step(const uint8_t *in, uint32_t len) {
    pulp_http_request q;
    if (pulp_step_http_request(in, len, &q)) fetch(&q);
    return 0;
}

PULP_EXPORT(pulp_shutdown) int32_t pulp_shutdown(void) { return 0; }
