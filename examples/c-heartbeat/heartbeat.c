/*
 * heartbeat in C: reads its config, logs a greeting and a random instance id,
 * logs a tick once a second and every event it is handed, and reports probes.
 *
 *   clang --target=wasm32-wasi -mexec-model=reactor -O2 -I ../../pdk/c \
 *         -o heartbeat.wasm heartbeat.c
 *   pulp run pulp.plugin.toml
 */
#define PULP_IMPLEMENTATION
#include "pulp.h"

static int64_t marker;
static int64_t last_call = -1;
static uint64_t last_second;

PULP_EXPORT(pulp_init) int32_t pulp_init(const uint8_t *cfg, uint32_t len) {
    pulp_mpr r;
    uint32_t n;
    pulp_mpr_init(&r, cfg, len);
    if (len > 0 && !pulp_mpr_map(&r, &n)) return 1;
    for (uint32_t i = 0; len > 0 && i < n; i++) {
        const char *key, *s;
        uint32_t kn, sn;
        if (!pulp_mpr_str(&r, &key, &kn)) return 1;
        if (pulp_mp_str_eq(key, kn, "marker")) {
            if (!pulp_mpr_int(&r, &marker)) return 2;
        } else if (pulp_mp_str_eq(key, kn, "greeting") && pulp_mpr_peek(&r) == PULP_MP_STR) {
            pulp_mpr_str(&r, &s, &sn);
            pulp_logn(PULP_INFO, s, sn);
        } else if (!pulp_mpr_skip(&r)) {
            return 1;
        }
    }
    uint64_t id;
    if (pulp_entropy_read(&id, sizeof id) != PULP_OK) {
        char why[200];
        pulp_last_error(why, sizeof why);
        pulp_logf(PULP_ERROR, "entropy_read failed: %s", why);
        return 3;
    }
    pulp_logf(PULP_INFO, "c-heartbeat: instance %016llx, marker %lld", (unsigned long long)id, (long long)marker);
    return 0;
}

PULP_EXPORT(pulp_step) int32_t pulp_step(const uint8_t *in, uint32_t len) {
    pulp_envelope e;
    if (!pulp_envelope_parse(in, len, &e)) return 0;
    last_call = (int64_t)e.call_number;
    if (e.payload) {
        pulp_mpr r;
        const char *kind;
        uint32_t kn;
        pulp_mpr_init(&r, e.payload, e.payload_len);
        if (pulp_mpr_find(&r, "kind") && pulp_mpr_str(&r, &kind, &kn))
            pulp_logf(PULP_INFO, "c-heartbeat: event %.*s", (int)kn, kind);
    }
    uint64_t second = e.wall_time / 1000000000ull;
    if (second != last_second) {
        last_second = second;
        pulp_logf(PULP_INFO, "c-heartbeat: tick %llu", (unsigned long long)e.call_number);
    }
    return 0;
}

PULP_EXPORT(pulp_shutdown) int32_t pulp_shutdown(void) {
    pulp_log(PULP_INFO, "c-heartbeat: shutting down");
    return 0;
}

PULP_EXPORT(probe_last_call) int64_t probe_last_call(void) { return last_call; }
PULP_EXPORT(probe_config_marker) int64_t probe_config_marker(void) { return marker; }
