//! storage.fs against a real folder: round trips, hostile paths, symlinks made by
//! the test, size limits.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::PathBuf;

use pulp_tests::{Driver, Fixture};

const DECL: &str = "capabilities = [\"storage.fs\", \"test.record\"]";

fn driver(f: &Fixture, name: &str, extra: &str) -> Option<Driver> {
    Driver::start(f, name, &format!("{DECL}\n{extra}"))
}

fn root(f: &Fixture, name: &str) -> PathBuf {
    f.dir.path().join("data").join(name).join("files")
}

#[test]
fn write_read_delete_round_trips() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "files", "") else {
        return;
    };
    assert_eq!(
        d.call("fs_write", b"notes/2026/today.txt", b"first").status,
        0
    );
    assert_eq!(
        d.call("fs_write", b"notes/2026/today.txt", b"second, longer")
            .status,
        0,
        "replace"
    );
    let o = d.call("fs_read", b"notes/2026/today.txt", b"");
    assert_eq!((o.status, o.result.as_slice()), (0, &b"second, longer"[..]));
    let on_disk = root(&f, "files").join("notes/2026/today.txt");
    assert_eq!(std::fs::read(&on_disk).unwrap(), b"second, longer");
    assert_eq!(
        std::fs::metadata(&on_disk).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(d.call("fs_write", b"empty", b"").status, 0);
    let o = d.call("fs_read", b"empty", b"");
    assert_eq!(
        (o.status, o.result.len()),
        (0, 0),
        "an empty file reads as (0, 0)"
    );
    assert_eq!(d.call("fs_delete", b"notes/2026/today.txt", b"").status, 0);
    assert!(!on_disk.exists());
    let o = d.call("fs_read", b"notes/2026/today.txt", b"");
    assert_eq!(o.status, 6, "{o:?}");
    assert_eq!(d.call("fs_delete", b"notes/2026/today.txt", b"").status, 6);
    assert_eq!(
        d.call("fs_delete", b"notes/2026", b"").status,
        0,
        "an empty folder can go"
    );
    let leftovers: Vec<_> = std::fs::read_dir(root(&f, "files").join("notes"))
        .unwrap()
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary files left behind: {leftovers:?}"
    );
}

#[test]
fn hostile_paths_are_invalid_and_touch_nothing_outside() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "jail", "") else {
        return;
    };
    let outside = f.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"do not touch").unwrap();
    let root = root(&f, "jail");
    symlink(&outside, root.join("link_dir")).unwrap();
    symlink(outside.join("secret"), root.join("link_file")).unwrap();
    symlink("../../../outside", root.join("rel_link")).unwrap();
    std::fs::create_dir_all(root.join("sub")).unwrap();
    symlink("/etc", root.join("sub/etc")).unwrap();

    let long = "a".repeat(256);
    let deep = "a/".repeat(2100) + "x";
    let hostile: Vec<&str> = vec![
        "",
        "/",
        "/etc/passwd",
        "..",
        "../outside/secret",
        "a/../../outside/secret",
        ".",
        "./secret",
        "a/./b",
        "a//b",
        "a/",
        "\\outside\\secret",
        "a\\..\\..\\secret",
        "a\0b",
        "link_dir/secret",
        "link_dir/new",
        "link_file",
        "rel_link/secret",
        "sub/etc/passwd",
        "sub/etc/../../outside/secret",
        &long,
        &deep,
    ];
    assert!(hostile.len() >= 20);
    for path in &hostile {
        let p = path.as_bytes();
        let r = d.call("fs_read", p, b"");
        assert_eq!(r.status, 4, "read {path:?}: {r:?}");
        if *path != "link_file" {
            // Writing over the link itself would replace the link, not its target.
            let w = d.call("fs_write", p, b"pwned");
            assert_eq!(w.status, 4, "write {path:?}: {w:?}");
        }
        if !matches!(*path, "link_file" | "link_dir") {
            let x = d.call("fs_delete", p, b"");
            assert_eq!(x.status, 4, "delete {path:?}: {x:?}");
        }
    }
    // Deleting a symlink removes the link, never its target.
    assert_eq!(d.call("fs_delete", b"link_file", b"").status, 0);
    assert_eq!(
        std::fs::read(outside.join("secret")).unwrap(),
        b"do not touch"
    );
    let names: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["secret"], "nothing was written outside the root");
    assert!(root.exists(), "the root itself cannot be deleted");
}

#[test]
fn sizes_over_the_limit_give_11() {
    let f = Fixture::new();
    let Some(mut d) = driver(
        &f,
        "small",
        "[capability.\"storage.fs\"]\nmax_file_bytes = 1000",
    ) else {
        return;
    };
    assert_eq!(d.call("fs_write", b"ok", &[7; 1000]).status, 0);
    let o = d.call("fs_write", b"big", &[7; 1001]);
    assert_eq!(o.status, 11, "{o:?}");
    std::fs::write(root(&f, "small").join("planted"), [1u8; 5000]).unwrap();
    let o = d.call("fs_read", b"planted", b"");
    assert_eq!(o.status, 11, "{o:?}");
    assert!(o.error.contains("1000-byte limit"), "{}", o.error);
}

#[test]
fn a_folder_is_not_a_file() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "dirs", "") else {
        return;
    };
    assert_eq!(d.call("fs_write", b"a/b", b"x").status, 0);
    assert_eq!(d.call("fs_read", b"a", b"").status, 4);
    assert_eq!(
        d.call("fs_write", b"a", b"x").status,
        4,
        "cannot replace a folder with a file"
    );
    assert_ne!(
        d.call("fs_delete", b"a", b"").status,
        0,
        "a folder that is not empty stays"
    );
}

#[test]
fn undeclared_fs_gets_99() {
    let f = Fixture::new();
    let Some(mut d) = Driver::start(&f, "nofs", "capabilities = [\"test.record\"]") else {
        return;
    };
    assert_eq!(d.call("fs_write", b"x", b"y").status, 99);
    assert_eq!(d.call("fs_read", b"x", b"").status, 99);
    assert!(!root(&f, "nofs").exists());
}
