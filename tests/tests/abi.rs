//! The guest contract of ABI §1–§3: config delivery, envelopes, probes, exports.

use std::time::{SystemTime, UNIX_EPOCH};

use pulp_ext::Event;
use pulp_host::{Envelope, Manifest, Plugin};
use pulp_tests::{capture_logs, guest, records, root, Fixture};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[test]
fn heartbeat_example_round_trips_config_and_counts_calls() {
    let f = Fixture::new();
    let (_g, logs) = capture_logs();
    let m = Manifest::load(root().join("examples/heartbeat/pulp.plugin.toml")).unwrap();
    let mut p = Plugin::load(&f.host, &m, Some(&f.registry)).unwrap();
    assert_eq!(p.name(), "heartbeat");
    assert_eq!(
        p.probe_last_call(),
        Some(u64::MAX),
        "no step yet: the guest's initial -1"
    );
    p.init().unwrap();
    assert_eq!(p.probe_config_marker(), Some(424242));
    for _ in 0..5 {
        assert_eq!(p.step_event(None).unwrap(), 0);
    }
    assert_eq!(p.probe_last_call(), Some(4));
    p.shutdown().unwrap();
    let text = logs.text();
    assert!(
        text.contains("hello from manifest") && text.contains("plugin=\"heartbeat\""),
        "{text}"
    );
    assert!(text.contains("heartbeat: tick 0"), "{text}");
    assert!(text.contains("heartbeat: shutting down"), "{text}");
}

#[test]
fn config_reaches_pulp_init_byte_for_byte() {
    let f = Fixture::new();
    let mut p = f
        .load(
            "cfg",
            &guest("envelope.wat"),
            "capabilities = [\"test.record\"]\n[config]\nmarker = 424242\ngreeting = \"hello from manifest\"",
        )
        .unwrap();
    p.init().unwrap();
    let r = records("cfg");
    let want = pulp_host::config::encode(
        &"marker = 424242\ngreeting = \"hello from manifest\""
            .parse()
            .unwrap(),
    );
    assert_eq!(
        want[..9],
        [0x82, 0xa6, b'm', b'a', b'r', b'k', b'e', b'r', 0xd3]
    );
    assert_eq!(r[1], want);
    let len = u32::from_le_bytes(r[0][4..8].try_into().unwrap());
    assert_eq!(len as usize, want.len());
}

#[test]
fn empty_config_is_init_with_zero_pointer_and_length() {
    let f = Fixture::new();
    let mut p = f
        .load(
            "nocfg",
            &guest("envelope.wat"),
            "capabilities = [\"test.record\"]\n[config]\n",
        )
        .unwrap();
    p.init().unwrap();
    assert_eq!(records("nocfg")[0], [0u8; 8], "pulp_init(0, 0)");
}

#[test]
fn envelopes_carry_call_numbers_wall_time_and_payload() {
    let f = Fixture::new();
    let mut p = f
        .load(
            "env",
            &guest("envelope.wat"),
            "capabilities = [\"test.record\"]",
        )
        .unwrap();
    p.init().unwrap();
    records("env");
    let event = Event::from_raw("test.kind", vec![0x81, 0xa1, b'x', 0x01]);
    let mut windows = Vec::new();
    for i in 0..4 {
        let before = now();
        let handle = p
            .step_event(if i == 2 { Some(&event) } else { None })
            .unwrap();
        windows.push((before, now()));
        assert_eq!(handle, 7, "the output handle comes back");
    }
    let r = records("env");
    assert_eq!(r.len(), 4);
    for (i, (env, (lo, hi))) in r.iter().zip(windows).enumerate() {
        assert_eq!(
            u64::from_le_bytes(env[..8].try_into().unwrap()),
            i as u64,
            "call number"
        );
        let wall = u64::from_le_bytes(env[8..16].try_into().unwrap());
        assert!(
            lo <= wall && wall <= hi,
            "wall time {wall} outside the call window {lo}..{hi}"
        );
        let len = u32::from_le_bytes(env[16..20].try_into().unwrap()) as usize;
        assert_eq!(len, env.len() - 20, "payload length matches the payload");
        if i == 2 {
            let mut want = Vec::new();
            event.encode_into(&mut want);
            assert_eq!(&env[20..], &want[..]);
            // {kind: "test.kind", payload: {x: 1}} with the payload map inline.
            let v: rmpv::Value = rmpv::decode::read_value(&mut &env[20..]).unwrap();
            assert_eq!(v["kind"].as_str(), Some("test.kind"));
            assert_eq!(v["payload"]["x"].as_u64(), Some(1));
        } else {
            assert_eq!(len, 0, "idle tick");
        }
    }
}

#[test]
fn explicit_envelopes_are_delivered_as_given() {
    let f = Fixture::new();
    let mut p = f
        .load(
            "explicit",
            &guest("envelope.wat"),
            "capabilities = [\"test.record\"]",
        )
        .unwrap();
    p.init().unwrap();
    records("explicit");
    let e = Envelope {
        call_number: 7,
        wall_time: 1_764_028_800_000_000_000,
        payload: vec![],
    };
    p.step(&e).unwrap();
    let want = [
        0x07, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x8f, 0xed, 0xd8, 0x16, 0x7b, 0x18, 0, 0, 0, 0,
    ];
    assert_eq!(e.encode(), want, "ABI §5 idle envelope vector");
    assert_eq!(records("explicit"), [want.to_vec()]);
}

#[test]
fn go_shaped_reactor_runs_initialize_once() {
    let f = Fixture::new();
    let mut p = f.load("reactor", &guest("reactor.wat"), "").unwrap();
    p.init()
        .expect("_initialize ran exactly once before pulp_init");
    p.step_event(None).unwrap();
    p.shutdown().unwrap();
}

#[test]
fn second_load_comes_from_the_module_cache() {
    let f = Fixture::new();
    let m = Manifest::load(root().join("examples/heartbeat/pulp.plugin.toml")).unwrap();
    let first = Plugin::load(&f.host, &m, Some(&f.registry)).unwrap();
    assert_eq!(first.module_source(), pulp_host::cache::Source::Compiled);
    let second = Plugin::load(&f.host, &m, Some(&f.registry)).unwrap();
    assert_eq!(second.module_source(), pulp_host::cache::Source::Cached);
    let cached: Vec<_> = std::fs::read_dir(f.dir.path().join("cache"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("cwasm".as_ref()))
        .collect();
    assert_eq!(cached.len(), 1);
}

#[test]
fn a_corrupt_cache_entry_is_recompiled() {
    let f = Fixture::new();
    let m = Manifest::load(root().join("examples/heartbeat/pulp.plugin.toml")).unwrap();
    drop(Plugin::load(&f.host, &m, Some(&f.registry)).unwrap());
    for e in std::fs::read_dir(f.dir.path().join("cache")).unwrap() {
        std::fs::write(e.unwrap().path(), b"not a module").unwrap();
    }
    let mut p = Plugin::load(&f.host, &m, Some(&f.registry)).unwrap();
    assert_eq!(p.module_source(), pulp_host::cache::Source::Compiled);
    p.init().unwrap();
}
