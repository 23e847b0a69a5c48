//! The Docker engine a host's plugins share, and what every operation needs: a
//! negotiated client, the labels that mark a plugin's containers, the instances of
//! each plugin that are alive, error mapping.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
use bollard::Docker;
use pulp_ext::{Error, Shared, Status};

/// Label naming the plugin that owns a container.
pub(crate) const PLUGIN_LABEL: &str = "pulp.plugin";
/// Label naming the host (machine + storage root) whose plugin owns a container.
pub(crate) const HOST_LABEL: &str = "pulp.host";
/// Label naming the plugin instance that made a container (unique per instance).
pub(crate) const INSTANCE_LABEL: &str = "pulp.instance";

/// A host's engine connection: made on first use, the API version negotiated (the
/// engine may be older than bollard's default, e.g. Debian's 20.10 speaks 1.41).
pub(crate) struct Engine {
    /// `unix:///path`, `tcp://host:port`, or `None` for `DOCKER_HOST` / the local socket.
    address: Option<String>,
    client: Mutex<Option<Docker>>,
    /// Per plugin name: what its instances in this host share.
    pools: Mutex<HashMap<String, Arc<Pool>>>,
    /// Instances made so far: part of each instance's label.
    instances: AtomicU64,
}

/// What the instances of one plugin (a pool, or one instance and its restarts) share
/// in this host.
#[derive(Default)]
pub(crate) struct Pool {
    /// The instance labels of the instances alive now. A container whose instance is
    /// not here belongs to one that is gone (or to an earlier run that crashed).
    live: Mutex<HashSet<String>>,
    /// Held from counting the plugin's containers to creating one, so that instances
    /// creating at once cannot both pass `max_containers`.
    pub(crate) creating: tokio::sync::Mutex<()>,
}

impl Pool {
    pub(crate) fn join(&self, instance: &str) {
        self.live_set().insert(instance.to_string());
    }

    pub(crate) fn leave(&self, instance: &str) {
        self.live_set().remove(instance);
    }

    pub(crate) fn is_live(&self, instance: &str) -> bool {
        self.live_set().contains(instance)
    }

    fn live_set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Problems with the host-level `"docker"` section: `host` (a string) is its one key.
pub(crate) fn check_section(t: &toml::Table) -> Result<(), String> {
    for (k, v) in t {
        match (k.as_str(), v) {
            ("host", toml::Value::String(_)) => {}
            ("host", _) => return Err("host settings [docker]: host must be a string".into()),
            _ => {
                return Err(format!(
                    "host settings [docker]: unknown key {k:?} (known: host)"
                ))
            }
        }
    }
    Ok(())
}

impl Engine {
    pub(crate) fn new(shared: &Shared) -> Result<Engine, String> {
        let address = match shared.settings("docker") {
            None => None,
            Some(t) => {
                check_section(t)?;
                match t.get("host") {
                    Some(toml::Value::String(s)) => Some(s.clone()),
                    _ => None,
                }
            }
        };
        Ok(Engine {
            address,
            client: Mutex::new(None),
            pools: Mutex::new(HashMap::new()),
            instances: AtomicU64::new(0),
        })
    }

    /// The pool of plugin `plugin` (made on first use).
    pub(crate) fn pool(&self, plugin: &str) -> Arc<Pool> {
        self.pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(plugin.to_string())
            .or_default()
            .clone()
    }

    /// A label value no other instance (of this process or another) has.
    pub(crate) fn new_instance(&self) -> String {
        let n = self.instances.fetch_add(1, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut h = blake3::Hasher::new();
        h.update(&std::process::id().to_le_bytes());
        h.update(&now.as_nanos().to_le_bytes());
        h.update(&(self as *const Engine as usize).to_le_bytes());
        h.update(&n.to_le_bytes());
        h.finalize().to_hex()[..16].to_string()
    }

    fn describe(&self) -> String {
        self.address
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into())
    }

    /// The connected client, connecting (with `deadline`) if needed; 10 when the
    /// engine cannot be reached.
    pub(crate) fn client(&self, deadline: Duration) -> Result<Docker, Error> {
        if let Some(c) = self
            .client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Ok(c.clone());
        }
        let unavailable = |e: String| {
            Status::Unavailable.err(format!(
                "the Docker engine at {} cannot be reached: {e}",
                self.describe()
            ))
        };
        let docker = match &self.address {
            None => Docker::connect_with_defaults(),
            Some(a) if a.starts_with("unix://") => {
                Docker::connect_with_unix(a, 120, bollard::API_DEFAULT_VERSION)
            }
            Some(a) => Docker::connect_with_http(a, 120, bollard::API_DEFAULT_VERSION),
        }
        .map_err(|e| unavailable(e.to_string()))?;
        let docker = block(
            deadline,
            "connecting to the Docker engine",
            docker.negotiate_version(),
        )?
        .map_err(|e| unavailable(e.to_string()))?;
        *self.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(docker.clone());
        Ok(docker)
    }
}

/// Runs `work` on the shared runtime, blocking only the calling plugin's thread, for
/// at most `deadline` (12 after it).
pub(crate) fn block<T>(
    deadline: Duration,
    what: &str,
    work: impl Future<Output = T>,
) -> Result<T, Error> {
    pulp_ext::runtime()
        .block_on(async { tokio::time::timeout(deadline, work).await })
        .map_err(|_| {
            Status::Timeout.err(format!(
                "{what}: no answer from the Docker engine within {} ms",
                deadline.as_millis()
            ))
        })
}

/// Maps an engine error to a status: 6 not found, 10 unreachable, 12 timeout, 5 the rest.
pub(crate) fn fail(what: &str, e: bollard::errors::Error) -> Error {
    use bollard::errors::Error as E;
    let status = match &e {
        E::DockerResponseServerError {
            status_code: 404, ..
        } => Status::NotFound,
        E::DockerResponseServerError { .. }
        | E::JsonDataError { .. }
        | E::JsonSerdeError { .. }
        | E::DockerStreamError { .. }
        | E::DockerContainerWaitError { .. } => Status::Failed,
        E::RequestTimeoutError => Status::Timeout,
        _ => Status::Unavailable,
    };
    let message = match &e {
        E::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    };
    status.err(format!("{what}: {message}"))
}

/// The `label=` filters that select one plugin's containers on this host.
pub(crate) fn owner_filter(plugin: &str, host: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        vec![
            format!("{PLUGIN_LABEL}={plugin}"),
            format!("{HOST_LABEL}={host}"),
        ],
    )])
}

/// Removes the containers that `filters` select, but those `keep` says to keep (given
/// their `pulp.instance` label); returns how many went.
pub(crate) fn reap(
    docker: &Docker,
    filters: HashMap<String, Vec<String>>,
    keep: impl Fn(Option<&str>) -> bool,
    deadline: Duration,
) -> Result<usize, Error> {
    block(deadline, "removing the plugin's containers", async {
        let list = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| fail("listing containers", e))?;
        let mut n = 0;
        for c in list {
            let instance = c.labels.as_ref().and_then(|l| l.get(INSTANCE_LABEL));
            if keep(instance.map(String::as_str)) {
                continue;
            }
            let Some(id) = c.id else { continue };
            let opts = RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            match docker.remove_container(&id, Some(opts)).await {
                Ok(()) => n += 1,
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404 | 409,
                    ..
                }) => {}
                Err(e) => return Err(fail(&format!("removing container {id}"), e)),
            }
        }
        Ok(n)
    })?
}
