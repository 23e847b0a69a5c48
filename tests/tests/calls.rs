//! Calls between plugins (`pulp_call` → `pulp_on_call`, issue #17) on a real runtime:
//! allowed and denied calls, cycles of two and three found at once, a busy target
//! waited for, a deadline that passes (12), a trapping target (5, and it is
//! restarted), a stopped target (10), a pooled target served by its free instance.
//!
//! Every plugin runs the same WAT "peer": an event makes its step call
//! `TARGET.FUNCTION(ARGS)` (fixed per plugin) and record the status and the answer
//! (or `last_error`); its `pulp_on_call` serves `echo`, `trap`, `spin`, `fail` and
//! `chain` (args `X/Y/Z`: call `X.chain("Y/Z")`, and the last one `X.echo("end")`).

use std::time::{Duration, Instant};

use pulp_ext::host::HostEvents;
use pulp_ext::Event;
use pulp_host::{Handle, Manifest, Plugin, Runtime, RuntimeConfig};
use pulp_tests::{call_peer, records, Fixture};

/// A plugin of the set: name, what its step calls, its spin, its manifest extras.
struct Peer<'a> {
    name: &'a str,
    calls: (&'a str, &'a str, &'a str),
    spin: u64,
    extra: &'a str,
}

fn peer_of<'a>(name: &'a str, calls: (&'a str, &'a str, &'a str), extra: &'a str) -> Peer<'a> {
    Peer {
        name,
        calls,
        spin: 0,
        extra,
    }
}

/// Loads, initialises and runs `peers` on one runtime (each after the plugins it
/// depends on); their handles by name.
fn run(f: &Fixture, peers: &[Peer]) -> (Runtime, Vec<Handle>) {
    let manifests: Vec<Manifest> = peers
        .iter()
        .map(|p| {
            let (t, func, a) = p.calls;
            let extra = format!("capabilities = [\"test.record\"]\n{}", p.extra);
            f.manifest(p.name, &call_peer(t, func, a, p.spin), &extra)
        })
        .collect();
    let order = pulp_host::links::start_order(&manifests).unwrap();
    let mut runtime = Runtime::new(RuntimeConfig::default());
    let mut handles = Vec::new();
    for i in order {
        let m = &manifests[i];
        let mut first = Plugin::load(&f.host, m, Some(&f.registry)).unwrap();
        first.init().unwrap();
        let mut all = vec![];
        for _ in 1..m.limits.instances {
            let mut r = first.replica().unwrap();
            r.init().unwrap();
            all.push(r);
        }
        all.insert(0, first);
        for p in all {
            handles.push(runtime.spawn(p).unwrap());
        }
    }
    (runtime, handles)
}

fn handle<'a>(handles: &'a [Handle], name: &str) -> &'a Handle {
    handles.iter().find(|h| h.name() == name).unwrap()
}

fn poke(h: &Handle) {
    h.events()
        .post("test", Event::from_raw("go", vec![0x80]))
        .unwrap();
}

/// Pokes `h` and waits (10 s at most) for its step's two records: the status of its
/// call, and the answer or `last_error` text.
fn call_from(h: &Handle) -> (i32, String) {
    let name = h.name().to_string();
    records(&name);
    poke(h);
    let until = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < 2 && Instant::now() < until {
        got.extend(records(&name));
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(got.len(), 2, "plugin {name} recorded {got:?}");
    let status = i32::from_le_bytes(got[0][..4].try_into().unwrap());
    (status, String::from_utf8_lossy(&got[1]).into_owned())
}

#[test]
fn allowed_calls_answer_and_unlisted_ones_are_denied() {
    let f = Fixture::new();
    let (rt, h) = run(
        &f,
        &[
            peer_of(
                "api",
                ("auth", "echo", "token-123"),
                "consumes = [\"tokens\"]",
            ),
            peer_of("auth", ("api", "echo", "x"), "provides = [\"tokens\"]"),
            peer_of("byname", ("auth", "echo", "hi"), "depends_on = [\"auth\"]"),
            peer_of(
                "viaprovided",
                ("tokens", "echo", "hi"),
                "consumes = [\"tokens\"]",
            ),
            peer_of("stranger", ("auth", "echo", "x"), ""),
        ],
    );
    assert_eq!(call_from(handle(&h, "api")), (0, "token-123".into()));
    assert_eq!(call_from(handle(&h, "byname")), (0, "hi".into()));
    // A provided name reaches its one provider.
    assert_eq!(call_from(handle(&h, "viaprovided")), (0, "hi".into()));
    let (st, err) = call_from(handle(&h, "stranger"));
    assert_eq!(st, 9, "{err}");
    assert!(
        err.contains("plugin \"stranger\" may not call plugin \"auth\""),
        "{err}"
    );
    // Provides is not consumes: auth may not call api back.
    let (st, err) = call_from(handle(&h, "auth"));
    assert_eq!(st, 9, "{err}");
    drop(rt.stop());
}

#[test]
fn cycles_of_two_and_three_fail_at_once_naming_the_chain() {
    let f = Fixture::new();
    let (rt, h) = run(
        &f,
        &[
            // a → b → a
            peer_of("a", ("b", "chain", "a"), "consumes = [\"b\"]"),
            peer_of("b", ("x", "x", "x"), "consumes = [\"a\", \"d\"]"),
            // c → b → d → c (through d)
            peer_of("c", ("b", "chain", "d/c"), "consumes = [\"b\"]"),
            peer_of("d", ("x", "x", "x"), "consumes = [\"c\"]"),
        ],
    );
    let t = Instant::now();
    let (st, err) = call_from(handle(&h, "a"));
    assert_eq!(st, 4, "{err}");
    assert!(err.contains("a call cycle, a → b → a"), "{err}");
    let (st, err) = call_from(handle(&h, "c"));
    assert_eq!(st, 4, "{err}");
    assert!(err.contains("a call cycle, c → b → d → c"), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "at once, not at a deadline: {:?}",
        t.elapsed()
    );
    drop(rt.stop());
}

/// Two plugins whose steps call each other at the same moment: each holds its own
/// instance and waits for the other's. The second to wait sees the cycle across
/// threads and gets 4 at once; the first is then served. No deadline is waited out.
#[test]
fn steps_that_call_each_other_at_once_do_not_deadlock() {
    let f = Fixture::new();
    let spin = 150_000_000;
    let (rt, h) = run(
        &f,
        &[
            Peer {
                name: "left",
                calls: ("right", "echo", "from-left"),
                spin,
                extra: "consumes = [\"right\"]",
            },
            Peer {
                name: "right",
                calls: ("left", "echo", "from-right"),
                spin,
                extra: "consumes = [\"left\"]",
            },
        ],
    );
    let (l, r) = (handle(&h, "left"), handle(&h, "right"));
    records("left");
    records("right");
    let t = Instant::now();
    poke(l);
    poke(r);
    let until = Instant::now() + Duration::from_secs(10);
    let (mut gl, mut gr) = (Vec::new(), Vec::new());
    while (gl.len() < 2 || gr.len() < 2) && Instant::now() < until {
        gl.extend(records("left"));
        gr.extend(records("right"));
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = t.elapsed();
    let status = |g: &Vec<Vec<u8>>| i32::from_le_bytes(g[0][..4].try_into().unwrap());
    assert_eq!((gl.len(), gr.len()), (2, 2), "{gl:?} {gr:?}");
    let mut statuses = [status(&gl), status(&gr)];
    statuses.sort();
    let texts = format!(
        "{} / {}",
        String::from_utf8_lossy(&gl[1]),
        String::from_utf8_lossy(&gr[1])
    );
    assert_eq!(statuses, [0, 4], "{texts}");
    assert!(texts.contains("a call cycle across threads"), "{texts}");
    assert!(took < Duration::from_secs(3), "{took:?}: {texts}");
    drop(rt.stop());
}

#[test]
fn a_busy_target_is_waited_for_until_the_callers_deadline() {
    let f = Fixture::new();
    let (rt, h) = run(
        &f,
        &[
            Peer {
                name: "slow",
                calls: ("x", "x", "x"),
                spin: 600_000_000,
                extra: "[limits]\ncall_timeout_ms = 60000",
            },
            peer_of(
                "patient",
                ("slow", "echo", "waited"),
                "consumes = [\"slow\"]",
            ),
            peer_of(
                "hasty",
                ("slow", "echo", "x"),
                "consumes = [\"slow\"]\n[limits]\ncall_timeout_ms = 50",
            ),
        ],
    );
    let slow = handle(&h, "slow");
    // The spinning step holds the target; the patient caller waits it out.
    poke(slow);
    std::thread::sleep(Duration::from_millis(30));
    let t = Instant::now();
    assert_eq!(call_from(handle(&h, "patient")), (0, "waited".into()));
    let waited = t.elapsed();
    assert!(waited > Duration::from_millis(20), "it waited: {waited:?}");
    // A caller whose deadline passes first gets 12.
    poke(slow);
    std::thread::sleep(Duration::from_millis(30));
    let (st, err) = call_from(handle(&h, "hasty"));
    assert_eq!(st, 12, "{err}");
    assert!(
        err.contains("deadline passed while plugin \"slow\" was busy"),
        "{err}"
    );
    drop(rt.stop());
}

#[test]
fn a_trap_in_the_target_is_the_callers_status_and_the_target_is_restarted() {
    let f = Fixture::new();
    let (rt, h) = run(
        &f,
        &[
            peer_of("victim", ("x", "x", "x"), ""),
            peer_of("poker", ("victim", "trap", ""), "consumes = [\"victim\"]"),
            peer_of("failer", ("victim", "fail", ""), "consumes = [\"victim\"]"),
            peer_of(
                "spinner",
                ("victim", "spin", ""),
                "consumes = [\"victim\"]\n[limits]\ncall_timeout_ms = 200",
            ),
        ],
    );
    let (st, err) = call_from(handle(&h, "poker"));
    assert_eq!(st, 5, "{err}");
    assert!(
        err.contains("plugin \"victim\" failed in pulp_on_call: it trapped; it is being restarted"),
        "{err}"
    );
    let victim = handle(&h, "victim");
    let until = Instant::now() + Duration::from_secs(5);
    while victim.restarts() == 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(victim.restarts(), 1, "the target was restarted");
    assert_eq!(handle(&h, "poker").restarts(), 0, "the caller was not");
    // A failure code and text of the callee's own are the caller's.
    let (st, err) = call_from(handle(&h, "failer"));
    assert_eq!(st, 4, "{err}");
    assert!(err.contains("returned 4: nope"), "{err}");
    // A callee that never returns: the caller's deadline, 12.
    let (st, err) = call_from(handle(&h, "spinner"));
    assert_eq!(st, 12, "{err}");
    drop(rt.stop());
}

#[test]
fn a_stopped_target_is_10_and_a_pool_answers_from_its_free_instance() {
    let f = Fixture::new();
    let (rt, h) = run(
        &f,
        &[
            peer_of("gone", ("x", "x", "x"), ""),
            peer_of("orphan", ("gone", "echo", "x"), "consumes = [\"gone\"]"),
            Peer {
                name: "pool",
                calls: ("x", "x", "x"),
                spin: 2_000_000_000,
                extra: "stateless = true\n[limits]\ninstances = 2\ncall_timeout_ms = 60000",
            },
            peer_of("client", ("pool", "echo", "free"), "consumes = [\"pool\"]"),
        ],
    );
    let gone = handle(&h, "gone");
    gone.events().close();
    let until = Instant::now() + Duration::from_secs(5);
    while gone.health() != pulp_host::Health::Stopped && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (st, err) = call_from(handle(&h, "orphan"));
    assert_eq!(st, 10, "{err}");
    assert!(err.contains("not running"), "{err}");
    // One instance of the pool spins for seconds; the other answers at once.
    poke(handle(&h, "pool"));
    std::thread::sleep(Duration::from_millis(50));
    let t = Instant::now();
    assert_eq!(call_from(handle(&h, "client")), (0, "free".into()));
    assert!(
        t.elapsed() < Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
    drop(rt.stop());
}

/// The example pair across languages: the Go `api` (built with the Go toolchain,
/// `pdk.Call`) calls the C `auth` (`pulp_on_call`, tokens in SQLite) on each request.
#[test]
fn a_go_plugin_calls_a_c_plugin() {
    let (Some(auth), Some(api)) = (
        pulp_tests::c_module("examples/auth/auth.c"),
        pulp_tests::go_module("examples/go/api"),
    ) else {
        return;
    };
    let f = Fixture::new();
    let manifests = [
        Manifest::load(f.write_for(
            "auth",
            &auth,
            "capabilities = [\"storage.sqlite\"]\nprovides = [\"auth\"]\n[config.tokens]\n\"t-1\" = \"grace\"",
        ))
        .unwrap(),
        Manifest::load(f.write_for(
            "api",
            &api,
            "capabilities = [\"transport.http.inbound\"]\nconsumes = [\"auth\"]",
        ))
        .unwrap(),
    ];
    let mut runtime = Runtime::new(RuntimeConfig::default());
    for m in &manifests {
        let mut p = Plugin::load(&f.host, m, Some(&f.registry)).unwrap();
        p.init().unwrap();
        runtime.spawn(p).unwrap();
    }
    let addr = pulp_tests::listener(&f);
    let whoami = |auth: &str| {
        pulp_tests::raw_http(
            addr,
            &format!("GET /whoami HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
        )
    };
    let a = whoami("Authorization: Bearer t-1\r\n");
    assert!(
        a.starts_with("HTTP/1.1 200") && a.ends_with("hello grace\n"),
        "{a}"
    );
    let a = whoami("Authorization: Bearer nope\r\n");
    assert!(
        a.starts_with("HTTP/1.1 401") && a.ends_with("unknown token\n"),
        "{a}"
    );
    drop(runtime.stop());
}

/// A caller whose deadline is shorter than the target's own cuts the target's call:
/// the caller gets 12 and the target's instance is replaced, but it is not the
/// target's failure: however often it happens, the target is not stopped for good.
#[test]
fn a_callers_short_deadline_never_stops_the_target_for_good() {
    let f = Fixture::new();
    let (rt, h) = run(
        &f,
        &[
            peer_of("steady", ("x", "x", "x"), ""),
            peer_of(
                "hurried",
                ("steady", "spin", ""),
                "consumes = [\"steady\"]\n[limits]\ncall_timeout_ms = 30",
            ),
            peer_of(
                "later",
                ("steady", "echo", "still here"),
                "consumes = [\"steady\"]",
            ),
        ],
    );
    // Each call is 12: cut in the target, or (when it comes while the target's
    // instance is still being replaced) its deadline passed while waiting.
    let mut cuts = 0;
    for _ in 0..7 {
        let (st, err) = call_from(handle(&h, "hurried"));
        assert_eq!(st, 12, "{err}");
        cuts += usize::from(err.contains("cut at the caller's deadline"));
    }
    assert!(cuts >= 5, "{cuts} of 7 calls were cut in the target");
    let steady = handle(&h, "steady");
    assert!(
        !matches!(steady.health(), pulp_host::Health::Failed(_)),
        "{:?}",
        steady.health()
    );
    assert_eq!(call_from(handle(&h, "later")), (0, "still here".into()));
    drop(rt.stop());
}

/// Calls nest at most eight plugins deep (each callee's wasm has its own share of
/// the thread's stack): the ninth is 11, and the chain unwinds with statuses.
#[test]
fn call_chains_nest_at_most_eight_deep() {
    let f = Fixture::new();
    let names: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
    // n0's step calls n1.chain("n2/n3/.../n9"): each calls the next.
    let rest = names[2..].join("/");
    let extras: Vec<String> = (0..10)
        .map(|i| format!("consumes = [\"n{}\"]", (i + 1) % 10))
        .collect();
    let peers: Vec<Peer> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            if i == 0 {
                peer_of(n, ("n1", "chain", &rest), &extras[i])
            } else {
                peer_of(n, ("x", "x", "x"), &extras[i])
            }
        })
        .collect();
    let (rt, h) = run(&f, &peers);
    let (st, err) = call_from(handle(&h, "n0"));
    assert_eq!(st, 11, "{err}");
    assert!(err.contains("is 8 plugins deep, the most"), "{err}");
    drop(rt.stop());
}
