//! The operations behind each import: checks against the grants, then engine calls
//! with deadlines.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, HostConfig, HostConfigLogConfig, Mount,
    MountTmpfsOptions, MountTypeEnum,
};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, DownloadFromContainerOptions, EventsOptions,
    KillContainerOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions,
    RestartContainerOptions, StartContainerOptions, StatsOptions, UploadToContainerOptions,
    WaitContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use pulp_ext::{Budget, Charge, Error, OverBudget, Status};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tokio::io::AsyncWriteExt;

use crate::engine::{block, fail, owner_filter, HOST_LABEL, INSTANCE_LABEL, PLUGIN_LABEL};
use crate::Instance;

/// What `docker_run` and `docker_create` ask for.
#[derive(Deserialize)]
pub(crate) struct Spec {
    image: String,
    #[serde(default)]
    cmd: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    mem_limit_mb: Option<u64>,
    #[serde(default)]
    cpu_limit: Option<f64>,
    #[serde(default)]
    network: bool,
}

/// How a container's output is kept besides what the capability reads from it.
#[derive(Clone, Copy)]
enum EngineLog {
    /// Not at all (`docker_run`: its output comes through the attach stream, into
    /// the capability's own bounded buffer).
    None,
    /// In the engine's `json-file` log, capped (`docker_create`: `docker_logs` reads it).
    Capped,
}

/// The engine-side log of a container, whatever the engine's default driver is:
/// `json-file`, at most two files of `max_output_bytes` on the engine's disk (after a
/// rotation the older one is full, so `docker_logs` still has the recent output).
fn log_config(logs: EngineLog, max_output_bytes: usize) -> HostConfigLogConfig {
    match logs {
        EngineLog::None => HostConfigLogConfig {
            typ: Some("none".into()),
            config: None,
        },
        EngineLog::Capped => HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(HashMap::from([
                ("max-size".to_string(), max_output_bytes.to_string()),
                ("max-file".to_string(), "2".to_string()),
            ])),
        },
    }
}

/// Checks a spec against the grants and builds the container's configuration.
fn config(
    inst: &Instance,
    spec: &Spec,
    stdin: bool,
    logs: EngineLog,
) -> Result<ContainerCreateBody, Error> {
    let g = &inst.grants;
    if !g.allows(&spec.image) {
        return Err(Status::Denied.err(format!(
            "image {:?} is not in [capability.\"spawn.docker\"] images",
            spec.image
        )));
    }
    if spec.network && !g.network {
        return Err(
            Status::Denied.err("a network was asked for, and network = true is not granted")
        );
    }
    let mem = spec.mem_limit_mb.filter(|m| *m > 0).unwrap_or(g.memory_mb);
    if !(6..=g.max_memory_mb).contains(&mem) {
        return Err(Status::Denied.err(format!(
            "mem_limit_mb = {mem} is outside 6..={} (max_memory_mb)",
            g.max_memory_mb
        )));
    }
    let cpus = spec.cpu_limit.filter(|c| *c > 0.0).unwrap_or(g.cpus);
    if cpus > g.max_cpus || !cpus.is_finite() {
        return Err(Status::Denied.err(format!(
            "cpu_limit = {cpus} is over max_cpus ({})",
            g.max_cpus
        )));
    }
    for k in spec.env.keys() {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(Status::Invalid.err(format!("env name {k:?} is not valid")));
        }
    }
    let labels = HashMap::from([
        (PLUGIN_LABEL.to_string(), inst.plugin.clone()),
        (HOST_LABEL.to_string(), inst.host.clone()),
        (INSTANCE_LABEL.to_string(), inst.instance.clone()),
    ]);
    Ok(ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: (!spec.cmd.is_empty()).then(|| spec.cmd.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels),
        attach_stdin: Some(stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(stdin),
        stdin_once: Some(stdin),
        tty: Some(false),
        user: g.user.clone(),
        host_config: Some(HostConfig {
            memory: Some((mem << 20) as i64),
            memory_swap: Some((mem << 20) as i64),
            nano_cpus: Some((cpus * 1e9) as i64),
            pids_limit: Some(g.pids_limit),
            network_mode: Some(if spec.network { "bridge" } else { "none" }.to_string()),
            privileged: Some(false),
            cap_drop: Some(vec!["ALL".to_string()]),
            cap_add: (!g.cap_add.is_empty()).then(|| g.cap_add.clone()),
            security_opt: Some(vec!["no-new-privileges".to_string()]),
            log_config: Some(log_config(logs, g.max_output_bytes)),
            // No binds, no volumes; `create_container` turns an image's VOLUMEs into
            // tmpfs mounts so the engine makes no host volume for them.
            binds: None,
            mounts: None,
            volumes_from: None,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Creates a container of this plugin (within `max_containers`); its id.
async fn create_container(
    docker: &Docker,
    inst: &Instance,
    mut body: ContainerCreateBody,
    name: Option<String>,
) -> Result<String, Error> {
    let image = body.image.clone().unwrap_or_default();
    // A 404 from either engine call means the image is missing: 6, never a pull.
    let engine_error = |what: &str, e| match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message,
        } => Status::NotFound.err(format!(
            "image {image:?} is not on the engine (nothing is pulled): {message}"
        )),
        e => fail(what, e),
    };
    let volumes = docker
        .inspect_image(&image)
        .await
        .map_err(|e| engine_error(&format!("inspecting image {image:?}"), e))?
        .config
        .and_then(|c| c.volumes)
        .unwrap_or_default();
    if let Some(hc) = body.host_config.as_mut() {
        hc.mounts = tmpfs_for(volumes.into_keys(), hc.memory.unwrap_or(0));
    }
    // Counting and creating are one step for all of the plugin's instances in this
    // host: two replicas creating at once would both see room for one more.
    let _one_at_a_time = inst.pool.creating.lock().await;
    let live = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(owner_filter(&inst.plugin, &inst.host)),
            ..Default::default()
        }))
        .await
        .map_err(|e| fail("listing containers", e))?;
    if live.len() >= inst.grants.max_containers as usize {
        return Err(Status::Denied.err(format!(
            "the plugin has {} containers, its max_containers",
            live.len()
        )));
    }
    let created = docker
        .create_container(
            Some(CreateContainerOptions {
                name,
                ..Default::default()
            }),
            body,
        )
        .await
        .map_err(|e| engine_error("creating the container", e))?;
    Ok(created.id)
}

/// A tmpfs of `bytes` (the container's memory limit, which it is charged to) at each
/// of an image's VOLUME paths: the engine would otherwise make an anonymous volume
/// on the host's disk for each, without a size limit.
fn tmpfs_for(paths: impl Iterator<Item = String>, bytes: i64) -> Option<Vec<Mount>> {
    let mut paths: Vec<String> = paths.collect();
    paths.sort();
    let mounts: Vec<Mount> = paths
        .into_iter()
        .map(|target| Mount {
            target: Some(target),
            typ: Some(MountTypeEnum::TMPFS),
            tmpfs_options: Some(MountTmpfsOptions {
                size_bytes: Some(bytes),
                mode: Some(0o1777),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    (!mounts.is_empty()).then_some(mounts)
}

async fn remove(docker: &Docker, id: &str) {
    let opts = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    let _ = docker.remove_container(id, Some(opts)).await;
}

/// The container's exit code once it stops (bollard reports non-zero codes as errors).
async fn exit_code(docker: &Docker, id: &str) -> Result<i64, Error> {
    let mut wait = docker.wait_container(id, None::<WaitContainerOptions>);
    match wait.next().await {
        Some(Ok(r)) => Ok(r.status_code),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) => Err(fail("waiting for the container", e)),
        None => Err(Status::Failed.err("the engine ended the wait without an exit code")),
    }
}

/// Container output the host holds until it goes to the guest: `docker_run`'s
/// stdout and stderr, `docker_exec`'s output, `docker_logs`, a `docker_files_read`
/// archive. Every byte is counted here before it is kept, and charged to the
/// plugin's host memory budget: the one place that bounds the host memory that
/// container output takes.
struct Output {
    max: usize,
    charge: Charge,
}

/// Keeping more would pass `max_output_bytes` or the plugin's host memory budget;
/// nothing was kept.
enum Over {
    Limit,
    Budget(OverBudget),
}

impl Over {
    /// The status for the guest: 11, with `limit` as the message when the output
    /// limit was passed, the budget's own message otherwise.
    fn error(self, limit: impl FnOnce() -> String) -> Error {
        match self {
            Over::Limit => Status::TooLarge.err(limit()),
            Over::Budget(e) => e.into(),
        }
    }
}

impl Output {
    fn new(max: usize, budget: &Budget) -> Output {
        Output {
            max,
            charge: budget.charge_anyway(0),
        }
    }

    /// Appends `bytes` to `to` if everything held stays within the limit and the budget.
    fn keep(&mut self, to: &mut Vec<u8>, bytes: &[u8]) -> Result<(), Over> {
        if self.charge.bytes().saturating_add(bytes.len()) > self.max {
            return Err(Over::Limit);
        }
        self.charge.grow(bytes.len()).map_err(Over::Budget)?;
        to.extend_from_slice(bytes);
        Ok(())
    }
}

#[derive(Deserialize)]
pub(crate) struct RunRequest {
    #[serde(flatten)]
    spec: Spec,
    #[serde(default)]
    stdin: Option<ByteBuf>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

#[derive(Serialize)]
pub(crate) struct RunResult {
    exit_code: i64,
    stdout: ByteBuf,
    stderr: ByteBuf,
    timed_out: bool,
}

/// Runs a container to completion and removes it. Past `timeout_ms` it is killed
/// and the result says `timed_out` (with the output so far).
pub(crate) fn run(inst: &Instance, req: RunRequest) -> Result<RunResult, Error> {
    let stdin = req.stdin.map(|b| b.into_vec()).unwrap_or_default();
    let body = config(inst, &req.spec, !stdin.is_empty(), EngineLog::None)?;
    let limit = inst.grants.timeout_ms;
    let wait = Duration::from_millis(
        req.timeout_ms
            .filter(|t| *t > 0)
            .unwrap_or(limit)
            .min(limit),
    );
    let docker = inst.engine.client(inst.deadline())?;
    let max = inst.grants.max_output_bytes;
    // The run's own limit, plus room for the engine calls around it.
    block(wait + inst.deadline(), "docker_run", async {
        let id = create_container(&docker, inst, body, None).await?;
        let result = run_created(&docker, &id, stdin, wait, max, &inst.budget).await;
        remove(&docker, &id).await;
        result
    })?
}

async fn run_created(
    docker: &Docker,
    id: &str,
    stdin: Vec<u8>,
    wait: Duration,
    max: usize,
    budget: &Budget,
) -> Result<RunResult, Error> {
    let mut attached = docker
        .attach_container(
            id,
            Some(AttachContainerOptions {
                stream: true,
                stdin: !stdin.is_empty(),
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        )
        .await
        .map_err(|e| fail("attaching to the container", e))?;
    docker
        .start_container(id, None::<StartContainerOptions>)
        .await
        .map_err(|e| fail("starting the container", e))?;
    if !stdin.is_empty() {
        let mut input = attached.input;
        tokio::spawn(async move {
            let _ = input.write_all(&stdin).await;
            let _ = input.shutdown().await;
        });
    }
    let deadline = tokio::time::Instant::now() + wait;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut output = Output::new(max, budget);
    let mut timed_out = false;
    loop {
        let kept = tokio::select! {
            item = attached.output.next() => match item {
                Some(Ok(LogOutput::StdOut { message })) => output.keep(&mut stdout, &message),
                Some(Ok(LogOutput::StdErr { message })) => output.keep(&mut stderr, &message),
                Some(Ok(_)) => Ok(()),
                Some(Err(e)) => return Err(fail("reading the container's output", e)),
                None => break,
            },
            _ = tokio::time::sleep_until(deadline) => {
                timed_out = true;
                break;
            }
        };
        if let Err(over) = kept {
            let _ = docker
                .kill_container(id, None::<KillContainerOptions>)
                .await;
            return Err(over.error(|| {
                format!("the container wrote more than max_output_bytes ({max}); it was killed")
            }));
        }
    }
    if timed_out {
        let _ = docker
            .kill_container(id, None::<KillContainerOptions>)
            .await;
    }
    let exit_code = exit_code(docker, id).await?;
    Ok(RunResult {
        exit_code,
        stdout: ByteBuf::from(stdout),
        stderr: ByteBuf::from(stderr),
        timed_out,
    })
}

#[derive(Deserialize)]
pub(crate) struct CreateRequest {
    #[serde(flatten)]
    spec: Spec,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct Created {
    id: String,
    name: String,
}

/// Creates and starts a long-lived container. A `name` becomes `pulp-<plugin>-<name>`
/// (names are engine-wide).
pub(crate) fn create(inst: &Instance, req: CreateRequest) -> Result<Created, Error> {
    let body = config(inst, &req.spec, false, EngineLog::Capped)?;
    let name = match req.name.as_deref().filter(|n| !n.is_empty()) {
        None => None,
        Some(n)
            if n.len() <= 64
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) =>
        {
            Some(format!("pulp-{}-{n}", inst.plugin))
        }
        Some(n) => {
            return Err(Status::Invalid.err(format!(
                "name {n:?} must be 1 to 64 letters, digits, '_', '.' or '-'"
            )))
        }
    };
    let docker = inst.engine.client(inst.deadline())?;
    block(inst.deadline(), "docker_create", async {
        let id = create_container(&docker, inst, body, name).await?;
        if let Err(e) = docker
            .start_container(&id, None::<StartContainerOptions>)
            .await
        {
            remove(&docker, &id).await;
            return Err(fail("starting the container", e));
        }
        let info = docker
            .inspect_container(
                &id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .map_err(|e| fail("inspecting the container", e))?;
        Ok(Created {
            name: container_name(&info),
            id,
        })
    })?
}

fn container_name(info: &ContainerInspectResponse) -> String {
    info.name
        .clone()
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_string()
}

/// The container `id` (a full or short id, or a name) if it is this plugin's; 6 otherwise.
async fn owned(
    docker: &Docker,
    inst: &Instance,
    id: &str,
) -> Result<ContainerInspectResponse, Error> {
    if id.is_empty() || id.contains('/') {
        return Err(Status::Invalid.err(format!("{id:?} is not a container id")));
    }
    let info = docker
        .inspect_container(
            id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .map_err(|e| match e {
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            } => Status::NotFound.err(format!("no container {id}")),
            e => fail(&format!("inspecting container {id}"), e),
        })?;
    let labels = info.config.as_ref().and_then(|c| c.labels.as_ref());
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    if label(PLUGIN_LABEL) != Some(inst.plugin.as_str())
        || label(HOST_LABEL) != Some(inst.host.as_str())
    {
        return Err(
            Status::NotFound.err(format!("no container {id} of plugin \"{}\"", inst.plugin))
        );
    }
    Ok(info)
}

/// Runs `work` on a container of this plugin, with the plugin's deadline.
fn on_owned<T, F>(
    inst: &Instance,
    what: &str,
    id: &str,
    work: impl FnOnce(Docker, String) -> F,
) -> Result<T, Error>
where
    F: std::future::Future<Output = Result<T, Error>>,
{
    let docker = inst.engine.client(inst.deadline())?;
    block(inst.deadline(), what, async {
        let info = owned(&docker, inst, id).await?;
        let full = info.id.unwrap_or_else(|| id.to_string());
        work(docker.clone(), full).await
    })?
}

#[derive(Deserialize)]
pub(crate) struct IdRequest {
    id: String,
}

#[derive(Serialize)]
pub(crate) struct Info {
    id: String,
    name: String,
    image: String,
    state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i64>,
}

pub(crate) fn get(inst: &Instance, req: IdRequest) -> Result<Info, Error> {
    let docker = inst.engine.client(inst.deadline())?;
    block(inst.deadline(), "docker_get", async {
        let info = owned(&docker, inst, &req.id).await?;
        let state = info.state.as_ref();
        let status = state
            .and_then(|s| s.status)
            .map(|s| s.to_string())
            .unwrap_or_default();
        let exited = matches!(status.as_str(), "exited" | "dead");
        Ok(Info {
            name: container_name(&info),
            id: info.id.clone().unwrap_or_default(),
            image: info
                .config
                .as_ref()
                .and_then(|c| c.image.clone())
                .unwrap_or_default(),
            exit_code: state.and_then(|s| s.exit_code).filter(|_| exited),
            state: status,
        })
    })?
}

#[derive(Deserialize)]
pub(crate) struct ListRequest {
    #[serde(default)]
    filter: BTreeMap<String, String>,
}

/// This plugin's containers; `filter` keys: `state`, `name`, `image` (exact values).
pub(crate) fn list(inst: &Instance, req: ListRequest) -> Result<Vec<Info>, Error> {
    for k in req.filter.keys() {
        if !matches!(k.as_str(), "state" | "name" | "image") {
            return Err(
                Status::Invalid.err(format!("filter key {k:?} is not one of state, name, image"))
            );
        }
    }
    let docker = inst.engine.client(inst.deadline())?;
    let all = block(inst.deadline(), "docker_list", async {
        docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(owner_filter(&inst.plugin, &inst.host)),
                ..Default::default()
            }))
            .await
            .map_err(|e| fail("listing containers", e))
    })??;
    let f = |k: &str| req.filter.get(k).map(String::as_str);
    Ok(all
        .into_iter()
        .map(|c| Info {
            id: c.id.unwrap_or_default(),
            name: c
                .names
                .and_then(|n| n.into_iter().next())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            image: c.image.unwrap_or_default(),
            state: c.state.map(|s| s.to_string()).unwrap_or_default(),
            exit_code: None,
        })
        .filter(|i| {
            f("state").is_none_or(|s| s == i.state)
                && f("name").is_none_or(|s| s == i.name)
                && f("image").is_none_or(|s| s == i.image)
        })
        .collect())
}

#[derive(Deserialize)]
pub(crate) struct ExecRequest {
    id: String,
    cmd: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct ExecResult {
    output: String,
    exit_code: i64,
}

/// Runs a command in a running container of this plugin: its combined output and code.
pub(crate) fn exec(inst: &Instance, req: ExecRequest) -> Result<ExecResult, Error> {
    if req.cmd.is_empty() {
        return Err(Status::Empty.err("cmd is empty"));
    }
    let max = inst.grants.max_output_bytes;
    on_owned(inst, "docker_exec", &req.id, |docker, id| async move {
        let exec = docker
            .create_exec(
                &id,
                CreateExecOptions {
                    cmd: Some(req.cmd),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| fail("creating the exec", e))?;
        let mut output = Vec::new();
        let mut held = Output::new(max, &inst.budget);
        if let StartExecResults::Attached {
            output: mut out, ..
        } = docker
            .start_exec(&exec.id, None)
            .await
            .map_err(|e| fail("starting the exec", e))?
        {
            while let Some(item) = out.next().await {
                if let LogOutput::StdOut { message } | LogOutput::StdErr { message } =
                    item.map_err(|e| fail("reading the exec's output", e))?
                {
                    held.keep(&mut output, &message).map_err(|over| {
                        over.error(|| format!("the output is over max_output_bytes ({max})"))
                    })?;
                }
            }
        }
        let exit_code = docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| fail("inspecting the exec", e))?
            .exit_code
            .unwrap_or(-1);
        Ok(ExecResult {
            output: String::from_utf8_lossy(&output).into_owned(),
            exit_code,
        })
    })
}

#[derive(Deserialize)]
pub(crate) struct LogsRequest {
    id: String,
    #[serde(default)]
    tail: Option<u32>,
}

#[derive(Serialize)]
pub(crate) struct Logs {
    logs: String,
}

pub(crate) fn logs(inst: &Instance, req: LogsRequest) -> Result<Logs, Error> {
    let max = inst.grants.max_output_bytes;
    on_owned(inst, "docker_logs", &req.id, |docker, id| async move {
        let mut stream = docker.logs(
            &id,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                tail: req.tail.unwrap_or(200).to_string(),
                ..Default::default()
            }),
        );
        let mut logs = Vec::new();
        let mut held = Output::new(max, &inst.budget);
        while let Some(item) = stream.next().await {
            let chunk = item.map_err(|e| fail("reading the logs", e))?.into_bytes();
            held.keep(&mut logs, &chunk).map_err(|over| {
                over.error(|| {
                    format!("the logs are over max_output_bytes ({max}); ask for a smaller tail")
                })
            })?;
        }
        Ok(Logs {
            logs: String::from_utf8_lossy(&logs).into_owned(),
        })
    })
}

#[derive(Serialize)]
pub(crate) struct Stats {
    cpu_percent: f64,
    mem_bytes: u64,
    mem_limit_bytes: u64,
}

pub(crate) fn stats(inst: &Instance, req: IdRequest) -> Result<Stats, Error> {
    on_owned(inst, "docker_stats", &req.id, |docker, id| async move {
        let s = docker
            .stats(
                &id,
                Some(StatsOptions {
                    stream: false,
                    one_shot: false,
                }),
            )
            .next()
            .await
            .ok_or_else(|| Status::Failed.err("the engine sent no stats"))?
            .map_err(|e| fail("reading stats", e))?;
        let total = |c: &Option<bollard::models::ContainerCpuStats>| {
            let c = c.as_ref();
            (
                c.and_then(|c| c.cpu_usage.as_ref()?.total_usage)
                    .unwrap_or(0),
                c.and_then(|c| c.system_cpu_usage).unwrap_or(0),
            )
        };
        let ((cpu, sys), (pcpu, psys)) = (total(&s.cpu_stats), total(&s.precpu_stats));
        let cpus = s
            .cpu_stats
            .as_ref()
            .and_then(|c| c.online_cpus)
            .unwrap_or(1)
            .max(1);
        let cpu_percent = if sys > psys && cpu >= pcpu {
            (cpu - pcpu) as f64 / (sys - psys) as f64 * cpus as f64 * 100.0
        } else {
            0.0
        };
        let m = s.memory_stats.as_ref();
        Ok(Stats {
            cpu_percent,
            mem_bytes: m.and_then(|m| m.usage).unwrap_or(0),
            mem_limit_bytes: m.and_then(|m| m.limit).unwrap_or(0),
        })
    })
}

#[derive(Deserialize)]
pub(crate) struct PathRequest {
    id: String,
    path: String,
}

fn absolute(path: &str) -> Result<(), Error> {
    if !path.starts_with('/') || path.contains('\0') || path.split('/').any(|p| p == "..") {
        return Err(Status::Invalid.err(format!("path {path:?} must be absolute, without ..")));
    }
    Ok(())
}

/// A file of the container, read through the engine's archive API.
pub(crate) fn files_read(inst: &Instance, req: PathRequest) -> Result<ByteBuf, Error> {
    absolute(&req.path)?;
    let max = inst.grants.max_output_bytes;
    on_owned(
        inst,
        "docker_files_read",
        &req.id,
        |docker, id| async move {
            let mut stream = docker.download_from_container(
                &id,
                Some(DownloadFromContainerOptions {
                    path: req.path.clone(),
                }),
            );
            let mut tar_bytes = Vec::new();
            // The file plus its archive headers.
            let mut held = Output::new(max + 4096, &inst.budget);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| match e {
                    bollard::errors::Error::DockerResponseServerError {
                        status_code: 404, ..
                    } => Status::NotFound.err(format!("no file {} in the container", req.path)),
                    e => fail("reading the file", e),
                })?;
                held.keep(&mut tar_bytes, &chunk).map_err(|over| {
                    over.error(|| format!("{} is over max_output_bytes ({max})", req.path))
                })?;
            }
            let mut archive = tar::Archive::new(&tar_bytes[..]);
            let mut entries = archive
                .entries()
                .map_err(|e| Status::Failed.err(format!("reading the archive: {e}")))?;
            let mut entry = entries
                .next()
                .ok_or_else(|| {
                    Status::NotFound.err(format!("no file {} in the container", req.path))
                })?
                .map_err(|e| Status::Failed.err(format!("reading the archive: {e}")))?;
            if !entry.header().entry_type().is_file() {
                return Err(Status::Invalid.err(format!("{} is not a regular file", req.path)));
            }
            // The archive's bound above leaves room for its headers and padding; the
            // file itself is held to the limit like every other result.
            let size = entry.header().size().unwrap_or(u64::MAX);
            if size > max as u64 {
                return Err(Status::TooLarge.err(format!(
                    "{} ({size} bytes) is over max_output_bytes ({max})",
                    req.path
                )));
            }
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data)
                .map_err(|e| Status::Failed.err(format!("reading the archive: {e}")))?;
            Ok(ByteBuf::from(data))
        },
    )
}

#[derive(Deserialize)]
pub(crate) struct WriteRequest {
    id: String,
    path: String,
    data: ByteBuf,
}

/// Writes a file (mode 0644) into an existing folder of the container.
pub(crate) fn files_write(inst: &Instance, req: WriteRequest) -> Result<(), Error> {
    absolute(&req.path)?;
    let (dir, file) = req.path.rsplit_once('/').expect("absolute");
    if file.is_empty() {
        return Err(Status::Invalid.err(format!("path {:?} names a folder, not a file", req.path)));
    }
    let mut header = tar::Header::new_gnu();
    header.set_size(req.data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_data(&mut header, file, &req.data[..])
        .map_err(|e| Status::Failed.err(format!("building the archive: {e}")))?;
    let tar_bytes = builder
        .into_inner()
        .map_err(|e| Status::Failed.err(format!("building the archive: {e}")))?;
    let dir = if dir.is_empty() { "/" } else { dir }.to_string();
    on_owned(
        inst,
        "docker_files_write",
        &req.id,
        |docker, id| async move {
            docker
                .upload_to_container(
                    &id,
                    Some(UploadToContainerOptions {
                        path: dir.clone(),
                        ..Default::default()
                    }),
                    bollard::body_full(tar_bytes.into()),
                )
                .await
                .map_err(|e| match e {
                    bollard::errors::Error::DockerResponseServerError {
                        status_code: 404, ..
                    } => Status::NotFound.err(format!("no folder {dir} in the container")),
                    e => fail("writing the file", e),
                })
        },
    )
}

pub(crate) fn restart(inst: &Instance, req: IdRequest) -> Result<(), Error> {
    on_owned(inst, "docker_restart", &req.id, |docker, id| async move {
        docker
            .restart_container(
                &id,
                Some(RestartContainerOptions {
                    t: Some(2),
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| fail("restarting the container", e))
    })
}

/// Stops and removes a container of this plugin.
pub(crate) fn destroy(inst: &Instance, req: IdRequest) -> Result<(), Error> {
    on_owned(inst, "docker_destroy", &req.id, |docker, id| async move {
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        docker
            .remove_container(&id, Some(opts))
            .await
            .map_err(|e| fail("removing the container", e))
    })
}

#[derive(Deserialize)]
pub(crate) struct EventsRequest {
    #[serde(default)]
    since_nanos: i64,
    #[serde(default)]
    limit: Option<u32>,
}

#[derive(Serialize)]
pub(crate) struct EventRecord {
    timestamp: i64,
    container_id: String,
    name: String,
    action: String,
}

/// The engine's events for this plugin's containers since `since_nanos`, up to now.
pub(crate) fn events_poll(inst: &Instance, req: EventsRequest) -> Result<Vec<EventRecord>, Error> {
    let limit = req.limit.filter(|l| *l > 0).unwrap_or(100).min(10_000) as usize;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let since = Duration::from_nanos(req.since_nanos.max(0) as u64);
    if since > now {
        return Ok(Vec::new());
    }
    let stamp = |d: Duration| format!("{}.{:09}", d.as_secs(), d.subsec_nanos());
    let mut filters = owner_filter(&inst.plugin, &inst.host);
    filters.insert("type".into(), vec!["container".into()]);
    let docker = inst.engine.client(inst.deadline())?;
    block(inst.deadline(), "docker_events_poll", async {
        let mut stream = docker.events(Some(EventsOptions {
            since: Some(stamp(since)),
            until: Some(stamp(now)),
            filters: Some(filters),
        }));
        let mut out = Vec::new();
        while let Some(e) = stream.next().await {
            let e = e.map_err(|e| fail("reading events", e))?;
            let actor = e.actor.unwrap_or_default();
            let name = actor
                .attributes
                .as_ref()
                .and_then(|a| a.get("name").cloned())
                .unwrap_or_default();
            out.push(EventRecord {
                timestamp: e.time_nano.unwrap_or(0),
                container_id: actor.id.unwrap_or_default(),
                name,
                action: e.action.unwrap_or_default(),
            });
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    })?
}
