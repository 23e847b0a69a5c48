//! The HTTP router against a reference model written here.
//!
//! Each input is read twice:
//!
//! 1. As text, by `ext_http::fuzz_router` (route lines, then request lines): nothing
//!    panics, a found route matches its path again, no two plugins hold overlapping
//!    routes.
//! 2. As a program of router operations on small patterns (bytes → ops below), run
//!    on `ext_http::FuzzRouter` and on [`Model`]: a list of routes scanned in full,
//!    whose overlap test is brute force (is there a path, among every path of up to
//!    three segments over the patterns' values and one fresh value, that both
//!    patterns match?) and whose lookup takes the most specific match by the
//!    documented rule (at each segment a plain segment before `:name` before
//!    `*name`; a pattern ending with the path before a `*name` matching nothing).
//!    Every registration must succeed or fail as the model says (4 naming both
//!    plugins for an overlap with another plugin, 4 for a same-shape route of
//!    another kind, 11 over the route cap), and every lookup of a set of paths
//!    (several spellings of each: `%61` is `a`, `%2F` stays inside its segment)
//!    must find the route, method list or nothing the model finds, with the same
//!    captures.
//!
//! Ops: byte `b`: `b >> 5` is the op (0–5 add, 6 remove the plugin's routes, 7
//! close the plugin, which a later add under its name replaces), `b & 3` the plugin
//! (`p0`, `p1`, `p2`; 3 is `p0`). An add reads a kind byte (`% 3`: HTTP, WebSocket,
//! SSE; bit 2 picks POST for HTTP), a length byte (`% 3 + 1` segments) and one byte
//! per segment (`% 16`, see [`SEGMENTS`]).
#![no_main]

use std::collections::BTreeMap;

use ext_http::{FuzzLookup, FuzzRouter};
use libfuzzer_sys::fuzz_target;

/// Most routes a plugin may hold in the model run.
const MAX_ROUTES: usize = 4;
const OWNERS: [&str; 4] = ["p0", "p1", "p2", "p0"];

/// Pattern segments by byte (`{i}` is the segment's index). Some are bad on purpose:
/// `:` has no name, `:x` twice names a parameter twice, `*r` before the end.
const SEGMENTS: [&str; 16] = [
    "", "a", "%61", "b", "a%2Fb", "c", ":p{i}", ":p{i}", ":q{i}", ":x", "*r", "*q{i}", ":", "%FF",
    "%2561", "%2fb",
];

#[derive(Clone, Debug, PartialEq)]
enum Seg {
    Static(Vec<u8>),
    Param(String),
    Rest(String),
}

/// Percent-decoding as the router does it: `%` and two hex digits is a byte,
/// anything else stays as it is.
fn decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The documented pattern grammar (README "transport.http.inbound").
fn parse(text: &str) -> Option<Vec<Seg>> {
    let rest = text.strip_prefix('/')?;
    if text.len() > 1024
        || text.contains(['?', '#'])
        || text.chars().any(|c| c.is_control() || c == ' ')
    {
        return None;
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let good = |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let mut segs = Vec::new();
    let mut names = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if let Some(n) = p.strip_prefix(':') {
            if !good(n) || names.contains(&n) {
                return None;
            }
            names.push(n);
            segs.push(Seg::Param(n.into()));
        } else if let Some(n) = p.strip_prefix('*') {
            if !good(n) || names.contains(&n) || i + 1 != parts.len() {
                return None;
            }
            names.push(n);
            segs.push(Seg::Rest(n.into()));
        } else {
            segs.push(Seg::Static(decode(p)));
        }
    }
    Some(segs)
}

/// A request path in canonical form: split on `/`, each segment decoded.
fn canonical(path: &str) -> Option<Vec<Vec<u8>>> {
    Some(path.strip_prefix('/')?.split('/').map(decode).collect())
}

/// Whether the pattern matches the canonical path (what `captures` would find).
fn matches(segs: &[Seg], path: &[Vec<u8>]) -> bool {
    for (i, s) in segs.iter().enumerate() {
        match s {
            Seg::Static(v) if path.get(i) == Some(v) => {}
            Seg::Static(_) => return false,
            Seg::Param(_) if path.get(i).is_some_and(|v| !v.is_empty()) => {}
            Seg::Param(_) => return false,
            Seg::Rest(_) => return true,
        }
    }
    path.len() == segs.len()
}

fn captures(segs: &[Seg], path: &[Vec<u8>]) -> Option<BTreeMap<String, String>> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut params = BTreeMap::new();
    for (i, s) in segs.iter().enumerate() {
        match s {
            Seg::Static(v) if path.get(i) == Some(v) => {}
            Seg::Static(_) => return None,
            Seg::Param(n) => {
                let v = path.get(i).filter(|v| !v.is_empty())?;
                params.insert(n.clone(), text(v));
            }
            Seg::Rest(n) => {
                params.insert(n.clone(), text(&path[i.min(path.len())..].join(&b'/')));
                return Some(params);
            }
        }
    }
    (path.len() == segs.len()).then_some(params)
}

/// How specific a match is, compared lexicographically: per segment plain 3,
/// `:name` 2, `*name` 1; a pattern without `*name` ends with a 4.
fn specificity(segs: &[Seg]) -> Vec<u8> {
    let mut k: Vec<u8> = segs
        .iter()
        .map(|s| match s {
            Seg::Static(_) => 3,
            Seg::Param(_) => 2,
            Seg::Rest(_) => 1,
        })
        .collect();
    if !matches!(segs.last(), Some(Seg::Rest(_))) {
        k.push(4);
    }
    k
}

/// Same shape: the same segments, parameter names aside.
fn same_shape(a: &[Seg], b: &[Seg]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Seg::Static(x), Seg::Static(y)) => x == y,
            (Seg::Param(_), Seg::Param(_)) | (Seg::Rest(_), Seg::Rest(_)) => true,
            _ => false,
        })
}

/// Every path of `1..=depth` segments over `pieces`.
fn paths(pieces: &[&str], depth: usize) -> Vec<String> {
    let mut level = vec![String::new()];
    let mut all = Vec::new();
    for _ in 0..depth {
        level = level
            .iter()
            .flat_map(|p| pieces.iter().map(move |s| format!("{p}/{s}")))
            .collect();
        all.extend(level.iter().cloned());
    }
    all
}

struct Universe {
    /// One spelling of every value a pattern segment can hold, and a fresh one:
    /// two patterns of up to three segments overlap if and only if one of these
    /// paths matches both.
    witnesses: Vec<Vec<Vec<u8>>>,
    /// Paths looked up after each registration (up to two segments, one spelling
    /// each) and at the end (up to three; many spellings of up to two; four): a
    /// third and a half of them, which ones chosen by the op count and the input's
    /// length, to keep the target fast.
    short: Vec<String>,
    all: Vec<String>,
}

fn universe() -> &'static Universe {
    static U: std::sync::OnceLock<Universe> = std::sync::OnceLock::new();
    U.get_or_init(|| {
        let values = ["", "a", "b", "c", "a%2Fb", "%2fb", "%ff", "%2561", "z"];
        let spellings = [
            "", "a", "%61", "A", "b", "c", "z", "a%2Fb", "a%2fb", "a/b", "%2fb", "%ff", "%FF",
            "%2561", "%",
        ];
        let short = paths(&values, 2);
        let mut all = paths(&values, 3);
        all.extend(paths(&spellings, 2));
        all.extend(
            paths(&["", "a", "z"], 4)
                .into_iter()
                .filter(|p| p.matches('/').count() == 4),
        );
        Universe {
            witnesses: paths(&values, 3)
                .iter()
                .map(|p| canonical(p).unwrap())
                .collect(),
            short,
            all,
        }
    })
}

struct Route {
    owner: &'static str,
    kind: u8,
    method: &'static str,
    text: String,
    segs: Vec<Seg>,
    /// Which of the universe's witnesses the pattern matches.
    hits: Vec<bool>,
    specificity: Vec<u8>,
}

#[derive(Default)]
struct Model {
    routes: Vec<Route>,
}

impl Model {
    fn hits(segs: &[Seg]) -> Vec<bool> {
        universe()
            .witnesses
            .iter()
            .map(|p| matches(segs, p))
            .collect()
    }

    /// What registering should do: `Ok`, or the status and the plugins the
    /// message must name.
    fn add(
        &mut self,
        kind: u8,
        method: &'static str,
        text: &str,
        owner: &'static str,
    ) -> Result<(), (i32, Vec<&'static str>)> {
        let Some(segs) = parse(text) else {
            return Err((4, vec![]));
        };
        let hits = Self::hits(&segs);
        let overlap = |r: &Route| r.hits.iter().zip(&hits).any(|(a, b)| *a && *b);
        let others: Vec<&'static str> = self
            .routes
            .iter()
            .filter(|r| r.owner != owner && r.method == method && overlap(r))
            .map(|r| r.owner)
            .collect();
        if !others.is_empty() {
            return Err((4, others));
        }
        let same = self
            .routes
            .iter()
            .position(|r| r.owner == owner && r.method == method && same_shape(&r.segs, &segs));
        match same {
            Some(i) if self.routes[i].kind != kind => Err((4, vec![owner])),
            Some(i) => {
                self.routes[i].text = text.to_string();
                self.routes[i].segs = segs;
                self.routes[i].hits = hits;
                self.routes[i].specificity = specificity(&self.routes[i].segs);
                Ok(())
            }
            None if self.routes.iter().filter(|r| r.owner == owner).count() >= MAX_ROUTES => {
                Err((11, vec![]))
            }
            None => {
                let specificity = specificity(&segs);
                self.routes.push(Route {
                    owner,
                    kind,
                    method,
                    text: text.into(),
                    segs,
                    hits,
                    specificity,
                });
                Ok(())
            }
        }
    }

    fn find(&self, method: &str, path: &str, upgrade: bool) -> FuzzLookup {
        let Some(canon) = canonical(path) else {
            return FuzzLookup::NotFound;
        };
        let matching: Vec<&Route> = self
            .routes
            .iter()
            .filter(|r| (r.kind == 1) == upgrade && matches(&r.segs, &canon))
            .collect();
        let best = matching
            .iter()
            .filter(|r| r.method == method)
            .max_by_key(|r| &r.specificity);
        if let Some(r) = best {
            let ties = matching
                .iter()
                .filter(|o| o.method == method && o.specificity == r.specificity)
                .count();
            assert_eq!(
                ties, 1,
                "the model holds two equally specific routes for {method} {path}"
            );
            return FuzzLookup::Route {
                owner: r.owner.to_string(),
                method: r.method.to_string(),
                pattern: r.text.clone(),
                params: captures(&r.segs, &canon).expect("it matches"),
            };
        }
        let mut methods: Vec<String> = matching.iter().map(|r| r.method.to_string()).collect();
        methods.sort();
        methods.dedup();
        if methods.is_empty() {
            FuzzLookup::NotFound
        } else {
            FuzzLookup::MethodNotAllowed(methods)
        }
    }
}

/// Looks up every `stride`-th path from `first` on both sides.
fn check_lookups(
    router: &FuzzRouter,
    model: &Model,
    paths: &[String],
    (first, stride): (usize, usize),
    log: &[String],
) {
    for path in paths.iter().skip(first % stride).step_by(stride) {
        for (method, upgrade) in [("GET", false), ("POST", false), ("GET", true)] {
            let got = router.find(method, path, upgrade);
            let want = model.find(method, path, upgrade);
            assert_eq!(
                got,
                want,
                "{method} {path} (upgrade {upgrade}) after:\n{}",
                log.join("\n")
            );
        }
    }
}

fn model_run(data: &[u8]) {
    let router = FuzzRouter::default();
    let mut model = Model::default();
    let mut log = Vec::new();
    let mut bytes = data.iter().copied();
    let mut ops = 0;
    while let Some(b) = bytes.next() {
        ops += 1;
        if ops > 24 {
            break;
        }
        let owner = OWNERS[(b & 3) as usize];
        match b >> 5 {
            6 => {
                log.push(format!("remove {owner}"));
                router.remove_owner(owner);
                model.routes.retain(|r| r.owner != owner);
            }
            7 => {
                log.push(format!("close {owner}"));
                router.close(owner);
                model.routes.retain(|r| r.owner != owner);
            }
            _ => {
                let k = bytes.next().unwrap_or(0);
                let kind = k % 3;
                let method = if kind == 0 && k & 4 != 0 {
                    "POST"
                } else {
                    "GET"
                };
                let n = bytes.next().unwrap_or(0) % 3 + 1;
                let text: String = (0..n)
                    .map(|i| {
                        let s = SEGMENTS[(bytes.next().unwrap_or(0) % 16) as usize];
                        format!("/{}", s.replace("{i}", &i.to_string()))
                    })
                    .collect();
                let got = router.add(kind, method, &text, owner, MAX_ROUTES);
                let want = model.add(kind, method, &text, owner);
                log.push(format!("add {owner} kind {kind} {method} {text}: {got:?}"));
                match (&got, &want) {
                    (Ok(()), Ok(())) => {}
                    (Err((code, message)), Err((want_code, names))) => {
                        assert_eq!(code, want_code, "{}", log.join("\n"));
                        if *want_code == 4 && names.iter().any(|n| *n != owner) {
                            assert!(
                                message.contains(&format!("\"{owner}\""))
                                    && names.iter().any(|n| message.contains(&format!("\"{n}\""))),
                                "an overlap must name both plugins: {}",
                                log.join("\n")
                            );
                        }
                    }
                    _ => panic!("the model says {want:?}:\n{}", log.join("\n")),
                }
                check_lookups(&router, &model, &universe().short, (ops, 3), &log);
            }
        }
    }
    check_lookups(&router, &model, &universe().all, (data.len(), 2), &log);
}

fuzz_target!(|data: &[u8]| {
    ext_http::fuzz_router(data);
    model_run(data);
});
