//! What a plugin may do with containers: `[capability."spawn.docker"]`.

use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Toml {
    images: Option<Vec<String>>,
    network: Option<bool>,
    memory_mb: Option<u64>,
    max_memory_mb: Option<u64>,
    cpus: Option<f64>,
    max_cpus: Option<f64>,
    max_containers: Option<u32>,
    pids_limit: Option<i64>,
    timeout_ms: Option<u64>,
    max_output_bytes: Option<u64>,
    cap_add: Option<Vec<String>>,
    user: Option<String>,
}

/// What `cap_add` may name: Docker's default set less `NET_RAW` (raw packets on a
/// granted bridge: spoofing neighbours) and `MKNOD` (device nodes). Everything else
/// (`SYS_ADMIN`, `NET_ADMIN`, `SYS_PTRACE`, ...) gives the host away and is refused.
const GRANTABLE: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The user containers run as unless the grant says otherwise: `nobody`, so that a
/// process that escapes its container is no one on the host either.
pub(crate) const DEFAULT_USER: &str = "65534:65534";

/// A plugin's checked grants.
#[derive(Clone, Debug)]
pub struct Grants {
    images: Vec<ImagePattern>,
    /// May a container ask for a network (`network: true`)?
    pub(crate) network: bool,
    pub(crate) memory_mb: u64,
    pub(crate) max_memory_mb: u64,
    pub(crate) cpus: f64,
    pub(crate) max_cpus: f64,
    pub(crate) max_containers: u32,
    pub(crate) pids_limit: i64,
    /// Default and ceiling of `docker_run`'s and `docker_exec`'s wait, and the
    /// deadline of every other engine call.
    pub(crate) timeout_ms: u64,
    pub(crate) max_output_bytes: usize,
    /// Capabilities added back after dropping all, as `CAP_<NAME>` (sorted, no repeats).
    pub(crate) cap_add: Vec<String>,
    /// Every container's `user`; `None` keeps the image's own (`user = "image"`).
    pub(crate) user: Option<String>,
}

/// `repo:tag` (exact), `repo` (any tag of it), `repo/*` (any image below `repo/`).
#[derive(Clone, Debug, PartialEq)]
enum ImagePattern {
    Exact(String),
    AnyTag(String),
    Below(String),
}

/// Splits `name[:tag][@digest]` into the repository and the rest.
fn repository(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    match no_digest.rfind(':') {
        Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
        _ => no_digest,
    }
}

impl ImagePattern {
    fn parse(s: &str) -> Result<ImagePattern, String> {
        let t = s.trim();
        let bad = |why: &str| format!("images entry {s:?} {why}");
        if t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("must be an image name"));
        }
        if let Some(prefix) = t.strip_suffix("/*") {
            if prefix.is_empty() || prefix.contains('*') {
                return Err(bad("has a misplaced *"));
            }
            return Ok(ImagePattern::Below(format!("{prefix}/")));
        }
        if t.contains('*') {
            return Err(bad("may only end in /*"));
        }
        Ok(if repository(t) == t {
            ImagePattern::AnyTag(t.to_string())
        } else {
            ImagePattern::Exact(t.to_string())
        })
    }

    fn allows(&self, image: &str) -> bool {
        match self {
            ImagePattern::Exact(e) => e == image,
            ImagePattern::AnyTag(r) => repository(image) == r,
            ImagePattern::Below(p) => repository(image).starts_with(p.as_str()),
        }
    }
}

impl pulp_ext::Settings for Grants {
    fn parse(
        table: Option<&pulp_ext::toml::Table>,
        _: &pulp_ext::Plugin,
    ) -> Result<Grants, Vec<String>> {
        let t: Toml = pulp_ext::from_table(table).map_err(|e| vec![e])?;
        let mut problems = Vec::new();
        let images = t
            .images
            .unwrap_or_default()
            .iter()
            .filter_map(|s| ImagePattern::parse(s).map_err(|e| problems.push(e)).ok())
            .collect();
        let max_memory_mb = t.max_memory_mb.unwrap_or(1024);
        let memory_mb = t.memory_mb.unwrap_or(256.min(max_memory_mb));
        if !(6..=max_memory_mb).contains(&memory_mb) {
            problems.push(format!(
                "memory_mb = {memory_mb} is outside 6..=max_memory_mb ({max_memory_mb})"
            ));
        }
        let max_cpus = t.max_cpus.unwrap_or(1.0);
        let cpus = t.cpus.unwrap_or(max_cpus.min(1.0));
        if !(cpus > 0.0 && cpus <= max_cpus) {
            problems.push(format!(
                "cpus = {cpus} is outside 0..=max_cpus ({max_cpus})"
            ));
        }
        let timeout_ms = t.timeout_ms.unwrap_or(60_000);
        if !(1..=3_600_000).contains(&timeout_ms) {
            problems.push(format!("timeout_ms = {timeout_ms} is outside 1..=3600000"));
        }
        let pids_limit = t.pids_limit.unwrap_or(256);
        if !(1..=65_536).contains(&pids_limit) {
            problems.push(format!("pids_limit = {pids_limit} is outside 1..=65536"));
        }
        let max_output = t.max_output_bytes.unwrap_or(8 << 20);
        if !(1..=(256 << 20)).contains(&max_output) {
            problems.push(format!(
                "max_output_bytes = {max_output} is outside 1..=268435456"
            ));
        }
        let mut cap_add = Vec::new();
        for c in t.cap_add.unwrap_or_default() {
            match grantable(&c) {
                Ok(c) => cap_add.push(c),
                Err(e) => problems.push(e),
            }
        }
        cap_add.sort();
        cap_add.dedup();
        let user = match t.user.as_deref().map(str::trim) {
            None => Some(DEFAULT_USER.to_string()),
            Some("image") => None,
            Some(u) if valid_user(u) => Some(u.to_string()),
            Some(u) => {
                problems.push(format!(
                    "user = {u:?} must be \"image\", a user or uid, or user:group (letters, digits, '_', '.', '-')"
                ));
                None
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Grants {
            images,
            network: t.network.unwrap_or(false),
            memory_mb,
            max_memory_mb,
            cpus,
            max_cpus,
            max_containers: t.max_containers.unwrap_or(8),
            pids_limit,
            timeout_ms,
            max_output_bytes: max_output as usize,
            cap_add,
            user,
        })
    }
}

impl Grants {
    /// True when `images` allows `image`.
    pub(crate) fn allows(&self, image: &str) -> bool {
        self.images.iter().any(|p| p.allows(image))
    }
}

/// `CAP_<NAME>` for a `cap_add` entry (`chown`, `CHOWN`, `CAP_CHOWN`) that may be granted.
fn grantable(c: &str) -> Result<String, String> {
    let name = c.trim().to_ascii_uppercase();
    let name = name.strip_prefix("CAP_").unwrap_or(&name);
    if GRANTABLE.contains(&name) {
        Ok(format!("CAP_{name}"))
    } else {
        Err(format!(
            "cap_add entry {c:?} is not a capability a container may get (one of {})",
            GRANTABLE.join(", ")
        ))
    }
}

/// `name`, `uid`, `name:group` or `uid:gid`: what the engine resolves in the image.
fn valid_user(u: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 32
            && !p.starts_with('-')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    };
    match u.split_once(':') {
        None => part(u),
        Some((a, b)) => part(a) && part(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_patterns() {
        let p = |s| ImagePattern::parse(s).unwrap();
        assert!(p("pulp-test/busybox:1").allows("pulp-test/busybox:1"));
        assert!(!p("pulp-test/busybox:1").allows("pulp-test/busybox:2"));
        assert!(p("pulp-test/busybox").allows("pulp-test/busybox:2"));
        assert!(!p("pulp-test/busybox").allows("pulp-test/busybox-evil:1"));
        assert!(p("pulp-test/*").allows("pulp-test/anything:3"));
        assert!(!p("pulp-test/*").allows("pulp-testing/x"));
        assert!(p("localhost:5000/app").allows("localhost:5000/app:v1"));
        assert!(!p("localhost:5000/app").allows("localhost:5000/other"));
        for bad in ["", "a*b", "*", "/*", "a b"] {
            assert!(ImagePattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_harmless_capabilities_can_be_granted() {
        assert_eq!(grantable("chown").unwrap(), "CAP_CHOWN");
        assert_eq!(grantable("CAP_SETUID").unwrap(), "CAP_SETUID");
        for bad in [
            "SYS_ADMIN",
            "CAP_SYS_ADMIN",
            "NET_ADMIN",
            "NET_RAW",
            "SYS_PTRACE",
            "SYS_MODULE",
            "MKNOD",
            "ALL",
            "",
        ] {
            let e = grantable(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn users_are_names_or_ids_with_an_optional_group() {
        for good in [
            "65534:65534",
            "0",
            "nobody",
            "app:app",
            "www-data",
            "1000:users",
        ] {
            assert!(valid_user(good), "{good}");
        }
        for bad in ["", ":", "a:", ":1", "a b", "a:b:c", "-1", "../x", "a\n"] {
            assert!(!valid_user(bad), "{bad}");
        }
    }
}
