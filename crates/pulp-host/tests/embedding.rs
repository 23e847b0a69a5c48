//! An embedder's program: it depends on `pulp-host` alone (default features) and
//! names no capability crate, yet `Registry::new()` has every default capability.

use std::sync::Arc;

use pulp_host::Registry;

const DEFAULTS: [&str; 11] = [
    "core",
    "calls",
    "logging",
    "entropy",
    "storage.sqlite",
    "storage.fs",
    "spawn.docker",
    "transport.http.outbound",
    "transport.http.inbound",
    "transport.ws.inbound",
    "transport.sse",
];

#[test]
fn registry_new_holds_every_default_capability_without_naming_a_crate() {
    let registry = Registry::new().unwrap();
    let names: Vec<_> = registry
        .entries()
        .iter()
        .map(|e| e.capability.name())
        .collect();
    for name in DEFAULTS {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert_eq!(names.len(), DEFAULTS.len(), "{names:?}");
}

#[test]
fn a_registry_built_by_hand_from_the_public_capability_types() {
    let mut r = Registry::empty();
    r.always(Arc::new(pulp_host::ext_logging::Logging))
        .unwrap()
        .always(Arc::new(pulp_host::ext_entropy::Entropy))
        .unwrap()
        .gated(Arc::new(pulp_host::ext_fs::Fs))
        .unwrap()
        .gated(Arc::new(pulp_host::ext_sqlite::Sqlite))
        .unwrap()
        .gated(Arc::new(pulp_host::ext_docker::SpawnDocker))
        .unwrap()
        .gated(Arc::new(pulp_host::ext_http::Outbound))
        .unwrap()
        .gated(Arc::new(pulp_host::ext_http::Inbound::HTTP))
        .unwrap()
        .gated(Arc::new(pulp_host::ext_http::Inbound::WS))
        .unwrap()
        .gated(Arc::new(pulp_host::ext_http::Inbound::SSE))
        .unwrap();
    let names: Vec<_> = r.entries().iter().map(|e| e.capability.name()).collect();
    assert_eq!(names.len(), 9, "{names:?}");
    let again = r
        .gated(Arc::new(pulp_host::ext_sqlite::Sqlite))
        .err()
        .unwrap();
    assert!(again.to_string().contains("\"storage.sqlite\""), "{again}");
}

#[test]
fn host_settings_sections_are_checked_by_the_capability_that_reads_them() {
    let registry = Registry::new().unwrap();
    let table = |text: &str| -> toml::Table { text.parse().unwrap() };
    let good = [
        ("http".to_string(), table("listen = \"127.0.0.1:0\"")),
        (
            "docker".to_string(),
            table("host = \"unix:///nowhere.sock\""),
        ),
    ]
    .into();
    assert_eq!(registry.check_host_settings(&good), Vec::<String>::new());

    let bad = [
        ("htp".to_string(), table("listen = \"127.0.0.1:0\"")),
        ("http".to_string(), table("lisen = \"127.0.0.1:0\"")),
        ("docker".to_string(), table("hots = \"x\"")),
        ("http2".to_string(), table("")),
    ]
    .into();
    let problems = registry.check_host_settings(&bad);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert_eq!(
        problems[0],
        "host settings [docker]: unknown key \"hots\" (known: host)"
    );
    assert!(
        problems[1].starts_with(
            "host settings [htp]: no capability of this host reads it (known sections: "
        ),
        "{}",
        problems[1]
    );
    assert!(
        problems[1].contains("http") && problems[1].contains("docker"),
        "{}",
        problems[1]
    );
    assert!(
        problems[2].starts_with("host settings [http]: unknown field `lisen`"),
        "{}",
        problems[2]
    );
    assert!(
        problems[3].starts_with("host settings [http2]: no capability"),
        "{}",
        problems[3]
    );

    let unequipped = Registry::empty();
    let only_http = [("http".to_string(), table(""))].into();
    assert_eq!(
        unequipped.check_host_settings(&only_http),
        ["host settings [http]: no capability of this host reads it (known sections: none)"]
    );
}
