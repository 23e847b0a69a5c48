//! A hostile plugin author against the typed-import layer (`pulp_ext::Import`,
//! `pulp_ext::mem`) and the re-layered inbound transports (`ws::Sockets`,
//! `sse::Streams` as host-wide services, owner checks in ws_send / ws_close /
//! sse_emit / sse_register). Each test runs a real exploit (a WAT guest built here,
//! or the C driver guest against a real 127.0.0.1 listener with real clients) and
//! asserts the safe outcome: a status, an untouched connection, no bytes of one
//! plugin in another plugin's client.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use pulp_ext::host::{HostEvents, Next};
use pulp_tests::{
    capture_logs, guest, listener as addr, msgpack_map as map, next_event, rt, statuses, Driver,
    Fixture, Outcome,
};
use rmpv::Value as V;
use tokio_tungstenite::tungstenite::Message;

const ALL: &str = pulp_tests::INBOUND_ALL;

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn ws_send(d: &mut Driver, conn: u64, payload: &[u8]) -> Outcome {
    let req = map(vec![
        ("conn_id", V::from(conn)),
        ("opcode", V::from(2)),
        ("payload", V::Binary(payload.to_vec())),
    ]);
    d.call("ws_send", &req, b"")
}

fn ws_close(d: &mut Driver, conn: u64) -> Outcome {
    let req = map(vec![
        ("conn_id", V::from(conn)),
        ("code", V::from(1000)),
        ("reason", V::from("hijacked")),
    ]);
    d.call("ws_close", &req, b"")
}

fn sse_emit(d: &mut Driver, path: &str, data: &str) -> Outcome {
    d.call(
        "sse_emit",
        &map(vec![("path", V::from(path)), ("data", V::from(data))]),
        b"",
    )
}

/// Reads an SSE response until its text contains `want`, the stream ends, or
/// `within` passes; returns the text and whether the stream ended.
fn read_sse(
    rt: &tokio::runtime::Runtime,
    sub: &mut reqwest::Response,
    want: &str,
    within: Duration,
) -> (String, bool) {
    let until = Instant::now() + within;
    let mut got = String::new();
    rt.block_on(async {
        while !got.contains(want) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (got, false);
            }
            match tokio::time::timeout(left, sub.chunk()).await {
                Err(_) => return (got, false),
                Ok(Ok(Some(c))) => got.push_str(&String::from_utf8_lossy(&c)),
                Ok(_) => return (got, true),
            }
        }
        (got, false)
    })
}

/// No event waits in `d`'s queue (it takes one if there is).
fn assert_no_event(d: &Driver, why: &str) {
    match d.plugin.view().events().next(Duration::from_millis(200)) {
        Next::Idle => {}
        Next::Event(e) => panic!("{why}: unexpected event {}", e.kind()),
        Next::Closed => panic!("{why}: the queues are closed"),
    }
}

/// Every argument kind with i32::MIN / -1 / edge pointers and lengths, out-pointers
/// at the top of memory, inside the request and on each other, and a pulp_alloc
/// that lies, traps, grows memory or re-enters host imports (once, and without
/// bound until the guest's stack runs out). The host must answer each with the ABI
/// status, write nothing outside the guest's memory, allocate nothing for a refused
/// out-pointer, and the instance must keep working.
#[test]
fn typed_arguments_and_a_lying_reentrant_pulp_alloc_stay_inside_the_guest() {
    let (_g, _logs) = capture_logs(); // logs are read only when emitted
    let f = Fixture::new();
    let name = "atk-mem";
    let mut p = f
        .load(
            name,
            &guest("hostile/attack_typed_imports.wat"),
            "capabilities = [\"test.record\"]",
        )
        .unwrap();
    p.init().unwrap();
    let r = statuses(name);
    assert_eq!(r.len(), 51, "every attack recorded: {r:?}");
    let n = r[1];
    assert_eq!(r[0], 0, "a good entropy_read");
    assert!(n > 4 && n < 64, "result length {n}");
    let page = 65536;
    let want: Vec<(usize, i32, &str)> = vec![
        (2, 2, "Str len i32::MIN"),
        (3, 2, "Str ptr i32::MIN"),
        (4, 2, "Str ptr -1 len 1"),
        (5, 2, "Str ptr -1 len -1"),
        (6, 2, "Str i32::MIN, i32::MIN"),
        (7, 0, "Str: the last byte of memory"),
        (8, 2, "Str: one byte past memory"),
        (9, 0, "Str: empty at i32::MIN"),
        (10, 0, "BytesMut: the top 16 bytes"),
        (11, 2, "BytesMut: one byte past memory"),
        (12, 2, "BytesMut i32::MIN, i32::MIN"),
        (13, 2, "BytesMut len -1"),
        (14, 2, "Msgpack len i32::MIN"),
        (15, 2, "Msgpack len -1"),
        (16, 2, "Msgpack ptr -1"),
        (17, 0, "Out: out-pointers in the last 8 bytes"),
        (18, n, "Out: the length at the top of memory"),
        (20, 8, "Out: pointer out-pointer straddles the end"),
        (21, 8, "Out: length out-pointer straddles the end"),
        (22, 8, "Out: pointer out-pointer at i32::MIN"),
        (23, 8, "Out: pointer out-pointer at -4"),
        (24, 8, "Out: length out-pointer at -1"),
        (25, r[19], "a refused out-pointer allocates nothing"),
        (26, 0, "Out: out-pointers inside the request"),
        (27, n, "Out: overlapping out-pointers, the length last"),
        (28, 0, "Out: one address for both"),
        (29, n, "Out: one address for both holds the length"),
        (30, 0, "pulp_alloc returns the out-pointers' address"),
        (31, 8, "  its pointer is stored"),
        (32, n, "  and its length"),
        (33, 7, "pulp_alloc returns -1"),
        (34, 7, "pulp_alloc returns i32::MIN"),
        (35, 0, "pulp_alloc returns the exact top edge"),
        (36, 2 * page - n, "  which is stored"),
        (37, 7, "pulp_alloc returns one byte past the top edge"),
        (38, 7, "pulp_alloc traps"),
        (39, 0, "a call after pulp_alloc trapped"),
        (40, 0, "pulp_alloc grows memory during the write"),
        (41, 6, "  by four pages"),
        (42, 2 * page, "  and the result lands in the new pages"),
        (43, 0, "pulp_alloc re-enters entropy_read once"),
        (44, 0, "  the inner call succeeds"),
        (
            47,
            0,
            "a call after unbounded re-entry through entropy_read",
        ),
        (50, 0, "a call after unbounded re-entry through last_error"),
    ];
    for (i, status, what) in want {
        assert_eq!(r[i], status, "record {i}: {what}; all: {r:?}");
    }
    // Unbounded re-entry: the recursion went deep and ended in a status, not a
    // host crash; whichever level ran out of stack saw pulp_alloc fail (7), and the
    // levels above carried on.
    for (status, depth, via) in [(r[45], r[46], "entropy_read"), (r[48], r[49], "last_error")] {
        assert!(
            status == 0 || status == 7,
            "unbounded re-entry through {via}: status {status}"
        );
        assert!(depth > 10, "re-entry through {via} went {depth} deep");
    }
    // The instance is whole: a step runs and its call succeeds.
    assert_eq!(p.step_event(None).unwrap(), 0);
    assert_eq!(statuses(name), [0]);
}

/// ws_send and ws_close with another plugin's conn_id (and ids around it) are 4,
/// the victim's client receives no frame from the attacker and stays open, and the
/// attacker hears nothing about the victim's connection.
#[test]
fn ws_send_and_ws_close_cannot_reach_another_plugins_connection() {
    let f = Fixture::new();
    let Some(mut victim) = Driver::start(&f, "atk-ws-victim", ALL) else {
        return;
    };
    let mut attacker = Driver::start(&f, "atk-ws-attacker", ALL).unwrap();
    assert_eq!(victim.call("ws_register", b"/victim", b"").status, 0);
    assert_eq!(attacker.call("ws_register", b"/attacker", b"").status, 0);
    let rt = rt();
    let base = format!("ws://{}", addr(&f));
    let (mut vws, _) = rt
        .block_on(tokio_tungstenite::connect_async(format!("{base}/victim")))
        .unwrap();
    let (kind, open) = next_event(&victim.plugin);
    assert_eq!(kind, "ws.open");
    let conn = open["conn_id"].as_u64().unwrap();
    let (mut aws, _) = rt
        .block_on(tokio_tungstenite::connect_async(format!("{base}/attacker")))
        .unwrap();
    let aconn = next_event(&attacker.plugin).1["conn_id"].as_u64().unwrap();
    assert_ne!(aconn, conn);

    // The attacker's own connection works (the control).
    assert_eq!(ws_send(&mut attacker, aconn, b"own").status, 0);
    assert_eq!(
        rt.block_on(aws.next()).unwrap().unwrap(),
        Message::binary(b"own".to_vec())
    );
    // Every id but its own is refused, the victim's first.
    for id in [conn, 0, conn.max(aconn) + 1, u64::MAX] {
        let o = ws_send(&mut attacker, id, b"forged");
        assert_eq!(o.status, 4, "ws_send on connection {id}: {o:?}");
        assert!(o.error.contains("unknown or closed"), "{o:?}");
        assert_eq!(ws_close(&mut attacker, id).status, 4, "ws_close on {id}");
    }
    // The victim's connection is open and untouched: the first frame its client
    // gets is the victim's.
    assert_eq!(ws_send(&mut victim, conn, b"mine").status, 0);
    let got = rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), vws.next()).await });
    match got.expect("the victim's frame within 5 s") {
        Some(Ok(m)) => assert_eq!(m, Message::binary(b"mine".to_vec()), "first frame"),
        other => panic!("the victim's connection ended: {other:?}"),
    }
    // Frames of the victim's client go to the victim only.
    rt.block_on(vws.send(Message::text("secret"))).unwrap();
    let (kind, frame) = next_event(&victim.plugin);
    assert_eq!(kind, "ws.frame");
    assert_eq!(frame["conn_id"].as_u64(), Some(conn));
    assert_no_event(&attacker, "the attacker hears of the victim's client");
}

/// sse_emit on another plugin's path is 4 and reaches none of its subscribers;
/// sse_register of that path is 4 (it belongs to a running plugin).
#[test]
fn sse_emit_and_sse_register_cannot_reach_another_plugins_stream() {
    let f = Fixture::new();
    let Some(mut victim) = Driver::start(&f, "atk-sse-victim", ALL) else {
        return;
    };
    let mut attacker = Driver::start(&f, "atk-sse-attacker", ALL).unwrap();
    assert_eq!(victim.call("sse_register", b"/vfeed", b"").status, 0);
    let rt = rt();
    let mut sub = rt
        .block_on(client().get(format!("http://{}/vfeed", addr(&f))).send())
        .unwrap();
    assert_eq!(sub.status(), 200);
    let o = sse_emit(&mut attacker, "/vfeed", "evil");
    assert_eq!(o.status, 4, "{o:?}");
    let o = attacker.call("sse_register", b"/vfeed", b"");
    assert_eq!(o.status, 4, "{o:?}");
    assert_eq!(
        sse_emit(&mut attacker, "/vfeed", "evil").status,
        4,
        "after a refused register"
    );
    assert_eq!(sse_emit(&mut victim, "/vfeed", "v1").status, 0);
    let (got, ended) = read_sse(&rt, &mut sub, "data: v1\n\n", Duration::from_secs(5));
    assert!(!ended, "the victim's stream ended: {got:?}");
    assert_eq!(got, "data: v1\n\n", "only the victim's event");
}

/// A plugin that stops ends its subscribers' streams; another plugin may then take
/// the path, but what it emits reaches none of the stopped plugin's subscribers.
#[test]
fn a_stopped_plugins_sse_subscribers_end_and_are_not_handed_over() {
    let f = Fixture::new();
    let Some(mut victim) = Driver::start(&f, "atk-stop-victim", ALL) else {
        return;
    };
    let mut attacker = Driver::start(&f, "atk-stop-attacker", ALL).unwrap();
    assert_eq!(victim.call("sse_register", b"/handoff", b"").status, 0);
    let rt = rt();
    let url = format!("http://{}/handoff", addr(&f));
    let mut sub = rt.block_on(client().get(&url).send()).unwrap();
    assert_eq!(sub.status(), 200);
    assert_eq!(sse_emit(&mut victim, "/handoff", "v0").status, 0);
    assert_eq!(
        read_sse(&rt, &mut sub, "data: v0\n\n", Duration::from_secs(5)).0,
        "data: v0\n\n"
    );
    drop(victim); // the plugin stops: queues closed, instance detached
    let (rest, ended) = read_sse(&rt, &mut sub, "\u{0}", Duration::from_secs(5));
    assert!(
        ended,
        "the stopped plugin's subscriber still open: {rest:?}"
    );
    assert_eq!(pulp_tests_subscribers(&f, "/handoff"), 0);
    assert_eq!(attacker.call("sse_register", b"/handoff", b"").status, 0);
    assert_eq!(sse_emit(&mut attacker, "/handoff", "evil").status, 0);
    assert!(!rest.contains("evil"), "{rest:?}");
    // A new subscriber is the attacker's own, and gets the attacker's events only.
    let mut sub2 = rt.block_on(client().get(&url).send()).unwrap();
    assert_eq!(sub2.status(), 200);
    assert_eq!(sse_emit(&mut attacker, "/handoff", "a1").status, 0);
    assert_eq!(
        read_sse(&rt, &mut sub2, "data: a1\n\n", Duration::from_secs(5)).0,
        "data: a1\n\n"
    );
}

fn pulp_tests_subscribers(f: &Fixture, path: &str) -> usize {
    ext_http::subscribers(f.host.shared(), path)
}

/// The window of a stop: a plugin's queues are closed (Runtime::stop closes every
/// queue first and then waits up to the grace period for each thread; Plugin's
/// drop closes the queues before it detaches the instance) but its instance has not
/// detached yet. Another plugin registering the path then must not inherit the
/// stopping plugin's subscribers: the clients subscribed to the victim, and must
/// get none of the attacker's events.
#[test]
fn a_closing_plugins_sse_subscribers_are_not_handed_to_another_plugin() {
    let f = Fixture::new();
    let Some(mut victim) = Driver::start(&f, "atk-win-victim", ALL) else {
        return;
    };
    let mut attacker = Driver::start(&f, "atk-win-attacker", ALL).unwrap();
    assert_eq!(victim.call("sse_register", b"/window", b"").status, 0);
    let rt = rt();
    let mut sub = rt
        .block_on(client().get(format!("http://{}/window", addr(&f))).send())
        .unwrap();
    assert_eq!(sub.status(), 200);
    assert_eq!(pulp_tests_subscribers(&f, "/window"), 1);
    // The victim is stopping: its queues close first, its instance detaches later.
    victim.plugin.view().events().close();
    let o = attacker.call("sse_register", b"/window", b"");
    let emitted = sse_emit(&mut attacker, "/window", "evil from the attacker");
    let (got, _) = read_sse(&rt, &mut sub, "evil", Duration::from_secs(2));
    assert!(
        !got.contains("evil"),
        "the victim's subscriber got the attacker's event (sse_register {}, sse_emit {}): {got:?}",
        o.status,
        emitted.status
    );
    drop(victim);
}

/// Two hosts in one process, each with a plugin of the same name: connection ids
/// start at 1 in both, SSE paths are the same, yet neither reaches the other's
/// clients (Sockets and Streams are per host).
#[test]
fn two_hosts_with_a_plugin_of_the_same_name_do_not_share_connections_or_streams() {
    let (f1, f2) = (Fixture::new(), Fixture::new());
    let Some(mut d1) = Driver::start(&f1, "atk-twin", ALL) else {
        return;
    };
    let mut d2 = Driver::start(&f2, "atk-twin", ALL).unwrap();
    for d in [&mut d1, &mut d2] {
        assert_eq!(d.call("ws_register", b"/twin", b"").status, 0);
        assert_eq!(d.call("sse_register", b"/twin-feed", b"").status, 0);
    }
    let rt = rt();
    let (mut ws1, _) = rt
        .block_on(tokio_tungstenite::connect_async(format!(
            "ws://{}/twin",
            addr(&f1)
        )))
        .unwrap();
    let conn = next_event(&d1.plugin).1["conn_id"].as_u64().unwrap();
    assert_eq!(conn, 1, "ids start at 1 per host");
    // Host 2 has no connection 1: its twin cannot write to or close host 1's.
    assert_eq!(ws_send(&mut d2, conn, b"from host 2").status, 4);
    assert_eq!(ws_close(&mut d2, conn).status, 4);
    let mut sub1 = rt
        .block_on(
            client()
                .get(format!("http://{}/twin-feed", addr(&f1)))
                .send(),
        )
        .unwrap();
    assert_eq!(sub1.status(), 200);
    assert_eq!(sse_emit(&mut d2, "/twin-feed", "from host 2").status, 0);
    assert_eq!(sse_emit(&mut d1, "/twin-feed", "host 1").status, 0);
    assert_eq!(
        read_sse(&rt, &mut sub1, "data: host 1\n\n", Duration::from_secs(5)).0,
        "data: host 1\n\n"
    );
    assert_eq!(ws_send(&mut d1, conn, b"host 1").status, 0);
    let got = rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), ws1.next()).await });
    match got.expect("host 1's frame within 5 s") {
        Some(Ok(m)) => assert_eq!(m, Message::binary(b"host 1".to_vec())),
        other => panic!("host 1's connection ended: {other:?}"),
    }
    assert_no_event(&d2, "host 2's twin hears of host 1's client");
}
