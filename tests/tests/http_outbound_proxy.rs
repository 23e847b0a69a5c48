//! `http_fetch` ignores proxy variables (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`
//! and their lowercase forms): a proxy would see every request and, being reached
//! instead of the target, would let a request go around the SSRF guard. A test
//! binary of its own, with one test, because it sets process-wide environment
//! variables.

use std::time::Duration;

use pulp_tests::{Driver, Fixture, Outcome, TestServer};
use rmpv::Value as V;

const VARS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

fn fetch(d: &mut Driver, url: &str, timeout_ms: u32) -> Outcome {
    let req = pulp_tests::msgpack_map(vec![
        ("url", V::from(url)),
        ("timeout_ms", V::from(timeout_ms)),
    ]);
    d.call("http_fetch", &req, b"")
}

/// Sets exactly `set` (to `value`) among the proxy variables, unsets the others.
fn proxy_env(set: &[&str], value: &str) {
    for var in VARS {
        if set.contains(&var) {
            std::env::set_var(var, value);
        } else {
            std::env::remove_var(var);
        }
    }
}

#[test]
fn proxy_variables_are_ignored() {
    let proxy = TestServer::start(
        "127.0.0.1",
        TestServer::response("200 OK", &[], b"from the proxy"),
        Duration::ZERO,
    );
    let target = TestServer::start(
        "127.0.0.1",
        TestServer::response("200 OK", &[], b"from the target"),
        Duration::ZERO,
    );
    // Answers a TLS hello with plain HTTP: the https fetch fails, but reaches it.
    let tls_target = TestServer::start(
        "127.0.0.1",
        b"HTTP/1.1 400 x\r\n\r\n".to_vec(),
        Duration::ZERO,
    );
    let proxy_url = format!("http://{}", proxy.addr);
    let f = Fixture::new();
    let allowed = format!(
        "capabilities = [\"transport.http.outbound\", \"test.record\"]\n\
         [capability.\"transport.http.outbound\"]\n\
         allowed_hosts = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]",
        target.addr.port(),
        tls_target.addr.port()
    );
    let phases: [(&str, &[&str]); 2] = [
        ("all", &["ALL_PROXY", "all_proxy"]),
        (
            "each",
            &["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"],
        ),
    ];
    // Per phase: the http body, whether the https fetch reached its target, and how
    // many connections the proxy got.
    let mut seen = Vec::new();
    for (phase, vars) in phases {
        proxy_env(vars, &proxy_url);
        let (tls_before, proxy_before) = (tls_target.connections(), proxy.connections());
        // A fresh plugin per phase: its HTTP client is made after the variables are set.
        let Some(mut d) = Driver::start(&f, &format!("proxied-{phase}"), &allowed) else {
            return;
        };
        let o = fetch(&mut d, &format!("http://{}/", target.addr), 5_000);
        let body = rmpv::decode::read_value(&mut &o.result[..])
            .ok()
            .and_then(|v| {
                v["body"]
                    .as_slice()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
            });
        let tls = fetch(&mut d, &format!("https://{}/", tls_target.addr), 2_000);
        assert_ne!(tls.status, 0, "{phase}: {tls:?}");
        seen.push((
            phase,
            body.unwrap_or_else(|| format!("{o:?}")),
            tls_target.connections() - tls_before,
            proxy.connections() - proxy_before,
        ));
    }
    proxy_env(&[], "");
    assert_eq!(
        seen,
        [
            ("all", "from the target".to_string(), 1, 0),
            ("each", "from the target".to_string(), 1, 0)
        ],
        "(phase, http body, https connections to the target, connections to the proxy); the proxy saw {:?}",
        proxy.requests()
    );
}
