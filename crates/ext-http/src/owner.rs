//! The plugin behind a route, request or connection, and its inbound settings
//! (`[capability."transport.http.inbound"]`, `[capability."transport.ws.inbound"]`):
//! what the server, the WebSocket and the SSE layers know of a plugin.

use std::sync::Arc;
use std::time::Duration;

use pulp_ext::{Events, Plugin, Standing};
use serde::Deserialize;

use crate::router;

pub(crate) const HTTP: &str = "transport.http.inbound";
pub(crate) const WS: &str = "transport.ws.inbound";
pub(crate) const SSE: &str = "transport.sse";

/// `[capability."transport.http.inbound"]`
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HttpToml {
    request_timeout_ms: Option<u64>,
    max_body_bytes: Option<u64>,
    max_routes: Option<u64>,
}

/// `[capability."transport.ws.inbound"]`
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WsToml {
    allowed_origins: Option<Vec<String>>,
    send_timeout_ms: Option<u64>,
    max_frame_bytes: Option<u64>,
}

/// A plugin's checked HTTP settings.
pub(crate) struct HttpSettings {
    /// From arrival to the 504.
    pub(crate) request_timeout: Duration,
    pub(crate) max_body_bytes: usize,
    /// Routes the plugin may hold at once (HTTP, WebSocket and SSE together).
    pub(crate) max_routes: usize,
}

/// A plugin's checked WebSocket settings.
pub(crate) struct WsSettings {
    /// Origins a browser may connect from, besides the listener's own; `*` for any.
    pub(crate) allowed_origins: Vec<String>,
    /// A frame that cannot be written within this closes the connection.
    pub(crate) send_timeout: Duration,
    pub(crate) max_frame_bytes: usize,
}

/// The plugin behind a route, request or connection.
pub(crate) struct Owner {
    pub(crate) name: String,
    pub(crate) events: Events,
    /// This version of the plugin (a reload makes another beside it).
    pub(crate) version: Plugin,
    /// The plugin's host memory budget (bodies, queued frames, SSE backlogs).
    pub(crate) budget: pulp_ext::Budget,
    pub(crate) http: Arc<HttpSettings>,
    pub(crate) ws: Arc<WsSettings>,
}

impl router::Owner for Owner {
    fn name(&self) -> &str {
        &self.name
    }
    fn same(&self, other: &Self) -> bool {
        self.events.same_as(&other.events)
    }
    fn alive(&self) -> bool {
        !self.events.is_closed()
    }
    fn version_alive(&self) -> bool {
        !matches!(
            self.version.standing(),
            Standing::Retired | Standing::Abandoned
        )
    }
    fn serving(&self) -> bool {
        self.alive() && self.version.standing() == Standing::Current
    }
    fn same_version(&self, other: &Self) -> bool {
        self.version.same_version(&other.version)
    }
}

fn range(problems: &mut Vec<String>, key: &str, v: Option<u64>, default: u64, max: u64) -> u64 {
    let v = v.unwrap_or(default);
    if !(1..=max).contains(&v) {
        problems.push(format!("{key} = {v} is outside 1..={max}"));
    }
    v
}

/// A plugin's inbound settings (`[capability."transport.http.inbound"]` and
/// `[capability."transport.ws.inbound"]`), shared by its three inbound capabilities.
pub struct Settings {
    pub(crate) http: Arc<HttpSettings>,
    pub(crate) ws: Arc<WsSettings>,
}

pub(crate) fn settings(plugin: &Plugin) -> Result<Settings, Vec<String>> {
    let h: HttpToml = pulp_ext::from_table(plugin.settings(HTTP)).map_err(|e| vec![e])?;
    let w: WsToml = pulp_ext::from_table(plugin.settings(WS)).map_err(|e| vec![e])?;
    let mut p = Vec::new();
    let request_timeout = range(
        &mut p,
        "request_timeout_ms",
        h.request_timeout_ms,
        30_000,
        3_600_000,
    );
    let max_body = range(
        &mut p,
        "max_body_bytes",
        h.max_body_bytes,
        1 << 20,
        256 << 20,
    );
    let max_routes = range(&mut p, "max_routes", h.max_routes, 128, 4096);
    let send_timeout = range(&mut p, "send_timeout_ms", w.send_timeout_ms, 5_000, 600_000);
    let max_frame = range(
        &mut p,
        "max_frame_bytes",
        w.max_frame_bytes,
        1 << 20,
        64 << 20,
    );
    let origins = w.allowed_origins.unwrap_or_default();
    for o in &origins {
        if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
            p.push(format!(
                "allowed_origins entry {o:?} must be \"*\" or an origin like \"https://example.com\""
            ));
        }
    }
    if !p.is_empty() {
        return Err(p);
    }
    Ok(Settings {
        http: Arc::new(HttpSettings {
            request_timeout: Duration::from_millis(request_timeout),
            max_body_bytes: max_body as usize,
            max_routes: max_routes as usize,
        }),
        ws: Arc::new(WsSettings {
            allowed_origins: origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            send_timeout: Duration::from_millis(send_timeout),
            max_frame_bytes: max_frame as usize,
        }),
    })
}

impl pulp_ext::Settings for Settings {
    fn parse(_: Option<&pulp_ext::toml::Table>, plugin: &Plugin) -> Result<Settings, Vec<String>> {
        settings(plugin)
    }
}
