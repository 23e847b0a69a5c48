//! transport.http.inbound, transport.ws.inbound and transport.sse: real sockets on
//! 127.0.0.1, real clients (reqwest, tokio-tungstenite), the C echo example and the
//! C driver guest (one import call per step, events taken from its queue by the test).

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use pulp_host::{Runtime, RuntimeConfig};
use pulp_tests::{
    c_module, listener as addr, msgpack_map as map, next_event, raw_http, rt, wait_for_close,
    wait_until, Driver, Ended, Fixture, Outcome,
};
use rmpv::Value as V;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

const ALL: &str = pulp_tests::INBOUND_ALL;

fn register(d: &mut Driver, method: &str, path: &str) -> Outcome {
    let req = map(vec![("method", V::from(method)), ("path", V::from(path))]);
    d.call("http_register", &req, b"")
}

fn respond(d: &mut Driver, id: u64, status: i64, body: &[u8]) -> Outcome {
    let req = map(vec![
        ("id", V::from(id)),
        ("status", V::from(status)),
        (
            "headers",
            V::Map(vec![(V::from("X-Plugin"), V::from("driver"))]),
        ),
        ("body", V::Binary(body.to_vec())),
    ]);
    d.call("http_respond", &req, b"")
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Runs the C echo example on a runtime; `None` without clang.
fn echo(f: &Fixture, extra: &str) -> Option<Runtime> {
    echo_in(Lang::C, f, extra)
}

/// The echo example's builds: `examples/echo` (C), `examples/rust/echo`,
/// `examples/go/echo`.
#[derive(Clone, Copy)]
enum Lang {
    C,
    Rust,
    Go,
}

fn echo_in(lang: Lang, f: &Fixture, extra: &str) -> Option<Runtime> {
    let wasm = match lang {
        Lang::C => c_module("examples/echo/echo.c")?,
        Lang::Rust => pulp_tests::rust_example("echo")?,
        Lang::Go => pulp_tests::go_module("examples/go/echo")?,
    };
    let manifest = format!(
        "capabilities = [\"transport.http.inbound\", \"transport.ws.inbound\", \"transport.sse\"]\n{extra}"
    );
    Some(f.run_module("echo", &wasm, &manifest, 1))
}

#[test]
fn echo_example_answers_get_post_params_query_headers_and_deferred() {
    echo_answers(Lang::C)
}

#[test]
fn echo_in_rust_answers_get_post_params_query_headers_and_deferred() {
    echo_answers(Lang::Rust)
}

#[test]
fn echo_in_go_answers_get_post_params_query_headers_and_deferred() {
    echo_answers(Lang::Go)
}

fn echo_answers(lang: Lang) {
    let f = Fixture::new();
    let Some(runtime) = echo_in(lang, &f, "") else {
        return;
    };
    let base = format!("http://{}", addr(&f));
    rt().block_on(async {
        let c = client();
        let r = c
            .get(format!("{base}/echo/hello%20world?suffix=!&suffix=ignored"))
            .header("X-Echo", "yes")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-echo"], "yes");
        assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
        assert_eq!(r.text().await.unwrap(), "hello world!");

        let r = c
            .post(format!("{base}/echo"))
            .header("Content-Type", "application/json")
            .body(r#"{"a":[1,2]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(r.text().await.unwrap(), r#"{"a":[1,2]}"#);

        let r = c.get(format!("{base}/later/x")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "later: x");

        let r = c.get(format!("{base}/nowhere")).send().await.unwrap();
        assert_eq!(r.status(), 404);
        let r = c.delete(format!("{base}/echo")).send().await.unwrap();
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()["allow"], "POST");
    });
    runtime.stop();
}

#[test]
fn event_fields_deferred_answers_status_clamping_and_bad_ids() {
    let f = Fixture::new();
    let Some(mut d) = Driver::start(&f, "plug", ALL) else {
        return;
    };
    assert_eq!(register(&mut d, "get", "/items/:id/*rest").status, 0);
    assert_eq!(register(&mut d, "POST", "/items").status, 0);
    let base = format!("http://{}", addr(&f));
    let rt = rt();
    let c = client();
    let get = rt.spawn(
        c.get(format!("{base}/items/7/a/b%2Fc?x=1&x=2&y="))
            .header("X-Multi", "one")
            .header("x-multi", "two")
            .send(),
    );
    let (kind, ev) = next_event(&d.plugin);
    assert_eq!(kind, "http.request");
    let id = ev["id"].as_u64().unwrap();
    assert!(id >= 1);
    assert_eq!(ev["method"].as_str(), Some("GET"));
    assert_eq!(ev["path"].as_str(), Some("/items/7/a/b/c"));
    assert_eq!(ev["params"]["id"].as_str(), Some("7"));
    assert_eq!(ev["params"]["rest"].as_str(), Some("a/b/c"));
    assert_eq!(ev["query"]["x"].as_str(), Some("1"));
    assert_eq!(ev["query"]["y"].as_str(), Some(""));
    assert_eq!(ev["headers"]["X-Multi"].as_str(), Some("one"));
    assert_eq!(ev["body"].as_slice(), Some(&b""[..]));

    // Answered two steps later: other steps in between do not matter.
    let other = register(&mut d, "GET", "/other");
    assert_eq!(other.status, 0);
    let o = respond(&mut d, id, 0, b"deferred");
    assert_eq!(o.status, 0, "{o:?}");
    let r = rt.block_on(get).unwrap().unwrap();
    assert_eq!(r.status(), 200, "status 0 means 200");
    assert_eq!(r.headers()["x-plugin"], "driver");
    assert_eq!(rt.block_on(r.text()).unwrap(), "deferred");

    // Answered twice, or an id never issued: 4.
    let o = respond(&mut d, id, 200, b"again");
    assert_eq!(o.status, 4);
    assert!(o.error.contains(&format!("request {id}")), "{}", o.error);
    assert_eq!(respond(&mut d, 999_999, 200, b"").status, 4);

    // Status clamping: outside 200..=599 becomes 500; the body is the plugin's.
    for (status, want) in [(42, 500), (700, 500), (101, 500), (201, 201), (599, 599)] {
        let post = rt.spawn(c.post(format!("{base}/items")).body("b0dy").send());
        let (_, ev) = next_event(&d.plugin);
        assert_eq!(ev["body"].as_slice(), Some(&b"b0dy"[..]));
        let id = ev["id"].as_u64().unwrap();
        assert_eq!(respond(&mut d, id, status, b"x").status, 0);
        let r = rt.block_on(post).unwrap().unwrap();
        assert_eq!(r.status().as_u16(), want, "plugin status {status}");
    }

    // A bad header name is 4 and leaves the request waiting for a proper answer.
    let post = rt.spawn(c.post(format!("{base}/items")).send());
    let (_, ev) = next_event(&d.plugin);
    let id = ev["id"].as_u64().unwrap();
    let bad = map(vec![
        ("id", V::from(id)),
        (
            "headers",
            V::Map(vec![(V::from("Bad Header"), V::from("x"))]),
        ),
    ]);
    let o = d.call("http_respond", &bad, b"");
    assert_eq!(o.status, 4);
    assert!(o.error.contains("Bad Header"), "{}", o.error);
    assert_eq!(respond(&mut d, id, 204, b"").status, 0);
    assert_eq!(rt.block_on(post).unwrap().unwrap().status(), 204);
}

#[test]
fn no_answer_is_504_then_the_id_is_expired() {
    let f = Fixture::new();
    let extra = format!("{ALL}\n[capability.\"transport.http.inbound\"]\nrequest_timeout_ms = 300");
    let Some(mut d) = Driver::start(&f, "slow", &extra) else {
        return;
    };
    assert_eq!(register(&mut d, "GET", "/slow").status, 0);
    let url = format!("http://{}/slow", addr(&f));
    let r = rt().block_on(client().get(url).send()).unwrap();
    assert_eq!(r.status(), 504);
    let (_, ev) = next_event(&d.plugin);
    let o = respond(&mut d, ev["id"].as_u64().unwrap(), 200, b"late");
    assert_eq!(o.status, 4, "{o:?}");
    assert!(o.error.contains("past its deadline"), "{}", o.error);
}

#[test]
fn a_full_queue_is_503_and_a_big_body_413() {
    let f = Fixture::new();
    let extra = format!(
        "{ALL}\n[limits]\nqueue = 2\n[capability.\"transport.http.inbound\"]\nrequest_timeout_ms = 2000\nmax_body_bytes = 16"
    );
    let Some(mut d) = Driver::start(&f, "busy", &extra) else {
        return;
    };
    assert_eq!(register(&mut d, "POST", "/q").status, 0);
    let url = format!("http://{}/q", addr(&f));
    let rt = rt();
    let c = client();
    rt.block_on(async {
        let r = c.post(&url).body(vec![b'x'; 17]).send().await.unwrap();
        assert_eq!(r.status(), 413, "over max_body_bytes with a Content-Length");
        let chunked = raw_http(
            addr(&f),
            "POST /q HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\na\r\nyyyyyyyyyy\r\na\r\nyyyyyyyyyy\r\n0\r\n\r\n",
        );
        assert!(chunked.starts_with("HTTP/1.1 413"), "over max_body_bytes, chunked: {chunked}");
        // Nobody steps the plugin: two requests fill its queue, the third is refused.
        let waiting: Vec<_> = (0..2).map(|_| tokio::spawn(c.post(&url).body("ok").send())).collect();
        let until = Instant::now() + Duration::from_secs(10);
        while d.plugin.view().events().len() < 2 {
            assert!(Instant::now() < until, "the two requests never reached the queue");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let r = c.post(&url).body("ok").send().await.unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
        for w in waiting {
            assert_eq!(w.await.unwrap().unwrap().status(), 504);
        }
    });
}

#[test]
fn routes_conflict_across_plugins_by_name_and_free_up_when_a_plugin_closes() {
    let f = Fixture::new();
    let Some(mut a) = Driver::start(&f, "alpha", ALL) else {
        return;
    };
    let mut b = Driver::start(&f, "beta", ALL).unwrap();
    assert_eq!(register(&mut a, "GET", "/users/:id").status, 0);
    assert_eq!(
        register(&mut a, "GET", "/users/:id").status,
        0,
        "same plugin again: fine"
    );
    let o = register(&mut b, "GET", "/users/:name");
    assert_eq!(o.status, 4);
    assert!(
        o.error.contains("\"alpha\"") && o.error.contains("\"beta\""),
        "{}",
        o.error
    );
    assert_eq!(
        register(&mut b, "POST", "/users/:id").status,
        0,
        "another method"
    );
    assert_eq!(
        register(&mut b, "GET", "/users/me").status,
        4,
        "a path alpha's route also matches (tests/tests/routes.rs)"
    );
    for bad in ["users", "/a/*rest/b", "/:x/:x", "/a?b"] {
        let o = register(&mut b, "GET", bad);
        assert_eq!(o.status, 4, "{bad}");
        assert!(o.error.contains(bad), "{}", o.error);
    }
    assert_eq!(register(&mut b, "G ET", "/x").status, 4);
    // Another plugin cannot answer alpha's request.
    let url = format!("http://{}/users/42", addr(&f));
    let rt = rt();
    let get = rt.spawn(client().get(&url).send());
    let (_, ev) = next_event(&a.plugin);
    let id = ev["id"].as_u64().unwrap();
    let o = respond(&mut b, id, 200, b"beta");
    assert_eq!(o.status, 4);
    assert!(
        o.error.contains("\"alpha\"") && o.error.contains("\"beta\""),
        "last_error names both plugins: {}",
        o.error
    );
    assert_eq!(respond(&mut a, id, 200, b"alpha").status, 0);
    assert_eq!(
        rt.block_on(rt.block_on(get).unwrap().unwrap().text())
            .unwrap(),
        "alpha"
    );
    // A waiting request gets 503 when its plugin closes; its routes go with it.
    let get = rt.spawn(client().get(&url).send());
    wait_until(
        "the request in alpha's queue",
        Duration::from_secs(10),
        || !a.plugin.view().events().is_empty(),
    );
    a.plugin.close();
    assert_eq!(rt.block_on(get).unwrap().unwrap().status(), 503);
    let r = rt.block_on(client().get(&url).send()).unwrap();
    assert_eq!(r.status(), 405, "only beta's POST is left on that path");
    assert_eq!(register(&mut b, "GET", "/users/:id").status, 0);
}

#[test]
fn undeclared_inbound_imports_are_99() {
    let f = Fixture::new();
    let Some(mut d) = Driver::start(&f, "plain", "capabilities = [\"test.record\"]") else {
        return;
    };
    assert_eq!(register(&mut d, "GET", "/x").status, 99);
    assert_eq!(d.call("ws_register", b"/ws", b"").status, 99);
    assert_eq!(d.call("sse_register", b"/sse", b"").status, 99);
    assert!(
        ext_http::listening(f.host.shared()).is_none(),
        "no listener was started"
    );
}

#[test]
fn a_listener_that_cannot_bind_fails_the_load_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = taken.local_addr().unwrap().to_string();
    let f = Fixture::with_http(toml::toml! { listen = (at.clone()) });
    let Some(wasm) = pulp_tests::c_guest("driver.c") else {
        return;
    };
    let e = f
        .load_module("p", &wasm, ALL)
        .err()
        .expect("the load fails");
    let msg = format!("{e:#}");
    assert!(msg.contains(&at) && msg.contains("cannot listen"), "{msg}");
}

#[test]
fn websocket_echo_text_binary_and_close_codes_with_a_real_client() {
    websocket_echo(Lang::C)
}

#[test]
fn websocket_echo_in_rust_text_binary_and_close_codes_with_a_real_client() {
    websocket_echo(Lang::Rust)
}

#[test]
fn websocket_echo_in_go_text_binary_and_close_codes_with_a_real_client() {
    websocket_echo(Lang::Go)
}

#[test]
fn sse_clock_of_the_echo_example_in_c_rust_and_go_ticks_and_relays_posts() {
    for lang in [Lang::C, Lang::Rust, Lang::Go] {
        let f = Fixture::new();
        let Some(runtime) = echo_in(lang, &f, "") else {
            return;
        };
        let base = format!("http://{}", addr(&f));
        rt().block_on(async {
            let c = client();
            let mut sub = c.get(format!("{base}/clock")).send().await.unwrap();
            assert_eq!(sub.status(), 200);
            let r = c
                .post(format!("{base}/clock"))
                .body("hi there")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            let mut seen = String::new();
            let until = tokio::time::Instant::now() + Duration::from_secs(10);
            while !(seen.contains("event: message\ndata: hi there") && seen.contains("event: tick"))
            {
                let chunk = tokio::time::timeout_at(until, sub.chunk())
                    .await
                    .unwrap_or_else(|_| panic!("no message and tick within 10 s: {seen:?}"))
                    .unwrap()
                    .expect("the stream stays open");
                seen.push_str(&String::from_utf8_lossy(&chunk));
            }
        });
        runtime.stop();
    }
}

fn websocket_echo(lang: Lang) {
    let f = Fixture::new();
    let Some(runtime) = echo_in(lang, &f, "") else {
        return;
    };
    let url = format!("ws://{}/ws", addr(&f));
    rt().block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        ws.send(Message::text("héllo")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("héllo"));
        ws.send(Message::binary(vec![0u8, 1, 2, 255]))
            .await
            .unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::binary(vec![0u8, 1, 2, 255])
        );
        ws.send(Message::text("bye")).await.unwrap();
        match ws.next().await.unwrap().unwrap() {
            Message::Close(Some(f)) => {
                assert_eq!(u16::from(f.code), 4000);
                assert_eq!(f.reason.as_str(), "bye");
            }
            other => panic!("expected the plugin's close, got {other:?}"),
        }
    });
    runtime.stop();
}

#[test]
fn websocket_events_sends_close_codes_origins_and_restarts() {
    let f = Fixture::new();
    let extra = format!(
        "{ALL}\n[capability.\"transport.ws.inbound\"]\nallowed_origins = [\"https://app.example\"]"
    );
    let Some(mut d) = Driver::start(&f, "wsd", &extra) else {
        return;
    };
    assert_eq!(d.call("ws_register", b"/chat/:room", b"").status, 0);
    let base = format!("ws://{}", addr(&f));
    let rt = rt();
    let (mut ws, _) = rt
        .block_on(tokio_tungstenite::connect_async(format!(
            "{base}/chat/blue?nick=ann"
        )))
        .unwrap();
    let (kind, open) = next_event(&d.plugin);
    assert_eq!(kind, "ws.open");
    let conn = open["conn_id"].as_u64().unwrap();
    assert_eq!(open["path"].as_str(), Some("/chat/blue"));
    assert_eq!(open["query"]["nick"].as_str(), Some("ann"));
    assert!(open["headers"]["Sec-Websocket-Key"].is_str());

    rt.block_on(ws.send(Message::text("hi"))).unwrap();
    let (kind, frame) = next_event(&d.plugin);
    assert_eq!(kind, "ws.frame");
    assert_eq!(frame["opcode"].as_u64(), Some(1));
    assert_eq!(frame["payload"].as_slice(), Some(&b"hi"[..]));

    let send = |d: &mut Driver, conn: u64, opcode: u64, payload: &[u8]| {
        let req = map(vec![
            ("conn_id", V::from(conn)),
            ("opcode", V::from(opcode)),
            ("payload", V::Binary(payload.to_vec())),
        ]);
        d.call("ws_send", &req, b"")
    };
    assert_eq!(send(&mut d, conn, 2, b"\x00bin").status, 0);
    assert_eq!(
        rt.block_on(ws.next()).unwrap().unwrap(),
        Message::binary(b"\x00bin".to_vec())
    );
    assert_eq!(send(&mut d, conn, 9, b"x").status, 4, "bad opcode");
    assert_eq!(
        send(&mut d, conn, 1, b"\xff").status,
        3,
        "text must be UTF-8"
    );
    assert_eq!(
        send(&mut d, 987_654, 1, b"x").status,
        4,
        "unknown connection"
    );
    let close = |d: &mut Driver, conn: u64, code: u64| {
        let req = map(vec![
            ("conn_id", V::from(conn)),
            ("code", V::from(code)),
            ("reason", V::from("done")),
        ]);
        d.call("ws_close", &req, b"")
    };
    assert_eq!(close(&mut d, conn, 1005).status, 4, "1005 is never sent");

    // The client closes with a code: the plugin gets it.
    rt.block_on(ws.close(Some(CloseFrame {
        code: CloseCode::from(4321),
        reason: "ciao".into(),
    })))
    .unwrap();
    let (kind, closed) = next_event(&d.plugin);
    assert_eq!(kind, "ws.close");
    assert_eq!(closed["conn_id"].as_u64(), Some(conn));
    assert_eq!(closed["code"].as_u64(), Some(4321));
    assert_eq!(closed["reason"].as_str(), Some("ciao"));
    assert_eq!(
        send(&mut d, conn, 1, b"late").status,
        4,
        "closed connection"
    );

    // The plugin closes (code 0 means 1000): the client gets that code and the
    // plugin's reason; the client's answering close (tungstenite echoes the frame)
    // is what the plugin's ws.close reports. A dropped TCP connection reports 65535.
    let (mut ws, _) = rt
        .block_on(tokio_tungstenite::connect_async(format!("{base}/chat/red")))
        .unwrap();
    let conn = next_event(&d.plugin).1["conn_id"].as_u64().unwrap();
    assert_eq!(close(&mut d, conn, 0).status, 0);
    let got = rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), ws.next()).await });
    match got.expect("the plugin's close frame within 5 s") {
        Some(Ok(Message::Close(Some(f)))) => {
            assert_eq!(u16::from(f.code), 1000, "code 0 is sent as 1000");
            assert_eq!(f.reason.as_str(), "done");
        }
        other => panic!("expected the plugin's close frame, got {other:?}"),
    }
    // Drive the client until the socket ends: that flushes its answering close.
    rt.block_on(async {
        while let Some(Ok(_)) = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("the connection ends within 5 s of the close")
        {}
    });
    let (kind, closed) = next_event(&d.plugin);
    assert_eq!(kind, "ws.close");
    assert_eq!(closed["conn_id"].as_u64(), Some(conn));
    assert_eq!(closed["code"].as_u64(), Some(1000), "{closed}");
    assert_eq!(closed["reason"].as_str(), Some("done"), "{closed}");
    let (ws, _) = rt
        .block_on(tokio_tungstenite::connect_async(format!(
            "{base}/chat/green"
        )))
        .unwrap();
    let conn = next_event(&d.plugin).1["conn_id"].as_u64().unwrap();
    drop(ws);
    let (_, closed2) = next_event(&d.plugin);
    assert_eq!(closed2["conn_id"].as_u64(), Some(conn));
    assert_eq!(closed2["code"].as_u64(), Some(65535), "no close frame came");

    // Origins: a foreign browser origin is refused, a listed one accepted.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let with_origin = |o: &str| {
        let mut req = format!("{base}/chat/x").into_client_request().unwrap();
        req.headers_mut().insert("Origin", o.parse().unwrap());
        req
    };
    let e = rt.block_on(tokio_tungstenite::connect_async(with_origin(
        "https://evil.example",
    )));
    assert!(format!("{:?}", e.err().unwrap()).contains("403"));
    let (ws, _) = rt
        .block_on(tokio_tungstenite::connect_async(with_origin(
            "https://app.example",
        )))
        .unwrap();
    assert_eq!(next_event(&d.plugin).0, "ws.open");

    // A restart closes the instance's connections with 1012.
    let mut ws = ws;
    d.plugin.restart().unwrap();
    match rt.block_on(ws.next()).unwrap().unwrap() {
        Message::Close(Some(f)) => assert_eq!(u16::from(f.code), 1012),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sse_subscribers_get_every_event_in_order_and_bad_fields_are_4() {
    let f = Fixture::with_http(toml::toml! { listen = "127.0.0.1:0"
    sse_keepalive_ms = 150 });
    let Some(mut d) = Driver::start(&f, "sse", ALL) else {
        return;
    };
    assert_eq!(d.call("sse_register", b"/events", b"").status, 0);
    assert_eq!(
        d.call("sse_register", b"/e/:x", b"").status,
        4,
        "SSE paths are plain"
    );
    let url = format!("http://{}/events", addr(&f));
    let rt = rt();
    let c = client();
    let mut subs: Vec<reqwest::Response> = (0..2)
        .map(|_| {
            let r = rt.block_on(c.get(&url).send()).unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-type"], "text/event-stream");
            r
        })
        .collect();
    let emit = |d: &mut Driver, fields: Vec<(&str, V)>| d.call("sse_emit", &map(fields), b"");
    for i in 0..20 {
        let o = emit(
            &mut d,
            vec![
                ("path", V::from("/events")),
                ("id", V::from(i.to_string())),
                ("event", V::from("n")),
                ("data", V::from(format!("line {i}\r\nsecond"))),
            ],
        );
        assert_eq!(o.status, 0, "{o:?}");
    }
    let o = emit(
        &mut d,
        vec![
            ("path", V::from("/events")),
            ("id", V::from("1\n2")),
            ("data", V::from("x")),
        ],
    );
    assert_eq!(o.status, 4, "LF in id");
    let o = emit(
        &mut d,
        vec![
            ("path", V::from("/events")),
            ("event", V::from("a\rb")),
            ("data", V::from("x")),
        ],
    );
    assert_eq!(o.status, 4, "CR in event");
    let o = emit(
        &mut d,
        vec![("path", V::from("/elsewhere")), ("data", V::from("x"))],
    );
    assert_eq!(o.status, 4, "unregistered path");
    let want: String = (0..20)
        .map(|i| format!("id: {i}\nevent: n\ndata: line {i}\ndata: second\n\n"))
        .collect();
    for sub in &mut subs {
        let mut got = String::new();
        rt.block_on(async {
            while got.len() < want.len() + 40 && !got.contains(": keep-alive") {
                let chunk = tokio::time::timeout(Duration::from_secs(5), sub.chunk())
                    .await
                    .expect("the stream goes on")
                    .unwrap()
                    .unwrap();
                got.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        });
        assert!(got.starts_with(&want), "{got}");
        assert!(
            got.contains(": keep-alive\n\n"),
            "keep-alive comment: {got}"
        );
    }
}

#[test]
fn events_of_http_and_websocket_are_served_in_turn() {
    let f = Fixture::new();
    let Some(mut d) = Driver::start(&f, "fair", ALL) else {
        return;
    };
    assert_eq!(register(&mut d, "POST", "/h").status, 0);
    assert_eq!(d.call("ws_register", b"/w", b"").status, 0);
    let a = addr(&f);
    let rt = rt();
    let (mut ws, _) = rt
        .block_on(tokio_tungstenite::connect_async(format!("ws://{a}/w")))
        .unwrap();
    assert_eq!(next_event(&d.plugin).0, "ws.open");
    let c = client();
    let _waiting: Vec<_> = (0..5)
        .map(|_| rt.spawn(c.post(format!("http://{a}/h")).send()))
        .collect();
    let events = d.plugin.view().events().clone();
    wait_until("5 requests queued", Duration::from_secs(10), || {
        events.len() >= 5
    });
    for i in 0..5 {
        rt.block_on(ws.send(Message::text(i.to_string()))).unwrap();
    }
    wait_until(
        "5 requests and 5 frames queued",
        Duration::from_secs(10),
        || events.len() >= 10,
    );
    let kinds: Vec<String> = (0..6).map(|_| next_event(&d.plugin).0).collect();
    assert_eq!(
        kinds,
        [
            "http.request",
            "ws.frame",
            "http.request",
            "ws.frame",
            "http.request",
            "ws.frame"
        ]
        .map(String::from)
    );
}

#[test]
fn bounded_load_20000_requests_at_concurrency_64_none_lost() {
    let f = Fixture::new();
    let Some(runtime) = echo(&f, "[limits]\nqueue = 256") else {
        return;
    };
    let base = format!("http://{}", addr(&f));
    let (ok, statuses) = rt().block_on(async {
        let c = client();
        let results = futures_util::stream::iter(0..20_000u32)
            .map(|i| {
                let c = c.clone();
                let url = format!("{base}/echo/m{i}");
                async move {
                    let r = c.get(url).send().await.unwrap();
                    let status = r.status().as_u16();
                    (status, r.text().await.unwrap() == format!("m{i}"))
                }
            })
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await;
        let ok = results
            .iter()
            .filter(|(s, body)| *s == 200 && *body)
            .count();
        let mut statuses: Vec<u16> = results.iter().map(|r| r.0).filter(|s| *s != 200).collect();
        statuses.dedup();
        (ok, statuses)
    });
    assert_eq!(
        ok, 20_000,
        "every response correct; other statuses: {statuses:?}"
    );
    runtime.stop();
}

#[test]
fn https_with_a_certificate_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let (cp, kp, cert_pem) = pulp_tests::self_signed(dir.path());
    let f = Fixture::with_http(toml::toml! {
        listen = "127.0.0.1:0"
        tls_cert = (cp.display().to_string())
        tls_key = (kp.display().to_string())
    });
    let Some(runtime) = echo(&f, "") else { return };
    let port = addr(&f).port();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], port)))
        .build()
        .unwrap();
    let body = rt().block_on(async {
        let r = c
            .get(format!("https://localhost:{port}/echo/secure"))
            .send()
            .await
            .unwrap();
        r.text().await.unwrap()
    });
    assert_eq!(body, "secure");
    let plain = rt().block_on(
        client()
            .get(format!("http://127.0.0.1:{port}/echo/x"))
            .send(),
    );
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain HTTP is not served"
    );
    runtime.stop();
}

#[test]
fn a_websocket_message_over_max_frame_bytes_closes_with_1009() {
    let f = Fixture::new();
    let extra = format!("{ALL}\n[capability.\"transport.ws.inbound\"]\nmax_frame_bytes = 64");
    let Some(mut d) = Driver::start(&f, "small", &extra) else {
        return;
    };
    assert_eq!(d.call("ws_register", b"/w", b"").status, 0);
    let rt = rt();
    let (mut ws, _) = rt
        .block_on(tokio_tungstenite::connect_async(format!(
            "ws://{}/w",
            addr(&f)
        )))
        .unwrap();
    assert_eq!(next_event(&d.plugin).0, "ws.open");
    rt.block_on(ws.send(Message::binary(vec![7u8; 100])))
        .unwrap();
    match rt.block_on(ws.next()).unwrap().unwrap() {
        Message::Close(Some(f)) => assert_eq!(u16::from(f.code), 1009),
        other => panic!("{other:?}"),
    }
    let (kind, closed) = next_event(&d.plugin);
    assert_eq!(kind, "ws.close");
    assert_eq!(closed["code"].as_u64(), Some(1009));
}

#[test]
fn a_wat_plugin_registers_a_route_and_answers_requests() {
    let f = Fixture::new();
    let mut p = f
        .load(
            "wat-hello",
            &pulp_tests::guest("http_hello.wat"),
            "capabilities = [\"transport.http.inbound\", \"test.record\"]",
        )
        .unwrap();
    p.init().unwrap();
    let mut runtime = Runtime::new(RuntimeConfig::default());
    runtime.spawn(p).unwrap();
    let base = format!("http://{}", addr(&f));
    rt().block_on(async {
        let c = client();
        // Ids past 127 take the longer msgpack forms the guest copies.
        for i in 0..300 {
            let r = c.get(format!("{base}/hello/n{i}")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.text().await.unwrap(), "wat");
        }
        let r = c.get(format!("{base}/hello")).send().await.unwrap();
        assert_eq!(r.status(), 404);
    });
    runtime.stop();
}

#[test]
fn slow_clients_time_out_on_headers_and_bodies() {
    let f = Fixture::with_http(toml::toml! {
        listen = "127.0.0.1:0"
        header_timeout_ms = 300
        body_timeout_ms = 300
    });
    let Some(mut d) = Driver::start(&f, "slowpoke", ALL) else {
        return;
    };
    assert_eq!(register(&mut d, "POST", "/up").status, 0);
    let a = addr(&f);
    // Headers that never finish, or never start: the server closes the connection
    // (after a 408 or without a word) within about a second of header_timeout_ms.
    // The client would wait 10 s, and tells its own deadline apart from a close.
    for (what, sent) in [
        ("half a request head", "POST /up HTTP/1.1\r\nHost: x\r\n"),
        ("nothing", ""),
    ] {
        // Timed from before connecting: the server's clock starts at its accept,
        // which may come before `connect` returns here.
        let since = Instant::now();
        let mut s = std::net::TcpStream::connect(a).unwrap();
        s.write_all(sent.as_bytes()).unwrap();
        match wait_for_close(&mut s, since, Duration::from_secs(10)) {
            Ended::Closed(after, got) => {
                let got = String::from_utf8_lossy(&got);
                assert!(
                    got.is_empty() || got.starts_with("HTTP/1.1 408"),
                    "{what}: {got}"
                );
                assert!(
                    after >= Duration::from_millis(300),
                    "{what}: closed after {after:?}, before header_timeout_ms"
                );
                assert!(
                    after < Duration::from_millis(300 + 1000),
                    "{what}: closed only after {after:?}, header_timeout_ms is 300"
                );
            }
            Ended::StillOpen(got) => panic!(
                "{what}: still open 10 s later (header_timeout_ms is 300); read {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    // A body shorter than its Content-Length: 408 after body_timeout_ms.
    let body = raw_http(
        a,
        "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
    );
    assert!(body.starts_with("HTTP/1.1 408"), "{body}");
    assert!(
        d.plugin.view().events().is_empty(),
        "nothing reached the plugin"
    );
}

#[test]
fn an_instance_pool_spreads_requests_and_shares_state_in_sqlite() {
    let f = Fixture::new();
    let Some(wasm) = pulp_tests::c_guest("pooled.c") else {
        return;
    };
    let extra = "stateless = true\ncapabilities = [\"transport.http.inbound\", \"storage.sqlite\"]\n[limits]\ninstances = 2\nqueue = 256";
    let runtime = f.run_module("pooled", &wasm, extra, 2);
    let base = format!("http://{}", addr(&f));
    let who: std::collections::BTreeSet<String> = rt().block_on(async {
        let c = client();
        futures_util::stream::iter(0..80)
            .map(|_| {
                let c = c.clone();
                let url = format!("{base}/who");
                async move {
                    let r = c.get(url).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    r.text().await.unwrap()
                }
            })
            .buffer_unordered(16)
            .collect()
            .await
    });
    assert_eq!(who.len(), 2, "both instances answered: {who:?}");
    runtime.stop();
    // Shared state: one counter in SQLite, counted by both.
    let conn = rusqlite::Connection::open(f.dir.path().join("data/pooled/data.db")).unwrap();
    let n: i64 = conn
        .query_row("SELECT n FROM hits", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 80);
}

#[test]
fn instances_above_one_need_stateless() {
    let f = Fixture::new();
    let e = pulp_host::Manifest::parse(
        "name = \"p\"\nversion = \"1\"\n[limits]\ninstances = 2",
        &f.dir.path().join("pulp.plugin.toml"),
    )
    .unwrap_err();
    assert!(format!("{e}").contains("stateless"), "{e}");
}

#[test]
fn a_step_that_hangs_holds_neither_the_listener_nor_the_other_plugins() {
    // A plugin whose every request loops until its 2 s deadline, beside a quick one.
    let f = Fixture::new();
    let hang = r#"(module
  (import "pulp" "http_register" (func $register (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "pulp_alloc") (param i32) (result i32) (i32.const 4096))
  (data (i32.const 1024) "\82\a6method\a3GET\a4path\a5/hang")
  (func (export "pulp_init") (param i32 i32) (result i32)
    (call $register (i32.const 1024) (i32.const 23)))
  (func (export "pulp_step") (param i32 i32) (result i32) (loop $l (br $l)) (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))"#;
    let hello = pulp_tests::guest("http_hello.wat");
    let inbound = "capabilities = [\"transport.http.inbound\"]";
    let mut rt = Runtime::new(RuntimeConfig::default());
    for (name, wat, limits) in [
        ("hanger", hang, "call_timeout_ms = 2000"),
        ("hello-beside", hello.as_str(), "call_timeout_ms = 2000"),
    ] {
        let mut p = f
            .load(
                name,
                wat,
                &format!("{inbound}\n[limits]\ntick_ms = 0\n{limits}"),
            )
            .unwrap();
        p.init().unwrap();
        rt.spawn(p).unwrap();
    }
    let addr = pulp_tests::listener(&f);
    let hung = std::thread::spawn(move || {
        let t = Instant::now();
        let answer = raw_http(
            addr,
            "GET /hang HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        (t.elapsed(), answer)
    });
    std::thread::sleep(Duration::from_millis(100)); // the hanging step holds a worker
    let started = Instant::now();
    let mut served = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        let t = Instant::now();
        let answer = raw_http(
            addr,
            "GET /hello/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "answered: {answer}");
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "a request beside the hanging step took {:?}",
            t.elapsed()
        );
        served += 1;
    }
    let (took, answer) = hung.join().unwrap();
    // Answered when its step was cut at the deadline, not at the request timeout.
    assert!(
        answer.starts_with("HTTP/1.1 500") && answer.contains("failed while handling"),
        "the hanging request got: {answer}"
    );
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(4),
        "answered at its 2 s deadline: {took:?}"
    );
    assert!(served >= 10, "only {served} requests were served beside it");
    // Restarted after its deadline, it hangs again: the same holds.
    let t = Instant::now();
    let second = std::thread::spawn(move || {
        raw_http(
            addr,
            "GET /hang HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..10 {
        let answer = raw_http(
            addr,
            "GET /hello/y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "answered: {answer}");
    }
    assert!(t.elapsed() < Duration::from_millis(1500));
    let _ = second.join();
    rt.stop();
}
