//! The host's metrics, one set per process, in Prometheus' exposition format
//! ([`encode`], served by `pulp run --admin ADDR` at `/metrics`).
//!
//! Every family is defined here, so a capability records into the same registry
//! as the host: [`metrics()`] gives the families, and a hot path keeps the metric
//! it got from a family (a counter or a histogram is an `Arc`: cloning it once
//! and updating it is an atomic operation, with no label lookup per event).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

pub use prometheus_client;

/// `{plugin}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabel {
    /// The plugin's name.
    pub plugin: String,
}

/// `{plugin, state}`: one series per state, 1 for the plugin's current one.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// The plugin's name.
    pub plugin: String,
    /// `running`, `restarting`, `failed` or `stopped`.
    pub state: &'static str,
}

/// `{plugin, source}`: an event source (`http`, `ws`, `docker` ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// The plugin's name.
    pub plugin: String,
    /// The event source (its queue).
    pub source: &'static str,
}

/// `{plugin, import, status}`: calls of one import that returned one status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ImportLabels {
    /// The plugin's name.
    pub plugin: String,
    /// The import (`sqlite_query`).
    pub import: &'static str,
    /// The ABI status it returned (0 is OK).
    pub status: i32,
}

/// `{caller, target, status}`: calls between plugins. Function names are the
/// guest's own strings, so they stay out of labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The calling plugin.
    pub caller: String,
    /// The plugin called.
    pub target: String,
    /// The ABI status `pulp_call` returned.
    pub status: i32,
}

/// `{plugin, method, route}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The plugin that registered the route.
    pub plugin: String,
    /// The method.
    pub method: String,
    /// The route's pattern (`/notes/:id`), never the request's own path.
    pub route: String,
}

/// `{plugin, method, route, status}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatusLabels {
    /// The plugin that registered the route.
    pub plugin: String,
    /// The method.
    pub method: String,
    /// The route's pattern.
    pub route: String,
    /// The answer's status code.
    pub status: u16,
}

/// Every family of the host's metrics.
pub struct Metrics {
    registry: Registry,
    /// Plugin state (1 for the current state).
    pub plugin_state: Family<StateLabels, Gauge>,
    /// Instances of a plugin.
    pub plugin_instances: Family<PluginLabel, Gauge>,
    /// Time per step; its count is the number of steps (idle ticks included).
    pub step_seconds: Family<PluginLabel, StepTimes>,
    /// Traps and deadline overruns.
    pub traps: Family<PluginLabel, Counter>,
    /// Instances replaced after a failure.
    pub restarts: Family<PluginLabel, Counter>,
    /// Events waiting, over all sources.
    pub events_queued: Family<PluginLabel, Gauge>,
    /// Events refused because their source's queue or the host memory budget was full.
    pub events_dropped: Family<SourceLabels, Counter>,
    /// Import calls by import and returned status.
    pub import_calls: Family<ImportLabels, Counter>,
    /// `pulp_call`s by caller, target and returned status.
    pub calls: Family<CallLabels, Counter>,
    /// Guest linear memory of one instance (the largest instance's, for pools).
    pub guest_memory_bytes: Family<PluginLabel, Gauge>,
    /// Host memory charged to the plugin (queued events, bodies, backlogs ...).
    pub host_memory_bytes: Family<PluginLabel, Gauge>,
    /// HTTP requests by route and status.
    pub http_requests: Family<RouteStatusLabels, Counter>,
    /// Time from a request's arrival to its answer, by route.
    pub http_request_seconds: Family<RouteLabels, Histogram>,
    /// Open WebSocket connections.
    pub ws_connections: Family<PluginLabel, Gauge>,
    /// Open SSE subscriptions.
    pub sse_connections: Family<PluginLabel, Gauge>,
    /// Modules loaded from the on-disk cache.
    pub cache_hits: Counter,
    /// Modules compiled (not in the cache, or no cache).
    pub cache_misses: Counter,
    /// Time to compile a module.
    pub compile_seconds: Histogram,
}

fn latency() -> Histogram {
    // 50 µs to about 100 s.
    Histogram::new(exponential_buckets(5e-5, 3.0, 14))
}

impl Metrics {
    fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("pulp"),
            plugin_state: Family::default(),
            plugin_instances: Family::default(),
            step_seconds: Family::default(),
            traps: Family::default(),
            restarts: Family::default(),
            events_queued: Family::default(),
            events_dropped: Family::default(),
            import_calls: Family::default(),
            calls: Family::default(),
            guest_memory_bytes: Family::default(),
            host_memory_bytes: Family::default(),
            http_requests: Family::default(),
            http_request_seconds: Family::new_with_constructor(latency),
            ws_connections: Family::default(),
            sse_connections: Family::default(),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            compile_seconds: Histogram::new(exponential_buckets(1e-3, 2.0, 16)),
        };
        m.registry.register(
            "plugin_state",
            "Plugin state: 1 for the current one",
            m.plugin_state.clone(),
        );
        m.registry.register(
            "plugin_instances",
            "Instances of the plugin",
            m.plugin_instances.clone(),
        );
        m.registry.register(
            "plugin_step_seconds",
            "Time per step (the count is the steps run, idle ticks included)",
            m.step_seconds.clone(),
        );
        m.registry.register(
            "plugin_traps",
            "Traps and deadline overruns",
            m.traps.clone(),
        );
        m.registry.register(
            "plugin_restarts",
            "Instances replaced after a failure",
            m.restarts.clone(),
        );
        m.registry.register(
            "plugin_events_queued",
            "Events waiting",
            m.events_queued.clone(),
        );
        m.registry.register(
            "plugin_events_dropped",
            "Events refused because the source's queue or the host memory budget was full",
            m.events_dropped.clone(),
        );
        m.registry.register(
            "plugin_import_calls",
            "Import calls by import and returned ABI status",
            m.import_calls.clone(),
        );
        m.registry.register(
            "plugin_calls",
            "pulp_call calls by caller, target and returned ABI status",
            m.calls.clone(),
        );
        m.registry.register(
            "plugin_guest_memory_bytes",
            "Guest linear memory of an instance",
            m.guest_memory_bytes.clone(),
        );
        m.registry.register(
            "plugin_host_memory_bytes",
            "Host memory charged to the plugin",
            m.host_memory_bytes.clone(),
        );
        m.registry.register(
            "http_requests",
            "HTTP requests by route and status",
            m.http_requests.clone(),
        );
        m.registry.register(
            "http_request_seconds",
            "HTTP request latency by route",
            m.http_request_seconds.clone(),
        );
        m.registry.register(
            "ws_connections",
            "Open WebSocket connections",
            m.ws_connections.clone(),
        );
        m.registry.register(
            "sse_connections",
            "Open SSE subscriptions",
            m.sse_connections.clone(),
        );
        m.registry.register(
            "module_cache_hits",
            "Modules loaded from the cache",
            m.cache_hits.clone(),
        );
        m.registry.register(
            "module_cache_misses",
            "Modules compiled",
            m.cache_misses.clone(),
        );
        m.registry.register(
            "module_compile_seconds",
            "Time to compile a module",
            m.compile_seconds.clone(),
        );
        m
    }

    /// The exposition text of every family (Prometheus' text format, OpenMetrics
    /// flavour, ending in `# EOF`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }

    /// The `{plugin}` labels of `name`.
    pub fn plugin(name: &str) -> PluginLabel {
        PluginLabel {
            plugin: name.to_string(),
        }
    }
}

/// A histogram of step times made for the step path: recording is two relaxed
/// atomic additions (no lock, no float, no bucket search): buckets are powers of
/// two of nanoseconds, from 1.024 µs (2^10 ns) to 8.6 s (2^33 ns), then +Inf.
/// Encoded by `prometheus-client` like its own histograms.
#[derive(Clone, Debug, Default)]
pub struct StepTimes(Arc<StepInner>);

const STEP_BUCKETS: usize = 25;

#[derive(Debug, Default)]
struct StepInner {
    buckets: [AtomicU64; STEP_BUCKETS],
    sum_ns: AtomicU64,
}

impl StepTimes {
    /// Records one step of `ns` nanoseconds.
    #[inline]
    pub fn record(&self, ns: u64) {
        let bits = 64 - ns.saturating_sub(1).leading_zeros() as usize;
        let i = bits.saturating_sub(10).min(STEP_BUCKETS - 1);
        self.0.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.0.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Steps recorded.
    pub fn count(&self) -> u64 {
        self.0
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum()
    }
}

impl TypedMetric for StepTimes {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for StepTimes {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = self
            .0
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let upper = if i == STEP_BUCKETS - 1 {
                    f64::MAX // +Inf
                } else {
                    (1u64 << (i + 10)) as f64 / 1e9
                };
                (upper, b.load(Ordering::Relaxed))
            })
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.0.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// One open thing (a connection) counted in a gauge while this value lives.
#[derive(Debug)]
pub struct Open(Gauge);

impl Open {
    /// Counts one more in `gauge` until dropped.
    pub fn new(gauge: Gauge) -> Open {
        gauge.inc();
        Open(gauge)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether the per-step and per-request metrics are recorded (on unless
/// [`set_enabled`] turned them off; benchmarks compare the two).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Turns the per-step and per-request metrics on or off, process-wide.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed)
}

/// This process's metrics.
pub fn metrics() -> &'static Metrics {
    static M: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &M
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_times_fall_in_power_of_two_buckets_and_encode_as_a_histogram() {
        let t = StepTimes::default();
        for ns in [0, 1, 1024, 1025, 2048, 1 << 33, (1 << 33) + 1, u64::MAX / 2] {
            t.record(ns);
        }
        let b: Vec<u64> =
            t.0.buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect();
        assert_eq!(b[0], 3, "0, 1 and 1024 ns are <= 1.024 us");
        assert_eq!(b[1], 2, "1025 and 2048 ns");
        assert_eq!(b[23], 1, "2^33 ns");
        assert_eq!(b[24], 2, "past 2^33 ns: +Inf");
        assert_eq!(t.count(), 8);
        let mut r = Registry::default();
        r.register("s", "steps", t.clone());
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
        assert!(out.contains("# TYPE s histogram"), "{out}");
        assert!(out.contains("s_count 8"), "{out}");
        assert!(out.contains("s_bucket{le=\"+Inf\"} 8"), "{out}");
        assert!(out.contains("s_bucket{le=\"0.000001024\"} 3"), "{out}");
    }
}
