//! The Docker engine a host's plugins share, and what every operation needs: a
//! negotiated client, the labels that mark a plugin's containers, error mapping.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
use bollard::Docker;
use pulp_ext::{Error, Shared, Status};

/// Label naming the plugin that owns a container.
pub(crate) const PLUGIN_LABEL: &str = "pulp.plugin";
/// Label naming the host (machine + storage root) whose plugin owns a container.
pub(crate) const HOST_LABEL: &str = "pulp.host";

/// A host's engine connection: made on first use, the API version negotiated (the
/// engine may be older than bollard's default, e.g. Debian's 20.10 speaks 1.41).
pub(crate) struct Engine {
    /// `unix:///path`, `tcp://host:port`, or `None` for `DOCKER_HOST` / the local socket.
    address: Option<String>,
    client: Mutex<Option<Docker>>,
}

impl Engine {
    pub(crate) fn new(shared: &Shared) -> Result<Engine, String> {
        let address = match shared.settings("docker") {
            None => None,
            Some(t) => {
                for k in t.keys() {
                    if k != "host" {
                        return Err(format!(
                            "host settings [docker]: unknown key {k:?} (known: host)"
                        ));
                    }
                }
                match t.get("host") {
                    None => None,
                    Some(toml::Value::String(s)) => Some(s.clone()),
                    Some(_) => return Err("host settings [docker]: host must be a string".into()),
                }
            }
        };
        Ok(Engine {
            address,
            client: Mutex::new(None),
        })
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

/// Removes every container of `plugin` on this host (after a crash, a trap, or at
/// close); returns how many went.
pub(crate) fn reap(
    docker: &Docker,
    plugin: &str,
    host: &str,
    deadline: Duration,
) -> Result<usize, Error> {
    block(deadline, "removing the plugin's containers", async {
        let list = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(owner_filter(plugin, host)),
                ..Default::default()
            }))
            .await
            .map_err(|e| fail("listing containers", e))?;
        let mut n = 0;
        for c in list {
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
