//! The inbound capabilities (`transport.http.inbound`, `transport.ws.inbound`,
//! `transport.sse`): one type, three registrations, one per-instance state.

use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use pulp_ext::wasmtime::Caller;
use pulp_ext::{Binding, Capability, Error, Events, Import, Msgpack, Plugin, State, Status};
use serde::Deserialize;

use crate::router::{self, Kind, Pattern};
use crate::server::{charged, full, Hub, Listener, ServerSettings};
use crate::{sse, ws};

/// The inbound transports, for a registry built by hand: [`Inbound::HTTP`],
/// [`Inbound::WS`] and [`Inbound::SSE`] (they share the host's one listener).
pub struct Inbound(Kind);

impl Inbound {
    /// `transport.http.inbound`.
    pub const HTTP: Inbound = Inbound(Kind::Http);
    /// `transport.ws.inbound`.
    pub const WS: Inbound = Inbound(Kind::Ws);
    /// `transport.sse`.
    pub const SSE: Inbound = Inbound(Kind::Sse);
}

pulp_ext::register!(Inbound(Kind::Http));
pulp_ext::register!(Inbound(Kind::Ws));
pulp_ext::register!(Inbound(Kind::Sse));

const HTTP: &str = "transport.http.inbound";
const WS: &str = "transport.ws.inbound";
const SSE: &str = "transport.sse";

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
    http: Arc<HttpSettings>,
    ws: Arc<WsSettings>,
}

fn settings(plugin: &Plugin) -> Result<Settings, Vec<String>> {
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

/// One instance's view of the listener.
pub(crate) struct Instance {
    pub(crate) hub: Arc<Hub>,
    pub(crate) owner: Arc<Owner>,
}

/// The listener state of an instance, shared by its three inbound capabilities.
static INSTANCE: pulp_ext::Slot<Instance> = pulp_ext::Slot::new("the inbound HTTP capabilities");

/// The calling instance's listener state.
pub(crate) fn instance<'a>(c: &'a mut Caller<'_, State>) -> Result<&'a Instance, Error> {
    c.data_mut().slot(&INSTANCE).map(|i| &*i)
}

impl Instance {
    /// Adds a route owned by this plugin; a bad path is 4, an overlap with another
    /// plugin's route 4 naming both, a route over `max_routes` 11.
    pub(crate) fn register(&self, kind: Kind, method: &str, path: &str) -> Result<(), Error> {
        let pattern = Pattern::parse(path).map_err(|e| Status::Invalid.err(e))?;
        if kind == Kind::Sse && !pattern.is_static() {
            return Err(Status::Invalid.err(format!(
                "SSE path {path:?} must be a plain path, without :parameters or *rest"
            )));
        }
        self.hub.router.add(
            kind,
            method,
            pattern,
            self.owner.clone(),
            self.owner.http.max_routes,
        )?;
        tracing::debug!(plugin = self.owner.name, method, path, "route registered");
        Ok(())
    }
}

impl Capability for Inbound {
    type Settings = Settings;

    fn name(&self) -> &'static str {
        match self.0 {
            Kind::Http => HTTP,
            Kind::Ws => WS,
            Kind::Sse => SSE,
        }
    }

    fn binding(&self) -> Binding {
        Binding::Gated
    }

    fn host_section(&self) -> Option<&'static str> {
        Some("http")
    }

    fn check_host_section(&self, table: &toml::Table) -> Result<(), String> {
        ServerSettings::parse(Some(table)).map(|_| ())
    }

    fn imports(&self) -> Vec<Import> {
        match self.0 {
            Kind::Http => vec![
                Import::new("http_register", http_register),
                Import::new("http_respond", http_respond),
            ],
            Kind::Ws => ws::imports(),
            Kind::Sse => sse::imports(),
        }
    }

    fn configure(&self, plugin: &Plugin) -> Result<Settings, Vec<String>> {
        if self.0 == Kind::Sse && plugin.settings(SSE).is_some() {
            return Err(vec!["takes no settings".to_string()]);
        }
        settings(plugin)
    }

    /// Starts the host's listener if it is not running yet: a bind failure fails the load.
    fn attach(
        &self,
        plugin: &Plugin,
        settings: &Settings,
        state: &mut State,
    ) -> Result<(), String> {
        if state.peek(&INSTANCE).is_some() {
            return Ok(()); // another inbound capability of this plugin attached it
        }
        let shared = plugin.shared();
        let listener = shared.service(|| Listener::start(shared))?;
        let owner = Owner {
            name: plugin.name().to_string(),
            events: plugin.events().clone(),
            budget: plugin.budget().clone(),
            http: settings.http.clone(),
            ws: settings.ws.clone(),
        };
        state.put(
            &INSTANCE,
            Instance {
                hub: listener.hub.clone(),
                owner: Arc::new(owner),
            },
        );
        Ok(())
    }

    /// An instance going away closes the plugin's WebSocket connections (its state
    /// is gone); a plugin closing also drops its routes, streams and waiting requests.
    fn detach(&self, state: &mut State) {
        let Some(i) = state.take(&INSTANCE) else {
            return;
        };
        let closing = i.owner.events.is_closed();
        ws::close_all(&i.hub, &i.owner.events, if closing { 1001 } else { 1012 });
        if closing {
            i.hub.router.remove_owner(&i.owner);
            sse::forget(&i.hub, &i.owner.events);
            i.hub.forget_requests(&i.owner.events);
        }
    }
}

#[derive(Deserialize)]
struct RegisterRequest {
    method: String,
    path: String,
}

#[derive(Deserialize)]
struct RespondRequest {
    id: u64,
    #[serde(default)]
    status: i64,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    body: Option<serde_bytes::ByteBuf>,
}

/// Headers a plugin may not set: hyper frames the body itself.
const HOP_BY_HOP: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
];

/// The answer to send; its body is charged to `budget` until it is written (a client
/// that reads slowly holds the plugin's budget, not the host's memory).
fn response(
    req: RespondRequest,
    budget: &pulp_ext::Budget,
) -> Result<Response<crate::server::Body>, Error> {
    // 0 is 200; anything outside 200–599 is 500 (a 1xx cannot end a request).
    let status = match req.status {
        0 => 200,
        s @ 200..=599 => s as u16,
        _ => 500,
    };
    let body = req.body.map(|b| b.into_vec()).unwrap_or_default();
    let charge = budget.charge(body.len())?;
    let mut r = Response::new(full(charged(body, charge)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in &req.headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| Status::Invalid.err(format!("response header name {k:?} is not valid")))?;
        if HOP_BY_HOP.contains(&name.as_str()) {
            continue;
        }
        let value = HeaderValue::from_str(v).map_err(|_| {
            Status::Invalid.err(format!("response header {k}: value {v:?} is not valid"))
        })?;
        r.headers_mut().append(name, value);
    }
    Ok(r)
}

fn http_register(c: &mut Caller<'_, State>, req: Msgpack<RegisterRequest>) -> Result<(), Error> {
    let req = req.read(c)?;
    let method = req.method.trim().to_ascii_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(Status::Invalid.err(format!(
            "http_register: method {:?} is not an HTTP method",
            req.method
        )));
    }
    instance(c)?.register(Kind::Http, &method, &req.path)
}

fn http_respond(c: &mut Caller<'_, State>, req: Msgpack<RespondRequest>) -> Result<(), Error> {
    let req = req.read(c)?;
    let id = req.id;
    let i = instance(c)?;
    let r = response(req, &i.owner.budget)?;
    i.hub
        .answer(&i.owner, id, r)
        .map_err(|e| Status::Invalid.err(format!("http_respond: {e}")))
}
