//! Who may call whom (`provides`, `consumes`, `depends_on`), and the order plugins
//! start in: checked once for the set of manifests a host runs.

use crate::Manifest;

/// A plugin's links, as its manifest declares them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Links {
    /// The plugin's name.
    pub name: String,
    /// Names it provides.
    pub provides: Vec<String>,
    /// Plugins or provided names it calls.
    pub consumes: Vec<String>,
    /// Plugins that start before it.
    pub depends_on: Vec<String>,
}

impl Links {
    /// The links of `m`.
    pub fn of(m: &Manifest) -> Links {
        Links {
            name: m.name.clone(),
            provides: m.provides.clone(),
            consumes: m.consumes.clone(),
            depends_on: m.depends_on.clone(),
        }
    }

    /// Whether this plugin may call `target` ([`Links::may_call`] without the why).
    pub fn allows(&self, target: &Links) -> bool {
        self.depends_on.contains(&target.name)
            || self.consumes.contains(&target.name)
            || target.provides.iter().any(|p| self.consumes.contains(p))
    }

    /// Why this plugin may call `target`, or `None` when it may not: it lists the
    /// target in `depends_on`, or in `consumes` the target's name or a name it
    /// provides.
    pub fn may_call(&self, target: &Links) -> Option<String> {
        if self.depends_on.contains(&target.name) {
            return Some(format!("depends_on \"{}\"", target.name));
        }
        if self.consumes.contains(&target.name) {
            return Some(format!("consumes \"{}\"", target.name));
        }
        target
            .provides
            .iter()
            .find(|p| self.consumes.contains(p))
            .map(|p| format!("consumes \"{p}\", which it provides"))
    }
}

/// Checks the links of the plugins in `manifests` and returns the order to start
/// them in (indices into `manifests`): each after the plugins it `depends_on`, else
/// in the order given. Every problem at once: a `depends_on` naming no plugin of the
/// set, a `consumes` that no plugin's name or `provides` satisfies (both naming the
/// two sides), a cycle in `depends_on` (naming it).
pub fn start_order(manifests: &[Manifest]) -> Result<Vec<usize>, Vec<String>> {
    let mut problems = Vec::new();
    let index = |name: &str| manifests.iter().position(|m| m.name == name);
    for m in manifests {
        for d in &m.depends_on {
            if index(d).is_none() {
                problems.push(format!(
                    "plugin \"{}\" ({}) depends_on \"{d}\", but no plugin of this run is named so",
                    m.name,
                    m.path.display()
                ));
            }
        }
        for c in &m.consumes {
            let satisfied = manifests
                .iter()
                .any(|o| o.name != m.name && (&o.name == c || o.provides.contains(c)));
            if !satisfied {
                problems.push(format!(
                    "plugin \"{}\" ({}) consumes \"{c}\", but no other plugin of this run is named so or provides it",
                    m.name,
                    m.path.display()
                ));
            }
        }
    }
    for (i, a) in manifests.iter().enumerate() {
        for b in &manifests[i + 1..] {
            for p in a.provides.iter().filter(|p| b.provides.contains(p)) {
                problems.push(format!(
                    "plugins \"{}\" and \"{}\" both provide \"{p}\"; a call to it could not tell which is meant",
                    a.name, b.name
                ));
            }
        }
    }
    // Depth-first: a plugin after its dependencies; a plugin met again while its
    // own dependencies are being placed closes a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done,
    }
    let mut marks = vec![Mark::New; manifests.len()];
    let mut order = Vec::new();
    let mut cycles: Vec<String> = Vec::new();
    fn visit(
        i: usize,
        manifests: &[Manifest],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        order: &mut Vec<usize>,
        cycles: &mut Vec<String>,
    ) {
        match marks[i] {
            Mark::Done => return,
            Mark::Visiting => {
                let from = path.iter().position(|&p| p == i).unwrap_or(0);
                let names: Vec<&str> = path[from..]
                    .iter()
                    .chain([&i])
                    .map(|&p| manifests[p].name.as_str())
                    .collect();
                cycles.push(format!(
                    "depends_on makes a cycle: {}; no plugin of it could start first",
                    names.join(" → ")
                ));
                return;
            }
            Mark::New => {}
        }
        marks[i] = Mark::Visiting;
        path.push(i);
        for d in &manifests[i].depends_on {
            if let Some(j) = manifests.iter().position(|m| &m.name == d) {
                visit(j, manifests, marks, path, order, cycles);
            }
        }
        path.pop();
        marks[i] = Mark::Done;
        order.push(i);
    }
    for i in 0..manifests.len() {
        visit(
            i,
            manifests,
            &mut marks,
            &mut Vec::new(),
            &mut order,
            &mut cycles,
        );
    }
    cycles.dedup();
    problems.extend(cycles);
    if problems.is_empty() {
        Ok(order)
    } else {
        Err(problems)
    }
}

/// Who may call whom among `manifests`, one line each (`api → auth: consumes
/// "auth"`), for `pulp check`.
pub fn callers(manifests: &[Manifest]) -> Vec<String> {
    let links: Vec<Links> = manifests.iter().map(Links::of).collect();
    let mut out = Vec::new();
    for a in &links {
        for b in links.iter().filter(|b| b.name != a.name) {
            if let Some(why) = a.may_call(b) {
                out.push(format!("{} → {}: {why}", a.name, b.name));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, provides: &[&str], consumes: &[&str], depends_on: &[&str]) -> Manifest {
        let v = |l: &[&str]| {
            l.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let text = format!(
            "name = {name:?}\nversion = \"1\"\nprovides = [{}]\nconsumes = [{}]\ndepends_on = [{}]\n",
            v(provides),
            v(consumes),
            v(depends_on)
        );
        Manifest::parse(&text, std::path::Path::new(&format!("{name}.toml"))).unwrap()
    }

    #[test]
    fn plugins_start_after_what_they_depend_on() {
        let set = [
            m("api", &[], &["auth"], &["db"]),
            m("auth", &["auth"], &[], &["db"]),
            m("db", &[], &[], &[]),
        ];
        let order: Vec<&str> = start_order(&set)
            .unwrap()
            .iter()
            .map(|&i| set[i].name.as_str())
            .collect();
        assert_eq!(order, ["db", "api", "auth"]);
    }

    #[test]
    fn cycles_and_missing_links_are_named() {
        let set = [
            m("a", &[], &[], &["b"]),
            m("b", &[], &[], &["c"]),
            m("c", &[], &["ghost"], &["a", "nobody"]),
        ];
        let p = start_order(&set).unwrap_err().join("\n");
        assert!(p.contains("depends_on makes a cycle: a → b → c → a"), "{p}");
        assert!(
            p.contains("plugin \"c\" (c.toml) depends_on \"nobody\""),
            "{p}"
        );
        assert!(
            p.contains("plugin \"c\" (c.toml) consumes \"ghost\""),
            "{p}"
        );
    }

    #[test]
    fn who_may_call_whom() {
        let (api, auth, other) = (
            m("api", &[], &["tokens"], &[]),
            m("auth", &["tokens"], &[], &[]),
            m("other", &[], &[], &["auth"]),
        );
        let l = |m: &Manifest| Links::of(m);
        assert!(l(&api).may_call(&l(&auth)).is_some());
        assert!(l(&other).may_call(&l(&auth)).is_some());
        assert!(l(&auth).may_call(&l(&api)).is_none());
        assert!(l(&api).may_call(&l(&other)).is_none());
        assert_eq!(
            callers(&[api, auth, other]),
            [
                "api → auth: consumes \"tokens\", which it provides",
                "other → auth: depends_on \"auth\""
            ]
        );
    }
}
