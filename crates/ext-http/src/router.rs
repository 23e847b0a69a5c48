//! Routes of the shared listener, owned by plugins: patterns (`/users/:id`,
//! `/files/*rest`), the rule that keeps one plugin's paths away from another's, the
//! per-plugin route cap, and matching against an immutable table.
//!
//! One canonical form for matching: a request path is split on `/` as sent, then
//! each segment is percent-decoded to bytes (`%2F` stays inside its segment, and
//! nothing is normalised: `.` and `..` are plain segments). Pattern segments are
//! decoded the same way when registered. Matching and the overlap rule both see only
//! decoded segments, so every spelling of a path (`/hello/admin`, `/hello/%61dmin`)
//! reaches the same route.
//!
//! Two live plugins never hold overlapping routes: routes of the same method whose
//! patterns both match some path, whatever their kind (HTTP, WebSocket, SSE). Within
//! one plugin overlaps are fine and the most specific route wins.
//!
//! Requests are matched against a snapshot: a segment trie behind an `Arc`, taken
//! under a lock held only for that clone. Registrations are serialised by a lock of
//! their own and publish a new trie built by path copying, so a plugin registering
//! routes never holds up its neighbours' requests, and a lookup walks the path's
//! segments, not the list of routes.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use percent_encoding::{percent_decode_str, AsciiSet, CONTROLS};
use pulp_ext::{Error, Status};

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
    /// Matches one segment equal to these (decoded) bytes.
    Static(Arc<[u8]>),
    /// Matches one non-empty segment.
    Param(String),
    /// Matches the remaining segments, none or more (always last).
    Rest(String),
}

/// A parsed route path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pattern {
    text: String,
    segments: Vec<Segment>,
}

/// Bytes shown percent-encoded when a path is written out in a message.
const SHOWN_ENCODED: &AsciiSet = &CONTROLS.add(b' ').add(b'%').add(b'/').add(b'?').add(b'#');

/// A request path in canonical form: split on `/` as sent, each segment decoded.
fn canonical(path: &str) -> Option<Vec<Cow<'_, [u8]>>> {
    Some(
        path.strip_prefix('/')?
            .split('/')
            .map(|s| Cow::from(percent_decode_str(s)))
            .collect(),
    )
}

impl Pattern {
    /// Parses `/a/:b/*c`: `:name` captures one segment, a final `*name` the rest;
    /// other segments are percent-decoded (`/caf%C3%A9` is `/café`).
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
                let decoded: Cow<[u8]> = percent_decode_str(part).into();
                Segment::Static(decoded.into())
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

    /// The path as registered (a metric's `route` label).
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// True for a path without parameters.
    pub(crate) fn is_static(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Static(_)))
    }

    /// Same shape: matches exactly the same paths (parameter names aside).
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

    /// A request path both patterns match, if there is one: the two overlap exactly
    /// when this is `Some`. A static segment meets an equal static or a `:param`
    /// (when not empty); two `:param`s meet on any segment; a `*rest` meets whatever
    /// is left of the other, including nothing.
    pub(crate) fn overlap(&self, other: &Pattern) -> Option<String> {
        fn fill(s: &Segment) -> Option<&[u8]> {
            match s {
                Segment::Static(b) => Some(b),
                Segment::Param(_) => Some(b"x"),
                Segment::Rest(_) => None,
            }
        }
        let (a, b) = (&self.segments, &other.segments);
        let mut path: Vec<&[u8]> = Vec::new();
        for i in 0..a.len().max(b.len()) {
            match (a.get(i), b.get(i)) {
                (Some(Segment::Rest(_)), _) => {
                    path.extend(b.get(i..).unwrap_or_default().iter().map_while(fill));
                    break;
                }
                (_, Some(Segment::Rest(_))) => {
                    path.extend(a.get(i..).unwrap_or_default().iter().map_while(fill));
                    break;
                }
                (None, _) | (_, None) => return None,
                (Some(Segment::Static(x)), Some(Segment::Static(y))) if x == y => path.push(x),
                (Some(Segment::Static(s)), Some(Segment::Param(_)))
                | (Some(Segment::Param(_)), Some(Segment::Static(s)))
                    if !s.is_empty() =>
                {
                    path.push(s)
                }
                (Some(Segment::Param(_)), Some(Segment::Param(_))) => path.push(b"x"),
                _ => return None,
            }
        }
        if path.is_empty() {
            return Some("/".into()); // one empty segment, which a `*rest` takes
        }
        Some(
            path.iter()
                .map(|s| format!("/{}", percent_encoding::percent_encode(s, SHOWN_ENCODED)))
                .collect(),
        )
    }

    /// Matches a raw (still percent-encoded) request path; the captured parameters.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn matches(&self, path: &str) -> Option<BTreeMap<String, String>> {
        self.captures(&canonical(path)?)
    }

    /// Matches a canonical path; the captured parameters (lossy UTF-8).
    fn captures(&self, path: &[Cow<'_, [u8]>]) -> Option<BTreeMap<String, String>> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut params = BTreeMap::new();
        for (i, seg) in self.segments.iter().enumerate() {
            match seg {
                Segment::Static(s) => {
                    if path.get(i).map(|p| &**p) != Some(&**s) {
                        return None;
                    }
                }
                Segment::Param(n) => {
                    let p = path.get(i).filter(|p| !p.is_empty())?;
                    params.insert(n.clone(), text(p));
                }
                Segment::Rest(n) => {
                    let rest = path.get(i..).unwrap_or_default();
                    params.insert(n.clone(), text(&rest.join(&b'/')));
                    return Some(params);
                }
            }
        }
        (path.len() == self.segments.len()).then_some(params)
    }
}

/// Percent-decodes a path piece (invalid UTF-8 lossily).
pub(crate) fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// One registered route.
pub(crate) struct Route<O> {
    pub(crate) kind: Kind,
    /// Upper-case method; `GET` for WebSocket and SSE routes.
    pub(crate) method: String,
    pub(crate) pattern: Pattern,
    pub(crate) owner: Arc<O>,
}

impl<O: Owner> Route<O> {
    fn describe(&self) -> String {
        format!(
            "{} route {} {} of plugin \"{}\"",
            self.kind.name(),
            self.method,
            self.pattern.text,
            self.owner.name()
        )
    }
}

/// Who may own a route: a plugin, known by name and identity.
pub(crate) trait Owner {
    fn name(&self) -> &str;
    fn same(&self, other: &Self) -> bool;
    /// False once the plugin is closed; its routes no longer count.
    fn alive(&self) -> bool;
    /// False once this version of the plugin was retired or abandoned by a reload;
    /// its routes no longer count, the plugin's others do.
    fn version_alive(&self) -> bool {
        true
    }
    /// Whether requests go to this owner's routes now: alive, and not a reload's
    /// candidate still initialising.
    fn serving(&self) -> bool {
        self.alive()
    }
    /// The same version of the same plugin (a reload's candidate is the same
    /// plugin, not the same version).
    fn same_version(&self, _other: &Self) -> bool {
        true
    }
}

/// What a request found.
pub(crate) enum Lookup<O> {
    Route(Arc<Route<O>>, BTreeMap<String, String>),
    /// Some route has this path but none this method: the allowed methods.
    MethodNotAllowed(Vec<String>),
    NotFound,
}

/// A trie node: one per distinct pattern prefix (parameter names aside).
struct Node<O> {
    statics: HashMap<Arc<[u8]>, Arc<Node<O>>>,
    param: Option<Arc<Node<O>>>,
    /// Routes whose pattern ends here.
    end: Vec<Arc<Route<O>>>,
    /// Routes whose final `*rest` starts here.
    rest: Vec<Arc<Route<O>>>,
}

impl<O> Default for Node<O> {
    fn default() -> Self {
        Node {
            statics: HashMap::new(),
            param: None,
            end: Vec::new(),
            rest: Vec::new(),
        }
    }
}

// Not derived: a derive would ask for `O: Clone`; only `Arc`s are cloned.
impl<O> Clone for Node<O> {
    fn clone(&self) -> Self {
        Node {
            statics: self.statics.clone(),
            param: self.param.clone(),
            end: self.end.clone(),
            rest: self.rest.clone(),
        }
    }
}

impl<O> Node<O> {
    fn is_empty(&self) -> bool {
        self.statics.is_empty()
            && self.param.is_none()
            && self.end.is_empty()
            && self.rest.is_empty()
    }

    /// The list a route of this shape lives in, made (by path copying) if needed.
    fn slot<'a>(node: &'a mut Arc<Node<O>>, segs: &[Segment]) -> &'a mut Vec<Arc<Route<O>>> {
        let n = Arc::make_mut(node);
        match segs.split_first() {
            None => &mut n.end,
            Some((Segment::Rest(_), _)) => &mut n.rest,
            Some((Segment::Static(s), more)) => {
                Node::slot(n.statics.entry(s.clone()).or_default(), more)
            }
            Some((Segment::Param(_), more)) => {
                Node::slot(n.param.get_or_insert_with(Default::default), more)
            }
        }
    }

    /// Takes `route` out, dropping the nodes it leaves empty.
    fn remove(node: &mut Arc<Node<O>>, segs: &[Segment], route: &Arc<Route<O>>) {
        let n = Arc::make_mut(node);
        let other = |r: &Arc<Route<O>>| !Arc::ptr_eq(r, route);
        match segs.split_first() {
            None => n.end.retain(other),
            Some((Segment::Rest(_), _)) => n.rest.retain(other),
            Some((Segment::Static(s), more)) => {
                if let Some(child) = n.statics.get_mut(&**s) {
                    Node::remove(child, more, route);
                    if child.is_empty() {
                        n.statics.remove(&**s);
                    }
                }
            }
            Some((Segment::Param(_), more)) => {
                if let Some(child) = &mut n.param {
                    Node::remove(child, more, route);
                    if child.is_empty() {
                        n.param = None;
                    }
                }
            }
        }
    }

    /// The first route `take` accepts among those matching `path`, most specific
    /// first: at each segment a plain segment before `:name` before `*name`, and a
    /// pattern ending with the path before a `*name` matching nothing.
    fn search<'t>(
        &'t self,
        path: &[Cow<'_, [u8]>],
        take: &mut impl FnMut(&Route<O>) -> bool,
    ) -> Option<&'t Arc<Route<O>>> {
        match path.split_first() {
            None => {
                if let Some(r) = self.end.iter().find(|r| take(r)) {
                    return Some(r);
                }
            }
            Some((seg, more)) => {
                if let Some(r) = self.statics.get(&**seg).and_then(|n| n.search(more, take)) {
                    return Some(r);
                }
                if !seg.is_empty() {
                    if let Some(r) = self.param.as_ref().and_then(|n| n.search(more, take)) {
                        return Some(r);
                    }
                }
            }
        }
        self.rest.iter().find(|r| take(r))
    }
}

/// The routes of one plugin, in registration order.
struct Owned<O> {
    owner: Arc<O>,
    routes: Vec<Arc<Route<O>>>,
}

/// Every route of the listener.
pub(crate) struct Router<O> {
    /// What requests are matched against: replaced whole, never changed in place.
    table: RwLock<Arc<Node<O>>>,
    /// Held by registrations and removals, one at a time: the routes by plugin.
    owners: Mutex<Vec<Owned<O>>>,
}

impl<O: Owner> Default for Router<O> {
    fn default() -> Self {
        Router {
            table: RwLock::new(Arc::default()),
            owners: Mutex::new(Vec::new()),
        }
    }
}

impl<O: Owner> Router<O> {
    fn snapshot(&self) -> Arc<Node<O>> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn publish(&self, table: Arc<Node<O>>) {
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = table;
    }

    /// Removes the routes of plugins matching `gone` (under the owners lock).
    fn drop_owners(&self, owners: &mut Vec<Owned<O>>, gone: impl Fn(&O) -> bool) {
        if !owners.iter().any(|o| gone(&o.owner)) {
            return;
        }
        let mut table = self.snapshot();
        owners.retain(|o| {
            if !gone(&o.owner) {
                return true;
            }
            for r in &o.routes {
                Node::remove(&mut table, &r.pattern.segments, r);
            }
            false
        });
        self.publish(table);
    }

    /// Adds a route of `owner`, a plugin allowed `max_routes` routes in all.
    ///
    /// The same plugin registering the same method and shape again (a restarted
    /// instance does) replaces its route and takes no more room. A route of the same
    /// method that could match a path of another live plugin's route is 4 naming
    /// both; a route over the plugin's cap is 11.
    pub(crate) fn add(
        &self,
        kind: Kind,
        method: &str,
        pattern: Pattern,
        owner: Arc<O>,
        max_routes: usize,
    ) -> Result<(), Error> {
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        self.drop_owners(&mut owners, |o| !o.alive());
        self.drop_dead_routes(&mut owners);
        let route = Route {
            kind,
            method: method.to_string(),
            pattern,
            owner: owner.clone(),
        };
        for o in owners.iter().filter(|o| !o.owner.same(&owner)) {
            for r in o.routes.iter().filter(|r| r.method == method) {
                if let Some(path) = r.pattern.overlap(&route.pattern) {
                    return Err(Status::Invalid.err(format!(
                        "{} overlaps {}: both match {method} {path}; a path belongs to one plugin",
                        route.describe(),
                        r.describe()
                    )));
                }
            }
        }
        let mine = match owners.iter().position(|o| o.owner.same(&owner)) {
            Some(i) => &mut owners[i],
            None => {
                owners.push(Owned {
                    owner: owner.clone(),
                    routes: Vec::new(),
                });
                owners.last_mut().expect("just pushed")
            }
        };
        mine.owner = owner;
        let segs = route.pattern.segments.clone();
        // A reload's candidate registers beside the current version's routes: they
        // are replaced only within one version.
        let same = mine.routes.iter().position(|r| {
            r.method == method
                && r.pattern.same_shape(&route.pattern)
                && r.owner.same_version(&route.owner)
        });
        let held = mine
            .routes
            .iter()
            .filter(|r| r.owner.same_version(&route.owner))
            .count();
        let mut table = self.snapshot();
        match same {
            Some(i) => {
                let old = &mine.routes[i];
                if old.kind != kind {
                    return Err(Status::Invalid.err(format!(
                        "{} conflicts with its {}",
                        route.describe(),
                        old.describe()
                    )));
                }
                if Arc::ptr_eq(&old.owner, &route.owner) && old.pattern == route.pattern {
                    return Ok(());
                }
                let new = Arc::new(route);
                let slot = Node::slot(&mut table, &segs);
                if let Some(at) = slot.iter().position(|r| Arc::ptr_eq(r, old)) {
                    slot[at] = new.clone();
                }
                mine.routes[i] = new;
            }
            None if held >= max_routes => {
                return Err(Status::TooLarge.err(format!(
                    "{}: the plugin has {held} routes, its max_routes",
                    route.describe(),
                )));
            }
            None => {
                let new = Arc::new(route);
                Node::slot(&mut table, &segs).push(new.clone());
                mine.routes.push(new);
            }
        }
        self.publish(table);
        Ok(())
    }

    /// Removes the routes of retired or abandoned versions of plugins still alive
    /// (under the owners lock).
    fn drop_dead_routes(&self, owners: &mut [Owned<O>]) {
        let dead = |r: &Arc<Route<O>>| !r.owner.version_alive();
        if !owners.iter().any(|o| o.routes.iter().any(dead)) {
            return;
        }
        let mut table = self.snapshot();
        for o in owners.iter_mut() {
            o.routes.retain(|r| {
                if dead(r) {
                    Node::remove(&mut table, &r.pattern.segments, r);
                }
                !dead(r)
            });
        }
        self.publish(table);
    }

    /// Lets the routes of versions no longer alive go (after a reload).
    pub(crate) fn prune(&self) {
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        self.drop_owners(&mut owners, |o| !o.alive());
        self.drop_dead_routes(&mut owners);
    }

    /// Removes every route of `owner`, and those of plugins that closed meanwhile.
    pub(crate) fn remove_owner(&self, owner: &O) {
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        self.drop_owners(&mut owners, |o| o.same(owner) || !o.alive());
    }

    /// The route for `method` and the raw `path`: WebSocket routes only for upgrade
    /// requests, the others only for plain ones; routes of closed plugins never.
    pub(crate) fn find(&self, method: &str, path: &str, upgrade: bool) -> Lookup<O> {
        let Some(path) = canonical(path) else {
            return Lookup::NotFound;
        };
        let table = self.snapshot();
        let mut allowed = Vec::new();
        let found = table.search(&path, &mut |r| {
            if (r.kind == Kind::Ws) != upgrade || !r.owner.serving() {
                return false;
            }
            if r.method != method {
                allowed.push(r.method.clone());
                return false;
            }
            true
        });
        if let Some(r) = found {
            let params = r.pattern.captures(&path).expect("a found route matches");
            return Lookup::Route(r.clone(), params);
        }
        if allowed.is_empty() {
            return Lookup::NotFound;
        }
        allowed.sort();
        allowed.dedup();
        Lookup::MethodNotAllowed(allowed)
    }

    /// How many routes the plugin `owner` holds.
    #[cfg(test)]
    fn count(&self, owner: &O) -> usize {
        let owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        owners
            .iter()
            .filter(|o| o.owner.same(owner))
            .map(|o| o.routes.len())
            .sum()
    }
}

/// The fuzz entry: route lines (`METHOD /pattern`) of two plugins, then request
/// lines. Nothing may panic; a found route matches its path again; no two plugins
/// hold overlapping routes.
#[cfg(any(fuzzing, test))]
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
    let router = Router::default();
    let mut accepted: Vec<(String, String, Pattern)> = Vec::new();
    for (i, line) in lines.by_ref().take(n).enumerate() {
        let (method, path) = line.split_once(' ').unwrap_or(("GET", line));
        if let Ok(p) = Pattern::parse(path) {
            let kind = [Kind::Http, Kind::Ws, Kind::Sse][i % 3];
            let owner = format!("p{}", i % 2);
            if router
                .add(kind, method, p.clone(), Arc::new(P(owner.clone())), 4)
                .is_ok()
            {
                accepted.push((owner, method.to_string(), p));
            }
        }
    }
    for (i, a) in accepted.iter().enumerate() {
        for b in &accepted[i + 1..] {
            if a.0 != b.0 && a.1 == b.1 {
                assert!(a.2.overlap(&b.2).is_none(), "{a:?} and {b:?} overlap");
            }
        }
    }
    for line in lines {
        let (method, path) = line.split_once(' ').unwrap_or(("GET", line));
        for upgrade in [false, true] {
            if let Lookup::Route(r, params) = router.find(method, path, upgrade) {
                assert_eq!(r.pattern.matches(path), Some(params));
                assert_eq!(r.method, method);
            }
        }
    }
}

/// The router as a fuzz target's reference model sees it: plugins known by name,
/// patterns as text, lookups as plain values. Only under `cfg(fuzzing)` (and tests).
#[cfg(any(fuzzing, test))]
pub mod fuzzing {
    use super::*;

    /// A plugin; a closed one's routes no longer count.
    struct Named {
        name: String,
        alive: std::sync::atomic::AtomicBool,
    }

    impl Owner for Named {
        fn name(&self) -> &str {
            &self.name
        }
        fn same(&self, other: &Self) -> bool {
            std::ptr::eq(self, other)
        }
        fn alive(&self) -> bool {
            self.alive.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    /// What [`FuzzRouter::find`] found.
    #[derive(Debug, PartialEq, Eq)]
    pub enum FuzzLookup {
        /// The route: its plugin, method, pattern as registered, and the captures.
        Route {
            /// The owning plugin's name.
            owner: String,
            /// The route's method.
            method: String,
            /// The pattern as registered.
            pattern: String,
            /// Captured `:name` and `*name` values.
            params: BTreeMap<String, String>,
        },
        /// Routes have this path, none this method: the methods they have.
        MethodNotAllowed(Vec<String>),
        /// Nothing has this path.
        NotFound,
    }

    /// A router whose plugins are named by strings. Closing a plugin and adding
    /// routes under its name again makes a new plugin of that name (a restart).
    #[derive(Default)]
    pub struct FuzzRouter {
        router: Router<Named>,
        live: Mutex<HashMap<String, Arc<Named>>>,
    }

    impl FuzzRouter {
        fn owner(&self, name: &str) -> Arc<Named> {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            live.entry(name.to_string())
                .or_insert_with(|| {
                    Arc::new(Named {
                        name: name.to_string(),
                        alive: true.into(),
                    })
                })
                .clone()
        }

        /// Registers `pattern` for `method`; `kind` 0 is HTTP, 1 WebSocket, 2 SSE.
        /// An error is the status code and the message (a pattern that does not
        /// parse is 4, as `http_register` makes it).
        pub fn add(
            &self,
            kind: u8,
            method: &str,
            pattern: &str,
            owner: &str,
            max_routes: usize,
        ) -> Result<(), (i32, String)> {
            let kind = [Kind::Http, Kind::Ws, Kind::Sse][kind as usize % 3];
            let pattern = Pattern::parse(pattern).map_err(|e| (Status::Invalid.code(), e))?;
            self.router
                .add(kind, method, pattern, self.owner(owner), max_routes)
                .map_err(|e| (e.status().map_or(-1, |s| s.code()), e.to_string()))
        }

        /// Removes every route of the plugin `owner`, which lives on.
        pub fn remove_owner(&self, owner: &str) {
            self.router.remove_owner(&self.owner(owner));
        }

        /// Closes the plugin `owner` without removing its routes (they stop counting).
        pub fn close(&self, owner: &str) {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(o) = live.remove(owner) {
                o.alive.store(false, std::sync::atomic::Ordering::Relaxed);
            }
        }

        /// Looks up a raw request path.
        pub fn find(&self, method: &str, path: &str, upgrade: bool) -> FuzzLookup {
            match self.router.find(method, path, upgrade) {
                Lookup::Route(r, params) => FuzzLookup::Route {
                    owner: r.owner.name.clone(),
                    method: r.method.clone(),
                    pattern: r.pattern.text.clone(),
                    params,
                },
                Lookup::MethodNotAllowed(m) => FuzzLookup::MethodNotAllowed(m),
                Lookup::NotFound => FuzzLookup::NotFound,
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

    fn add(r: &Router<P>, m: &str, p: &str, o: &'static str) -> Result<(), Error> {
        r.add(
            Kind::Http,
            m,
            Pattern::parse(p).unwrap(),
            Arc::new(P(o, true)),
            128,
        )
    }

    fn router(routes: &[(&str, &str, &'static str)]) -> Router<P> {
        let r = Router::default();
        for (m, p, o) in routes {
            add(&r, m, p, o).unwrap();
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
            ("GET", "/files", "a"),
            ("GET", "/", "a"),
        ]);
        let (p, params) = hit(&r, "GET", "/users/42").unwrap();
        assert_eq!((p.as_str(), params["id"].as_str()), ("/users/:id", "42"));
        assert_eq!(hit(&r, "GET", "/users/me").unwrap().0, "/users/me");
        assert_eq!(hit(&r, "GET", "/users/%6De").unwrap().0, "/users/me");
        assert_eq!(hit(&r, "GET", "/files/a/b%20c").unwrap().1["rest"], "a/b c");
        assert_eq!(hit(&r, "GET", "/files/").unwrap().1["rest"], "");
        assert_eq!(hit(&r, "GET", "/files").unwrap().0, "/files");
        assert_eq!(hit(&r, "GET", "/").unwrap().0, "/");
        assert!(hit(&r, "GET", "/users/").is_none());
        assert!(hit(&r, "GET", "/users/1/x").is_none());
        assert!(hit(&r, "GET", "users").is_none());
        assert!(
            matches!(r.find("POST", "/users/1", false), Lookup::MethodNotAllowed(m) if m == ["GET"])
        );
        assert!(matches!(r.find("GET", "/nope", false), Lookup::NotFound));
        assert!(matches!(r.find("GET", "/users/1", true), Lookup::NotFound));
    }

    #[test]
    fn shadowing_another_plugins_path_is_4_naming_both() {
        let r = router(&[("GET", "/hello/:name", "hello")]);
        for p in [
            "/hello/admin",
            "/hello/%61dmin",
            "/hello/*rest",
            "/:x/admin",
            "/*all",
            "/:a/:b",
            "/hello/:who",
        ] {
            let e = add(&r, "GET", p, "shadow").unwrap_err();
            assert_eq!(e.status(), Some(Status::Invalid), "{p}");
            let e = e.to_string();
            for part in ["\"hello\"", "\"shadow\"", "/hello/:name", p] {
                assert!(e.contains(part), "{p}: {e}");
            }
        }
        let ws = r.add(
            Kind::Ws,
            "GET",
            Pattern::parse("/hello/chat").unwrap(),
            Arc::new(P("shadow", true)),
            128,
        );
        assert_eq!(ws.unwrap_err().status(), Some(Status::Invalid));
        for p in [
            "/hello",
            "/hello/",
            "/hello/a/b",
            "/hello%2Fadmin",
            "/other/*rest",
        ] {
            add(&r, "GET", p, "shadow").unwrap_or_else(|e| panic!("{p}: {e}"));
        }
        add(&r, "POST", "/hello/admin", "shadow").unwrap();
        for path in ["/hello/admin", "/hello/%61dmin", "/hello/%2561dmin"] {
            assert_eq!(hit(&r, "GET", path).unwrap().0, "/hello/:name", "{path}");
        }
        assert_eq!(
            hit(&r, "GET", "/hello%2Fadmin").unwrap().0,
            "/hello%2Fadmin"
        );
        // The same plugin may overlap itself; the most specific route wins.
        add(&r, "GET", "/hello/admin", "hello").unwrap();
        assert_eq!(hit(&r, "GET", "/hello/%61dmin").unwrap().0, "/hello/admin");
    }

    #[test]
    fn patterns_are_compared_decoded() {
        let r = router(&[("GET", "/caf%C3%A9", "a")]);
        let e = add(&r, "GET", "/café", "b").unwrap_err().to_string();
        assert!(e.contains("\"a\"") && e.contains("\"b\""), "{e}");
        assert_eq!(hit(&r, "GET", "/caf%c3%a9").unwrap().0, "/caf%C3%A9");
        // A pattern cannot reach a request by another spelling: %25 is a literal %.
        add(&r, "GET", "/caf%25C3%25A9", "b").unwrap();
        assert_eq!(
            hit(&r, "GET", "/caf%25C3%25A9").unwrap().0,
            "/caf%25C3%25A9"
        );
        // Invalid UTF-8 is compared as bytes, not as U+FFFD.
        add(&r, "GET", "/%FF", "a").unwrap();
        add(&r, "GET", "/%FE", "b").unwrap();
        assert_eq!(hit(&r, "GET", "/%fe").unwrap().0, "/%FE");
    }

    #[test]
    fn same_plugin_again_replaces_and_dead_owners_do_not_count() {
        let r = router(&[("GET", "/a/:x", "one")]);
        let e = add(&r, "GET", "/a/:y", "two").unwrap_err().to_string();
        assert!(e.contains("\"one\"") && e.contains("\"two\""), "{e}");
        for _ in 0..100 {
            add(&r, "GET", "/a/:x", "one").unwrap();
            add(&r, "GET", "/a/:renamed", "one").unwrap();
        }
        assert_eq!(r.count(&P("one", true)), 1);
        assert_eq!(hit(&r, "GET", "/a/1").unwrap().1["renamed"], "1");
        let e = r.add(
            Kind::Sse,
            "GET",
            Pattern::parse("/a/:x").unwrap(),
            Arc::new(P("one", true)),
            128,
        );
        assert_eq!(e.unwrap_err().status(), Some(Status::Invalid));
        add(&r, "POST", "/a/:x", "two").unwrap();

        let dead = Router::default();
        dead.add(
            Kind::Http,
            "GET",
            Pattern::parse("/a").unwrap(),
            Arc::new(P("old", false)),
            128,
        )
        .unwrap();
        assert!(matches!(dead.find("GET", "/a", false), Lookup::NotFound));
        add(&dead, "GET", "/a", "new").unwrap();
        assert_eq!(dead.count(&P("old", false)), 0, "pruned");
        assert_eq!(hit(&dead, "GET", "/a").unwrap().0, "/a");
        dead.remove_owner(&P("new", true));
        assert!(dead.snapshot().is_empty(), "no empty nodes left behind");
    }

    #[test]
    fn the_cap_counts_distinct_routes_of_a_plugin() {
        let r = Router::default();
        let add = |p: &str, o: &'static str| {
            r.add(
                Kind::Http,
                "GET",
                Pattern::parse(p).unwrap(),
                Arc::new(P(o, true)),
                3,
            )
        };
        for p in ["/1", "/2", "/3", "/1", "/2"] {
            add(p, "a").unwrap();
        }
        let e = add("/4", "a").unwrap_err();
        assert_eq!(e.status(), Some(Status::TooLarge));
        assert!(e.to_string().contains("max_routes"), "{e}");
        add("/4", "b").unwrap();
        r.remove_owner(&P("a", true));
        add("/4", "a").unwrap_err();
        r.remove_owner(&P("b", true));
        add("/4", "a").unwrap();
    }

    #[test]
    fn bad_patterns_are_refused() {
        for p in ["", "a", "/a/:", "/*x/b", "/a?b", "/:x/:x", "/a b"] {
            assert!(Pattern::parse(p).is_err(), "{p}");
        }
    }

    /// xorshift64: tiny, seeded, no dependency.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    const STATICS: [&str; 5] = ["", "a", "%61", "b", "a%2Fb"];

    fn random_pattern(rng: &mut Rng) -> Pattern {
        let len = 1 + rng.below(3);
        let mut text = String::new();
        for i in 0..len {
            text.push('/');
            match rng.below(8) {
                0 | 1 => text.push_str(&format!(":p{i}")),
                2 if i + 1 == len => text.push_str("*r"),
                k => text.push_str(STATICS[k % STATICS.len()]),
            }
        }
        Pattern::parse(&text).unwrap()
    }

    /// Every path of up to 4 segments over spellings of the statics and one fresh
    /// value: enough to contain a common path of two random patterns if one exists.
    fn every_path() -> Vec<String> {
        let pieces = ["", "a", "%61", "b", "c", "a%2Fb", "a%2fb"];
        let mut out = vec![String::new()];
        let mut all = Vec::new();
        for _ in 0..4 {
            out = out
                .iter()
                .flat_map(|p| pieces.iter().map(move |s| format!("{p}/{s}")))
                .collect();
            all.extend(out.iter().cloned());
        }
        all
    }

    #[test]
    fn overlap_agrees_with_brute_force() {
        let paths = every_path();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut overlapping, mut apart) = (0, 0);
        for _ in 0..600 {
            let (a, b) = (random_pattern(&mut rng), random_pattern(&mut rng));
            let common = paths
                .iter()
                .find(|p| a.matches(p).is_some() && b.matches(p).is_some());
            let got = a.overlap(&b);
            assert_eq!(got.is_some(), common.is_some(), "{a:?} {b:?}: {common:?}");
            assert_eq!(got.is_some(), b.overlap(&a).is_some(), "symmetric");
            if let Some(w) = got {
                assert!(a.matches(&w).is_some() && b.matches(&w).is_some(), "{w}");
                overlapping += 1;
            } else {
                apart += 1;
            }
        }
        assert!(overlapping > 100 && apart > 100, "{overlapping} {apart}");
    }

    /// The old router: every route scanned, the best score wins (plain 3, `:name` 2,
    /// `*name` 1, and 4 for a pattern that ends with the path).
    fn linear<'r>(
        routes: &'r [(Kind, &str, Pattern)],
        method: &str,
        path: &str,
        upgrade: bool,
    ) -> Option<&'r Pattern> {
        let score = |p: &Pattern| -> Vec<u8> {
            let mut s: Vec<u8> = p
                .segments
                .iter()
                .map(|s| match s {
                    Segment::Static(_) => 3,
                    Segment::Param(_) => 2,
                    Segment::Rest(_) => 1,
                })
                .collect();
            if !matches!(p.segments.last(), Some(Segment::Rest(_))) {
                s.push(4);
            }
            s
        };
        routes
            .iter()
            .filter(|(k, m, p)| {
                (*k == Kind::Ws) == upgrade && *m == method && p.matches(path).is_some()
            })
            .max_by_key(|(_, _, p)| score(p))
            .map(|(_, _, p)| p)
    }

    #[test]
    fn the_trie_finds_what_a_linear_scan_finds() {
        let paths = every_path();
        let mut rng = Rng(42);
        for _ in 0..60 {
            let r = Router::default();
            let mut accepted = Vec::new();
            for i in 0..12 {
                let kind = [Kind::Http, Kind::Http, Kind::Ws][rng.below(3)];
                let method = if kind == Kind::Ws {
                    "GET"
                } else {
                    ["GET", "POST"][rng.below(2)]
                };
                let p = random_pattern(&mut rng);
                let owner = ["x", "y", "z"][i % 3];
                if r.add(kind, method, p.clone(), Arc::new(P(owner, true)), 128)
                    .is_ok()
                {
                    accepted.push((kind, method, p));
                }
            }
            for path in paths.iter().step_by(7) {
                for (method, upgrade) in [("GET", false), ("POST", false), ("GET", true)] {
                    let want = linear(&accepted, method, path, upgrade);
                    let got = match r.find(method, path, upgrade) {
                        Lookup::Route(r, params) => {
                            assert_eq!(Some(params), r.pattern.matches(path));
                            Some(r.pattern.text().to_string())
                        }
                        _ => None,
                    };
                    let want_text = want.map(|p| p.text().to_string());
                    // Same-shape patterns (`/a`, `/%61`) are one route: compare shapes.
                    match (want, &got) {
                        (Some(w), Some(g)) => {
                            assert!(
                                w.same_shape(&Pattern::parse(g).unwrap()),
                                "{path}: {want_text:?} vs {got:?}"
                            )
                        }
                        _ => assert_eq!(want_text, got, "{method} {path} upgrade={upgrade}"),
                    }
                }
            }
        }
    }

    #[test]
    fn the_fuzz_router_names_plugins_and_restarts_them() {
        use fuzzing::{FuzzLookup, FuzzRouter};
        let r = FuzzRouter::default();
        r.add(0, "GET", "/a/:x", "one", 4).unwrap();
        let (code, e) = r.add(0, "GET", "/a/b", "two", 4).unwrap_err();
        assert!(
            code == 4 && e.contains("\"one\"") && e.contains("\"two\""),
            "{e}"
        );
        assert_eq!(r.add(0, "GET", "/a/:", "two", 4).unwrap_err().0, 4);
        r.close("one");
        assert_eq!(r.find("GET", "/a/b", false), FuzzLookup::NotFound);
        r.add(1, "GET", "/a/b", "two", 4).unwrap();
        // A new plugin under the old name: the closed one's route is gone.
        assert_eq!(r.add(0, "GET", "/a/:y", "one", 4).unwrap_err().0, 4);
        r.add(0, "POST", "/a/:y", "one", 4).unwrap();
        assert_eq!(
            r.find("GET", "/a/b", true),
            FuzzLookup::Route {
                owner: "two".into(),
                method: "GET".into(),
                pattern: "/a/b".into(),
                params: BTreeMap::new(),
            }
        );
        assert_eq!(
            r.find("GET", "/a/c", false),
            FuzzLookup::MethodNotAllowed(vec!["POST".into()])
        );
        r.remove_owner("one");
        assert_eq!(r.find("POST", "/a/c", false), FuzzLookup::NotFound);
    }

    #[test]
    fn the_fuzz_entry_runs() {
        fuzz(b"xxx\nGET /a/:x\nGET /a/b\nGET /*r\nGET /a/b\n/a/1\n/a/b\n/\nPOST /a/b");
        fuzz(b"");
        fuzz(b"\xff\xfe\n/\n");
    }

    /// Matching cost with 1 000 routes of one plugin and 1 of another, against the
    /// linear scan the router used to do. Not a test: run it by name with
    /// `cargo test -p ext-http --release -- --ignored --nocapture match_cost`.
    #[test]
    #[ignore]
    fn match_cost() {
        use std::time::Instant;
        let many = Router::default();
        let mut linear_routes = Vec::new();
        for i in 0..1000 {
            let p = format!("/r{i}/:id/x{}", i % 7);
            many.add(
                Kind::Http,
                "GET",
                Pattern::parse(&p).unwrap(),
                Arc::new(P("big", true)),
                1000,
            )
            .unwrap();
            linear_routes.push((Kind::Http, "GET", Pattern::parse(&p).unwrap()));
        }
        let one = Router::default();
        for r in [&many, &one] {
            add(r, "GET", "/hello/:name", "small").unwrap();
        }
        linear_routes.push((Kind::Http, "GET", Pattern::parse("/hello/:name").unwrap()));
        let n = 200_000;
        let time = |what: &str, f: &dyn Fn() -> bool| {
            let t = Instant::now();
            for _ in 0..n {
                assert!(f());
            }
            println!(
                "{what}: {:.0} ns per match",
                t.elapsed().as_nanos() as f64 / n as f64
            );
        };
        time("trie, 1 route", &|| {
            hit(&one, "GET", "/hello/world").is_some()
        });
        time("trie, 1 001 routes", &|| {
            hit(&many, "GET", "/hello/world").is_some()
        });
        time("linear scan, 1 001 routes", &|| {
            linear(&linear_routes, "GET", "/hello/world", false).is_some()
        });
    }
}
