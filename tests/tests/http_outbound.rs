//! transport.http.outbound against real HTTP servers on loopback addresses.

use std::time::Duration;

use pulp_tests::{Driver, Fixture, Outcome, TestServer};
use rmpv::Value as V;

const DECL: &str = "capabilities = [\"transport.http.outbound\", \"test.record\"]";

fn driver(f: &Fixture, name: &str, settings: &str) -> Option<Driver> {
    let extra = format!("{DECL}\n[capability.\"transport.http.outbound\"]\n{settings}");
    Driver::start(f, name, &extra)
}

/// A driver whose `allowed_hosts` lists exactly `server`, plus `more` settings.
fn allowing(f: &Fixture, name: &str, server: &TestServer, more: &str) -> Option<Driver> {
    driver(
        f,
        name,
        &format!(
            "allowed_hosts = [\"127.0.0.1:{}\"]\n{more}",
            server.addr.port()
        ),
    )
}

fn fetch(d: &mut Driver, fields: Vec<(&str, V)>) -> Outcome {
    let map = V::Map(fields.into_iter().map(|(k, v)| (V::from(k), v)).collect());
    let mut req = Vec::new();
    rmpv::encode::write_value(&mut req, &map).unwrap();
    d.call("http_fetch", &req, b"")
}

fn get(d: &mut Driver, url: &str) -> Outcome {
    fetch(d, vec![("url", V::from(url))])
}

fn ok() -> Vec<u8> {
    TestServer::response("200 OK", &["X-Test: yes"], b"hello")
}

#[test]
fn an_allowed_server_is_reached_with_method_headers_and_body() {
    let server = TestServer::start("127.0.0.1", ok(), Duration::ZERO);
    let f = Fixture::new();
    let Some(mut d) = allowing(&f, "fetcher", &server, "") else {
        return;
    };
    let o = fetch(
        &mut d,
        vec![
            ("method", V::from("post")),
            ("url", V::from(format!("http://{}/path?q=1", server.addr))),
            ("headers", V::Map(vec![(V::from("X-Req"), V::from("abc"))])),
            ("body", V::Binary(b"payload".to_vec())),
        ],
    );
    assert_eq!(o.status, 0, "{o:?}");
    let v: V = rmpv::decode::read_value(&mut &o.result[..]).unwrap();
    assert_eq!(v["status"].as_u64(), Some(200));
    assert_eq!(v["body"].as_slice(), Some(&b"hello"[..]));
    assert_eq!(
        v["headers"]["X-Test"].as_str(),
        Some("yes"),
        "canonical header names"
    );
    let seen = &server.requests()[0];
    assert!(seen.starts_with("POST /path?q=1 HTTP/1.1\r\n"), "{seen}");
    assert!(seen.to_ascii_lowercase().contains("x-req: abc"), "{seen}");
    assert!(seen.ends_with("payload"), "{seen}");
}

#[test]
fn non_2xx_is_still_0() {
    let server = TestServer::start(
        "127.0.0.1",
        TestServer::response("404 Not Found", &[], b"nope"),
        Duration::ZERO,
    );
    let f = Fixture::new();
    let Some(mut d) = allowing(&f, "notfound", &server, "") else {
        return;
    };
    let o = get(&mut d, &format!("http://{}/", server.addr));
    assert_eq!(o.status, 0);
    let v: V = rmpv::decode::read_value(&mut &o.result[..]).unwrap();
    assert_eq!(v["status"].as_u64(), Some(404));
}

#[test]
fn a_host_not_in_allowed_hosts_is_denied_without_connecting() {
    let server = TestServer::start("127.0.0.1", ok(), Duration::ZERO);
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "strict", "allowed_hosts = [\"api.example.com\"]") else {
        return;
    };
    let o = get(&mut d, &format!("http://{}/", server.addr));
    assert_eq!(o.status, 9, "{o:?}");
    assert!(o.error.contains("not in allowed_hosts"), "{}", o.error);
    let o = get(&mut d, &format!("http://localhost:{}/", server.addr.port()));
    assert_eq!(o.status, 9, "{o:?}");
    assert_eq!(server.connections(), 0);
}

#[test]
fn a_redirect_to_a_denied_address_is_denied() {
    let target = TestServer::start("127.0.0.2", ok(), Duration::ZERO);
    let location = format!("Location: http://{}/", target.addr);
    let server = TestServer::start(
        "127.0.0.1",
        TestServer::response("302 Found", &[&location], b""),
        Duration::ZERO,
    );
    let f = Fixture::new();
    let Some(mut d) = allowing(&f, "redirected", &server, "") else {
        return;
    };
    let o = get(&mut d, &format!("http://{}/", server.addr));
    assert_eq!(o.status, 9, "{o:?}");
    assert!(o.error.contains("redirect to"), "{}", o.error);
    assert_eq!(server.connections(), 1);
    assert_eq!(
        target.connections(),
        0,
        "no connection to the redirect target"
    );
}

#[test]
fn ssrf_targets_are_denied_before_any_connection() {
    let server = TestServer::start("127.0.0.1", ok(), Duration::ZERO);
    let port = server.addr.port();
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "ssrf", "") else {
        return;
    };
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://[::1]:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/".to_string(),
        format!("http://0.0.0.0:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        "http://[fd00:ec2::254]/".to_string(),
        "http://100.64.0.1/".to_string(),
        format!("http://localhost:{port}/"),
        format!("http://2130706433:{port}/"),
    ] {
        let o = get(&mut d, &url);
        assert_eq!(o.status, 9, "{url}: {o:?}");
        assert!(o.error.contains("internal address"), "{url}: {}", o.error);
    }
    assert_eq!(server.connections(), 0);
}

#[test]
fn a_slow_server_times_out() {
    let server = TestServer::start("127.0.0.1", ok(), Duration::from_secs(2));
    let f = Fixture::new();
    let Some(mut d) = allowing(&f, "slow", &server, "") else {
        return;
    };
    let o = fetch(
        &mut d,
        vec![
            ("url", V::from(format!("http://{}/", server.addr))),
            ("timeout_ms", V::from(200)),
        ],
    );
    assert_eq!(o.status, 12, "{o:?}");
}

#[test]
fn a_body_over_the_limit_gives_11() {
    let server = TestServer::start(
        "127.0.0.1",
        TestServer::response("200 OK", &[], &[b'x'; 100_000]),
        Duration::ZERO,
    );
    let f = Fixture::new();
    let Some(mut d) = allowing(&f, "bigbody", &server, "max_response_bytes = 1024") else {
        return;
    };
    let o = get(&mut d, &format!("http://{}/", server.addr));
    assert_eq!(o.status, 11, "{o:?}");
}

#[test]
fn bad_requests_are_invalid_and_unreachable_hosts_unavailable() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "bad", "allowed_hosts = [\"127.0.0.1:1\"]") else {
        return;
    };
    assert_eq!(get(&mut d, "not a url").status, 4);
    assert_eq!(get(&mut d, "ftp://127.0.0.1:1/").status, 4);
    let o = fetch(
        &mut d,
        vec![
            ("url", V::from("http://127.0.0.1:1/")),
            ("method", V::from("GE T")),
        ],
    );
    assert_eq!(o.status, 4, "{o:?}");
    assert_eq!(
        d.call("http_fetch", &[0x91, 0x01], b"").status,
        3,
        "an array, not a map"
    );
    let o = get(&mut d, "http://127.0.0.1:1/");
    assert_eq!(o.status, 10, "nothing listens on port 1: {o:?}");
}

#[test]
fn allowed_hosts_are_validated() {
    let f = Fixture::new();
    let extra = format!(
        "{DECL}\n[capability.\"transport.http.outbound\"]\nallowed_hosts = [\"https://x/\"]"
    );
    let e = f.load("cfg", "(module)", &extra).err().unwrap().to_string();
    assert!(
        e.contains("allowed_hosts entry \"https://x/\" must be a host"),
        "{e}"
    );
}

#[test]
fn undeclared_outbound_gets_99() {
    let f = Fixture::new();
    let Some(mut d) = Driver::start(&f, "nonet", "capabilities = [\"test.record\"]") else {
        return;
    };
    assert_eq!(get(&mut d, "http://127.0.0.1:1/").status, 99);
}

/// `redirects` servers, each redirecting to the next, then one answering 200: the
/// first is where a request starts.
fn redirect_chain(redirects: usize) -> Vec<TestServer> {
    let end = TestServer::response("200 OK", &[], b"end of the chain");
    let mut servers = vec![TestServer::start("127.0.0.1", end, Duration::ZERO)];
    for _ in 0..redirects {
        let location = format!("Location: http://{}/", servers.last().unwrap().addr);
        let hop = TestServer::response("302 Found", &[&location], b"");
        servers.push(TestServer::start("127.0.0.1", hop, Duration::ZERO));
    }
    servers.reverse();
    servers
}

#[test]
fn ten_redirects_are_followed_and_an_eleventh_is_5() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "hops", "allowed_hosts = [\"127.0.0.1\"]") else {
        return;
    };
    let chain = redirect_chain(10);
    let o = get(&mut d, &format!("http://{}/", chain[0].addr));
    assert_eq!(o.status, 0, "ten redirects are followed: {o:?}");
    let v: V = rmpv::decode::read_value(&mut &o.result[..]).unwrap();
    assert_eq!(v["body"].as_slice(), Some(&b"end of the chain"[..]));
    let hits: Vec<usize> = chain.iter().map(TestServer::connections).collect();
    assert_eq!(hits, [1; 11], "each hop reached once");

    let chain = redirect_chain(11);
    let o = get(&mut d, &format!("http://{}/", chain[0].addr));
    assert_eq!(o.status, 5, "an eleventh redirect is not followed: {o:?}");
    assert!(o.error.contains("more than 10 redirects"), "{}", o.error);
    let hits: Vec<usize> = chain.iter().map(TestServer::connections).collect();
    let mut want = [1; 12];
    want[11] = 0;
    assert_eq!(
        hits, want,
        "the eleventh redirect's target is never reached"
    );
}

#[test]
fn a_request_timeout_above_the_ceiling_is_cut_at_the_ceiling() {
    // The server answers after 3 s; the guest would wait 60 s; the host allows 300 ms.
    let server = TestServer::start("127.0.0.1", ok(), Duration::from_secs(3));
    let f = Fixture::new();
    let Some(mut d) = allowing(&f, "ceiling", &server, "timeout_ms = 300") else {
        return;
    };
    let at = std::time::Instant::now();
    let o = fetch(
        &mut d,
        vec![
            ("url", V::from(format!("http://{}/", server.addr))),
            ("timeout_ms", V::from(60_000)),
        ],
    );
    let waited = at.elapsed();
    assert_eq!(o.status, 12, "{o:?}");
    assert!(o.error.contains("within 300 ms"), "{}", o.error);
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(1300),
        "cut after {waited:?}, not at about 300 ms"
    );
}

/// A name other than "localhost" that the system resolver (the one `http_fetch`
/// uses: `getaddrinfo`, so `/etc/hosts` first) maps to loopback addresses only, and
/// its IPv4 address: this machine's own host name (Debian maps it to 127.0.1.1,
/// containers to 127.0.0.1), else any other loopback name in `/etc/hosts`. Loopback,
/// so the test can put a server at that very address.
fn internal_host_name() -> Option<(String, std::net::IpAddr)> {
    use std::net::{IpAddr, ToSocketAddrs};
    let own = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let listed = hosts
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let ip: IpAddr = words.next()?.parse().ok()?;
            ip.is_loopback()
                .then(|| words.map(str::to_owned).collect::<Vec<_>>())
        })
        .flatten();
    let resolves = |name: &str| -> Option<IpAddr> {
        let addrs: Vec<IpAddr> = (name, 0).to_socket_addrs().ok()?.map(|a| a.ip()).collect();
        let first = addrs.iter().find(|a| a.is_ipv4()).copied()?;
        addrs.iter().all(IpAddr::is_loopback).then_some(first)
    };
    std::iter::once(own.trim().to_owned())
        .chain(listed)
        .map(|n| n.to_ascii_lowercase())
        .filter(|n| !n.is_empty() && n != "localhost" && n.parse::<IpAddr>().is_err())
        .find_map(|n| resolves(&n).map(|ip| (n, ip)))
}

#[test]
fn a_name_that_resolves_to_an_internal_address_is_denied_without_connecting() {
    let Some((name, ip)) = internal_host_name() else {
        return pulp_tests::skip(
            "a host name other than \"localhost\" that the resolver maps to loopback addresses only",
        );
    };
    // A server at the very address the name resolves to: a connection would reach it.
    let server = TestServer::start(&ip.to_string(), ok(), Duration::ZERO);
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "rebind", "") else {
        return;
    };
    let o = get(&mut d, &format!("http://{name}:{}/", server.addr.port()));
    assert_eq!(o.status, 9, "{name} -> {ip}: {o:?}");
    assert!(
        o.error
            .contains(&format!("{name} resolves to {ip}, an internal address")),
        "{}",
        o.error
    );
    assert_eq!(server.connections(), 0, "no packet reached {ip}");
}
