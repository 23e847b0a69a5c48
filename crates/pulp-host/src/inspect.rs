//! What a module needs and what the host offers it: the checks shared by
//! `Plugin::load` and `pulp check` (ABI §2 exports, ABI §4 binding rules), and the
//! linker built from their plan (real imports and the stubs that return 99).

use std::sync::Arc;

use pulp_ext::host::{AnyCapability, AnySettings};
use pulp_ext::wasmtime::{self, Engine, ExternType, FuncType, Linker, Module, Val, ValType};
use pulp_ext::{Binding, Plugin as View, State};

use crate::registry::Entry;
use crate::{Manifest, Registry};

/// Which capabilities get real imports (with the plugin's settings of each, parsed
/// once) and which get stubs.
pub(crate) struct Plan {
    pub linked: Vec<Linked>,
    pub stubbed: Vec<Entry>,
}

/// A capability linked for a plugin, and its settings for that plugin.
pub(crate) struct Linked {
    pub entry: Entry,
    pub settings: AnySettings,
}

impl Linked {
    pub fn capability(&self) -> &dyn AnyCapability {
        &*self.entry.capability
    }
}

const REQUIRED: &[(&str, &str)] = &[
    ("pulp_alloc", "(i32) -> i32"),
    ("pulp_init", "(i32, i32) -> i32"),
    ("pulp_step", "(i32, i32) -> i32"),
    ("pulp_shutdown", "() -> i32"),
];

const OPTIONAL: &[(&str, &str)] = &[
    ("pulp_free", "(i32, i32) -> ()"),
    ("probe_last_call", "() -> i64"),
    ("probe_config_marker", "() -> i64"),
    ("pulp_on_call", "(i32, i32, i32, i32, i32, i32) -> i32"),
    ("_initialize", "() -> ()"),
    ("_start", "() -> ()"),
];

fn ty(v: &ValType) -> &'static str {
    match v {
        ValType::I32 => "i32",
        ValType::I64 => "i64",
        ValType::F32 => "f32",
        ValType::F64 => "f64",
        ValType::V128 => "v128",
        ValType::Ref(_) => "ref",
    }
}

/// `(i32, i32) -> i32` for a function type; `()` for no results.
pub(crate) fn signature(f: &FuncType) -> String {
    let p: Vec<_> = f.params().map(|v| ty(&v)).collect();
    let r: Vec<_> = f.results().map(|v| ty(&v)).collect();
    let r = if r.is_empty() {
        "()".to_string()
    } else {
        r.join(", ")
    };
    format!("({}) -> {}", p.join(", "), r)
}

/// Every problem with the module's exports.
pub(crate) fn export_problems(module: &Module) -> Vec<String> {
    let mut missing = Vec::new();
    let mut problems = Vec::new();
    match module.get_export("memory") {
        Some(ExternType::Memory(_)) => {}
        Some(other) => problems.push(format!(
            "export \"memory\" is a {}, not a memory",
            kind(&other)
        )),
        None => missing.push("memory"),
    }
    for (name, want) in REQUIRED.iter().chain(OPTIONAL) {
        match module.get_export(name) {
            Some(ExternType::Func(f)) if signature(&f) == *want => {}
            Some(ExternType::Func(f)) => problems.push(format!(
                "export \"{name}\" has type {}, expected {want}",
                signature(&f)
            )),
            Some(other) => problems.push(format!(
                "export \"{name}\" is a {}, expected a function {want}",
                kind(&other)
            )),
            None if REQUIRED.iter().any(|(n, _)| n == name) => missing.push(name),
            None => {}
        }
    }
    if !missing.is_empty() {
        problems.insert(
            0,
            format!("missing required exports: {}", missing.join(", ")),
        );
    }
    problems
}

fn kind(e: &ExternType) -> &'static str {
    match e {
        ExternType::Func(_) => "function",
        ExternType::Global(_) => "global",
        ExternType::Table(_) => "table",
        ExternType::Memory(_) => "memory",
        ExternType::Tag(_) => "tag",
    }
}

/// Decides what to link for `manifest` (checking each linked capability's settings)
/// and checks every import of `module`, when there is one, against it. With `strict` (for `pulp check`), importing a gated capability the
/// manifest does not declare is a problem too (at load it just gets stubs).
pub(crate) fn plan(
    module: Option<&Module>,
    manifest: &Manifest,
    view: &View,
    registry: Option<&Registry>,
    strict: bool,
    replay: bool,
) -> Result<Plan, Vec<String>> {
    let mut problems = Vec::new();
    let mut plan = Plan {
        linked: Vec::new(),
        stubbed: Vec::new(),
    };
    let empty = Registry::empty();
    let registry = registry.unwrap_or(&empty);
    for declared in &manifest.capabilities {
        if registry.find(declared).is_none() {
            problems.push(format!("declares unknown capability \"{declared}\""));
        }
    }
    for e in registry.entries() {
        let cap = &e.capability;
        let declared = manifest.capabilities.iter().any(|d| {
            registry
                .find(d)
                .is_some_and(|f| Arc::ptr_eq(&f.capability, cap))
        });
        if replay && (e.binding == Binding::Always || declared) {
            // A replay attaches nothing, so it needs no settings.
            plan.linked.push(Linked {
                entry: e.clone(),
                settings: Arc::new(()),
            });
        } else if e.binding == Binding::Always || declared {
            match cap.configure(view) {
                Ok(settings) => plan.linked.push(Linked {
                    entry: e.clone(),
                    settings,
                }),
                Err(ps) => problems.extend(
                    ps.into_iter()
                        .map(|p| format!("capability \"{}\": {p}", cap.name())),
                ),
            }
        } else {
            plan.stubbed.push(e.clone());
        }
    }
    for import in module.into_iter().flat_map(Module::imports) {
        let (m, name) = (import.module(), import.name());
        match m {
            "wasi_snapshot_preview1" => continue,
            "pulp" => {}
            _ => {
                problems.push(format!(
                    "imports \"{m}\".\"{name}\": only modules \"pulp\" and \"wasi_snapshot_preview1\" are provided"
                ));
                continue;
            }
        }
        let Some((entry, want)) = registry.provider(name) else {
            problems.push(format!(
                "imports pulp.{name}, which no capability of this host provides"
            ));
            continue;
        };
        match import.ty() {
            ExternType::Func(f) if signature(&f) == want.signature() => {}
            ExternType::Func(f) => problems.push(format!(
                "imports pulp.{name} as {}, but capability \"{}\" provides {}",
                signature(&f),
                entry.capability.name(),
                want.signature()
            )),
            other => problems.push(format!(
                "imports pulp.{name} as a {}, not a function",
                kind(&other)
            )),
        }
        if strict
            && plan
                .stubbed
                .iter()
                .any(|s| Arc::ptr_eq(&s.capability, &entry.capability))
        {
            problems.push(format!(
                "imports pulp.{name} of capability \"{}\", which the manifest does not declare (every call would return 99)",
                entry.capability.name()
            ));
        }
    }
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(problems)
    }
}

/// Links WASI, the planned capabilities' real imports, and derived stubs.
pub(crate) fn link(engine: &Engine, plan: &Plan, plugin: &str) -> wasmtime::Result<Linker<State>> {
    let mut linker = Linker::new(engine);
    crate::wasi::add_to_linker(&mut linker)?;
    for l in &plan.linked {
        for import in &l.entry.imports {
            import.link(&mut linker).map_err(|e| {
                wasmtime::format_err!(
                    "capability \"{}\" failed to link pulp.{}: {e:#}",
                    l.capability().name(),
                    import.name
                )
            })?;
        }
    }
    for e in &plan.stubbed {
        let cap = &e.capability;
        for import in &e.imports {
            let ty = FuncType::new(
                engine,
                import.params.iter().map(|t| t.val_type()),
                import.results.iter().map(|t| t.val_type()),
            );
            let message = format!(
                "pulp.{}: capability \"{}\" is not declared in the manifest of plugin \"{plugin}\"",
                import.name,
                cap.name()
            );
            let types = import.results;
            linker.func_new("pulp", import.name, ty, move |mut caller, _, results| {
                for (r, t) in results.iter_mut().zip(types) {
                    *r = Val::default_for_ty(&t.val_type()).unwrap_or(Val::I32(0));
                }
                if let Some(first) = results.first_mut() {
                    *first = Val::I32(pulp_ext::Status::NotDeclared.code());
                }
                caller.data_mut().set_last_error(message.clone());
                Ok(())
            })?;
        }
    }
    Ok(linker)
}
