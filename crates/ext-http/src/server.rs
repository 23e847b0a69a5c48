//! The one listener a host's inbound capabilities share: settings, accept loop,
//! TLS, and the dispatch of each request to its route (HTTP, WebSocket or SSE).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use pulp_ext::metrics::{metrics, RouteLabels, RouteStatusLabels};
use pulp_ext::{Event, Events, Shared};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};

use crate::header_map;
use crate::owner::Owner;
use crate::router::{Kind, Lookup, Router};

/// The host-level settings section `"http"` of the shared listener (given by the
/// embedder in `HostConfig::settings`, or by `pulp run`'s flags).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to bind (`--listen`). Default `127.0.0.1:8080`.
    pub listen: String,
    /// PEM certificate chain; with `tls_key`, the listener speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Time a client has to send a request's headers (and finish TLS), in ms. Default 10 000.
    pub header_timeout_ms: u64,
    /// Time a client has to send a request's body, in ms. Default 10 000 (408 after it).
    pub body_timeout_ms: u64,
    /// Interval of the SSE keep-alive comment, in ms. Default 15 000.
    pub sse_keepalive_ms: u64,
    /// Open connections at most, WebSockets and SSE streams included for their whole
    /// life; more wait to be accepted. Default 4096.
    pub max_connections: usize,
    /// Open connections from one client address at most; more are closed at once.
    /// Default 256.
    pub max_connections_per_ip: usize,
    /// A connection whose writes make no progress for this long (a client that does
    /// not read) is closed, in ms. Default 30 000.
    pub write_timeout_ms: u64,
    /// A WebSocket silent this long is pinged; silent as long again, it is closed
    /// (1001), in ms. Default 60 000.
    pub ws_idle_ms: u64,
}

impl ServerSettings {
    /// The `"http"` section (defaults when absent); the error names the section.
    pub(crate) fn parse(table: Option<&toml::Table>) -> Result<ServerSettings, String> {
        let settings: ServerSettings = match table {
            None => ServerSettings::default(),
            Some(t) => t
                .clone()
                .try_into()
                .map_err(|e| format!("host settings [http]: {}", e.to_string().trim()))?,
        };
        if settings.tls_cert.is_some() != settings.tls_key.is_some() {
            return Err("host settings [http]: tls_cert and tls_key go together".into());
        }
        Ok(settings)
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: "127.0.0.1:8080".into(),
            tls_cert: None,
            tls_key: None,
            header_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            sse_keepalive_ms: 15_000,
            max_connections: 4096,
            max_connections_per_ip: 256,
            write_timeout_ms: 30_000,
            ws_idle_ms: 60_000,
        }
    }
}

/// The address the host's shared listener is bound to, once a plugin started it.
pub fn listening(shared: &Shared) -> Option<SocketAddr> {
    shared.get::<Listener>().map(|l| l.addr)
}

/// The response body every route produces.
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

pub(crate) fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed_unsync()
}

/// `bytes` holding `charge` until the last view of them is dropped: written to the
/// socket, or given up with its connection. The listener's socket is vectored, so
/// hyper queues body chunks as they are instead of copying them uncharged.
pub(crate) fn charged(bytes: impl Into<Bytes>, charge: pulp_ext::Charge) -> Bytes {
    struct Held(Bytes, #[allow(dead_code)] pulp_ext::Charge);
    impl AsRef<[u8]> for Held {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }
    Bytes::from_owner(Held(bytes.into(), charge))
}

/// A plain-text answer from the host itself (404, 503 ...).
pub(crate) fn text(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(full(msg.into() + "\n"));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// What serves the routes of a kind other than plain HTTP (WebSocket, SSE). Defined
/// here and implemented by the layers above (`ws`, `sse`), which the listener is
/// started with: the server knows nothing of them but this.
pub(crate) trait Upgrade: Send + Sync + 'static {
    /// Answers a request that matched one of this kind's routes, owned by `owner`;
    /// `slot` is the connection's place, to hold for as long as it lives.
    fn serve(
        self: Arc<Self>,
        hub: &Arc<Hub>,
        owner: Arc<Owner>,
        req: Request<Incoming>,
        slot: Arc<Slot>,
    ) -> Response<Body>;
}

/// What the listener knows: routes, requests waiting for an answer, and the layers
/// that serve the other kinds of route. Shared by the accept loop and the host functions.
pub(crate) struct Hub {
    pub(crate) settings: ServerSettings,
    /// Synchronises itself: requests match a snapshot, registrations never block them.
    pub(crate) router: Router<Owner>,
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    upgrades: Vec<(Kind, Arc<dyn Upgrade>)>,
    pub(crate) shutdown: watch::Receiver<()>,
    /// Open connections by client address.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// One accepted connection's place: its share of `max_connections` and of its
/// address's `max_connections_per_ip`. Held by the connection's task and, after a
/// WebSocket upgrade, by the WebSocket's task, so a connection counts for its whole
/// life; released when the last holder ends.
pub(crate) struct Slot {
    hub: Arc<Hub>,
    ip: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_ip = lock(&self.hub.per_ip);
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// A request delivered to a plugin and not answered yet.
struct Pending {
    owner: Events,
    /// The owner's name, for the error another plugin gets when it answers.
    plugin: String,
    reply: oneshot::Sender<Response<Body>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    /// Hands a plugin's answer to the waiting request. `Err` when `id` is unknown,
    /// answered, expired, or another plugin's (naming both plugins).
    pub(crate) fn answer(
        &self,
        owner: &Owner,
        id: u64,
        response: Response<Body>,
    ) -> Result<(), String> {
        let mut pending = lock(&self.pending);
        match pending.get(&id) {
            Some(p) if p.owner.same_as(&owner.events) => {
                let p = pending.remove(&id).expect("just found");
                drop(pending);
                p.reply
                    .send(response)
                    .map_err(|_| format!("request {id}: the client went away"))
            }
            Some(p) => Err(format!(
                "request {id} belongs to plugin \"{}\", not to plugin \"{}\"",
                p.plugin, owner.name
            )),
            None => Err(format!(
                "request {id} is unknown, already answered or past its deadline"
            )),
        }
    }

    /// Answers a waiting request with `response`, whoever owns it (the host's own
    /// answers, such as a 413 for an event the plugin could not take).
    pub(crate) fn reply(&self, id: u64, response: Response<Body>) {
        if let Some(p) = lock(&self.pending).remove(&id) {
            let _ = p.reply.send(response);
        }
    }

    /// Drops the requests `owner` has not answered: each gets a 503 at once.
    pub(crate) fn forget_requests(&self, owner: &Events) {
        lock(&self.pending).retain(|_, p| !p.owner.same_as(owner));
    }
}

/// Removes a request from the pending table when its handler ends (answered, at the
/// deadline, or because the client went away).
struct PendingGuard<'a>(&'a Hub, u64);

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.0.pending).remove(&self.1);
    }
}

/// The shared listener: a service in the host's [`Shared`]. Dropping it (with the
/// host) stops accepting and closes open connections.
pub(crate) struct Listener {
    pub(crate) addr: SocketAddr,
    pub(crate) hub: Arc<Hub>,
    _stop: watch::Sender<()>,
}

impl Listener {
    /// Binds the listener described by the host's `"http"` settings section; routes
    /// of a kind other than HTTP are served by the layer `upgrades` names for it.
    pub(crate) fn start(
        shared: &Shared,
        upgrades: Vec<(Kind, Arc<dyn Upgrade>)>,
    ) -> Result<Listener, String> {
        let settings = ServerSettings::parse(shared.settings("http"))?;
        let tls = match (&settings.tls_cert, &settings.tls_key) {
            (Some(c), Some(k)) => Some(tls_acceptor(c, k)?),
            _ => None,
        };
        let std_listener = std::net::TcpListener::bind(&settings.listen)
            .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
        let addr = std_listener
            .local_addr()
            .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let rt = pulp_ext::runtime();
        let listener = {
            let _enter = rt.enter();
            tokio::net::TcpListener::from_std(std_listener)
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?
        };
        let (stop, shutdown) = watch::channel(());
        let hub = Arc::new(Hub {
            settings,
            router: Router::default(),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            upgrades,
            shutdown,
            per_ip: Mutex::new(HashMap::new()),
        });
        rt.spawn(accept_loop(listener, hub.clone(), tls));
        let scheme = if hub.settings.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!(%addr, "listening on {scheme}://{addr}");
        Ok(Listener {
            addr,
            hub,
            _stop: stop,
        })
    }
}

fn tls_acceptor(cert: &PathBuf, key: &PathBuf) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("TLS certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "TLS certificate {}: no certificate in it",
            cert.display()
        ));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("TLS key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| format!("TLS certificate {}: {e}", cert.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    hub: Arc<Hub>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let slots = Arc::new(Semaphore::new(hub.settings.max_connections.max(1)));
    let mut shutdown = hub.shutdown.clone();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("never closed"),
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of descriptors and the like: wait, do not spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let ip = peer.ip();
        {
            let mut per_ip = lock(&hub.per_ip);
            let n = per_ip.entry(ip).or_insert(0);
            if *n >= hub.settings.max_connections_per_ip {
                drop(per_ip);
                tracing::debug!(%ip, "connection refused: over max_connections_per_ip");
                continue; // dropping the stream closes it
            }
            *n += 1;
        }
        let slot = Arc::new(Slot {
            hub: hub.clone(),
            ip,
            _permit: permit,
        });
        let _ = stream.set_nodelay(true);
        let stream = TimedIo::new(
            stream,
            Duration::from_millis(hub.settings.write_timeout_ms.max(1)),
        );
        let (hub, tls) = (hub.clone(), tls.clone());
        tokio::spawn(async move {
            let header_timeout = Duration::from_millis(hub.settings.header_timeout_ms);
            match tls {
                None => serve(hub, stream, slot).await,
                Some(tls) => {
                    if let Ok(Ok(s)) =
                        tokio::time::timeout(header_timeout, tls.accept(stream)).await
                    {
                        serve(hub, s, slot).await;
                    }
                }
            }
        });
    }
}

async fn serve<S>(hub: Arc<Hub>, stream: S, slot: Arc<Slot>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut shutdown = hub.shutdown.clone();
    let svc = {
        let hub = hub.clone();
        hyper::service::service_fn(move |req| {
            let (hub, slot) = (hub.clone(), slot.clone());
            async move { Ok::<_, Infallible>(dispatch(hub, req, slot).await) }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(hub.settings.header_timeout_ms))
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    tokio::select! {
        _ = conn => {}
        _ = shutdown.changed() => {}
    }
}

/// First value of each query key.
pub(crate) fn query_map(q: Option<&str>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

/// True for a WebSocket handshake request (the router tells WebSocket routes from
/// plain ones by it).
fn is_upgrade(req: &Request<Incoming>) -> bool {
    let has = |name, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket")
}

async fn dispatch(hub: Arc<Hub>, req: Request<Incoming>, slot: Arc<Slot>) -> Response<Body> {
    let upgrade = is_upgrade(&req);
    let (method, path) = (req.method().as_str(), req.uri().path());
    let found = match hub.router.find(method, path, upgrade) {
        Lookup::Route(r, params) if r.kind == Kind::Http => {
            let labels = RouteLabels {
                plugin: r.owner.name.clone(),
                method: r.method.clone(),
                route: r.pattern.text().to_string(),
            };
            let owner = r.owner.clone();
            let arrived = Instant::now();
            let response = request(&hub, &owner, req, params).await;
            if !pulp_ext::metrics::enabled() {
                return response;
            }
            let m = metrics();
            m.http_request_seconds
                .get_or_create(&labels)
                .observe(arrived.elapsed().as_secs_f64());
            let RouteLabels {
                plugin,
                method,
                route,
            } = labels;
            m.http_requests
                .get_or_create(&RouteStatusLabels {
                    plugin,
                    method,
                    route,
                    status: response.status().as_u16(),
                })
                .inc();
            return response;
        }
        Lookup::Route(r, params) => Ok((r.kind, r.owner.clone(), params)),
        Lookup::MethodNotAllowed(methods) => Err(Some(methods)),
        Lookup::NotFound => Err(None),
    };
    match found {
        Ok((kind, owner, _)) => match hub.upgrades.iter().find(|(k, _)| *k == kind) {
            Some((_, layer)) => layer.clone().serve(&hub, owner, req, slot),
            None => text(StatusCode::NOT_FOUND, "no handler for this kind of route"),
        },
        Err(Some(methods)) => {
            let mut r = text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{} is not allowed on {}", req.method(), req.uri().path()),
            );
            if let Ok(v) = HeaderValue::from_str(&methods.join(", ")) {
                r.headers_mut().insert(header::ALLOW, v);
            }
            r
        }
        Err(None) => text(
            StatusCode::NOT_FOUND,
            format!("no route for {} {}", req.method(), req.uri().path()),
        ),
    }
}

/// `http.request` payload (ABI §3).
#[derive(Serialize)]
struct RequestEvent<'a> {
    id: u64,
    method: &'a str,
    path: &'a str,
    params: &'a BTreeMap<String, String>,
    query: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
    #[serde(with = "serde_bytes")]
    body: &'a [u8],
}

/// A plain request: read the body within its limits, post the event, wait for the
/// plugin's answer until the deadline.
async fn request(
    hub: &Arc<Hub>,
    owner: &Owner,
    req: Request<Incoming>,
    params: BTreeMap<String, String>,
) -> Response<Body> {
    let arrived = Instant::now();
    let limit = owner.http.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(limit);
    }
    // The body is held while it arrives: charge what it may take before reading it
    // (its length when known: 0 for a GET without one; else the limit).
    let expected = declared.or_else(|| hyper::body::Body::size_hint(req.body()).exact());
    let reserved = match owner.budget.charge(expected.map_or(limit, |n| n as usize)) {
        Ok(c) => c,
        Err(e) => return busy(owner, &e),
    };
    let (parts, body) = req.into_parts();
    let body_timeout = Duration::from_millis(hub.settings.body_timeout_ms);
    let body = match tokio::time::timeout(body_timeout, Limited::new(body, limit).collect()).await {
        Err(_) => {
            return text(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {} ms",
                    body_timeout.as_millis()
                ),
            )
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return too_large(limit),
        Ok(Err(e)) => return text(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
        Ok(Ok(b)) => b.to_bytes(),
    };
    let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
    let path = crate::router::decode(parts.uri.path());
    let payload = RequestEvent {
        id,
        method: parts.method.as_str(),
        path: &path,
        params: &params,
        query: query_map(parts.uri.query()),
        headers: header_map(&parts.headers),
        body: &body,
    };
    let event = match Event::new("http.request", &payload) {
        Ok(e) => {
            let (h1, h2, plugin) = (hub.clone(), hub.clone(), owner.name.clone());
            e.on_refused(move |why| {
                h1.reply(
                    id,
                    text(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("the plugin cannot take this request: {why}"),
                    ),
                )
            })
            // The trap's text stays in the host's log: it may show the plugin's insides.
            .on_failed(move |_why| {
                h2.reply(
                    id,
                    text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("plugin \"{plugin}\" failed while handling this request"),
                    ),
                )
            })
        }
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    drop((body, reserved)); // the event holds its own charge from here
    let (tx, rx) = oneshot::channel();
    lock(&hub.pending).insert(
        id,
        Pending {
            owner: owner.events.clone(),
            plugin: owner.name.clone(),
            reply: tx,
        },
    );
    let _guard = PendingGuard(hub, id);
    if let Err(e) = owner.events.post("http", event) {
        return busy(owner, &e);
    }
    let deadline = arrived + owner.http.request_timeout;
    match tokio::time::timeout_at(deadline.into(), rx).await {
        Ok(Ok(response)) => response,
        Ok(Err(_)) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("plugin \"{}\" stopped before answering", owner.name),
        ),
        Err(_) => text(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "plugin \"{}\" did not answer within {} ms",
                owner.name,
                owner.http.request_timeout.as_millis()
            ),
        ),
    }
}

/// 503 with `Retry-After`: the plugin's queue or host memory budget is full, or it stopped.
fn busy(owner: &Owner, why: &dyn std::fmt::Display) -> Response<Body> {
    let mut r = text(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("plugin \"{}\" is busy: {why}", owner.name),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

fn too_large(limit: usize) -> Response<Body> {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is over the {limit}-byte limit"),
    )
}

/// A socket whose writes may not stall: a write or flush that makes no progress
/// for `limit` fails, so a client that stops reading (an SSE subscriber, a slow
/// response reader) gives its connection back instead of holding it forever.
struct TimedIo<S> {
    inner: S,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> TimedIo<S> {
    fn new(inner: S, limit: Duration) -> TimedIo<S> {
        TimedIo {
            inner,
            limit,
            stalled: None,
        }
    }

    /// Called when a write is pending: errs once it has been pending for `limit`.
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let limit = self.limit;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client did not read for write_timeout_ms",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match r {
            Poll::Pending => match self.check(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress(cx, r)
    }

    /// Vectored like the socket, so hyper queues response chunks as they are
    /// (an SSE event keeps its budget charge until written) instead of copying them.
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.progress(cx, r)
    }
}
