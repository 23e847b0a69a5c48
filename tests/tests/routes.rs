//! Routes belong to their plugin: no plugin can register a pattern that overlaps
//! another live plugin's (whatever the spelling), a plugin holds at most
//! `max_routes`, and routes neither accumulate across restarts nor outlive their
//! plugin. Real listener on 127.0.0.1, the WAT hello plugin and the C driver guest.

use std::net::SocketAddr;
use std::time::Duration;

use pulp_ext::host::{HostEvents, Next};
use pulp_host::{Runtime, RuntimeConfig};
use pulp_tests::{listener as addr, raw_http, Driver, Fixture, Outcome};
use rmpv::Value as V;

const ALL: &str = "capabilities = [\"transport.http.inbound\", \"transport.ws.inbound\", \"transport.sse\", \"test.record\"]";

fn register(d: &mut Driver, method: &str, path: &str) -> Outcome {
    let v = V::Map(vec![
        (V::from("method"), V::from(method)),
        (V::from("path"), V::from(path)),
    ]);
    let mut req = Vec::new();
    rmpv::encode::write_value(&mut req, &v).unwrap();
    d.call("http_register", &req, b"")
}

/// `GET path` over a fresh connection: the status line and the body.
fn get(to: SocketAddr, path: &str) -> (String, String) {
    let r = raw_http(
        to,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    let status = r.lines().next().unwrap_or("").to_string();
    let body = r.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    (status, body)
}

/// The WAT hello plugin (`GET /hello/:name`, answers "wat") as plugin `hello`.
fn hello(f: &Fixture) -> Runtime {
    let mut p = f
        .load(
            "hello",
            &pulp_tests::guest("http_hello.wat"),
            "capabilities = [\"transport.http.inbound\"]",
        )
        .unwrap();
    p.init().unwrap();
    let mut runtime = Runtime::new(RuntimeConfig::default());
    runtime.spawn(p).unwrap();
    runtime
}

#[test]
fn shadowing_another_plugins_route_is_4_and_its_paths_still_reach_it() {
    let f = Fixture::new();
    let Some(mut shadow) = Driver::start(&f, "shadow", ALL) else {
        return;
    };
    let runtime = hello(&f);
    let a = addr(&f);
    assert_eq!(get(a, "/hello/admin").1, "wat");

    let o = register(&mut shadow, "GET", "/hello/admin");
    assert_eq!(o.status, 4, "{o:?}");
    for part in ["\"hello\"", "\"shadow\"", "/hello/:name", "/hello/admin"] {
        assert!(o.error.contains(part), "{part} in {}", o.error);
    }
    // Every other way to cover one of hello's paths: other spellings, parameters,
    // wildcards, a WebSocket or SSE route on the same path.
    for p in [
        "/hello/%61dmin",
        "/hello/*rest",
        "/:x/admin",
        "/:x/:y",
        "/*all",
        "/hello/:who",
    ] {
        let o = register(&mut shadow, "GET", p);
        assert_eq!(o.status, 4, "{p}: {o:?}");
        assert!(o.error.contains("\"hello\""), "{}", o.error);
    }
    for (import, path) in [
        ("ws_register", "/hello/admin"),
        ("sse_register", "/hello/admin"),
    ] {
        let o = shadow.call(import, path.as_bytes(), b"");
        assert_eq!(o.status, 4, "{import}: {o:?}");
        assert!(o.error.contains("\"hello\""), "{}", o.error);
    }
    // Paths hello's route cannot match stay free.
    for p in ["/hello", "/hello/", "/hello/admin/x", "/hello%2Fadmin"] {
        assert_eq!(register(&mut shadow, "GET", p).status, 0, "{p}");
    }
    assert_eq!(register(&mut shadow, "POST", "/hello/admin").status, 0);

    for path in ["/hello/admin", "/hello/%61dmin", "/hello/%61%64%6d%69%6e"] {
        let (status, body) = get(a, path);
        assert!(status.starts_with("HTTP/1.1 200"), "{path}: {status}");
        assert_eq!(body, "wat", "{path}");
    }
    assert!(
        shadow.plugin.view().events().is_empty(),
        "nothing of hello's reached shadow"
    );
    runtime.stop();
}

#[test]
fn two_spellings_of_one_path_are_one_route() {
    let f = Fixture::new();
    let Some(mut a) = Driver::start(&f, "alpha", ALL) else {
        return;
    };
    let mut b = Driver::start(&f, "beta", ALL).unwrap();
    assert_eq!(register(&mut a, "GET", "/caf%C3%A9").status, 0);
    let o = register(&mut b, "GET", "/café");
    assert_eq!(o.status, 4, "{o:?}");
    assert!(
        o.error.contains("\"alpha\"") && o.error.contains("\"beta\""),
        "{}",
        o.error
    );
    // `%2F` does not split a segment: `/x%2Fy` and `/x/y` are different paths.
    assert_eq!(register(&mut a, "GET", "/x%2Fy").status, 0);
    assert_eq!(register(&mut b, "GET", "/x/y").status, 0);
    let to = addr(&f);
    for (path, owner) in [
        ("/caf%c3%a9", &a),
        ("/x%2Fy", &a),
        ("/x%2fy", &a),
        ("/x/y", &b),
        ("/%78/%79", &b),
    ] {
        std::thread::spawn({
            let path = path.to_string();
            move || get(to, &path)
        });
        let e = match owner.plugin.view().events().next(Duration::from_secs(5)) {
            Next::Event(e) => e,
            other => panic!("{path}: no event: {other:?}"),
        };
        assert_eq!(e.kind(), "http.request", "{path}");
    }
    assert!(a.plugin.view().events().is_empty() && b.plugin.view().events().is_empty());
}

#[test]
fn a_route_over_max_routes_is_11_and_the_default_is_128() {
    let f = Fixture::new();
    let Some(mut plain) = Driver::start(&f, "plain", ALL) else {
        return;
    };
    for i in 0..128 {
        let o = register(&mut plain, "GET", &format!("/p/{i}"));
        assert_eq!(o.status, 0, "route {i}: {o:?}");
    }
    let o = register(&mut plain, "GET", "/p/128");
    assert_eq!(o.status, 11, "{o:?}");
    assert!(
        o.error.contains("max_routes") && o.error.contains("\"plain\""),
        "{}",
        o.error
    );
    assert_eq!(plain.call("ws_register", b"/p/ws", b"").status, 11);
    // The same routes again take no room.
    assert_eq!(register(&mut plain, "GET", "/p/1").status, 0);
    assert_eq!(register(&mut plain, "GET", "/p/:renamed").status, 11);

    let extra = format!("{ALL}\n[capability.\"transport.http.inbound\"]\nmax_routes = 3");
    let mut d = Driver::start(&f, "capped", &extra).unwrap();
    for p in ["/c/1", "/c/2"] {
        assert_eq!(register(&mut d, "GET", p).status, 0);
    }
    assert_eq!(d.call("ws_register", b"/c/ws", b"").status, 0);
    assert_eq!(register(&mut d, "GET", "/c/4").status, 11);
    assert_eq!(d.call("sse_register", b"/c/sse", b"").status, 11);
    assert_eq!(d.call("ws_register", b"/c/ws", b"").status, 0);

    for bad in ["0", "4097"] {
        let wasm = pulp_tests::c_guest("driver.c").unwrap();
        let extra = format!("{ALL}\n[capability.\"transport.http.inbound\"]\nmax_routes = {bad}");
        let Err(e) = f.load_module("bad", &wasm, &extra) else {
            panic!("max_routes = {bad} was accepted");
        };
        let e = e.to_string();
        assert!(e.contains("max_routes"), "{e}");
    }
}

#[test]
fn restarts_re_register_without_growing_and_routes_die_with_their_plugin() {
    let f = Fixture::new();
    let extra = format!("{ALL}\n[capability.\"transport.http.inbound\"]\nmax_routes = 3");
    let Some(mut d) = Driver::start(&f, "keeper", &extra) else {
        return;
    };
    let mut other = Driver::start(&f, "other", ALL).unwrap();
    let to = addr(&f);
    for round in 0..6 {
        if round > 0 {
            d.plugin.restart().unwrap();
        }
        assert_eq!(register(&mut d, "GET", "/k/1").status, 0, "round {round}");
        assert_eq!(register(&mut d, "GET", "/k/:n/x").status, 0);
        assert_eq!(d.call("ws_register", b"/k/ws", b"").status, 0);
        assert_eq!(
            register(&mut d, "GET", "/k/new").status,
            11,
            "round {round}: still 3 routes"
        );
        assert_eq!(register(&mut other, "GET", "/k/:any").status, 4);
    }
    // The routes lead to the live instance.
    let waiting = std::thread::spawn(move || get(to, "/k/1"));
    let id = match d.plugin.view().events().next(Duration::from_secs(5)) {
        Next::Event(e) => {
            let v = rmpv::decode::read_value(&mut e.payload()).unwrap();
            v["id"].as_u64().unwrap()
        }
        other => panic!("no event: {other:?}"),
    };
    let v = V::Map(vec![
        (V::from("id"), V::from(id)),
        (V::from("status"), V::from(200)),
        (V::from("body"), V::Binary(b"kept".to_vec())),
    ]);
    let mut req = Vec::new();
    rmpv::encode::write_value(&mut req, &v).unwrap();
    assert_eq!(d.call("http_respond", &req, b"").status, 0);
    assert_eq!(waiting.join().unwrap().1, "kept");

    d.plugin.close();
    assert!(get(to, "/k/1").0.starts_with("HTTP/1.1 404"));
    assert_eq!(register(&mut other, "GET", "/k/:any").status, 0);
}
