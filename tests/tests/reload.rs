//! Live reload, at the level of plugin versions (`Plugin::load_successor` and the
//! `Standing` a runtime's takeover sets): a reload's candidate serves no client
//! before it takes over, a candidate that is dropped closes nothing of the running
//! version, and retiring the old version closes only the WebSocket connections it
//! accepted. Real sockets on 127.0.0.1, the C driver guest.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use pulp_ext::host::HostPlugin;
use pulp_ext::Standing;
use pulp_host::{Manifest, Plugin};
use pulp_tests::{listener as addr, msgpack_map as map, next_event, Driver, Fixture};
use rmpv::Value as V;

const ALL: &str = "capabilities = [\"transport.http.inbound\", \"transport.ws.inbound\", \"transport.sse\", \"test.record\"]";

fn raw_websocket(a: SocketAddr, path: &str) -> TcpStream {
    use std::io::Write;
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
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "{head:?}");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// The close code the server sent, or `None` when nothing arrived within `ms`.
fn close_code(s: &mut TcpStream, ms: u64) -> Option<u16> {
    s.set_read_timeout(Some(Duration::from_millis(ms))).unwrap();
    let mut frame = [0u8; 4];
    match s.read_exact(&mut frame) {
        Ok(()) => {
            assert_eq!(frame[0], 0x88, "a close frame: {frame:?}");
            Some(u16::from_be_bytes([frame[2], frame[3]]))
        }
        Err(_) => None,
    }
}

/// A candidate of `d`'s plugin (the same module and manifest), initialised.
fn candidate(f: &Fixture, d: &Driver) -> Driver {
    let m = Manifest::load(d.plugin.manifest().path.clone()).unwrap();
    let mut p =
        Plugin::load_successor(&f.host, &m, Some(&f.registry), &d.plugin.lineage()).unwrap();
    assert_eq!(p.view().standing(), Standing::Candidate);
    p.init().unwrap();
    Driver { plugin: p }
}

#[test]
fn a_candidate_serves_no_client_and_retiring_a_version_closes_only_its_websockets() {
    let f = Fixture::new();
    let Some(mut old) = Driver::start(&f, "rl", ALL) else {
        return;
    };
    assert_eq!(old.call("ws_register", b"/ws", b"").status, 0);
    let mut a = raw_websocket(addr(&f), "/ws");
    let (kind, _) = next_event(&old.plugin);
    assert_eq!(kind, "ws.open");

    // A candidate may register (its routes wait for the takeover) but reaches no
    // client: it may yet fail and be dropped.
    let mut new = candidate(&f, &old);
    assert_eq!(new.call("ws_register", b"/ws", b"").status, 0);
    for (import, req) in [
        (
            "http_respond",
            map(vec![("id", V::from(1)), ("status", V::from(200))]),
        ),
        (
            "ws_send",
            map(vec![
                ("conn_id", V::from(1)),
                ("opcode", V::from(1)),
                ("payload", V::Binary(b"hi".to_vec())),
            ]),
        ),
        (
            "sse_emit",
            map(vec![("path", V::from("/x")), ("data", V::from("hi"))]),
        ),
    ] {
        let o = new.call(import, &req, b"");
        assert_eq!(o.status, 10, "{import}: {}", o.error);
        assert!(
            o.error.contains("candidate still initialising"),
            "{}",
            o.error
        );
    }

    // A candidate dropped before it took over (a failed reload) closes nothing.
    let failed = candidate(&f, &old);
    drop(failed);
    assert_eq!(
        close_code(&mut a, 300),
        None,
        "the running version's WebSocket stays open"
    );

    // The takeover (what Runtime::replace does), then a connection to the new version.
    new.plugin.view().set_standing(Standing::Current);
    old.plugin.view().set_standing(Standing::Retired);
    let mut b = raw_websocket(addr(&f), "/ws");
    let (kind, _) = next_event(&new.plugin);
    assert_eq!(kind, "ws.open");
    // The old version goes: its own connection is closed with 1012, the new one's not.
    drop(old);
    assert_eq!(close_code(&mut a, 5000), Some(1012));
    assert_eq!(
        close_code(&mut b, 300),
        None,
        "the new version's WebSocket stays open"
    );
}
