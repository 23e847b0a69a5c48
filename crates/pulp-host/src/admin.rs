//! The admin listener (`pulp run --admin ADDR`), apart from the plugins' listener:
//! `GET /metrics` (Prometheus' text format), `GET /healthz` (the process serves)
//! and `GET /readyz` (every plugin initialised and none failed for good, the
//! plugins' listener bound). [`probe`] is `pulp health`'s client side.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use pulp_ext::metrics::{metrics, Metrics, StateLabels};

use crate::runtime::{Handle, Health, Roster};

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 16;
/// Time for a request's head to arrive.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest life of one connection, keep-alive included.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// What `/readyz` asks: `Ok` when ready, else why not.
pub type Ready = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// A running admin listener; it stops when dropped.
pub struct Admin {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Admin {
    /// The address it is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Binds `addr` and serves the admin routes on a thread of its own. `roster` holds
/// the running plugins (their state, queues and budgets are read at each scrape);
/// `ready` decides `/readyz`.
pub fn serve(addr: &str, roster: Roster, ready: Ready) -> std::io::Result<Admin> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let bound = std_listener.local_addr()?;
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("pulp-admin".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(target: "pulp", "admin listener: {e}");
                        return;
                    }
                };
                // Bounded like any listener: a few connections at once, each with a
                // header deadline and a whole-connection deadline, so slow or idle
                // clients cannot pile up (probes and scrapes are short).
                let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
                loop {
                    let permit = tokio::select! {
                        _ = &mut stopped => return,
                        p = slots.clone().acquire_owned() => p.expect("never closed"),
                    };
                    let (stream, _) = tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => match accepted {
                            Ok(a) => a,
                            Err(_) => {
                                // Out of descriptors and the like: wait, do not spin.
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                        },
                    };
                    let (roster, ready) = (roster.clone(), ready.clone());
                    tokio::spawn(async move {
                        let _permit = permit;
                        let service = hyper::service::service_fn(move |req| {
                            let r = answer(&req, &roster, &ready);
                            async move { Ok::<_, Infallible>(r) }
                        });
                        let conn = hyper::server::conn::http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(HEADER_TIMEOUT)
                            .serve_connection(TokioIo::new(stream), service);
                        let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
                    });
                }
            })
        })?;
    Ok(Admin {
        addr: bound,
        _stop: stop,
    })
}

fn text(status: StatusCode, body: impl Into<Bytes>, kind: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(kind),
    );
    r
}

fn answer(req: &Request<Incoming>, roster: &Roster, ready: &Ready) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n", PLAIN);
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n", PLAIN),
        "/readyz" => match ready() {
            Ok(()) => text(StatusCode::OK, "ready\n", PLAIN),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
                PLAIN,
            ),
        },
        "/metrics" => {
            refresh(&roster.handles());
            text(
                StatusCode::OK,
                metrics().encode(),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
        }
        other => text(
            StatusCode::NOT_FOUND,
            format!("no admin route {other}\n"),
            PLAIN,
        ),
    }
}

/// The gauges read at scrape time: state, instances, queued events, host memory.
/// A pool's state is its worst instance's (failed, restarting, running, stopped).
fn refresh(handles: &[Handle]) {
    const STATES: [&str; 4] = ["stopped", "running", "restarting", "failed"];
    let m = metrics();
    // (plugin, index of its worst state in STATES, live instances)
    let mut plugins: Vec<(&str, usize, i64)> = Vec::new();
    for h in handles {
        let name = h.name();
        let state = match h.health() {
            Health::Stopped => 0,
            Health::Running => 1,
            Health::Restarting => 2,
            Health::Failed(_) => 3,
        };
        let live = i64::from(matches!(state, 1 | 2));
        match plugins.iter_mut().find(|(n, ..)| *n == name) {
            Some((_, worst, n)) => {
                *worst = (*worst).max(state);
                *n += live;
            }
            None => plugins.push((name, state, live)),
        }
        let l = Metrics::plugin(name);
        m.events_queued
            .get_or_create(&l)
            .set(h.events().len() as i64);
        m.host_memory_bytes
            .get_or_create(&l)
            .set(h.events().budget().used() as i64);
    }
    for (name, worst, live) in plugins {
        for (i, state) in STATES.iter().enumerate() {
            let labels = StateLabels {
                plugin: name.to_string(),
                state,
            };
            m.plugin_state
                .get_or_create(&labels)
                .set(i64::from(i == worst));
        }
        m.plugin_instances
            .get_or_create(&Metrics::plugin(name))
            .set(live);
    }
}

/// `pulp health`: GETs `path` (`/readyz`) from the admin listener at `addr` within
/// `timeout`; `Ok` with the body on a 200, else the status and body, or why there
/// was no answer.
pub fn probe(addr: &str, path: &str, timeout: Duration) -> Result<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    rt.block_on(async {
        let ask = async {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("{addr}: {e}"))?;
            tokio::spawn(conn);
            let req = Request::get(path)
                .header(hyper::header::HOST, addr)
                .body(Full::new(Bytes::new()))
                .map_err(|e| format!("{path}: {e}"))?;
            let res = send
                .send_request(req)
                .await
                .map_err(|e| format!("{addr}{path}: {e}"))?;
            let status = res.status();
            let body = res
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("{addr}{path}: reading the answer: {e}"))?
                .to_bytes();
            let body = String::from_utf8_lossy(&body).trim_end().to_string();
            if status == StatusCode::OK {
                Ok(body)
            } else {
                Err(format!("{addr}{path}: {status}: {body}"))
            }
        };
        tokio::time::timeout(timeout, ask)
            .await
            .unwrap_or_else(|_| Err(format!("{addr}{path}: no answer within {timeout:?}")))
    })
}
