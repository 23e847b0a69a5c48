//! HTTP: routes and answers (`transport.http.inbound`) and requests out
//! (`transport.http.outbound`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::mem::call_out;
use crate::msgpack::{decode, encode};
use crate::status::check;
use crate::{sys, Result};

#[derive(Serialize)]
struct Route<'a> {
    method: &'a str,
    path: &'a str,
}

/// Registers a route (`/notes/:id`, `/files/*rest`); its requests come as
/// [`crate::Event::Http`].
///
/// ```no_run
/// pulp_pdk::http::register("GET", "/notes/:id")?;
/// # Ok::<(), pulp_pdk::Error>(())
/// ```
pub fn register(method: &str, path: &str) -> Result<()> {
    let req = encode(&Route { method, path })?;
    // SAFETY: (ptr, len) of a live buffer.
    check(format_args!("http_register {method} {path}"), unsafe {
        sys::http_register(req.as_ptr(), req.len())
    })?;
    // Set here, so that a plugin without routes does not import `http_respond`.
    ANSWER_FAILED.0.set(Some(answer_failed));
    Ok(())
}

/// What the step export calls when a step handling a request fails: answers it
/// 500 if it is still open (refused when the plugin answered it, which is fine).
fn answer_failed(reply: Reply) {
    let _ = reply.text(500, "the plugin failed while handling this request\n");
}

struct FailedHook(std::cell::Cell<Option<fn(Reply)>>);

// SAFETY: wasm32-wasip1 modules are single-threaded; natively (tests) it is unused.
unsafe impl Sync for FailedHook {}

static ANSWER_FAILED: FailedHook = FailedHook(std::cell::Cell::new(None));

/// Answers `reply` 500 when the plugin registered routes (see [`register`]).
pub(crate) fn failed(reply: Reply) {
    if let Some(f) = ANSWER_FAILED.0.get() {
        f(reply)
    }
}

/// An HTTP request for this plugin (`http.request`).
///
/// ```no_run
/// # fn handle(req: &pulp_pdk::http::Request) -> pulp_pdk::Result<()> {
/// let id = req.params.get("id").map_or("", String::as_str);
/// req.reply().json(200, &format!("{{\"id\": \"{id}\"}}"))
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Request {
    /// Its id (see [`Request::reply`]).
    pub id: u64,
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path as sent (percent-decoded).
    pub path: String,
    /// The route's captures (`:id` → `params["id"]`).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Query parameters (first value of each).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Headers (canonical names such as `Content-Type`, first value of each).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body.
    #[serde(with = "serde_bytes", default)]
    pub body: Vec<u8>,
}

impl Request {
    /// The handle that answers this request, now or in a later step (keep it).
    pub fn reply(&self) -> Reply {
        Reply(self.id)
    }
}

/// Answers one request, once. Plain data: keep it to answer in a later step.
///
/// ```no_run
/// # use pulp_pdk::http::Reply;
/// # fn later(waiting: &mut Vec<Reply>, req: &pulp_pdk::http::Request) -> pulp_pdk::Result<()> {
/// waiting.push(req.reply()); // in this step
/// for r in waiting.drain(..) {
///     r.text(200, "done\n")?; // in a later one
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply(u64);

#[derive(Serialize)]
struct Response<'a> {
    id: u64,
    status: u16,
    headers: BTreeMap<&'a str, &'a str>,
    #[serde(with = "serde_bytes")]
    body: &'a [u8],
}

impl Reply {
    /// The handle of request `id`.
    pub fn from_id(id: u64) -> Reply {
        Reply(id)
    }

    /// The request's id.
    pub fn id(self) -> u64 {
        self.0
    }

    /// Sends status, headers and body. An unknown, answered or expired request
    /// is [`crate::Status::Invalid`].
    ///
    /// ```no_run
    /// # let r = pulp_pdk::http::Reply::from_id(1);
    /// r.send(201, &[("Content-Type", "application/json"), ("Location", "/notes/7")], b"{}")?;
    /// # Ok::<(), pulp_pdk::Error>(())
    /// ```
    pub fn send(self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<()> {
        let r = encode(&Response {
            id: self.0,
            status,
            headers: headers.iter().copied().collect(),
            body,
        })?;
        // SAFETY: (ptr, len) of a live buffer.
        check(format_args!("http_respond to request {}", self.0), unsafe {
            sys::http_respond(r.as_ptr(), r.len())
        })
    }

    /// Sends `text` as `text/plain; charset=utf-8`.
    pub fn text(self, status: u16, text: &str) -> Result<()> {
        self.send(
            status,
            &[("Content-Type", "text/plain; charset=utf-8")],
            text.as_bytes(),
        )
    }

    /// Sends `json` (already encoded) as `application/json`.
    pub fn json(self, status: u16, json: &str) -> Result<()> {
        self.send(
            status,
            &[("Content-Type", "application/json")],
            json.as_bytes(),
        )
    }
}

/// A request out (`http_fetch`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Fetch {
    /// `GET` when empty (left out of the request).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// `http://` or `https://`.
    pub url: String,
    /// Headers to send.
    pub headers: BTreeMap<String, String>,
    /// The body.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// 0: the capability's `timeout_ms`.
    pub timeout_ms: u32,
}

/// The answer to a [`Fetch`] (any status, 2xx or not).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Fetched {
    /// The HTTP status.
    pub status: u16,
    /// Headers (canonical names, first value of each).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body.
    #[serde(with = "serde_bytes", default)]
    pub body: Vec<u8>,
}

impl Fetch {
    /// A `GET` of `url`.
    pub fn get(url: impl Into<String>) -> Fetch {
        Fetch {
            method: "GET".into(),
            url: url.into(),
            ..Fetch::default()
        }
    }

    /// Sends it: [`crate::Status::Denied`] outside `allowed_hosts`,
    /// [`crate::Status::Timeout`], [`crate::Status::TooLarge`] ...
    ///
    /// ```no_run
    /// let got = pulp_pdk::http::Fetch::get("https://example.com/").send()?;
    /// assert_eq!(got.status, 200);
    /// # Ok::<(), pulp_pdk::Error>(())
    /// ```
    pub fn send(&self) -> Result<Fetched> {
        let req = encode(self)?;
        let out = call_out(format_args!("http_fetch {}", self.url), |p, n| {
            // SAFETY: a live buffer and two live out-pointers.
            unsafe { sys::http_fetch(req.as_ptr(), req.len(), p, n) }
        })?;
        decode(&out)
    }
}
