/*
 * {{name}}: a Pulp plugin in C. Build it (Debian: apt-get install clang lld
 * wasi-libc libclang-rt-14-dev-wasm32), check it, run it:
 *
 *   clang --target=wasm32-wasi -mexec-model=reactor -O2 -I . -o plugin.wasm plugin.c
 *   pulp check pulp.plugin.toml && pulp run pulp.plugin.toml
 *
 * pulp.h documents every import and helper; docs/ABI.md is the contract.
 */
#define PULP_IMPLEMENTATION
#include "pulp.h"

static uint64_t events;

/* cfg is the manifest's [config] as msgpack (NULL, 0 when there is none). */
PULP_EXPORT(pulp_init) int32_t pulp_init(const uint8_t *cfg, uint32_t len) {
    (void)cfg;
    (void)len;
    pulp_log(PULP_INFO, "{{name}}: started");
    return 0;
}

/* One event per step, or an idle tick (no payload). Return 0. */
PULP_EXPORT(pulp_step) int32_t pulp_step(const uint8_t *in, uint32_t len) {
    pulp_envelope e;
    const char *kind;
    uint32_t kn;
    pulp_mpr payload;
    if (!pulp_envelope_parse(in, len, &e)) return 0;
    if (pulp_event_parse(&e, &kind, &kn, &payload)) {
        events++;
        pulp_logf(PULP_INFO, "{{name}}: event %.*s", (int)kn, kind);
    }
    return 0;
}

PULP_EXPORT(pulp_shutdown) int32_t pulp_shutdown(void) {
    pulp_logf(PULP_INFO, "{{name}}: shutting down after %llu events", (unsigned long long)events);
    return 0;
}
