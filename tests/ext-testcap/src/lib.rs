//! `test.record` (gated), a capability that exists only for the tests: proof that
//! an extension author adds a crate and nothing else.
//!
//! - `test_record(ptr, len) -> status` keeps the bytes, which tests read with [`take`].
//! - `[capability."test.record"] tag = "..."` is validated here (unknown keys rejected).
//! - [`lifecycle`] counts attach and detach calls per plugin.

use std::collections::HashMap;
use std::sync::Mutex;

use pulp_ext::wasmtime::{Caller, Linker};
use pulp_ext::{mem, Binding, Capability, Import, Plugin, State};
use serde::Deserialize;

struct Record;

pulp_ext::register!(Record);

static RECORDS: Mutex<Vec<(String, Vec<u8>)>> = Mutex::new(Vec::new());
static LIFECYCLE: Mutex<Option<HashMap<String, (u32, u32)>>> = Mutex::new(None);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[allow(dead_code)]
    tag: Option<String>,
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

const IMPORTS: &[Import] = &[Import::status("test_record", 2)];

impl Capability for Record {
    fn name(&self) -> &'static str {
        "test.record"
    }

    fn binding(&self) -> Binding {
        Binding::Gated
    }

    fn imports(&self) -> &'static [Import] {
        IMPORTS
    }

    fn configure(&self, plugin: &Plugin) -> Result<(), Vec<String>> {
        plugin
            .settings_as::<Settings>(self.name())
            .map(|_| ())
            .map_err(|e| vec![e])
    }

    fn link(&self, linker: &mut Linker<State>) -> pulp_ext::wasmtime::Result<()> {
        linker.func_wrap(
            "pulp",
            "test_record",
            |mut c: Caller<'_, State>, ptr: i32, len: i32| {
                pulp_ext::status(&mut c, |c| {
                    let bytes = mem::bytes(c, ptr, len, "test_record input")?.to_vec();
                    if c.data_mut().peek(&ATTACHED).is_none() {
                        return Err(pulp_ext::Status::Failed
                            .err("test_record called on an instance that was never attached"));
                    }
                    let plugin = c.data().plugin().name().to_string();
                    RECORDS.lock().unwrap().push((plugin, bytes));
                    Ok(())
                })
            },
        )?;
        Ok(())
    }

    fn attach(&self, plugin: &Plugin, state: &mut State) -> Result<(), String> {
        count(plugin.name(), true);
        state.put(&ATTACHED, Attached);
        Ok(())
    }

    fn detach(&self, state: &mut State) {
        if state.take(&ATTACHED).is_some() {
            count(state.plugin().name(), false);
        }
    }
}
