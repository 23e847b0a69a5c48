//! The inbound listener's limits, each shown by a real client on 127.0.0.1 that
//! would notice its loss: the TLS handshake deadline, `max_connections`, framing
//! headers a plugin may not set, WebSocket backpressure and close codes (1013, 12 at
//! 256 frames, `send_timeout_ms`, 1001, long reasons) and the SSE backlog.
//! No timing is asserted beyond "within about a second of the configured limit".

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use pulp_tests::{
    listener as addr, msgpack_map as map, next_event, rt, wait_for_close, wait_until, Driver,
    Ended, Fixture,
};
use rmpv::Value as V;
use tokio_tungstenite::tungstenite::Message;

const ALL: &str = pulp_tests::INBOUND_ALL;

/// A WebSocket handshake by hand; the socket once the 101 is read. The client then
/// reads nothing unless the test does.
fn raw_websocket(a: SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "no upgrade: {head}");
    s
}

/// Reads up to the blank line that ends a response head (5 s at most).
fn read_head(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(0) => panic!(
                "closed in the middle of a head: {:?}",
                String::from_utf8_lossy(&head)
            ),
            Ok(_) => head.push(byte[0]),
            Err(e) => panic!(
                "no head within 5 s ({e}): {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// The value of header `name` in a response head (case-insensitive), if present.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn ws_send(d: &mut Driver, conn: u64, payload: Vec<u8>) -> pulp_tests::Outcome {
    let req = map(vec![
        ("conn_id", V::from(conn)),
        ("opcode", V::from(2)),
        ("payload", V::Binary(payload)),
    ]);
    d.call("ws_send", &req, b"")
}

fn ws_close(d: &mut Driver, conn: u64, code: u64, reason: &str) -> pulp_tests::Outcome {
    let req = map(vec![
        ("conn_id", V::from(conn)),
        ("code", V::from(code)),
        ("reason", V::from(reason)),
    ]);
    d.call("ws_close", &req, b"")
}

/// The `conn_id` of the `ws.open` at the head of the plugin's queue.
fn opened(d: &Driver) -> u64 {
    let (kind, open) = next_event(&d.plugin);
    assert_eq!(kind, "ws.open", "{open}");
    open["conn_id"].as_u64().unwrap()
}

/// The next message a tungstenite client reads, within 5 s.
async fn next_message<S>(ws: &mut S) -> Message
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(m))) => m,
        Ok(other) => panic!("the connection ended without a message: {other:?}"),
        Err(_) => panic!("no message within 5 s"),
    }
}

fn close_frame(m: Message) -> (u16, String) {
    match m {
        Message::Close(Some(f)) => (u16::from(f.code), f.reason.to_string()),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[test]
fn a_tls_handshake_that_does_not_finish_is_closed_at_header_timeout_ms() {
    let dir = tempfile::tempdir().unwrap();
    let (cp, kp, _) = pulp_tests::self_signed(dir.path());
    let f = Fixture::with_http(toml::toml! {
        listen = "127.0.0.1:0"
        tls_cert = (cp.display().to_string())
        tls_key = (kp.display().to_string())
        header_timeout_ms = 300
    });
    let Some(_d) = Driver::start(&f, "tls-slow", ALL) else {
        return;
    };
    let a = addr(&f);
    // Silence, and a handshake record announcing 512 bytes of which none come.
    for (what, sent) in [
        ("nothing", &b""[..]),
        ("a truncated ClientHello", &b"\x16\x03\x01\x02\x00\x01"[..]),
    ] {
        // Timed from before connecting: the server's clock starts at its accept,
        // which may come before `connect` returns here.
        let since = Instant::now();
        let mut s = TcpStream::connect(a).unwrap();
        s.write_all(sent).unwrap();
        match wait_for_close(&mut s, since, Duration::from_secs(10)) {
            Ended::Closed(after, got) => {
                assert!(got.is_empty(), "{what}: the server sent {got:?}");
                assert!(
                    after >= Duration::from_millis(300),
                    "{what}: closed after {after:?}, before header_timeout_ms"
                );
                assert!(
                    after < Duration::from_millis(300 + 1000),
                    "{what}: closed only after {after:?}; header_timeout_ms is 300"
                );
            }
            Ended::StillOpen(_) => {
                panic!("{what}: still open 10 s later; header_timeout_ms is 300")
            }
        }
    }
}

#[test]
fn max_connections_holds_the_next_connection_until_one_closes() {
    let f = Fixture::with_http(toml::toml! {
        listen = "127.0.0.1:0"
        max_connections = 2
    });
    let Some(mut d) = Driver::start(&f, "capped", ALL) else {
        return;
    };
    assert_eq!(d.call("ws_register", b"/ws", b"").status, 0);
    let a = addr(&f);
    let first = raw_websocket(a, "/ws");
    let _second = raw_websocket(a, "/ws");
    // A third connection is not served while both WebSockets are open: its request
    // (for a path without a route: the host itself would answer 404 at once) gets
    // nothing in a second.
    let mut third = TcpStream::connect(a).unwrap();
    third
        .write_all(b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    match wait_for_close(&mut third, Instant::now(), Duration::from_secs(1)) {
        Ended::StillOpen(got) => assert!(
            got.is_empty(),
            "served over max_connections: {:?}",
            String::from_utf8_lossy(&got)
        ),
        Ended::Closed(_, got) => panic!(
            "a third connection was served or closed while two are open: {:?}",
            String::from_utf8_lossy(&got)
        ),
    }
    // One WebSocket closes: the waiting connection is accepted and answered.
    drop(first);
    match wait_for_close(&mut third, Instant::now(), Duration::from_secs(10)) {
        Ended::Closed(_, got) => {
            let got = String::from_utf8_lossy(&got);
            assert!(got.starts_with("HTTP/1.1 404"), "{got}");
        }
        Ended::StillOpen(got) => panic!(
            "not served within 10 s of a slot freeing up: {:?}",
            String::from_utf8_lossy(&got)
        ),
    }
}

#[test]
fn framing_headers_from_a_plugin_are_replaced_by_the_hosts() {
    let f = Fixture::new();
    let Some(mut d) = Driver::start(&f, "framer", ALL) else {
        return;
    };
    let reg = map(vec![
        ("method", V::from("GET")),
        ("path", V::from("/framed")),
    ]);
    assert_eq!(d.call("http_register", &reg, b"").status, 0);
    let mut s = TcpStream::connect(addr(&f)).unwrap();
    s.write_all(b"GET /framed HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (kind, ev) = next_event(&d.plugin);
    assert_eq!(kind, "http.request");
    let body = b"the real body";
    let answer = map(vec![
        ("id", ev["id"].clone()),
        ("status", V::from(200)),
        (
            "headers",
            V::Map(vec![
                (V::from("Content-Length"), V::from("999")),
                (V::from("Transfer-Encoding"), V::from("chunked")),
                (V::from("Connection"), V::from("close")),
                (V::from("Upgrade"), V::from("websocket")),
                (V::from("X-Kept"), V::from("yes")),
            ]),
        ),
        ("body", V::Binary(body.to_vec())),
    ]);
    let o = d.call("http_respond", &answer, b"");
    assert_eq!(o.status, 0, "{o:?}");
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header(&head, "x-kept"), Some("yes"), "{head}");
    assert_eq!(
        header(&head, "content-length"),
        Some("13"),
        "the body's own length: {head}"
    );
    assert_eq!(header(&head, "transfer-encoding"), None, "{head}");
    assert_eq!(header(&head, "upgrade"), None, "{head}");
    assert!(
        !header(&head, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close")),
        "{head}"
    );
    let mut got = vec![0u8; body.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, body);
    // The connection lives on (the plugin's "Connection: close" was not sent), and
    // nothing of the first answer is left on it: the next answer starts at once.
    s.write_all(b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    match wait_for_close(&mut s, Instant::now(), Duration::from_secs(5)) {
        Ended::Closed(_, next) => {
            let next = String::from_utf8_lossy(&next);
            assert!(next.starts_with("HTTP/1.1 404"), "{next:?}");
        }
        Ended::StillOpen(next) => panic!(
            "no second answer on the connection: {:?}",
            String::from_utf8_lossy(&next)
        ),
    }
}

#[test]
fn a_plugin_whose_queue_stays_full_gets_its_websocket_closed_with_1013() {
    let f = Fixture::new();
    let extra = format!(
        "{ALL}\n[limits]\nqueue = 1\n[capability.\"transport.ws.inbound\"]\nsend_timeout_ms = 300"
    );
    let Some(mut d) = Driver::start(&f, "laggard", &extra) else {
        return;
    };
    assert_eq!(d.call("ws_register", b"/ws", b"").status, 0);
    let rt = rt();
    let url = format!("ws://{}/ws", addr(&f));
    let (code, reason) = rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        // ws.open fills the queue of one; nobody steps the plugin.
        ws.send(Message::text("one")).await.unwrap();
        close_frame(next_message(&mut ws).await)
    });
    assert_eq!(code, 1013, "{reason}");
    assert_eq!(reason, "the plugin is not keeping up");
    // The plugin still hears of the open and of the close, never of the frame.
    let conn = opened(&d);
    let (kind, closed) = next_event(&d.plugin);
    assert_eq!(kind, "ws.close", "{closed}");
    assert_eq!(closed["conn_id"].as_u64(), Some(conn));
    assert_eq!(
        closed["code"].as_u64(),
        Some(1013),
        "the host's code: {closed}"
    );
}

#[test]
fn ws_send_is_12_once_256_frames_wait_for_a_client_that_does_not_read() {
    let f = Fixture::new();
    let extra = format!("{ALL}\n[capability.\"transport.ws.inbound\"]\nsend_timeout_ms = 60000");
    let Some(mut d) = Driver::start(&f, "flooder", &extra) else {
        return;
    };
    assert_eq!(d.call("ws_register", b"/ws", b"").status, 0);
    let _client = raw_websocket(addr(&f), "/ws");
    let conn = opened(&d);
    // 64 KiB frames: the socket buffers take some, then 256 wait in the queue
    // (16 MiB, within the default 64 MiB budget, so 11 cannot come first).
    let mut sent = 0;
    let last = loop {
        let o = ws_send(&mut d, conn, vec![7; 64 << 10]);
        if o.status != 0 || sent == 4000 {
            break o;
        }
        sent += 1;
    };
    assert_eq!(last.status, 12, "after {sent} frames: {}", last.error);
    assert!(sent >= 256, "12 after only {sent} frames");
    assert!(last.error.contains("256 frames"), "{}", last.error);
}

#[test]
fn a_websocket_client_that_does_not_read_is_dropped_after_send_timeout_ms() {
    let f = Fixture::new();
    let extra = format!("{ALL}\n[capability.\"transport.ws.inbound\"]\nsend_timeout_ms = 300");
    let Some(mut d) = Driver::start(&f, "stalled", &extra) else {
        return;
    };
    assert_eq!(d.call("ws_register", b"/ws", b"").status, 0);
    let _client = raw_websocket(addr(&f), "/ws");
    let conn = opened(&d);
    // 32 MiB, far more than the socket buffers take: a write stalls, and 300 ms
    // later the host drops the connection (later sends are 4: it is gone).
    for i in 0..32 {
        let o = ws_send(&mut d, conn, vec![7; 1 << 20]);
        if o.status == 4 {
            break;
        }
        assert_eq!(o.status, 0, "frame {i}: {}", o.error);
    }
    let (kind, closed) = next_event(&d.plugin);
    assert_eq!(kind, "ws.close", "{closed}");
    assert_eq!(closed["conn_id"].as_u64(), Some(conn));
    assert_eq!(closed["code"].as_u64(), Some(65535), "no close handshake");
    let o = ws_send(&mut d, conn, b"late".to_vec());
    assert_eq!(o.status, 4, "{}", o.error);
}

#[test]
fn stopping_a_plugin_closes_its_websockets_with_1001() {
    let f = Fixture::new();
    let Some(mut d) = Driver::start(&f, "leaving", ALL) else {
        return;
    };
    assert_eq!(d.call("ws_register", b"/ws", b"").status, 0);
    let rt = rt();
    let url = format!("ws://{}/ws", addr(&f));
    let (mut ws, _) = rt.block_on(tokio_tungstenite::connect_async(&url)).unwrap();
    opened(&d);
    d.plugin.close();
    let (code, reason) = rt.block_on(async { close_frame(next_message(&mut ws).await) });
    assert_eq!(code, 1001, "{reason}");
}

#[test]
fn a_close_reason_over_123_bytes_is_4_and_leaves_the_connection_open() {
    let f = Fixture::new();
    let Some(mut d) = Driver::start(&f, "talker", ALL) else {
        return;
    };
    assert_eq!(d.call("ws_register", b"/ws", b"").status, 0);
    let rt = rt();
    let url = format!("ws://{}/ws", addr(&f));
    let (mut ws, _) = rt.block_on(tokio_tungstenite::connect_async(&url)).unwrap();
    let conn = opened(&d);
    // 62 characters, 124 bytes: the limit is in bytes.
    let long = "é".repeat(62);
    let o = ws_close(&mut d, conn, 4000, &long);
    assert_eq!(o.status, 4, "{o:?}");
    assert!(o.error.contains("123 bytes"), "{}", o.error);
    // Still open: a frame goes through, then 123 bytes are a valid reason.
    assert_eq!(ws_send(&mut d, conn, b"still here".to_vec()).status, 0);
    let fits = "x".repeat(123);
    assert_eq!(ws_close(&mut d, conn, 4000, &fits).status, 0);
    rt.block_on(async {
        assert_eq!(
            next_message(&mut ws).await,
            Message::binary(b"still here".to_vec())
        );
        let (code, reason) = close_frame(next_message(&mut ws).await);
        assert_eq!(code, 4000);
        assert_eq!(reason, fits);
    });
}

#[test]
fn an_sse_subscriber_256_events_behind_is_dropped_and_sse_emit_never_waits() {
    let f = Fixture::new();
    let Some(mut d) = Driver::start(&f, "feeder", ALL) else {
        return;
    };
    assert_eq!(d.call("sse_register", b"/feed", b"").status, 0);
    let a = addr(&f);
    // A subscriber that never reads.
    let mut sub = TcpStream::connect(a).unwrap();
    sub.write_all(b"GET /feed HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let shared = f.host.shared().clone();
    wait_until("the subscriber", Duration::from_secs(10), || {
        ext_http::subscribers(&shared, "/feed") == 1
    });
    // Emits run on their own thread: one that blocked would fail the test at the
    // deadline below instead of hanging it. 64 KiB events fill the socket buffers,
    // then the backlog; every emit must succeed at once.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let event = map(vec![
            ("path", V::from("/feed")),
            ("data", V::from("x".repeat(64 << 10))),
        ]);
        let mut statuses = Vec::new();
        let mut dropped_at = None;
        for i in 0..3000 {
            statuses.push(d.call("sse_emit", &event, b"").status);
            if dropped_at.is_none() && ext_http::subscribers(&shared, "/feed") == 0 {
                dropped_at = Some(i + 1);
            }
            if dropped_at.is_some_and(|n| i + 1 >= n + 10) {
                break; // and a few more after the drop
            }
        }
        done.send((statuses, dropped_at)).unwrap();
    });
    let (statuses, dropped_at) = finished
        .recv_timeout(Duration::from_secs(120))
        .expect("sse_emit blocked: 3000 emits did not finish in 120 s");
    let failed: Vec<_> = statuses.iter().filter(|s| **s != 0).collect();
    assert!(failed.is_empty(), "sse_emit statuses: {failed:?}");
    let n =
        dropped_at.expect("the subscriber that never reads was still subscribed after 3000 events");
    assert!(n > 256, "dropped after only {n} events");
    drop(sub);
}
