//! Containers (`spawn.docker`) from the images the manifest allows.
//!
//! ```no_run
//! use pulp_pdk::docker::{self, Run};
//! let out = docker::run(&Run { image: "busybox:1".into(), cmd: vec!["echo".into(), "hi".into()], ..Run::default() })?;
//! assert_eq!(out.stdout, b"hi\n");
//! # Ok::<(), pulp_pdk::Error>(())
//! ```

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::mem::call_out;
use crate::msgpack::{decode, encode};
use crate::status::check;
use crate::{sys, Result};

// The closures below wrap the raw imports: each is handed live buffers and live
// out-pointers by these two functions, which is all the imports need (SAFETY).
fn with_result<T: DeserializeOwned>(
    name: std::fmt::Arguments<'_>,
    req: &impl Serialize,
    f: impl Fn(*const u8, usize, *mut u32, *mut u32) -> i32,
) -> Result<T> {
    let req = encode(req)?;
    decode(&call_out(name, |p, n| f(req.as_ptr(), req.len(), p, n))?)
}

fn no_result(
    name: std::fmt::Arguments<'_>,
    req: &impl Serialize,
    f: impl Fn(*const u8, usize) -> i32,
) -> Result<()> {
    let req = encode(req)?;
    check(name, f(req.as_ptr(), req.len()))
}

/// `docker_run`: a container that runs to its end and is removed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Run {
    /// An image the manifest allows.
    pub image: String,
    /// The command.
    pub cmd: Vec<String>,
    /// Environment.
    pub env: BTreeMap<String, String>,
    /// Given on standard input.
    #[serde(with = "serde_bytes")]
    pub stdin: Vec<u8>,
    /// 0: the capability's `timeout_ms`.
    pub timeout_ms: u32,
    /// 0: the grant's default.
    pub mem_limit_mb: u32,
    /// 0: the grant's default.
    pub cpu_limit: f64,
    /// Docker's bridge network (when granted).
    pub network: bool,
}

/// What a [`Run`] gave.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Ran {
    /// The exit code (137 when killed at its timeout).
    pub exit_code: i64,
    /// Standard output.
    #[serde(with = "serde_bytes")]
    pub stdout: Vec<u8>,
    /// Standard error.
    #[serde(with = "serde_bytes")]
    pub stderr: Vec<u8>,
    /// Killed at `timeout_ms`.
    #[serde(default)]
    pub timed_out: bool,
}

/// Runs a container to its end.
pub fn run(r: &Run) -> Result<Ran> {
    with_result(
        format_args!("docker_run {}", r.image),
        r,
        |a, b, c, d| unsafe { sys::docker_run(a, b, c, d) },
    )
}

/// `docker_create`: a container that keeps running.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Create {
    /// An image the manifest allows.
    pub image: String,
    /// The command (empty: the image's).
    pub cmd: Vec<String>,
    /// Environment.
    pub env: BTreeMap<String, String>,
    /// Becomes `pulp-<plugin>-<name>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// 0: the grant's default.
    pub mem_limit_mb: u32,
    /// 0: the grant's default.
    pub cpu_limit: f64,
    /// Docker's bridge network (when granted).
    pub network: bool,
}

/// A container made by [`create`].
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Created {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// Creates and starts a container.
pub fn create(c: &Create) -> Result<Created> {
    with_result(
        format_args!("docker_create {}", c.image),
        c,
        |a, b, d, e| unsafe { sys::docker_create(a, b, d, e) },
    )
}

/// One of this plugin's containers.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Container {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its image.
    pub image: String,
    /// `running`, `exited`, ...
    pub state: String,
    /// Once it exited.
    #[serde(default)]
    pub exit_code: Option<i64>,
}

#[derive(Serialize)]
struct Id<'a> {
    id: &'a str,
}

/// A container of this plugin ([`crate::Status::NotFound`] for any other).
pub fn get(id: &str) -> Result<Container> {
    with_result(
        format_args!("docker_get {id}"),
        &Id { id },
        |a, b, c, d| unsafe { sys::docker_get(a, b, c, d) },
    )
}

#[derive(Serialize)]
struct List<'a> {
    filter: &'a BTreeMap<String, String>,
}

/// This plugin's containers (filter keys `state`, `name`, `image`).
pub fn list(filter: &BTreeMap<String, String>) -> Result<Vec<Container>> {
    with_result(
        format_args!("docker_list"),
        &List { filter },
        |a, b, c, d| unsafe { sys::docker_list(a, b, c, d) },
    )
}

#[derive(Serialize)]
struct Exec<'a> {
    id: &'a str,
    cmd: &'a [String],
}

/// What [`exec`] gave.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Executed {
    /// Standard output and error.
    pub output: String,
    /// The exit code.
    pub exit_code: i64,
}

/// Runs a command in a running container.
pub fn exec(id: &str, cmd: &[String]) -> Result<Executed> {
    with_result(
        format_args!("docker_exec {id}"),
        &Exec { id, cmd },
        |a, b, c, d| unsafe { sys::docker_exec(a, b, c, d) },
    )
}

#[derive(Serialize)]
struct Logs<'a> {
    id: &'a str,
    tail: u32,
}

#[derive(Deserialize)]
struct LogText {
    logs: String,
}

/// The last `tail` lines of a container's log.
pub fn logs(id: &str, tail: u32) -> Result<String> {
    let l: LogText = with_result(
        format_args!("docker_logs {id}"),
        &Logs { id, tail },
        |a, b, c, d| unsafe { sys::docker_logs(a, b, c, d) },
    )?;
    Ok(l.logs)
}

/// A container's resource use.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Stats {
    /// CPU, percent of one core.
    pub cpu_percent: f64,
    /// Memory in use.
    pub mem_bytes: u64,
    /// Its memory limit.
    pub mem_limit_bytes: u64,
}

/// A container's resource use now.
pub fn stats(id: &str) -> Result<Stats> {
    with_result(
        format_args!("docker_stats {id}"),
        &Id { id },
        |a, b, c, d| unsafe { sys::docker_stats(a, b, c, d) },
    )
}

#[derive(Serialize)]
struct FilePath<'a> {
    id: &'a str,
    path: &'a str,
}

/// Reads a file inside a container.
pub fn read_file(id: &str, path: &str) -> Result<Vec<u8>> {
    let data: serde_bytes::ByteBuf = with_result(
        format_args!("docker_files_read {id} {path}"),
        &FilePath { id, path },
        |a, b, c, d| unsafe { sys::docker_files_read(a, b, c, d) },
    )?;
    Ok(data.into_vec())
}

#[derive(Serialize)]
struct FileData<'a> {
    id: &'a str,
    path: &'a str,
    #[serde(with = "serde_bytes")]
    data: &'a [u8],
}

/// Writes a file inside a container.
pub fn write_file(id: &str, path: &str, data: &[u8]) -> Result<()> {
    no_result(
        format_args!("docker_files_write {id} {path}"),
        &FileData { id, path, data },
        |a, b| unsafe { sys::docker_files_write(a, b) },
    )
}

/// Restarts a container.
pub fn restart(id: &str) -> Result<()> {
    no_result(
        format_args!("docker_restart {id}"),
        &Id { id },
        |a, b| unsafe { sys::docker_restart(a, b) },
    )
}

/// Stops and removes a container.
pub fn destroy(id: &str) -> Result<()> {
    no_result(
        format_args!("docker_destroy {id}"),
        &Id { id },
        |a, b| unsafe { sys::docker_destroy(a, b) },
    )
}

#[derive(Serialize)]
struct Poll {
    since_nanos: i64,
    limit: u32,
}

/// Something that happened to one of this plugin's containers.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ContainerEvent {
    /// Unix nanoseconds.
    pub timestamp: i64,
    /// The container.
    pub container_id: String,
    /// Its name.
    pub name: String,
    /// `start`, `die`, ...
    pub action: String,
}

/// Events of this plugin's containers since `since_nanos`, at most `limit`.
pub fn events(since_nanos: i64, limit: u32) -> Result<Vec<ContainerEvent>> {
    with_result(
        format_args!("docker_events_poll"),
        &Poll { since_nanos, limit },
        |a, b, c, d| unsafe { sys::docker_events_poll(a, b, c, d) },
    )
}
