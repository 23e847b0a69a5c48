#!/usr/bin/env python3
"""Writes the seed corpora of the `imports` and `router` fuzz targets:
fuzz/corpus/<target>/seed-*. Run it again when an import is added or renamed (the
`imports` input picks an import by its index among all imports sorted by name, read
here from the `Import::status` tables under crates/).

    python3 fuzz/seeds.py
"""

import pathlib
import re
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def pack(v):
    """MessagePack, enough for requests: nil, bool, int, float, str, bin, array, map."""
    if v is None:
        return b"\xc0"
    if v is True or v is False:
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        return b"\xd3" + struct.pack(">q", v) if v < 0 else b"\xcf" + struct.pack(">Q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32:
            return bytes([0xA0 | len(b)]) + b
        return b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(v, bytes):
        return b"\xc5" + struct.pack(">H", len(v)) + v
    if isinstance(v, list):
        return b"\xdc" + struct.pack(">H", len(v)) + b"".join(pack(x) for x in v)
    if isinstance(v, dict):
        out = b"\xde" + struct.pack(">H", len(v))
        for k, x in v.items():
            out += pack(k) + pack(x)
        return out
    raise TypeError(v)


def imports():
    found = {}
    for f in (ROOT / "crates").glob("*/src/**/*.rs"):
        for name, n in re.findall(r'Import::status\("([a-z_0-9]+)",\s*(\d+)\)', f.read_text()):
            found[name] = int(n)
    return sorted(found.items())


# Bits of the mode byte (fuzz_targets/imports.rs).
WILD, HUGE, BAD_OUT, GROW, ALLOC_TRAP, ALLOC_ZERO, ALLOC_OOB = 1, 2, 4, 8, 16, 32, 48

SQL_DENIED = [
    "ATTACH DATABASE 'other.db' AS o",
    "ATTACH DATABASE ':memory:' AS m",
    "ATTACH 'file:x?mode=memory&cache=shared' AS m",
    "ATTACH 'a' || 'b.db' AS o",
    "DETACH DATABASE temp",
    "VACUUM INTO 'copy.db'",
    "SELECT load_extension('libx')",
    "SELECT fts3_tokenizer('simple')",
    "SELECT sqlite_log(1, 'x')",
    "SELECT readfile('/etc/passwd')",
    "CREATE VIRTUAL TABLE f USING fts3(body)",
    "CREATE VIRTUAL TABLE f USING fts4(body)",
    "SELECT * FROM sqlite_dbpage",
    "SELECT * FROM pragma_database_list",
    "PRAGMA hard_heap_limit = 1",
    "PRAGMA soft_heap_limit = 1",
    "PRAGMA threads = 4",
    "PRAGMA temp_store_directory = '/tmp'",
    "PRAGMA data_store_directory = '/tmp'",
    "PRAGMA database_list",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA synchronous = OFF",
    "PRAGMA cache_size = 1",
    "PRAGMA mmap_size = 268435456",
    "PRAGMA temp_store = FILE",
    "PRAGMA locking_mode = EXCLUSIVE",
    "PRAGMA writable_schema = ON",
    "PRAGMA trusted_schema = ON",
    "CREATE TABLE t(x DEFAULT (load_extension('x')))",
    "CREATE VIEW v AS SELECT fts3_tokenizer('simple')",
    "CREATE TABLE t(x); CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT load_extension('x'); END; INSERT INTO t VALUES (1)",
    "CREATE TABLE t(x CHECK (sqlite_log(1, 'x')))",
]

SQL_ALLOWED = [
    "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL); INSERT INTO t(v) VALUES ('a'), ('b'); SELECT * FROM t",
    "CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE c(p INTEGER REFERENCES p(id)); INSERT INTO c VALUES (7)",
    "CREATE VIRTUAL TABLE f USING fts5(body); INSERT INTO f VALUES ('hello world'); SELECT * FROM f WHERE f MATCH 'hello'",
    "CREATE VIRTUAL TABLE r USING rtree(id, x0, x1); INSERT INTO r VALUES (1, 0, 1)",
    "SELECT json_extract('{\"a\": [1, 2]}', '$.a[1]'), date('2024-01-01', '+1 day'), abs(-3), sqrt(2)",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
    "SELECT randomblob(100000)",
    "SELECT zeroblob(1000000000)",
    "PRAGMA foreign_keys",
    "PRAGMA journal_mode",
    "PRAGMA user_version = 3",
    "BEGIN; CREATE TABLE open(a)",
    "VACUUM",
    "SELECT",
    "",
]


def sql(text, params=b""):
    """A 6-parameter request: the parameters' length, the SQL, the parameters."""
    assert len(params) < 256
    text = text if isinstance(text, bytes) else text.encode()
    return bytes([len(params)]) + text + params


def requests():
    """(import, label, request) triples."""
    out = []
    for kind in ["sqlite_exec", "sqlite_query"]:
        for i, q in enumerate(SQL_DENIED):
            out.append((kind, f"denied-{i}", sql(q)))
        for i, q in enumerate(SQL_ALLOWED):
            out.append((kind, f"allowed-{i}", sql(q)))
        out += [
            (kind, "attach-bound", sql("ATTACH ? AS o", pack(["other.db"]))),
            (kind, "params", sql("SELECT ?, ?, ?, ?, ?, ?", pack([None, True, -5, 1.5, "s", b"\x00\xff"]))),
            (kind, "params-count", sql("SELECT ?", pack([1, 2]))),
            (kind, "params-not-array", sql("SELECT ?", pack({"a": 1}))),
            (kind, "params-garbage", sql("SELECT ?", b"\x91\xc1")),
            (kind, "not-utf8", sql(b"SELECT '\xff'")),
        ]
    out += [
        ("entropy_read", "16", pack({"n": 16})),
        ("entropy_read", "0", pack({"n": 0})),
        ("entropy_read", "over", pack({"n": 70000})),
        ("entropy_read", "array", pack([16])),
        ("entropy_fill", "32", bytes(32)),
        ("log", "escapes", "hello\nworld\x1b[31m\u2028\u202e".encode()),
        ("log", "not-utf8", b"\xff\xfe"),
        ("last_error", "slots", bytes(8)),
        ("fs_read", "hello", b"hello.txt"),
        ("fs_read", "dir", b"dir"),
        ("fs_read", "missing", b"nope.txt"),
        ("fs_read", "escape", b"../../etc/passwd"),
        ("fs_read", "absolute", b"/etc/passwd"),
        ("fs_write", "new", b"a/b/c.txt"),
        ("fs_write", "dot", b"a/./b"),
        ("fs_delete", "hello", b"hello.txt"),
        ("fs_delete", "dir", b"dir"),
        ("fs_delete", "root", b"."),
        ("http_fetch", "allowed", pack({"url": "http://192.0.2.1/", "method": "GET"})),
        ("http_fetch", "denied", pack({"url": "http://127.0.0.1:1/"})),
        ("http_fetch", "metadata", pack({"url": "http://169.254.169.254/latest/"})),
        ("http_fetch", "file", pack({"url": "file:///etc/passwd"})),
        ("http_fetch", "post", pack({"url": "http://192.0.2.1/x", "method": "POST", "headers": {"Host": "evil"}, "body": b"x", "timeout_ms": 1})),
        ("http_register", "param", pack({"method": "GET", "path": "/a/:b"})),
        ("http_register", "rest", pack({"method": "POST", "path": "/files/*rest"})),
        ("http_register", "bad", pack({"method": "GET", "path": "/*x/y"})),
        ("http_respond", "unknown", pack({"id": 1, "status": 200, "headers": {"X": "y"}, "body": b"x"})),
        ("ws_register", "path", pack({"path": "/ws"})),
        ("ws_send", "unknown", pack({"conn_id": 1, "opcode": 1, "payload": b"x"})),
        ("ws_close", "long-reason", pack({"conn_id": 1, "code": 1000, "reason": "r" * 200})),
        ("sse_register", "path", pack({"path": "/events"})),
        ("sse_register", "param", pack({"path": "/events/:x"})),
        ("sse_emit", "event", pack({"path": "/events", "id": "1", "event": "e", "data": "x\ny"})),
        ("docker_run", "granted", pack({"image": "none/x", "cmd": ["true"], "env": {"A": "b"}, "timeout_ms": 10})),
        ("docker_run", "denied", pack({"image": "alpine", "cmd": ["sh"]})),
        ("docker_run", "bad-env", pack({"image": "none/x", "env": {"A=B": "c"}})),
        ("docker_run", "memory", pack({"image": "none/x", "mem_limit_mb": 1, "cpu_limit": 1e9})),
        ("docker_create", "named", pack({"image": "none/x", "name": "../x"})),
        ("docker_get", "id", pack({"id": "abc"})),
        ("docker_list", "filter", pack({"filter": {"state": "running"}})),
        ("docker_list", "bad-filter", pack({"filter": {"label": "x"}})),
        ("docker_exec", "cmd", pack({"id": "abc", "cmd": ["ls"]})),
        ("docker_logs", "tail", pack({"id": "abc", "tail": 10})),
        ("docker_stats", "id", pack({"id": "abc"})),
        ("docker_files_read", "path", pack({"id": "abc", "path": "/etc/passwd"})),
        ("docker_files_read", "dotdot", pack({"id": "abc", "path": "/a/../b"})),
        ("docker_files_write", "path", pack({"id": "abc", "path": "/tmp/x", "data": b"x"})),
        ("docker_restart", "id", pack({"id": "abc"})),
        ("docker_destroy", "id", pack({"id": "abc"})),
        ("docker_events_poll", "limit", pack({"since_nanos": 0, "limit": 10})),
    ]
    return out


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data)


def imports_corpus():
    names = imports()
    index = {n: i for i, (n, _) in enumerate(names)}
    for old in (CORPUS / "imports").glob("seed-*"):
        old.unlink()
    for name, label, req in requests():
        write("imports", f"{name}-{label}", bytes([index[name], 0]) + req)
    # Every game on one request that succeeds and one that writes a result.
    for name, label, req in [
        ("entropy_read", "16", pack({"n": 16})),
        ("fs_read", "hello", b"hello.txt"),
        ("sqlite_query", "select", sql("SELECT 1, 'two', x'03'")),
        ("http_register", "param", pack({"method": "GET", "path": "/a/:b"})),
        ("log", "line", b"a log line"),
    ]:
        for mode, game in [(WILD, "wild"), (HUGE, "huge"), (BAD_OUT, "bad-out"), (GROW, "grow"),
                           (ALLOC_TRAP, "alloc-traps"), (ALLOC_ZERO, "alloc-0"),
                           (ALLOC_OOB, "alloc-outside"), (BAD_OUT | ALLOC_TRAP, "bad-out-alloc-traps")]:
            write("imports", f"{name}-{label}-{game}", bytes([index[name], mode]) + req)


def router_corpus():
    for old in (CORPUS / "router").glob("seed-*"):
        old.unlink()
    # As text (ext_http::fuzz_router): a first line whose length mod 8 is the number
    # of route lines, the routes, then request lines.
    write("router", "text", b"xxxx\nGET /a/:x\nGET /a/b\nGET /*r\nPOST /a/%61\n/a/1\n/a/b\n/\nPOST /a/a")
    write("router", "text-encoded", b"xx\nGET /caf%C3%A9\nGET /caf%25C3%25A9\n/caf%c3%a9\n/caf%25C3%25A9")

    # As ops (the model run): op << 5 | plugin, then kind, length, segments.
    def add(plugin, segs, kind=0, post=False):
        return bytes([plugin, kind | (4 if post else 0), len(segs) - 1] + segs)

    A, A61, B, AB, C, P, Q, X, REST, RESTQ, BAD, FF = 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13
    programs = {
        "conflict": add(0, [A, P]) + add(1, [A, B]) + add(1, [A, B], post=True),
        "specific": add(0, [A, P]) + add(0, [A, B]) + add(0, [REST]) + add(0, [A]) + add(0, [A, REST]),
        "spellings": add(0, [A61, B]) + add(1, [A, B]) + add(1, [AB]) + add(2, [FF]),
        "kinds": add(0, [A], kind=1) + add(0, [A], kind=0) + add(1, [A], kind=2) + add(0, [A61], kind=1),
        "cap": add(0, [A]) + add(0, [B]) + add(0, [C]) + add(0, [A, B]) + add(0, [A, C]) + add(0, [A61]),
        "close": add(0, [P, P]) + bytes([7 << 5 | 0]) + add(1, [A, B]) + add(0, [X, Q]),
        "remove": add(0, [REST]) + bytes([6 << 5 | 0]) + add(1, [A, RESTQ]) + add(0, [BAD]),
        "bad": add(0, [REST, A]) + add(0, [X, X]) + add(0, [BAD]) + add(1, [0, 0, 0]),
    }
    for name, data in programs.items():
        write("router", f"ops-{name}", data)


if __name__ == "__main__":
    imports_corpus()
    router_corpus()
    print(f"seeds written under {CORPUS}")
