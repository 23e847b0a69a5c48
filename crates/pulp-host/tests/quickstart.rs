//! The README's quickstart, followed literally: its build command, `pulp run` of the
//! notes example, every `$ curl` line of its transcript against the running program
//! (the port swapped for the one it got), each output compared with the README's.

mod support;

use support::{pulp, root, skip, Running};

/// The text between `<!-- quickstart -->` and `<!-- /quickstart -->`.
fn quickstart() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("<!-- quickstart -->")
        .expect("a quickstart section");
    let end = readme.find("<!-- /quickstart -->").expect("its end marker");
    readme[start..end].to_string()
}

/// The lines of the first fenced block after `fence` (e.g. "```sh").
fn block<'a>(text: &'a str, fence: &str) -> Vec<&'a str> {
    text.split(fence)
        .nth(1)
        .expect("the block")
        .split("```")
        .next()
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect()
}

#[test]
fn readme_quickstart_runs_as_written() {
    let text = quickstart();
    let commands = block(&text, "```sh");
    let build = commands[0];
    assert!(
        build.starts_with("clang ") && build.contains("examples/notes/notes.c"),
        "{build}"
    );
    assert_eq!(
        commands[1],
        "cargo run -- run examples/notes/pulp.plugin.toml"
    );
    // Run as written, word by word (it has no quoting or shell syntax), so that a
    // missing compiler is a spawn error, and any other failure (a missing header,
    // a compile error in the example) fails the test with the compiler's output.
    assert!(
        !build.contains(['\'', '"', '\\', '$', '`', '|', '&', ';', '<', '>']),
        "the build command is plain words: {build}"
    );
    let mut words = build.split_whitespace();
    let built = std::process::Command::new(words.next().unwrap())
        .args(words)
        .current_dir(root())
        .output();
    match built {
        Ok(o) if o.status.success() => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return skip(
            "clang with wasi-libc (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)",
        ),
        Ok(o) => panic!("{build}\n{}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => panic!("{build}: {e}"),
    }
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        return skip("curl");
    }

    // `cargo run -- run ...` is the program the tests have; a fresh data folder.
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = pulp(dir.path());
    cmd.current_dir(root()).args([
        "run",
        "--listen",
        "127.0.0.1:0",
        "examples/notes/pulp.plugin.toml",
    ]);
    let mut p = Running::start(cmd);
    let line = p.wait_for("listening on http://");
    let addr = line
        .split("http://")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    p.wait_for("plugin started");

    let transcript = block(&text, "```text");
    let mut steps = 0;
    let mut i = 0;
    while i < transcript.len() {
        let command = transcript[i].strip_prefix("$ ").expect("a $ line");
        let mut expected = Vec::new();
        i += 1;
        while i < transcript.len() && !transcript[i].starts_with("$ ") {
            expected.push(transcript[i]);
            i += 1;
        }
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(command.replace("127.0.0.1:8080", &addr))
            .output()
            .unwrap();
        let got = String::from_utf8_lossy(&out.stdout);
        assert_eq!(got.trim_end(), expected.join("\n"), "$ {command}");
        steps += 1;
    }
    assert!(steps >= 7, "the transcript has its requests");
    p.signal("TERM");
    assert!(p.exit_within(30).0.success());
}
