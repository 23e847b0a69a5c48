//! `spawn.docker` (gated): containers on a Docker engine, through `bollard`.
//!
//! Every import of ABI.md §4 "spawn.docker": `docker_run`, `docker_create`,
//! `docker_get`, `docker_list`, `docker_exec`, `docker_logs`, `docker_stats`,
//! `docker_files_read`, `docker_files_write`, `docker_restart`, `docker_destroy`,
//! `docker_events_poll`.
//!
//! Grants come from `[capability."spawn.docker"]` ([`grants`] module): `images`
//! (`repo:tag`, `repo` for any tag, `repo/*`), `network`, default and maximum memory
//! and CPUs, `max_containers`, `pids_limit`, `timeout_ms`, `max_output_bytes`,
//! `cap_add`, `user`. Containers are never privileged, drop every Linux capability
//! but those `cap_add` grants, run as `user` (`nobody` unless granted otherwise),
//! with `no-new-privileges`, a pids limit, no mounts (an image's `VOLUME`s become
//! tmpfs sized like the memory limit), logs capped on the engine's disk, and no
//! network unless granted and asked for. Each carries the labels `pulp.plugin` (the
//! plugin's name), `pulp.host` (a hash of this machine's name and the host's
//! storage root) and `pulp.instance` (the instance that made it); a plugin sees only
//! containers with its plugin and host labels (6 otherwise). An instance's
//! containers are removed when it goes away (close, trap, restart), and when an
//! instance starts, those of instances that are gone (a crashed run) are removed;
//! live siblings' are kept. Nothing is ever pulled: an image must be on the engine
//! already (6 otherwise).
//!
//! The engine is `DOCKER_HOST` or the local socket (host settings section
//! `"docker"`, key `host`, overrides it); an unreachable engine is 10, never a hang:
//! every wait has a deadline and blocks only the calling plugin's thread.

#![warn(missing_docs)]

mod engine;
mod grants;
mod ops;

use std::sync::Arc;
use std::time::Duration;

use engine::{Engine, Pool, INSTANCE_LABEL};
use grants::Grants;
use pulp_ext::wasmtime::Caller;
use pulp_ext::{Capability, Error, Import, Msgpack, Out, Plugin, State};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The `spawn.docker` capability, for a registry built by hand.
pub struct SpawnDocker;

pulp_ext::register!(SpawnDocker);

const NAME: &str = "spawn.docker";

static INSTANCE: pulp_ext::Slot<Instance> = pulp_ext::Slot::new(NAME);

/// One plugin instance's view of the engine. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Instance(Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) engine: Arc<Engine>,
    pub(crate) grants: Grants,
    pub(crate) plugin: String,
    /// The `pulp.host` label value.
    pub(crate) host: String,
    /// The `pulp.instance` label value: this instance's own.
    pub(crate) instance: String,
    /// What this plugin's instances share (which are alive, the create lock).
    pub(crate) pool: Arc<Pool>,
    /// The plugin's host memory budget, charged for container output while held.
    pub(crate) budget: pulp_ext::Budget,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.pool.leave(&self.instance);
    }
}

impl std::ops::Deref for Instance {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Inner {
    /// Removes this instance's containers; how many went.
    fn reap_own(&self, deadline: Duration) -> Result<usize, Error> {
        let docker = self.engine.client(deadline)?;
        let mut filters = engine::owner_filter(&self.plugin, &self.host);
        filters
            .entry("label".into())
            .or_default()
            .push(format!("{INSTANCE_LABEL}={}", self.instance));
        engine::reap(&docker, filters, |_| false, deadline)
    }

    /// Removes the plugin's containers whose instance is gone (a crash, an earlier
    /// run); live siblings' stay. How many went.
    fn reap_orphans(&self, deadline: Duration) -> Result<usize, Error> {
        let docker = self.engine.client(deadline)?;
        let filters = engine::owner_filter(&self.plugin, &self.host);
        // Judged one container at a time against the pool as it is then: an
        // instance joins before it can create anything, so a label that is not
        // live is one that never will be again.
        let live = |i: Option<&str>| i.is_some_and(|i| self.pool.is_live(i));
        engine::reap(&docker, filters, live, deadline)
    }

    /// The deadline of one engine call.
    pub(crate) fn deadline(&self) -> Duration {
        Duration::from_millis(self.grants.timeout_ms)
    }
}

/// This machine's name and the host's storage root, hashed: the `pulp.host` label,
/// so that two hosts sharing an engine never reap each other's containers.
fn host_label(plugin: &Plugin) -> String {
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let root = plugin
        .storage_dir()
        .parent()
        .unwrap_or(plugin.storage_dir());
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mut h = blake3::Hasher::new();
    h.update(machine.trim().as_bytes());
    h.update(b"\0");
    h.update(root.to_string_lossy().as_bytes());
    h.finalize().to_hex()[..16].to_string()
}

impl Capability for SpawnDocker {
    type Settings = Grants;

    fn name(&self) -> &'static str {
        NAME
    }

    fn imports(&self) -> Vec<Import> {
        vec![
            Import::new("docker_run", with_result("docker_run", ops::run)),
            Import::new("docker_create", with_result("docker_create", ops::create)),
            Import::new("docker_get", with_result("docker_get", ops::get)),
            Import::new("docker_list", with_result("docker_list", ops::list)),
            Import::new("docker_exec", with_result("docker_exec", ops::exec)),
            Import::new("docker_logs", with_result("docker_logs", ops::logs)),
            Import::new("docker_stats", with_result("docker_stats", ops::stats)),
            Import::new(
                "docker_files_read",
                with_result("docker_files_read", ops::files_read),
            ),
            Import::new(
                "docker_files_write",
                without_result("docker_files_write", ops::files_write),
            ),
            Import::new(
                "docker_restart",
                without_result("docker_restart", ops::restart),
            ),
            Import::new(
                "docker_destroy",
                without_result("docker_destroy", ops::destroy),
            ),
            Import::new(
                "docker_events_poll",
                with_result("docker_events_poll", ops::events_poll),
            ),
        ]
    }

    fn host_section(&self) -> Option<&'static str> {
        Some("docker")
    }

    fn check_host_section(&self, table: &toml::Table) -> Result<(), String> {
        engine::check_section(table)
    }

    /// Removes what instances that are gone (an earlier instance, a crashed run) left
    /// behind; a live sibling's containers stay. An engine that cannot be reached does
    /// not fail the load: calls get 10 until it answers.
    fn attach(&self, plugin: &Plugin, grants: &Grants, state: &mut State) -> Result<(), String> {
        let grants = grants.clone();
        let shared = plugin.shared();
        let engine = shared.service(|| Engine::new(shared))?;
        let pool = engine.pool(plugin.name());
        let instance = engine.new_instance();
        pool.join(&instance);
        let inst = Instance(Arc::new(Inner {
            engine,
            grants,
            plugin: plugin.name().to_string(),
            host: host_label(plugin),
            instance,
            pool,
            budget: plugin.budget().clone(),
        }));
        let quick = Duration::from_secs(5);
        match inst.reap_orphans(quick) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                plugin = inst.plugin,
                "removed {n} container(s) left from an earlier run"
            ),
            Err(e) => tracing::warn!(
                plugin = inst.plugin,
                "cannot clean up containers at start: {e}"
            ),
        }
        state.put(&INSTANCE, inst);
        Ok(())
    }

    /// Removes every container of this instance (bounded wait); its siblings' stay.
    fn detach(&self, state: &mut State) {
        let Some(inst) = state.take(&INSTANCE) else {
            return;
        };
        let deadline = Duration::from_secs(10);
        match inst.reap_own(deadline) {
            Ok(0) => {}
            Ok(n) => tracing::debug!(plugin = inst.plugin, "removed {n} container(s)"),
            Err(e) => tracing::warn!(
                plugin = inst.plugin,
                "cannot remove the plugin's containers: {e}"
            ),
        }
    }
}

fn instance(c: &mut Caller<'_, State>) -> Result<Instance, Error> {
    c.data_mut().slot(&INSTANCE).cloned()
}

/// The handler of `name(req_ptr, req_len, res_ptr_out, res_len_out)`: decode, run
/// `op`, write its result as msgpack.
fn with_result<Req: DeserializeOwned + 'static, Res: Serialize + 'static>(
    name: &'static str,
    op: fn(&Instance, Req) -> Result<Res, Error>,
) -> impl Fn(&mut Caller<'_, State>, Msgpack<Req>, Out<Res>) -> Result<(), Error> + Send + Sync {
    move |c: &mut Caller<'_, State>, req: Msgpack<Req>, out: Out<Res>| {
        let req = req.read(c)?;
        let inst = instance(c)?;
        let res = op(&inst, req).map_err(|e| in_call(name, e))?;
        out.write(c, &res)
    }
}

/// The handler of `name(req_ptr, req_len)`.
fn without_result<Req: DeserializeOwned + 'static>(
    name: &'static str,
    op: fn(&Instance, Req) -> Result<(), Error>,
) -> impl Fn(&mut Caller<'_, State>, Msgpack<Req>) -> Result<(), Error> + Send + Sync {
    move |c: &mut Caller<'_, State>, req: Msgpack<Req>| {
        let req = req.read(c)?;
        let inst = instance(c)?;
        op(&inst, req).map_err(|e| in_call(name, e))
    }
}

/// Prefixes a failure's message with the import's name.
fn in_call(name: &str, e: Error) -> Error {
    match e {
        Error::Status { status, message } => status.err(format!("{name}: {message}")),
        other => other,
    }
}
