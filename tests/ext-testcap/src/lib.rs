//! `test.record` (gated), a capability that exists only for the tests: proof that
//! an extension author adds a crate and nothing else.
//!
//! - `test_record(ptr, len) -> status` keeps the bytes, which tests read with [`take`].
//! - `[capability."test.record"] tag = "..."` is validated here (unknown keys rejected).
//! - [`lifecycle`] counts attach and detach calls per plugin.

use std::collections::HashMap;
use std::sync::Mutex;

use pulp_ext::wasmtime::Caller;
use pulp_ext::{Bytes, Capability, Import, Plugin, State};
use serde::Deserialize;

struct Record;

pulp_ext::register!(Record);

static RECORDS: Mutex<Vec<(String, Vec<u8>)>> = Mutex::new(Vec::new());
static LIFECYCLE: Mutex<Option<HashMap<String, (u32, u32)>>> = Mutex::new(None);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Toml {
    tag: Option<String>,
}

/// The parsed settings: what `attach` receives for every instance.
pub struct Settings {
    tag: Option<String>,
}

/// How many times the settings were parsed, per plugin: once per load, however
/// many instances attach.
static PARSED: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

/// How many times `plugin`'s settings were parsed.
pub fn parsed(plugin: &str) -> u32 {
    PARSED
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|m| m.get(plugin).copied())
        .unwrap_or_default()
}

/// The tag each instance of `plugin` was attached with, in order.
pub fn tags(plugin: &str) -> Vec<Option<String>> {
    TAGS.lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == plugin)
        .map(|(_, t)| t.clone())
        .collect()
}

static TAGS: Mutex<Vec<(String, Option<String>)>> = Mutex::new(Vec::new());

impl pulp_ext::Settings for Settings {
    fn parse(
        table: Option<&pulp_ext::toml::Table>,
        plugin: &Plugin,
    ) -> Result<Settings, Vec<String>> {
        let t: Toml = pulp_ext::from_table(table).map_err(|e| vec![e])?;
        *PARSED
            .lock()
            .unwrap()
            .get_or_insert_with(HashMap::new)
            .entry(plugin.name().to_string())
            .or_default() += 1;
        Ok(Settings { tag: t.tag })
    }
}

/// Per-instance state: proves `attach` ran for this instance.
struct Attached;

static ATTACHED: pulp_ext::Slot<Attached> = pulp_ext::Slot::new("test.record");

/// Takes every record `plugin` made so far, oldest first.
pub fn take(plugin: &str) -> Vec<Vec<u8>> {
    let mut all = RECORDS.lock().unwrap();
    let (mine, rest): (Vec<_>, Vec<_>) = all.drain(..).partition(|(p, _)| p == plugin);
    *all = rest;
    mine.into_iter().map(|(_, b)| b).collect()
}

/// `(attached, detached)` counts for `plugin`.
pub fn lifecycle(plugin: &str) -> (u32, u32) {
    LIFECYCLE
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|m| m.get(plugin).copied())
        .unwrap_or_default()
}

fn count(plugin: &str, attach: bool) {
    let mut g = LIFECYCLE.lock().unwrap();
    let e = g
        .get_or_insert_with(HashMap::new)
        .entry(plugin.to_string())
        .or_default();
    if attach {
        e.0 += 1
    } else {
        e.1 += 1
    }
}

impl Capability for Record {
    type Settings = Settings;

    fn name(&self) -> &'static str {
        "test.record"
    }

    fn imports(&self) -> Vec<Import> {
        vec![Import::new("test_record", test_record)]
    }

    fn attach(
        &self,
        plugin: &Plugin,
        settings: &Settings,
        state: &mut State,
    ) -> Result<(), String> {
        count(plugin.name(), true);
        TAGS.lock()
            .unwrap()
            .push((plugin.name().to_string(), settings.tag.clone()));
        state.put(&ATTACHED, Attached);
        Ok(())
    }

    fn detach(&self, state: &mut State) {
        if state.take(&ATTACHED).is_some() {
            count(state.plugin().name(), false);
        }
    }
}

fn test_record(c: &mut Caller<'_, State>, input: Bytes) -> Result<(), pulp_ext::Error> {
    let bytes = input.read(c)?.to_vec();
    if c.data_mut().peek(&ATTACHED).is_none() {
        return Err(pulp_ext::Status::Failed
            .err("test_record called on an instance that was never attached"));
    }
    let plugin = c.data().plugin().name().to_string();
    RECORDS.lock().unwrap().push((plugin, bytes));
    Ok(())
}
