//! The inbound capabilities (`transport.http.inbound`, `transport.ws.inbound`,
//! `transport.sse`): one type, three registrations, one per-instance state.

use std::sync::Arc;

use hyper::header::{HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use pulp_ext::wasmtime::Caller;
use pulp_ext::{Capability, Error, Import, Msgpack, Plugin, Standing, State, Status, Str};
use serde::Deserialize;

use crate::owner::{settings, Owner, Settings, HTTP, SSE, WS};
use crate::router::{Kind, Pattern};
use crate::server::{charged, full, Hub, Listener, ServerSettings, Upgrade};
use crate::sse::{EmitRequest, Streams};
use crate::ws::{CloseRequest, SendRequest, Sockets};

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

/// One instance's view of the listener and of the host's WebSocket connections and
/// SSE streams.
struct Instance {
    hub: Arc<Hub>,
    ws: Arc<Sockets>,
    sse: Arc<Streams>,
    owner: Arc<Owner>,
}

/// The listener state of an instance, shared by its three inbound capabilities.
static INSTANCE: pulp_ext::Slot<Instance> = pulp_ext::Slot::new("the inbound HTTP capabilities");

/// The calling instance's listener state.
fn instance<'a>(c: &'a mut Caller<'_, State>) -> Result<&'a Instance, Error> {
    c.data_mut().slot(&INSTANCE).map(|i| &*i)
}

/// The calling instance's listener state, for what reaches clients (answers, frames,
/// SSE events): 10 for a reload's new version still in `pulp_init`, which has not
/// taken over and may yet fail and be dropped without having served. A version a
/// reload replaced may still finish what it started (in its `pulp_shutdown`).
fn serving<'a>(c: &'a mut Caller<'_, State>, import: &str) -> Result<&'a Instance, Error> {
    let i = instance(c)?;
    match i.owner.version.standing() {
        Standing::Candidate | Standing::Abandoned => Err(Status::Unavailable.err(format!(
            "{import}: this version of plugin \"{}\" is a reload's candidate still initialising; it serves clients once it takes over",
            i.owner.name
        ))),
        Standing::Current | Standing::Retired => Ok(i),
    }
}

impl Instance {
    /// Adds a route owned by this plugin; a bad path is 4, an overlap with another
    /// plugin's route 4 naming both, a route over `max_routes` 11.
    fn register(&self, kind: Kind, method: &str, path: &str) -> Result<(), Error> {
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
            Kind::Ws => vec![
                Import::new("ws_register", ws_register),
                Import::new("ws_send", ws_send),
                Import::new("ws_close", ws_close),
            ],
            Kind::Sse => vec![
                Import::new("sse_register", sse_register),
                Import::new("sse_emit", sse_emit),
            ],
        }
    }

    fn configure(&self, plugin: &Plugin) -> Result<Settings, Vec<String>> {
        if self.0 == Kind::Sse && plugin.settings(SSE).is_some() {
            return Err(vec!["takes no settings".to_string()]);
        }
        settings(plugin)
    }

    /// Starts the host's listener if it is not running yet, with the WebSocket and
    /// SSE layers it hands those routes to: a bind failure fails the load.
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
        let ws = shared.service(|| Ok::<_, String>(Sockets::default()))?;
        let sse = shared.service(|| Ok::<_, String>(Streams::default()))?;
        let upgrades: Vec<(Kind, Arc<dyn Upgrade>)> =
            vec![(Kind::Ws, ws.clone()), (Kind::Sse, sse.clone())];
        let listener = shared.service(|| Listener::start(shared, upgrades))?;
        let owner = Owner {
            name: plugin.name().to_string(),
            events: plugin.events().clone(),
            version: plugin.clone(),
            budget: plugin.budget().clone(),
            http: settings.http.clone(),
            ws: settings.ws.clone(),
        };
        state.put(
            &INSTANCE,
            Instance {
                hub: listener.hub.clone(),
                ws,
                sse,
                owner: Arc::new(owner),
            },
        );
        Ok(())
    }

    /// An instance going away closes the plugin's WebSocket connections (its state
    /// is gone); a plugin closing also drops its routes, streams and waiting requests.
    /// A reload's candidate that failed to initialise served no connection and
    /// closes none; its routes (and a retired version's) are let go.
    fn detach(&self, state: &mut State) {
        let Some(i) = state.take(&INSTANCE) else {
            return;
        };
        let closing = i.owner.events.is_closed();
        match i.owner.version.standing() {
            // Never served (its init failed, or is failing now): nothing of it is open.
            Standing::Abandoned | Standing::Candidate if !closing => return i.hub.router.prune(),
            // Replaced by a reload: only the connections this version accepted.
            Standing::Retired if !closing => {
                i.hub.router.prune();
                i.ws.close_all(&i.owner.events, Some(&i.owner.version), 1012);
                return;
            }
            _ => {}
        }
        i.ws.close_all(&i.owner.events, None, if closing { 1001 } else { 1012 });
        if closing {
            i.hub.router.remove_owner(&i.owner);
            i.sse.forget(&i.owner.events);
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
    let i = serving(c, "http_respond")?;
    let r = response(req, &i.owner.budget)?;
    i.hub
        .answer(&i.owner, id, r)
        .map_err(|e| Status::Invalid.err(format!("http_respond: {e}")))
}

fn ws_register(c: &mut Caller<'_, State>, path: Str) -> Result<(), Error> {
    let path = path.read(c)?.to_string();
    instance(c)?.register(Kind::Ws, "GET", &path)
}

fn ws_send(c: &mut Caller<'_, State>, req: Msgpack<SendRequest>) -> Result<(), Error> {
    let req = req.read(c)?;
    let i = serving(c, "ws_send")?;
    i.ws.send(&i.owner, req)
}

fn ws_close(c: &mut Caller<'_, State>, req: Msgpack<CloseRequest>) -> Result<(), Error> {
    let req = req.read(c)?;
    let i = serving(c, "ws_close")?;
    i.ws.close(&i.owner, req)
}

fn sse_register(c: &mut Caller<'_, State>, path: Str) -> Result<(), Error> {
    let path = path.read(c)?.to_string();
    let i = instance(c)?;
    i.register(Kind::Sse, "GET", &path)?;
    i.sse.register(&i.owner, path);
    Ok(())
}

fn sse_emit(c: &mut Caller<'_, State>, req: Msgpack<EmitRequest>) -> Result<(), Error> {
    let req = req.read(c)?;
    let i = serving(c, "sse_emit")?;
    i.sse.emit(&i.owner, req)
}
