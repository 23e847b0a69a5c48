/*
 * jobs: POST a command line, run it in a container of the allowed image, get its
 * output back. HTTP in (transport.http.inbound) -> container (spawn.docker) -> out.
 *
 *   POST /jobs   body "echo hello"  -> 200, body = the command's stdout,
 *                headers X-Exit-Code and X-Timed-Out; stderr comes back in X-Stderr
 *                (first line). 403 when the image is not granted, 502 when the
 *                engine fails (the body says why).
 *
 * The image comes from [config] image. Each job blocks this plugin while it runs
 * (other plugins and the listener keep going), so jobs run one at a time.
 *
 *   clang --target=wasm32-wasi -mexec-model=reactor -O2 -I ../../pdk/c \
 *         -o jobs.wasm jobs.c
 */
#define PULP_IMPLEMENTATION
#include "pulp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char image[256] = "pulp-test/busybox:1";

PULP_EXPORT(pulp_init) int32_t pulp_init(const uint8_t *cfg, uint32_t len) {
    pulp_mpr r;
    const char *s;
    uint32_t n;
    pulp_mpr_init(&r, cfg, len);
    if (len && pulp_mp_map_str(r, "image", &s, &n) && n < sizeof image) snprintf(image, sizeof image, "%.*s", (int)n, s);
    return pulp_http_register("POST", "/jobs") == PULP_OK ? 0 : 1;
}

static void reply_text(uint64_t id, uint16_t status, const char *text) {
    const char *headers[] = {"Content-Type", "text/plain; charset=utf-8", NULL};
    pulp_http_respond(id, status, headers, text, strlen(text));
}

static void run_job(const pulp_http_request *q) {
    char line[1024], *argv[33];
    int argc = 0;
    snprintf(line, sizeof line, "%.*s", (int)q->body_len, (const char *)q->body);
    for (char *tok = strtok(line, " \t\r\n"); tok && argc < 32; tok = strtok(NULL, " \t\r\n")) argv[argc++] = tok;
    argv[argc] = NULL;
    if (argc == 0) {
        reply_text(q->id, 400, "POST the command line to run as the body\n");
        return;
    }
    uint8_t *res = NULL;
    uint32_t res_len = 0;
    int32_t st = pulp_docker_run(image, (const char *const *)argv, NULL, 0, 10000, &res, &res_len);
    if (st != PULP_OK) {
        char why[512], msg[600];
        pulp_last_error(why, sizeof why);
        snprintf(msg, sizeof msg, "%s\n", why);
        reply_text(q->id, st == PULP_DENIED ? 403 : 502, msg);
        return;
    }
    pulp_mpr r;
    uint32_t n;
    int64_t code = -1;
    bool timed_out = false;
    const uint8_t *out = NULL, *err = NULL;
    uint32_t out_len = 0, err_len = 0;
    pulp_mpr_init(&r, res, res_len);
    if (pulp_mpr_map(&r, &n)) {
        while (n--) {
            const char *k;
            uint32_t kn;
            if (!pulp_mpr_str(&r, &k, &kn)) break;
            if (pulp_mp_str_eq(k, kn, "exit_code")) pulp_mpr_int(&r, &code);
            else if (pulp_mp_str_eq(k, kn, "timed_out")) pulp_mpr_bool(&r, &timed_out);
            else if (pulp_mp_str_eq(k, kn, "stdout")) pulp_mpr_bin(&r, &out, &out_len);
            else if (pulp_mp_str_eq(k, kn, "stderr")) pulp_mpr_bin(&r, &err, &err_len);
            else pulp_mpr_skip(&r);
        }
    }
    char code_s[24], err_s[256];
    snprintf(code_s, sizeof code_s, "%lld", (long long)code);
    uint32_t first = 0;
    while (first < err_len && first < sizeof err_s - 1 && err[first] != '\n' && err[first] != '\r') first++;
    snprintf(err_s, sizeof err_s, "%.*s", (int)first, err ? (const char *)err : "");
    const char *headers[] = {"Content-Type", "text/plain; charset=utf-8", "X-Exit-Code", code_s,
                             "X-Timed-Out", timed_out ? "true" : "false", "X-Stderr", err_s, NULL};
    pulp_http_respond(q->id, 200, headers, out, out_len);
    free(res);
}

PULP_EXPORT(pulp_step) int32_t pulp_step(const uint8_t *in, uint32_t len) {
    pulp_http_request q;
    if (pulp_step_http_request(in, len, &q)) run_job(&q);
    return 0;
}

PULP_EXPORT(pulp_shutdown) int32_t pulp_shutdown(void) { return 0; }
