//! `transport.http.outbound` (gated).
//!
//! - `http_fetch(req_ptr, req_len, resp_ptr_out, resp_len_out) -> status`:
//!   `{method = "GET", url, headers: {str:str}, body: bin, timeout_ms}` →
//!   `{status: u16, headers: {str:str}, body: bin}`; a non-2xx status is still 0.
//!
//! Where requests may go: with `[capability."transport.http.outbound"] allowed_hosts`
//! (`host`, `*.domain`, optional `:port`) only those hosts; without it any public
//! address. Loopback, private, link-local (cloud metadata), CGNAT and their IPv6
//! forms are denied (9) unless the host is listed. The check is on the resolved
//! address of every connection (a guarding DNS resolver) and on every redirect (10
//! are followed, an eleventh is 5); no proxy is used, so nothing bypasses it.
//! Timeouts are 12, bodies over `max_response_bytes` 11, unreachable hosts 10. The
//! wait runs on a shared tokio runtime and blocks only the calling plugin's thread.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::header_map;
use crate::policy::{internal, Policy, Verdict};
use pulp_ext::wasmtime::Caller;
use pulp_ext::{Capability, Import, Msgpack, Out, Plugin, State, Status};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;
use serde::{Deserialize, Serialize};

/// The `transport.http.outbound` capability, for a registry built by hand.
pub struct Outbound;

pulp_ext::register!(Outbound);

const NAME: &str = "transport.http.outbound";

static FETCHER: pulp_ext::Slot<Fetcher> = pulp_ext::Slot::new(NAME);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Toml {
    allowed_hosts: Option<Vec<String>>,
    max_response_bytes: Option<u64>,
    timeout_ms: Option<u64>,
}

#[derive(Clone)]
/// One plugin's checked `[capability."transport.http.outbound"]` settings.
pub struct Config {
    policy: Arc<Policy>,
    max_response: usize,
    /// Default and ceiling of a request's `timeout_ms`.
    timeout: Duration,
}

impl pulp_ext::Settings for Config {
    fn parse(table: Option<&pulp_ext::toml::Table>, _: &Plugin) -> Result<Config, Vec<String>> {
        config(table)
    }
}

fn config(table: Option<&pulp_ext::toml::Table>) -> Result<Config, Vec<String>> {
    let s: Toml = pulp_ext::from_table(table).map_err(|e| vec![e])?;
    let mut problems = Vec::new();
    let policy = Policy::new(s.allowed_hosts.as_deref()).unwrap_or_else(|p| {
        problems.extend(p);
        Policy::default()
    });
    let max_response = s.max_response_bytes.unwrap_or(8 << 20);
    if !(1..=(256 << 20)).contains(&max_response) {
        problems.push(format!(
            "max_response_bytes = {max_response} is outside 1..=268435456"
        ));
    }
    let timeout = s.timeout_ms.unwrap_or(10_000);
    if !(1..=300_000).contains(&timeout) {
        problems.push(format!("timeout_ms = {timeout} is outside 1..=300000"));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Config {
        policy: Arc::new(policy),
        max_response: max_response as usize,
        timeout: Duration::from_millis(timeout),
    })
}

/// A request refused by the policy; found again in reqwest's error chain.
#[derive(Debug)]
struct Denied(String);

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Denied {}

/// Checks a URL's scheme, host and port, and an IP-literal host's address (a name's
/// addresses are checked by [`GuardedResolver`] when it is resolved).
fn check_url(policy: &Policy, url: &Url) -> Result<(), pulp_ext::Error> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Status::Invalid.err(format!("{url}: only http and https URLs can be fetched")));
    }
    let port = url.port_or_known_default();
    let (host, ip): (String, Option<IpAddr>) = match url.host() {
        Some(url::Host::Domain(d)) => (d.to_ascii_lowercase(), None),
        Some(url::Host::Ipv4(a)) => (a.to_string(), Some(IpAddr::V4(a))),
        Some(url::Host::Ipv6(a)) => (a.to_string(), Some(IpAddr::V6(a))),
        None => return Err(Status::Invalid.err(format!("{url}: no host"))),
    };
    let verdict = policy.host(&host, port);
    if verdict == Verdict::Denied {
        return Err(Status::Denied.err(format!("{url}: {host} is not in allowed_hosts")));
    }
    if let Some(ip) = ip {
        if verdict != Verdict::Listed && internal(ip) {
            return Err(Status::Denied.err(format!(
                "{url}: {ip} is a loopback, private, link-local or otherwise internal address; list the host in allowed_hosts to reach it"
            )));
        }
    }
    Ok(())
}

/// Resolves names and drops every internal address unless the name is listed.
struct GuardedResolver(Arc<Policy>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_ascii_lowercase();
            let verdict = policy.host(&host, None);
            if verdict == Verdict::Denied {
                return Err(Box::new(Denied(format!("{host} is not in allowed_hosts"))) as _);
            }
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ok: Vec<SocketAddr> = all
                .iter()
                .filter(|a| verdict == Verdict::Listed || !internal(a.ip()))
                .copied()
                .collect();
            if ok.is_empty() {
                let first = all
                    .first()
                    .map_or("nothing".to_string(), |a| a.ip().to_string());
                return Err(Box::new(Denied(format!(
                    "{host} resolves to {first}, an internal address; list the host in allowed_hosts to reach it"
                ))) as _);
            }
            Ok(Box::new(ok.into_iter()) as Addrs)
        })
    }
}

#[derive(Deserialize)]
struct FetchRequest {
    #[serde(default)]
    method: Option<String>,
    url: String,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    #[serde(default, with = "serde_bytes")]
    body: Option<Vec<u8>>,
    #[serde(default)]
    timeout_ms: Option<u32>,
}

#[derive(Serialize)]
struct FetchResponse {
    status: u16,
    headers: std::collections::BTreeMap<String, String>,
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
}

/// One instance's client (made on first use) and settings.
struct Fetcher {
    config: Config,
    client: Option<reqwest::Client>,
}

impl Fetcher {
    fn client(&mut self) -> Result<&reqwest::Client, pulp_ext::Error> {
        if self.client.is_none() {
            // reqwest is built without a default crypto provider: use ring's.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let policy = self.config.policy.clone();
            let redirects = reqwest::redirect::Policy::custom(move |attempt| {
                // `previous` holds the first URL too: this is redirect number `len`.
                if attempt.previous().len() > 10 {
                    return attempt.error("more than 10 redirects");
                }
                match check_url(&policy, attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(e) => {
                        let why = match e {
                            pulp_ext::Error::Status { message, .. } => message,
                            other => other.to_string(),
                        };
                        attempt.error(Denied(format!("redirect to {why}")))
                    }
                }
            });
            let client = reqwest::Client::builder()
                .dns_resolver(Arc::new(GuardedResolver(self.config.policy.clone())))
                .redirect(redirects)
                .no_proxy()
                .build()
                .map_err(|e| Status::Failed.err(format!("cannot build the HTTP client: {e}")))?;
            self.client = Some(client);
        }
        Ok(self.client.as_ref().expect("just built"))
    }

    fn fetch(&mut self, req: FetchRequest) -> Result<FetchResponse, pulp_ext::Error> {
        let url = Url::parse(&req.url)
            .map_err(|e| Status::Invalid.err(format!("url {:?}: {e}", req.url)))?;
        check_url(&self.config.policy, &url)?;
        let method = req
            .method
            .as_deref()
            .unwrap_or("GET")
            .trim()
            .to_ascii_uppercase();
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| {
            Status::Invalid.err(format!("method {method:?} is not a valid HTTP method"))
        })?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &req.headers {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| Status::Invalid.err(format!("header name {k:?} is not valid")))?;
            let value = reqwest::header::HeaderValue::from_str(v).map_err(|_| {
                Status::Invalid.err(format!("header {k}: value {v:?} is not valid"))
            })?;
            headers.insert(name, value);
        }
        let timeout = match req.timeout_ms {
            Some(ms) if ms > 0 => Duration::from_millis(ms as u64).min(self.config.timeout),
            _ => self.config.timeout,
        };
        let max = self.config.max_response;
        let request = self
            .client()?
            .request(method, url.clone())
            .headers(headers)
            .body(req.body.unwrap_or_default());
        let work = async move {
            let mut resp = request.send().await?;
            let status = resp.status().as_u16();
            let headers = header_map(resp.headers());
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await? {
                if body.len() + chunk.len() > max {
                    return Ok(Err(max));
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, reqwest::Error>(Ok(FetchResponse {
                status,
                headers,
                body,
            }))
        };
        match pulp_ext::runtime().block_on(async { tokio::time::timeout(timeout, work).await }) {
            Err(_) => Err(Status::Timeout.err(format!(
                "{url}: no complete answer within {} ms",
                timeout.as_millis()
            ))),
            Ok(Ok(Ok(resp))) => Ok(resp),
            Ok(Ok(Err(max))) => {
                Err(Status::TooLarge.err(format!("{url}: the body passed the {max}-byte limit")))
            }
            Ok(Err(e)) => Err(fetch_error(&url, e)),
        }
    }
}

fn fetch_error(url: &Url, e: reqwest::Error) -> pulp_ext::Error {
    let mut source: Option<&dyn std::error::Error> = Some(&e);
    while let Some(s) = source {
        if let Some(d) = s.downcast_ref::<Denied>() {
            return Status::Denied.err(format!("{url}: {d}"));
        }
        source = s.source();
    }
    let status = if e.is_timeout() {
        Status::Timeout
    } else if e.is_connect() {
        Status::Unavailable
    } else {
        Status::Failed
    };
    // `{:#}`-style: reqwest's top message hides the cause.
    let mut msg = e.to_string();
    let mut s = std::error::Error::source(&e);
    while let Some(cause) = s {
        msg.push_str(": ");
        msg.push_str(&cause.to_string());
        s = cause.source();
    }
    status.err(format!("{url}: {msg}"))
}

impl Capability for Outbound {
    type Settings = Config;

    fn name(&self) -> &'static str {
        NAME
    }

    fn imports(&self) -> Vec<Import> {
        vec![Import::new("http_fetch", http_fetch)]
    }

    fn attach(&self, _: &Plugin, config: &Config, state: &mut State) -> Result<(), String> {
        state.put(
            &FETCHER,
            Fetcher {
                config: config.clone(),
                client: None,
            },
        );
        Ok(())
    }
}

fn http_fetch(
    c: &mut Caller<'_, State>,
    req: Msgpack<FetchRequest>,
    out: Out<FetchResponse>,
) -> Result<(), pulp_ext::Error> {
    let req = req.read(c)?;
    let resp = c.data_mut().slot(&FETCHER)?.fetch(req)?;
    out.write(c, &resp)
}
