//! The example plugins of `examples/`, built from source and driven over real HTTP:
//! notes (SQLite, survives a restart) and fetch (outbound with an allow-list).
//! echo and jobs have their own tests (http_inbound, docker).

use pulp_host::Runtime;
use pulp_tests::{c_module, example_manifest, header, http_once as http, Fixture, TestServer};

fn start(f: &Fixture, example: &str, extra: &str) -> Option<Runtime> {
    let wasm = c_module(&format!("examples/{example}/{example}.c"))?;
    Some(f.run_module(example, &wasm, extra, 1))
}

#[test]
fn notes_api_answers_as_documented_and_survives_a_restart() {
    let f = Fixture::new();
    let Some(rt) = start(&f, "notes", &example_manifest("notes")) else {
        return;
    };
    let a = ext_http::listening(f.host.shared()).unwrap();
    let (s, h, b) = http(a, "POST", "/notes", r#"{"text": "buy \"milk\" \u00e9\n"}"#);
    assert_eq!(
        (s, b.as_str()),
        (201, r#"{"id": 1, "text": "buy \"milk\" é\n"}"#)
    );
    assert_eq!(header(&h, "content-type"), Some("application/json"), "{h}");
    let (s, _, b) = http(
        a,
        "POST",
        "/notes",
        r#" {"other": [1, {"x": null}], "text": "two"} "#,
    );
    assert_eq!((s, b.as_str()), (201, r#"{"id": 2, "text": "two"}"#));
    assert_eq!(
        http(a, "GET", "/notes", "").2,
        r#"[{"id": 1, "text": "buy \"milk\" é\n"}, {"id": 2, "text": "two"}]"#
    );
    // One note: 200, the note as JSON, said to be JSON, and exactly as long as it is.
    let (s, h, b) = http(a, "GET", "/notes/2", "");
    assert_eq!((s, b.as_str()), (200, r#"{"id": 2, "text": "two"}"#), "{h}");
    assert_eq!(header(&h, "content-type"), Some("application/json"), "{h}");
    assert_eq!(
        header(&h, "content-length"),
        Some(b.len().to_string().as_str()),
        "{h}"
    );
    assert_eq!(http(a, "GET", "/notes/7", "").0, 404);
    assert_eq!(http(a, "GET", "/notes/abc", "").0, 404);
    assert_eq!(http(a, "DELETE", "/notes/1", "").0, 204);
    assert_eq!(http(a, "DELETE", "/notes/1", "").0, 404);
    for bad in [
        "",
        "{",
        "[1]",
        r#"{"text": 5}"#,
        r#"{"text": "a"} x"#,
        r#"{"txt": "a"}"#,
        r#"{"text": "\x"}"#,
    ] {
        let (s, _, b) = http(a, "POST", "/notes", bad);
        assert_eq!(s, 400, "{bad:?} -> {b}");
        assert!(b.starts_with(r#"{"error": "malformed JSON: "#), "{b}");
    }
    rt.stop();
    // A new run on the same storage: the note is still there.
    let Some(rt) = start(&f, "notes", &example_manifest("notes")) else {
        return;
    };
    assert_eq!(
        http(a, "GET", "/notes", "").2,
        r#"[{"id": 2, "text": "two"}]"#
    );
    rt.stop();
}

#[test]
fn fetch_reaches_an_allowed_host_and_refuses_others() {
    let server = TestServer::start(
        "127.0.0.1",
        TestServer::response("200 OK", &["Content-Type: text/x-test"], b"from the server"),
        std::time::Duration::ZERO,
    );
    let f = Fixture::new();
    let tail = example_manifest("fetch").replace(
        r#"allowed_hosts = ["example.com", "*.example.com"]"#,
        &format!(r#"allowed_hosts = ["127.0.0.1:{}"]"#, server.addr.port()),
    );
    let Some(rt) = start(&f, "fetch", &tail) else {
        return;
    };
    let a = ext_http::listening(f.host.shared()).unwrap();
    let (s, h, b) = http(
        a,
        "GET",
        &format!("/fetch?url=http://{}/x", server.addr),
        "",
    );
    assert_eq!((s, b.as_str()), (200, "from the server"));
    assert!(h.contains("content-type: text/x-test"), "{h}");
    let (s, _, b) = http(a, "GET", "/fetch?url=http://10.0.0.1/", "");
    assert_eq!(s, 403, "{b}");
    assert!(b.contains("not in allowed_hosts"), "{b}");
    assert_eq!(http(a, "GET", "/fetch", "").0, 400);
    rt.stop();
}
