//! Routes of the shared listener: patterns (`/users/:id`, `/files/*rest`), matching
//! with the most specific route winning, and conflicts between plugins.

use std::collections::BTreeMap;
use std::sync::Arc;

/// What a route serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Plain requests, answered with `http_respond`.
    Http,
    /// WebSocket upgrades (GET).
    Ws,
    /// Server-sent event streams (GET).
    Sse,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Http => "HTTP",
            Kind::Ws => "WebSocket",
            Kind::Sse => "SSE",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Static(String),
    Param(String),
    Rest(String),
}

/// A parsed route path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pattern {
    text: String,
    segments: Vec<Segment>,
}

impl Pattern {
    /// Parses `/a/:b/*c`: `:name` captures one segment, a final `*name` the rest.
    pub(crate) fn parse(path: &str) -> Result<Pattern, String> {
        let bad = |why: &str| format!("route path {path:?} {why}");
        if !path.starts_with('/') {
            return Err(bad("must start with /"));
        }
        if path.len() > 1024 {
            return Err(bad("is longer than 1024 bytes"));
        }
        if path.contains(['?', '#']) || path.chars().any(|c| c.is_control() || c == ' ') {
            return Err(bad("has a character a path cannot have"));
        }
        let parts: Vec<&str> = path[1..].split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let name_ok =
                |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            let seg = if let Some(n) = part.strip_prefix(':') {
                if !name_ok(n) {
                    return Err(bad("has a :parameter without a proper name"));
                }
                Segment::Param(n.to_string())
            } else if let Some(n) = part.strip_prefix('*') {
                if !name_ok(n) {
                    return Err(bad("has a *rest without a proper name"));
                }
                if i + 1 != parts.len() {
                    return Err(bad("has a *rest that is not the last segment"));
                }
                Segment::Rest(n.to_string())
            } else {
                Segment::Static(part.to_string())
            };
            segments.push(seg);
        }
        let mut names: Vec<&str> = segments
            .iter()
            .filter_map(|s| match s {
                Segment::Param(n) | Segment::Rest(n) => Some(n.as_str()),
                Segment::Static(_) => None,
            })
            .collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(bad("names a parameter twice"));
        }
        Ok(Pattern {
            text: path.to_string(),
            segments,
        })
    }

    /// The path as registered.
    #[cfg(test)]
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// True for a path without parameters.
    pub(crate) fn is_static(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Static(_)))
    }

    /// Same shape: would match exactly the same paths (parameter names aside).
    fn same_shape(&self, other: &Pattern) -> bool {
        self.segments.len() == other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|(a, b)| match (a, b) {
                    (Segment::Static(x), Segment::Static(y)) => x == y,
                    (Segment::Param(_), Segment::Param(_))
                    | (Segment::Rest(_), Segment::Rest(_)) => true,
                    _ => false,
                })
    }

    /// Matches a raw (still percent-encoded) path; on success returns the captured,
    /// decoded parameters and a specificity score (higher wins).
    fn matches(&self, path: &str) -> Option<(Vec<u8>, BTreeMap<String, String>)> {
        let parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        if parts.len() < self.segments.len() - 1 {
            return None;
        }
        let mut score = Vec::with_capacity(self.segments.len());
        let mut params = BTreeMap::new();
        for (i, seg) in self.segments.iter().enumerate() {
            match seg {
                Segment::Static(s) => {
                    let p = parts.get(i)?;
                    let same = if p.contains('%') {
                        decode(p) == *s
                    } else {
                        p == s
                    };
                    if !same {
                        return None;
                    }
                    score.push(3);
                }
                Segment::Param(n) => {
                    let p = parts.get(i).filter(|p| !p.is_empty())?;
                    params.insert(n.clone(), decode(p));
                    score.push(2);
                }
                Segment::Rest(n) => {
                    if i > parts.len() {
                        return None;
                    }
                    params.insert(n.clone(), decode(&parts[i.min(parts.len())..].join("/")));
                    score.push(1);
                    return Some((score, params));
                }
            }
        }
        (parts.len() == self.segments.len()).then_some((score, params))
    }
}

/// Percent-decodes a path piece (invalid UTF-8 lossily).
pub(crate) fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// One registered route.
pub(crate) struct Route<O> {
    pub(crate) kind: Kind,
    /// Upper-case method; `GET` for WebSocket and SSE routes.
    pub(crate) method: String,
    pub(crate) pattern: Pattern,
    pub(crate) owner: Arc<O>,
}

/// Who may own a route: a plugin, known by name and identity.
pub(crate) trait Owner {
    fn name(&self) -> &str;
    fn same(&self, other: &Self) -> bool;
    /// False once the plugin is closed; its routes no longer count.
    fn alive(&self) -> bool;
}

/// What a request found.
pub(crate) enum Lookup<'a, O> {
    Route(&'a Route<O>, BTreeMap<String, String>),
    /// Some route has this path but none this method: the allowed methods.
    MethodNotAllowed(Vec<String>),
    NotFound,
}

/// Every route of the listener.
pub(crate) struct Router<O> {
    routes: Vec<Route<O>>,
}

impl<O: Owner> Default for Router<O> {
    fn default() -> Self {
        Router { routes: Vec::new() }
    }
}

impl<O: Owner> Router<O> {
    /// Adds a route. The same plugin registering the same route again is fine (a
    /// restarted instance does); a route of the same method and shape owned by
    /// another live plugin is an error naming both.
    pub(crate) fn add(
        &mut self,
        kind: Kind,
        method: &str,
        pattern: Pattern,
        owner: Arc<O>,
    ) -> Result<(), String> {
        self.routes.retain(|r| r.owner.alive());
        if let Some(r) = self
            .routes
            .iter_mut()
            .find(|r| r.method == method && r.pattern.same_shape(&pattern))
        {
            if r.owner.same(&owner) && r.kind == kind {
                r.owner = owner;
                r.pattern = pattern;
                return Ok(());
            }
            return Err(format!(
                "{} route {method} {} of plugin \"{}\" conflicts with {} route {method} {} of plugin \"{}\"",
                kind.name(),
                pattern.text,
                owner.name(),
                r.kind.name(),
                r.pattern.text,
                r.owner.name()
            ));
        }
        self.routes.push(Route {
            kind,
            method: method.to_string(),
            pattern,
            owner,
        });
        Ok(())
    }

    /// Removes every route of `owner`.
    pub(crate) fn remove_owner(&mut self, owner: &O) {
        self.routes
            .retain(|r| !r.owner.same(owner) && r.owner.alive());
    }

    /// The route for `method` and the raw `path`: WebSocket routes only for upgrade
    /// requests, the others only for plain ones.
    pub(crate) fn find(&self, method: &str, path: &str, upgrade: bool) -> Lookup<'_, O> {
        let mut best_score = Vec::new();
        let mut best: Option<(&Route<O>, BTreeMap<String, String>)> = None;
        let mut allowed = Vec::new();
        for r in self.routes.iter().filter(|r| r.owner.alive()) {
            if (r.kind == Kind::Ws) != upgrade {
                continue;
            }
            let Some((score, params)) = r.pattern.matches(path) else {
                continue;
            };
            if r.method != method {
                allowed.push(r.method.clone());
                continue;
            }
            if best.is_none() || score > best_score {
                best_score = score;
                best = Some((r, params));
            }
        }
        match best {
            Some((r, params)) => Lookup::Route(r, params),
            None if !allowed.is_empty() => {
                allowed.sort();
                allowed.dedup();
                Lookup::MethodNotAllowed(allowed)
            }
            None => Lookup::NotFound,
        }
    }
}

#[cfg(fuzzing)]
pub(crate) fn fuzz(data: &[u8]) {
    struct P(String);
    impl Owner for P {
        fn name(&self) -> &str {
            &self.0
        }
        fn same(&self, o: &Self) -> bool {
            self.0 == o.0
        }
        fn alive(&self) -> bool {
            true
        }
    }
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let n = lines.next().map_or(0, |l| l.len() % 8);
    let mut router = Router::default();
    for (i, line) in lines.by_ref().take(n).enumerate() {
        let (method, path) = line.split_once(' ').unwrap_or(("GET", line));
        if let Ok(p) = Pattern::parse(path) {
            let kind = [Kind::Http, Kind::Ws, Kind::Sse][i % 3];
            let _ = router.add(kind, method, p, Arc::new(P(format!("p{}", i % 2))));
        }
    }
    for line in lines {
        let (method, path) = line.split_once(' ').unwrap_or(("GET", line));
        for upgrade in [false, true] {
            if let Lookup::Route(r, params) = router.find(method, path, upgrade) {
                let again = r
                    .pattern
                    .matches(path)
                    .expect("a found route matches its path");
                assert_eq!(again.1, params);
                assert_eq!(r.method, method);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct P(&'static str, bool);
    impl Owner for P {
        fn name(&self) -> &str {
            self.0
        }
        fn same(&self, o: &Self) -> bool {
            self.0 == o.0
        }
        fn alive(&self) -> bool {
            self.1
        }
    }

    fn router(routes: &[(&str, &str, &'static str)]) -> Router<P> {
        let mut r = Router::default();
        for (m, p, o) in routes {
            r.add(
                Kind::Http,
                m,
                Pattern::parse(p).unwrap(),
                Arc::new(P(o, true)),
            )
            .unwrap();
        }
        r
    }

    fn hit(r: &Router<P>, m: &str, p: &str) -> Option<(String, BTreeMap<String, String>)> {
        match r.find(m, p, false) {
            Lookup::Route(r, params) => Some((r.pattern.text().to_string(), params)),
            _ => None,
        }
    }

    #[test]
    fn params_rest_and_precedence() {
        let r = router(&[
            ("GET", "/users/:id", "a"),
            ("GET", "/users/me", "a"),
            ("GET", "/files/*rest", "a"),
            ("GET", "/", "a"),
        ]);
        let (p, params) = hit(&r, "GET", "/users/42").unwrap();
        assert_eq!((p.as_str(), params["id"].as_str()), ("/users/:id", "42"));
        assert_eq!(hit(&r, "GET", "/users/me").unwrap().0, "/users/me");
        assert_eq!(hit(&r, "GET", "/files/a/b%20c").unwrap().1["rest"], "a/b c");
        assert_eq!(hit(&r, "GET", "/files/").unwrap().1["rest"], "");
        assert_eq!(hit(&r, "GET", "/").unwrap().0, "/");
        assert!(hit(&r, "GET", "/users/").is_none());
        assert!(hit(&r, "GET", "/users/1/x").is_none());
        assert!(
            matches!(r.find("POST", "/users/1", false), Lookup::MethodNotAllowed(m) if m == ["GET"])
        );
        assert!(matches!(r.find("GET", "/nope", false), Lookup::NotFound));
    }

    #[test]
    fn conflicts_name_both_plugins_and_dead_owners_do_not_count() {
        let mut r = router(&[("GET", "/a/:x", "one")]);
        let e = r
            .add(
                Kind::Http,
                "GET",
                Pattern::parse("/a/:y").unwrap(),
                Arc::new(P("two", true)),
            )
            .unwrap_err();
        assert!(e.contains("\"one\"") && e.contains("\"two\""), "{e}");
        r.add(
            Kind::Http,
            "GET",
            Pattern::parse("/a/:x").unwrap(),
            Arc::new(P("one", true)),
        )
        .unwrap();
        r.add(
            Kind::Http,
            "POST",
            Pattern::parse("/a/:x").unwrap(),
            Arc::new(P("two", true)),
        )
        .unwrap();
        let mut dead = Router::default();
        dead.add(
            Kind::Http,
            "GET",
            Pattern::parse("/a").unwrap(),
            Arc::new(P("old", false)),
        )
        .unwrap();
        assert!(matches!(dead.find("GET", "/a", false), Lookup::NotFound));
        dead.add(
            Kind::Http,
            "GET",
            Pattern::parse("/a").unwrap(),
            Arc::new(P("new", true)),
        )
        .unwrap();
    }

    #[test]
    fn bad_patterns_are_refused() {
        for p in ["", "a", "/a/:", "/*x/b", "/a?b", "/:x/:x", "/a b"] {
            assert!(Pattern::parse(p).is_err(), "{p}");
        }
    }
}
