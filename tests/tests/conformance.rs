//! One HTTP contract, every language: the `notes` example built from C
//! (`examples/notes`, with `pdk/c`), from Rust (`examples/rust/notes`, with
//! `pdk/rust`) and from Go (`examples/go/notes`, with `pdk/go`) answers the same
//! script of requests, across a restart on the same storage, with the same
//! statuses, content types and bodies, byte for byte.

use pulp_tests::{c_module, go_module, header, http_once_bytes, rust_example, Fixture};

const NOTES: &str = "capabilities = [\"storage.sqlite\", \"transport.http.inbound\"]";

/// What a build answered: one line per request.
type Transcript = Vec<String>;

/// Before the restart, then after it (the notes must still be there).
const BEFORE: &[(&str, &str, &str)] = &[
    ("GET", "/notes", ""),
    ("POST", "/notes", r#"{"text": "buy \"milk\" \u00e9\n"}"#),
    (
        "POST",
        "/notes",
        r#" {"other": [1, {"x": null}], "text": "two"} "#,
    ),
    (
        "POST",
        "/notes",
        r#"{"text": "tab\there \\ slash \/ \ud83d\ude00 \u0001 ümlaut"}"#,
    ),
    (
        "POST",
        "/notes",
        r#"{"text": "first", "text": "last wins"}"#,
    ),
    ("POST", "/notes", r#"{"text": ""}"#),
    ("GET", "/notes", ""),
    ("GET", "/notes/2", ""),
    ("GET", "/notes/%32", ""),
    ("GET", "/notes/02", ""),
    ("GET", "/notes/7", ""),
    ("GET", "/notes/abc", ""),
    ("GET", "/notes/-1", ""),
    ("GET", "/notes/1234567890123456789", ""),
    ("GET", "/notes/caf%C3%A9", ""),
    ("GET", "/notes/a%22b", ""),
    ("GET", "/notes/%FF%00x", ""),
    (
        "GET",
        "/notes/ééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé",
        "",
    ),
    ("GET", "/notes/1/", ""),
    ("DELETE", "/notes/1", ""),
    ("DELETE", "/notes/1", ""),
    ("DELETE", "/notes/x", ""),
    ("POST", "/notes", ""),
    ("POST", "/notes", "{"),
    ("POST", "/notes", "[1]"),
    ("POST", "/notes", r#"{"text": 5}"#),
    ("POST", "/notes", r#"{"text": "a"} x"#),
    ("POST", "/notes", r#"{"txt": "a"}"#),
    ("POST", "/notes", r#"{"text": "\x"}"#),
    ("POST", "/notes", r#"{"text": "\ud800"}"#),
    ("POST", "/notes", r#"{"text": "\ud800\u0041"}"#),
    ("POST", "/notes", r#"{"text": "\u12"}"#),
    ("POST", "/notes", "{\"text\": \"raw\u{1}control\"}"),
    // Bytes that are not UTF-8 in a string (`<XX>` is sent as that byte): a lone
    // continuation byte, an overlong '/', a UTF-16 surrogate, a cut sequence.
    ("POST", "/notes", r#"{"text": "<FF><FE>"}"#),
    ("POST", "/notes", r#"{"text": "<C0><AF>"}"#),
    ("POST", "/notes", r#"{"text": "<ED><A0><80>"}"#),
    ("POST", "/notes", r#"{"text": "ok <E2><82>"}"#),
    ("POST", "/notes", r#"{"text": "<F4><90><80><80>"}"#),
    ("POST", "/notes", r#"{"text": "open"#),
    (
        "POST",
        "/notes",
        r#"{"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]], "text": "deep"}"#,
    ),
    ("POST", "/notes", r#"{"a": tru, "text": "x"}"#),
    ("POST", "/notes", r#"{"a" 1}"#),
    ("PUT", "/notes", ""),
];
const AFTER: &[(&str, &str, &str)] = &[
    ("GET", "/notes", ""),
    ("POST", "/notes", r#"{"text": "after the restart"}"#),
    ("GET", "/notes/6", ""),
    ("DELETE", "/notes/6", ""),
    ("GET", "/notes", ""),
];

fn run(f: &Fixture, wasm: &std::path::Path, script: &[(&str, &str, &str)]) -> Transcript {
    let rt = f.run_module("notes", wasm, NOTES, 1);
    let addr = ext_http::listening(f.host.shared()).unwrap();
    let out = script
        .iter()
        .map(|(method, path, body)| {
            let (status, head, answer) = http_once_bytes(addr, method, path, &bytes(body));
            let ty = header(&head, "content-type").unwrap_or("-").to_string();
            format!("{method} {path} {body} -> {status} {ty} {answer}")
        })
        .collect();
    rt.stop();
    out
}

/// A script body's bytes: `<XX>` (two hex digits) is the byte XX.
fn bytes(body: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        let hex = tail.get(..3).filter(|t| b == b'<' && t[2] == b'>');
        match hex.and_then(|h| u8::from_str_radix(std::str::from_utf8(&h[..2]).ok()?, 16).ok()) {
            Some(x) => {
                out.push(x);
                rest = &tail[3..];
            }
            None => {
                out.push(b);
                rest = tail;
            }
        }
    }
    out
}

/// The whole script against one build, with a restart in the middle.
fn transcript(wasm: &std::path::Path) -> Transcript {
    let f = Fixture::new();
    let mut t = run(&f, wasm, BEFORE);
    t.push("-- restart --".into());
    t.extend(run(&f, wasm, AFTER));
    t
}

#[test]
fn notes_in_c_rust_and_go_answer_the_same_script_identically() {
    let Some(c) = c_module("examples/notes/notes.c") else {
        return;
    };
    let Some(rust) = rust_example("notes") else {
        return;
    };
    let Some(go) = go_module("examples/go/notes") else {
        return;
    };
    let want = transcript(&c);
    // The reference itself answers as documented (both could be wrong alike).
    let line = |t: &Transcript, i: usize| t[i].split_once(" -> ").unwrap().1.to_string();
    assert_eq!(line(&want, 0), "200 application/json []");
    assert_eq!(
        line(&want, 1),
        r#"201 application/json {"id": 1, "text": "buy \"milk\" é\n"}"#
    );
    assert_eq!(
        line(&want, 8),
        r#"200 application/json {"id": 2, "text": "two"}"#
    );
    assert!(line(&want, 10).starts_with("404 application/json {\"error\": \"no note 7\"}"));
    assert!(
        line(&want, 16).ends_with(r#"{"error": "no note �\u0000x"}"#),
        "{}",
        want[16]
    );
    assert_eq!(line(&want, 19), "204 - ");
    assert!(line(&want, 23).starts_with("400 application/json {\"error\": \"malformed JSON: "));
    let put = want.iter().position(|l| l.starts_with("PUT ")).unwrap();
    assert!(line(&want, put).starts_with("405 "), "{}", want[put]);
    for bad in want.iter().filter(|l| l.contains("\"<")) {
        assert!(
            bad.ends_with(
                "400 application/json {\"error\": \"malformed JSON: a string that is not UTF-8\"}"
            ),
            "{bad}"
        );
    }
    assert!(
        want.last().unwrap().contains(r#""text": "two"}"#),
        "notes survive the restart: {want:?}"
    );
    for (lang, wasm) in [("Rust", &rust), ("Go", &go)] {
        let got = transcript(wasm);
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            assert_eq!(g, w, "request {i}: {lang} answered differently from C");
        }
        assert_eq!(got.len(), want.len());
    }
}
