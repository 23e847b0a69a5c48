//! The manifest, `pulp.plugin.toml` (ABI §1): parsed, validated and normalised.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A manifest could not be read or is not valid. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("manifest {path}: cannot read it: {cause}")]
    Read {
        /// The manifest's path.
        path: PathBuf,
        /// The I/O error (in the message, so not also a `source()`).
        cause: std::io::Error,
    },
    /// The TOML does not parse (the message gives the line).
    #[error("manifest {path}: {message}")]
    Syntax {
        /// The manifest's path.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The TOML parses but breaks the schema; every problem is listed.
    #[error("manifest {path}: {}", problems.join("; "))]
    Invalid {
        /// The manifest's path.
        path: PathBuf,
        /// Each problem found.
        problems: Vec<String>,
    },
}

/// Per-plugin limits, `[limits]` (all optional; the defaults suit a server).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most linear memory, in MiB (default 256).
    pub memory_mb: u32,
    /// Most time one `pulp_step` or `pulp_shutdown` may run, in ms (default 10 000).
    pub call_timeout_ms: u64,
    /// Most time instantiation plus `pulp_init` may run, in ms (default 30 000).
    pub init_timeout_ms: u64,
    /// Fuel per call (off when absent; needs a host started with fuel on).
    pub fuel: Option<u64>,
    /// Largest message a guest may hand to an import, in bytes (default 8 MiB).
    pub max_message_bytes: u32,
    /// Events waiting per source before new ones are refused (default 64).
    pub queue: u32,
    /// Instances of the plugin, each on its own thread with its own store and memory,
    /// sharing its routes and event queues (default 1; more needs `stateless = true`).
    pub instances: u32,
    /// Most memory the host may hold on the plugin's behalf, in MiB (default 64):
    /// queued events, encoded results, SSE backlogs, WebSocket send queues, container
    /// output. Past it the import returns 11 and clients get 503 / close 1013.
    pub host_memory_mb: u32,
    /// The idle tick interval while the plugin is busy, in ms; 0: no idle ticks, the
    /// plugin runs only for events (default: the runtime's, 1).
    pub tick_ms: Option<u64>,
    /// The longest idle tick interval, reached by doubling once the plugin is idle,
    /// in ms (default: the runtime's, 1000).
    pub max_tick_ms: Option<u64>,
    /// Most `pulp_call`s waiting for or running in this plugin at once; more get 11
    /// at once (default 64).
    pub max_callers: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mb: 256,
            call_timeout_ms: 10_000,
            init_timeout_ms: 30_000,
            fuel: None,
            max_message_bytes: 8 << 20,
            queue: 64,
            instances: 1,
            host_memory_mb: (pulp_ext::DEFAULT_HOST_MEMORY >> 20) as u32,
            tick_ms: None,
            max_tick_ms: None,
            max_callers: 64,
        }
    }
}

impl Limits {
    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(1..=4096).contains(&self.memory_mb) {
            p.push(format!(
                "[limits] memory_mb = {} is outside 1..=4096",
                self.memory_mb
            ));
        }
        for (k, v) in [
            ("call_timeout_ms", self.call_timeout_ms),
            ("init_timeout_ms", self.init_timeout_ms),
        ] {
            if !(1..=3_600_000).contains(&v) {
                p.push(format!("[limits] {k} = {v} is outside 1..=3600000"));
            }
        }
        if !(1024..=(64 << 20)).contains(&self.max_message_bytes) {
            p.push(format!(
                "[limits] max_message_bytes = {} is outside 1024..=67108864",
                self.max_message_bytes
            ));
        }
        if !(1..=65_536).contains(&self.queue) {
            p.push(format!(
                "[limits] queue = {} is outside 1..=65536",
                self.queue
            ));
        }
        if !(1..=64).contains(&self.instances) {
            p.push(format!(
                "[limits] instances = {} is outside 1..=64",
                self.instances
            ));
        }
        if !(1..=4096).contains(&self.host_memory_mb) {
            p.push(format!(
                "[limits] host_memory_mb = {} is outside 1..=4096",
                self.host_memory_mb
            ));
        }
        if !(1..=4096).contains(&self.max_callers) {
            p.push(format!(
                "[limits] max_callers = {} is outside 1..=4096",
                self.max_callers
            ));
        }
        if self.fuel == Some(0) {
            p.push("[limits] fuel = 0 would stop every call at once".into());
        }
        if self.tick_ms.is_some_and(|t| t > 3_600_000) {
            p.push(format!(
                "[limits] tick_ms = {} is outside 0..=3600000",
                self.tick_ms.unwrap_or_default()
            ));
        }
        if self
            .max_tick_ms
            .is_some_and(|t| !(1..=3_600_000).contains(&t))
        {
            p.push(format!(
                "[limits] max_tick_ms = {} is outside 1..=3600000",
                self.max_tick_ms.unwrap_or_default()
            ));
        }
        p
    }
}

/// A validated manifest.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// Where the manifest was read from (for messages).
    pub path: PathBuf,
    /// The plugin's name: safe as a folder name.
    pub name: String,
    /// The plugin's version (not checked as semver, like the Go host).
    pub version: String,
    /// The module: `.wasm`, or `.wat` text. Relative paths are joined to the manifest's folder.
    pub wasm: PathBuf,
    /// `wasm_sha256`: the module file's SHA-256 (64 lowercase hex digits). A module
    /// whose digest differs is refused at load.
    pub wasm_sha256: Option<String>,
    /// Declared capabilities: trimmed, lowercased, de-duplicated, in order.
    pub capabilities: Vec<String>,
    /// Names other plugins may `consumes` to call this one with `pulp_call`.
    pub provides: Vec<String>,
    /// Plugins (by name) or provided names this plugin calls with `pulp_call`.
    pub consumes: Vec<String>,
    /// Plugins that start before this one, and that it may call.
    pub depends_on: Vec<String>,
    /// Kept for compatibility; unused.
    pub shared_memory_groups: Vec<String>,
    /// Kept for compatibility; every plugin already has its own thread.
    pub dedicated_thread: bool,
    /// Kept for compatibility; unused.
    pub snapshotable: bool,
    /// The plugin keeps no state between events that another instance would need,
    /// so `[limits] instances` may run several.
    pub stateless: bool,
    /// Record this plugin's instances even when `pulp run` has no `--record`
    /// (into `<storage-root>/.pulp/recordings`); see `pulp replay`.
    pub record: bool,
    /// `[config]`, delivered to `pulp_init` as msgpack (None when absent).
    pub config: Option<toml::Table>,
    /// `[secrets]`: config keys whose values come from the environment or a file
    /// when the plugin loads (never stored here, so never printed with the manifest).
    pub secrets: Vec<Secret>,
    /// `[limits]`.
    pub limits: Limits,
    /// `[capability."x"]` tables, by capability name (lowercased).
    pub settings: BTreeMap<String, toml::Table>,
}

/// The keys of `[limits]` (the fields of [`Limits`]).
const LIMIT_KEYS: &[&str] = &[
    "memory_mb",
    "call_timeout_ms",
    "init_timeout_ms",
    "fuel",
    "max_message_bytes",
    "queue",
    "instances",
    "host_memory_mb",
    "tick_ms",
    "max_tick_ms",
    "max_callers",
];

const KEYS: &[&str] = &[
    "name",
    "version",
    "wasm",
    "wasm_sha256",
    "capabilities",
    "provides",
    "consumes",
    "depends_on",
    "shared_memory_groups",
    "dedicated_thread",
    "snapshotable",
    "stateless",
    "record",
    "federated_callers",
    "federated_consumes",
    "migratable",
    "config",
    "secrets",
    "limits",
    "capability",
];

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
    wasm: Option<String>,
    wasm_sha256: Option<String>,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    provides: Vec<String>,
    #[serde(default)]
    consumes: Vec<String>,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    shared_memory_groups: Vec<String>,
    #[serde(default)]
    dedicated_thread: bool,
    #[serde(default)]
    snapshotable: bool,
    #[serde(default)]
    stateless: bool,
    #[serde(default)]
    record: bool,
    #[serde(default)]
    config: Option<toml::Table>,
    #[serde(default)]
    secrets: BTreeMap<String, toml::Value>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    capability: BTreeMap<String, toml::Table>,
}

impl Manifest {
    /// Reads and validates the manifest at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Manifest, ManifestError> {
        match Manifest::load_all(path.as_ref())? {
            (m, problems) if problems.is_empty() => Ok(m),
            (m, problems) => Err(ManifestError::Invalid {
                path: m.path,
                problems,
            }),
        }
    }

    /// Like [`Manifest::load`], but a manifest that parses comes back with its
    /// problems beside it (see [`Manifest::parse_all`]).
    pub(crate) fn load_all(path: &Path) -> Result<(Manifest, Vec<String>), ManifestError> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let read = |cause| ManifestError::Read {
            path: path.clone(),
            cause,
        };
        let bytes = read_regular(&path, MAX_MANIFEST_BYTES).map_err(read)?;
        let text = String::from_utf8(bytes).map_err(|_| {
            read(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not UTF-8",
            ))
        })?;
        Manifest::parse_all(&text, &path)
    }

    /// Validates manifest text as if it were read from `path` (relative `wasm` paths
    /// are joined to its folder).
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        match Manifest::parse_all(text, path)? {
            (m, problems) if problems.is_empty() => Ok(m),
            (_, problems) => Err(ManifestError::Invalid {
                path: path.to_path_buf(),
                problems,
            }),
        }
    }

    /// Like [`Manifest::parse`], but a manifest that parses comes back with its
    /// problems beside it, so that `pulp check` can also judge what it declares.
    pub(crate) fn parse_all(
        text: &str,
        path: &Path,
    ) -> Result<(Manifest, Vec<String>), ManifestError> {
        let syntax = |message: String| ManifestError::Syntax {
            path: path.to_path_buf(),
            message,
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| syntax(e.to_string().trim().to_string()))?;
        // Unknown keys are reported, then set aside, so that every other problem of
        // the manifest is found in the same pass.
        let mut problems = Vec::new();
        let unknown = take_unknown(&mut table, KEYS);
        if !unknown.is_empty() {
            problems.push(format!("unknown manifest fields: {}", unknown.join(", ")));
        }
        if let Some(toml::Value::Table(limits)) = table.get_mut("limits") {
            let unknown = take_unknown(limits, LIMIT_KEYS);
            if !unknown.is_empty() {
                problems.push(format!(
                    "[limits]: unknown keys {} (known: {})",
                    unknown.join(", "),
                    LIMIT_KEYS.join(", ")
                ));
            }
        }
        let raw: Raw = match toml::Value::Table(table).try_into() {
            Ok(raw) => raw,
            Err(e) => {
                let e: toml::de::Error = e;
                problems.push(e.to_string().trim().to_string());
                return Err(ManifestError::Invalid {
                    path: path.to_path_buf(),
                    problems,
                });
            }
        };

        let name = raw.name.trim().to_string();
        if name.is_empty() {
            problems.push("name is required".to_string());
        } else if !safe_name(&name) {
            problems.push(format!(
                "name {name:?} is not allowed: use 1 to 64 of A-Z a-z 0-9 . _ - starting with a letter or digit (it names a folder)"
            ));
        }
        let version = raw.version.trim().to_string();
        if version.is_empty() {
            problems.push("version is required".to_string());
        } else if version.chars().any(char::is_control) || version.len() > 128 {
            problems.push(format!(
                "version {version:?} must be at most 128 characters without control characters (it is printed in logs and pulp ctl status)"
            ));
        }
        let wasm = raw.wasm.as_deref().map(str::trim).unwrap_or("");
        let wasm = if wasm.is_empty() { "plugin.wasm" } else { wasm };
        let dir = path.parent().unwrap_or(Path::new("."));
        let wasm_sha256 = raw.wasm_sha256.map(|d| d.trim().to_ascii_lowercase());
        if let Some(d) = wasm_sha256.as_deref() {
            if d.len() != 64 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
                problems.push(format!(
                    "wasm_sha256 {d:?} is not a SHA-256 digest (64 hex digits; `pulp check` prints the module's)"
                ));
            }
        }
        let capabilities = dedup(raw.capabilities.iter().map(|c| c.trim().to_lowercase()));
        let settings: BTreeMap<String, toml::Table> = raw
            .capability
            .into_iter()
            .map(|(k, v)| (k.trim().to_lowercase(), v))
            .collect();
        for cap in settings.keys() {
            if !capabilities.contains(cap) {
                problems.push(format!(
                    "[capability.\"{cap}\"] configures a capability the manifest does not declare"
                ));
            }
        }
        for d in &raw.depends_on {
            if d.trim() == name {
                problems.push(format!("depends_on names the plugin itself ({name:?})"));
            }
        }
        let secrets = secrets(&raw.secrets, raw.config.as_ref(), dir, &mut problems);
        problems.extend(raw.limits.problems());
        if raw.limits.instances > 1 && !raw.stateless {
            problems.push(format!(
                "[limits] instances = {} needs stateless = true: events go to any instance",
                raw.limits.instances
            ));
        }
        let manifest = Manifest {
            path: path.to_path_buf(),
            name,
            version,
            wasm: dir.join(wasm),
            wasm_sha256,
            capabilities,
            provides: dedup(raw.provides.into_iter()),
            consumes: dedup(raw.consumes.into_iter()),
            depends_on: dedup(raw.depends_on.iter().map(|d| d.trim().to_string())),
            shared_memory_groups: dedup(raw.shared_memory_groups.into_iter()),
            dedicated_thread: raw.dedicated_thread,
            snapshotable: raw.snapshotable,
            stateless: raw.stateless,
            record: raw.record,
            config: raw.config.filter(|c| !c.is_empty()),
            secrets,
            limits: raw.limits,
            settings,
        };
        Ok((manifest, problems))
    }

    /// Whether module bytes `wasm` may run for this manifest: the problem when
    /// their SHA-256 differs from `wasm_sha256`, or when `require_pinned` is set and
    /// the manifest pins none. The digest is computed only then (an unpinned load
    /// pays nothing).
    pub fn pin_problem(&self, wasm: &[u8], require_pinned: bool) -> Option<String> {
        if self.wasm_sha256.is_none() && !require_pinned {
            return None;
        }
        let digest = sha256_hex(wasm);
        match self.wasm_sha256.as_deref() {
            Some(pinned) if pinned != digest => Some(format!(
                "module {} has SHA-256 {digest}, but the manifest pins wasm_sha256 = {pinned}",
                self.wasm.display()
            )),
            None if require_pinned => Some(format!(
                "module {} is not pinned (the manifest has no wasm_sha256; its SHA-256 is {digest}) and pinned modules are required",
                self.wasm.display()
            )),
            _ => None,
        }
    }

    /// `[config]` with `[secrets]` read into it, as the bytes `pulp_init` receives
    /// (empty when there is neither). Fails naming the secret (never its value) when
    /// one cannot be read.
    pub fn encoded_config(&self) -> Result<Vec<u8>, String> {
        if self.secrets.is_empty() {
            return Ok(self
                .config
                .as_ref()
                .map(crate::config::encode)
                .unwrap_or_default());
        }
        let mut table = self.config.clone().unwrap_or_default();
        for s in &self.secrets {
            table.insert(s.key.clone(), toml::Value::String(s.read()?));
        }
        Ok(crate::config::encode(&table))
    }
}

/// One `[secrets]` entry: config key `key` gets the value of `source` at load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secret {
    /// The `[config]` key it fills.
    pub key: String,
    /// Where its value is read from.
    pub source: SecretSource,
}

/// Where a secret's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// `{ env = "NAME" }`: an environment variable of the host process.
    Env(String),
    /// `{ file = "PATH" }`: a regular file's text (a Docker or Kubernetes secret),
    /// one trailing newline removed; relative paths are joined to the manifest's folder.
    File(PathBuf),
}

/// The largest secret file read (a secret is a token, not a payload).
const MAX_SECRET_BYTES: u64 = 64 * 1024;

impl Secret {
    /// The value, or why it cannot be had (naming the secret and its source).
    pub fn read(&self) -> Result<String, String> {
        match &self.source {
            SecretSource::Env(name) => std::env::var(name).map_err(|e| {
                format!(
                    "secret {:?}: environment variable {name} {}",
                    self.key,
                    match e {
                        std::env::VarError::NotPresent => "is not set",
                        std::env::VarError::NotUnicode(_) => "is not UTF-8",
                    }
                )
            }),
            SecretSource::File(path) => {
                let fail =
                    |why: String| format!("secret {:?}: file {}: {why}", self.key, path.display());
                // Not a FIFO, a device or a terminal: reading one could wait for ever.
                let bytes =
                    read_regular(path, MAX_SECRET_BYTES).map_err(|e| fail(e.to_string()))?;
                let mut text = String::from_utf8(bytes).map_err(|_| fail("not UTF-8".into()))?;
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                Ok(text)
            }
        }
    }
}

/// Reads `[secrets]`: each key a table with exactly one of `env` or `file`, and not
/// also a key of `[config]`.
fn secrets(
    raw: &BTreeMap<String, toml::Value>,
    config: Option<&toml::Table>,
    dir: &Path,
    problems: &mut Vec<String>,
) -> Vec<Secret> {
    let mut out = Vec::new();
    for (key, v) in raw {
        if config.is_some_and(|c| c.contains_key(key)) {
            problems.push(format!(
                "[secrets] {key} is also a key of [config]; give it in one place"
            ));
            continue;
        }
        let t = v.as_table();
        let field = |name| t.and_then(|t| t.get(name)).and_then(toml::Value::as_str);
        let source = match (t.map_or(0, |t| t.len()), field("env"), field("file")) {
            (1, Some(env), None) if !env.is_empty() => SecretSource::Env(env.to_string()),
            (1, None, Some(file)) if !file.is_empty() => SecretSource::File(dir.join(file)),
            _ => {
                problems.push(format!(
                    "[secrets] {key} must be {{ env = \"NAME\" }} or {{ file = \"PATH\" }}"
                ));
                continue;
            }
        };
        out.push(Secret {
            key: key.clone(),
            source,
        });
    }
    out
}

/// The SHA-256 of `bytes` as 64 lowercase hex digits (a module's `wasm_sha256`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The largest module a manifest may name (256 MiB).
pub const MAX_MODULE_BYTES: u64 = 256 << 20;
/// The largest manifest file (1 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// Reads `path` if it is a regular file of at most `max` bytes. It is opened
/// without blocking and checked before a byte is read, so a FIFO, a device such as
/// `/dev/zero` or a terminal is refused at once instead of blocking the reader or
/// filling memory; a file that grows past `max` while read is refused too.
pub fn read_regular(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, Read};
    let file = open_regular(path)?;
    let meta = file.metadata()?;
    if meta.len() > max {
        return Err(Error::other(format!(
            "{} bytes, larger than the {max}-byte limit",
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(Error::other(format!("larger than the {max}-byte limit")));
    }
    Ok(bytes)
}

/// Opens `path` for reading if it is a regular file, without blocking on a FIFO or
/// device on the way (an error names what it is not).
pub(crate) fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit: a
/// name that is also a safe folder name.
pub(crate) fn safe_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Removes and returns, in the table's order, the keys of `table` not in `known`.
fn take_unknown(table: &mut toml::Table, known: &[&str]) -> Vec<String> {
    let unknown: Vec<String> = table
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .cloned()
        .collect();
    for k in &unknown {
        table.remove(k);
    }
    unknown
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in items {
        let s = s.trim().to_string();
        if !s.is_empty() && !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("/p/pulp.plugin.toml"))
    }

    #[test]
    fn normalises_like_the_go_host() {
        let m = parse(
            r#"name = " echo "
version = "0.1.0 "
capabilities = [" Storage.SQLite", "storage.sqlite", "", "logging"]
provides = ["a", "a"]
[config]
x = 1
[config.db]
path = "nested tables are fine"
"#,
        )
        .unwrap();
        assert_eq!(m.name, "echo");
        assert_eq!(m.version, "0.1.0");
        assert_eq!(m.wasm, Path::new("/p/plugin.wasm"));
        assert_eq!(m.capabilities, ["storage.sqlite", "logging"]);
        assert_eq!(m.provides, ["a"]);
        assert!(m.config.unwrap()["db"].is_table());
    }

    #[test]
    fn unknown_fields_are_all_named() {
        let e = parse("name='a'\nversion='1'\nbogus=1\nalso=2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown manifest fields: bogus, also"), "{e}");
        assert!(e.contains("/p/pulp.plugin.toml"), "{e}");
    }

    #[test]
    fn unsafe_names_and_missing_fields_are_rejected() {
        for bad in ["../x", "a/b", ".hidden", "a b", &"x".repeat(65)] {
            let e = parse(&format!("name={bad:?}\nversion='1'"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("is not allowed"), "{bad}: {e}");
        }
        let e = parse("name=' '").unwrap_err().to_string();
        assert!(
            e.contains("name is required") && e.contains("version is required"),
            "{e}"
        );
    }

    #[test]
    fn syntax_errors_give_the_line() {
        let e = parse("name='a'\nversion=\n").unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn limits_are_checked_and_unknown_limit_keys_rejected() {
        let e = parse("name='a'\nversion='1'\n[limits]\nmemory_mb=0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("memory_mb = 0"), "{e}");
        let e = parse("name='a'\nversion='1'\n[limits]\nmemry=1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("memry"), "{e}");
    }

    #[test]
    fn settings_for_undeclared_capability_are_rejected() {
        let e = parse("name='a'\nversion='1'\n[capability.\"spawn.docker\"]\nimages=[]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("spawn.docker") && e.contains("does not declare"),
            "{e}"
        );
    }

    #[test]
    fn empty_config_is_no_bytes() {
        let m = parse("name='a'\nversion='1'\n[config]\n").unwrap();
        assert!(m.encoded_config().unwrap().is_empty());
    }
}
