//! The host's metrics, one set per process, in Prometheus' exposition format
//! ([`encode`], served by `pulp run --admin ADDR` at `/metrics`).
//!
//! Every family is defined here, so a capability records into the same registry
//! as the host: [`metrics()`] gives the families, and a hot path keeps the metric
//! it got from a family (a counter or a histogram is an `Arc`: cloning it once
//! and updating it is an atomic operation, with no label lookup per event).

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
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
    /// Steps run (idle ticks included).
    pub steps: Family<PluginLabel, Counter>,
    /// Time per step.
    pub step_seconds: Family<PluginLabel, Histogram>,
    /// Traps and deadline overruns.
    pub traps: Family<PluginLabel, Counter>,
    /// Instances replaced after a failure.
    pub restarts: Family<PluginLabel, Counter>,
    /// Events waiting, over all sources.
    pub events_queued: Family<PluginLabel, Gauge>,
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

fn seconds() -> Histogram {
    // 1 µs to about 4.5 minutes.
    Histogram::new(exponential_buckets(1e-6, 4.0, 15))
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
            steps: Family::default(),
            step_seconds: Family::new_with_constructor(seconds),
            traps: Family::default(),
            restarts: Family::default(),
            events_queued: Family::default(),
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
            "plugin_steps",
            "Steps run, idle ticks included",
            m.steps.clone(),
        );
        m.registry.register(
            "plugin_step_seconds",
            "Time per step",
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

/// This process's metrics.
pub fn metrics() -> &'static Metrics {
    static M: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &M
}
