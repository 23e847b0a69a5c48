//! The HTTP transport capabilities of the Pulp host, all gated:
//!
//! - `transport.http.outbound`: `http_fetch`, with an allow-list and an SSRF guard
//!   on every resolved address and redirect ([`outbound`](self) module docs).
//! - `transport.http.inbound`: `http_register`, `http_respond`. Requests become
//!   `http.request` events; a plugin answers in that step or any later one until the
//!   request's deadline (504 after it).
//! - `transport.ws.inbound`: `ws_register`, `ws_send`, `ws_close`; `ws.open`,
//!   `ws.frame`, `ws.close` events (open and close are never dropped).
//! - `transport.sse`: `sse_register`, `sse_emit` to every subscriber of a path.
//!
//! The three inbound capabilities share one listener per host, started when the
//! first plugin that declares one of them is attached, from the host-level settings
//! section `"http"` (`pulp run --listen --tls-cert --tls-key`): see [`ServerSettings`].
//! A listener that cannot bind fails that plugin's load, naming the address.

#![warn(missing_docs)]

mod inbound;
mod outbound;
mod owner;
mod policy;
mod router;
mod server;
mod sse;
mod ws;

pub use inbound::Inbound;
pub use outbound::Outbound;
pub use server::{listening, ServerSettings};
pub use sse::subscribers;

/// Fuzzing entry (`cargo +nightly fuzz run router`): the first lines of `data` are
/// route patterns, the rest request paths; nothing may panic, and a route found for
/// a path must match it again.
#[cfg(fuzzing)]
pub fn fuzz_router(data: &[u8]) {
    router::fuzz(data)
}

/// The router for a fuzz target's reference model (`cargo +nightly fuzz run router`).
#[cfg(fuzzing)]
pub use router::fuzzing::{FuzzLookup, FuzzRouter};

/// First value of each header, names canonical.
pub(crate) fn header_map(
    h: &hyper::header::HeaderMap,
) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for (k, v) in h {
        out.entry(canonical(k.as_str()))
            .or_insert_with(|| String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    out
}

/// `content-type` → `Content-Type`: the header names plugins see (the Go host's).
pub(crate) fn canonical(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_names_are_canonical() {
        assert_eq!(super::canonical("content-type"), "Content-Type");
        assert_eq!(super::canonical("x-request-id"), "X-Request-Id");
        assert_eq!(super::canonical("etag"), "Etag");
    }
}
