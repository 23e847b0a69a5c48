//! Binding rules of ABI §4 and the registry: always-bound, declared, stubs, errors.

use std::sync::Arc;

use pulp_ext::host::{HostEvents, HostPlugin, HostState};
use pulp_ext::wasmtime::{Linker, Store};
use pulp_ext::{Binding, Capability, Import, State};
use pulp_host::{CallError, Registry, RegistryError};
use pulp_tests::{capture_logs, guest, lifecycle, Fixture};

#[test]
fn undeclared_capability_gets_99_and_says_why() {
    let f = Fixture::new();
    let (_g, logs) = capture_logs();
    let mut p = f.load("stubbed", &guest("undeclared.wat"), "").unwrap();
    match p.init() {
        Err(CallError::Returned { code: 99, .. }) => {}
        other => panic!("expected pulp_init to return the stub's 99, got {other:?}"),
    }
    let text = logs.text();
    assert!(
        text.contains("capability \\\"test.record\\\" is not declared in the manifest of plugin \\\"stubbed\\\"")
            || text.contains("capability \"test.record\" is not declared in the manifest of plugin \"stubbed\""),
        "last_error names the capability and the plugin: {text}"
    );
    assert_eq!(
        lifecycle("stubbed"),
        (0, 0),
        "a stubbed capability is never attached"
    );
}

#[test]
fn declared_capability_gets_the_real_import() {
    let f = Fixture::new();
    let mut p = f
        .load(
            "declared",
            &guest("undeclared.wat"),
            "capabilities = [\"test.record\"]",
        )
        .unwrap();
    p.init().expect("the real test_record returns 0");
    assert_eq!(pulp_tests::records("declared").len(), 1);
    assert_eq!(lifecycle("declared"), (1, 0));
    drop(p);
    assert_eq!(lifecycle("declared"), (1, 1), "closing detaches");
}

#[test]
fn settings_are_parsed_once_per_plugin_and_handed_to_every_instance() {
    let f = Fixture::new();
    let toml = "capabilities = [\"test.record\"]\n[capability.\"test.record\"]\ntag = \"once\"";
    let mut p = f.load("parsed-once", &guest("envelope.wat"), toml).unwrap();
    p.init().unwrap();
    p.restart().unwrap();
    p.restart().unwrap();
    let mut replica = p.replica().unwrap();
    replica.init().unwrap();
    let once = Some("once".to_string());
    assert_eq!(
        pulp_tests::settings_tags("parsed-once"),
        vec![once.clone(), once.clone(), once.clone(), once],
        "the first instance, two restarts and a replica all get the parsed settings"
    );
    assert_eq!(
        pulp_tests::settings_parsed("parsed-once"),
        1,
        "parsed at load only, not per instance"
    );
}

#[test]
fn capability_settings_are_validated_by_their_owner() {
    let f = Fixture::new();
    let ok = "capabilities = [\"test.record\"]\n[capability.\"test.record\"]\ntag = \"x\"";
    f.load("settings-ok", &guest("undeclared.wat"), ok).unwrap();
    let bad = "capabilities = [\"test.record\"]\n[capability.\"test.record\"]\ntga = \"x\"";
    let e = f
        .load("settings-bad", &guest("undeclared.wat"), bad)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("settings-bad") && e.contains("test.record") && e.contains("tga"),
        "{e}"
    );
}

#[test]
fn capabilities_without_settings_reject_a_table() {
    let f = Fixture::new();
    let extra = "capabilities = [\"logging\"]\n[capability.logging]\nlevel = 1";
    let e = f
        .load("logset", &guest("undeclared.wat"), extra)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("capability \"logging\": takes no settings"),
        "{e}"
    );
}

#[test]
fn entropy_read_alias_may_be_declared() {
    let f = Fixture::new();
    f.load(
        "alias",
        &guest("entropy.wat"),
        "capabilities = [\"entropy.read\", \"test.record\"]",
    )
    .unwrap()
    .init()
    .unwrap();
}

#[test]
fn registry_holds_every_linked_capability_in_name_order() {
    let r = Registry::new().unwrap();
    let names: Vec<_> = r.entries().iter().map(|e| e.capability.name()).collect();
    assert_eq!(
        names,
        [
            "calls",
            "core",
            "entropy",
            "logging",
            "spawn.docker",
            "storage.fs",
            "storage.sqlite",
            "test.record",
            "transport.http.inbound",
            "transport.http.outbound",
            "transport.sse",
            "transport.ws.inbound"
        ]
    );
    let bound: Vec<_> = r.entries().iter().map(|e| e.binding).collect();
    use Binding::{Always, Gated};
    assert_eq!(
        bound,
        [Always, Always, Always, Always, Gated, Gated, Gated, Gated, Gated, Gated, Gated, Gated]
    );
    assert_eq!(r.find("entropy.read").unwrap().capability.name(), "entropy");
    assert_eq!(
        r.provider("last_error").unwrap().0.capability.name(),
        "core"
    );
}

struct Fake(&'static str, &'static [&'static str]);

fn nothing(_: &mut pulp_ext::wasmtime::Caller<'_, State>) -> Result<(), pulp_ext::Error> {
    Ok(())
}

impl Capability for Fake {
    type Settings = ();
    fn name(&self) -> &'static str {
        self.0
    }
    fn imports(&self) -> Vec<Import> {
        self.1.iter().map(|&n| Import::new(n, nothing)).collect()
    }
}

#[test]
fn duplicate_names_and_imports_are_errors_naming_both() {
    let mut r = Registry::new().unwrap();
    match r.gated(Arc::new(Fake("logging", &[]))) {
        Err(e @ RegistryError::DuplicateName(_)) => assert!(e.to_string().contains("\"logging\"")),
        other => panic!("{:?}", other.map(|_| ())),
    }
    let e = r
        .always(Arc::new(Fake("my.log", &["log"])))
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        e,
        "capabilities \"logging\" and \"my.log\" both provide the import pulp.log"
    );
}

#[test]
fn embedder_can_bind_a_gated_capability_for_everyone() {
    let f = Fixture::new();
    let mut r = Registry::empty();
    for e in f.registry.entries() {
        if e.capability.name() == "test.record" {
            r.always(e.capability.clone()).unwrap();
        } else {
            r.gated(e.capability.clone()).unwrap();
        }
    }
    let m = f.manifest("always", &guest("undeclared.wat"), "");
    let mut p = pulp_host::Plugin::load(&f.host, &m, Some(&r)).unwrap();
    p.init()
        .expect("test_record is bound without a declaration");
}

#[test]
fn every_capability_links_exactly_its_import_table() {
    let f = Fixture::new();
    for e in f.registry.entries() {
        let cap = &e.capability;
        let mut linker = Linker::new(f.host.engine());
        for i in &e.imports {
            i.link(&mut linker).unwrap();
        }
        let engine = f.host.engine();
        let mut store = Store::new(
            engine,
            State::new(
                pulp_ext::Plugin::new(
                    "x",
                    "/nonexistent",
                    Default::default(),
                    pulp_ext::Events::new(1),
                ),
                pulp_ext::wasmtime_wasi::WasiCtxBuilder::new().build_p1(),
                Box::new(pulp_ext::wasmtime::StoreLimits::default()),
                1024,
            ),
        );
        let defs: Vec<_> = linker
            .iter(&mut store)
            .map(|(m, n, e)| (m.to_string(), n.to_string(), e))
            .collect();
        let linked: Vec<(String, String)> = defs
            .into_iter()
            .map(|(m, n, ext)| {
                let ty = ext.ty(&store);
                let f = ty.func().expect("imports are functions").clone();
                let list = |v: Vec<&str>| v.join(", ");
                let p: Vec<_> = f.params().map(|t| ty_name(&t)).collect();
                let r: Vec<_> = f.results().map(|t| ty_name(&t)).collect();
                (format!("{m}.{n}"), format!("({}) -> {}", list(p), list(r)))
            })
            .collect();
        let mut want: Vec<(String, String)> = cap
            .imports()
            .iter()
            .map(|i| (format!("pulp.{}", i.name), i.signature()))
            .collect();
        let mut linked = linked;
        linked.sort();
        want.sort();
        assert_eq!(
            linked,
            want,
            "capability {} links what its table says",
            cap.name()
        );
    }
}

fn ty_name(t: &pulp_ext::wasmtime::ValType) -> &'static str {
    use pulp_ext::wasmtime::ValType::*;
    match t {
        I32 => "i32",
        I64 => "i64",
        F32 => "f32",
        F64 => "f64",
        _ => "other",
    }
}

#[test]
fn loading_without_a_registry_gives_wasi_only() {
    let f = Fixture::new();
    let m = f.manifest("bare", &guest("reactor.wat"), "");
    let mut p = pulp_host::Plugin::load(&f.host, &m, None).unwrap();
    p.init().unwrap();
    let m = f.manifest("needs-log", &guest("undeclared.wat"), "");
    let e = pulp_host::Plugin::load(&f.host, &m, None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("imports pulp.log, which no capability of this host provides"),
        "{e}"
    );
}
