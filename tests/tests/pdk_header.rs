//! `pdk/c/pulp.h` declares exactly the registry's imports, each with the registry's
//! wasm signature. The header is read by the compiler, not by a pattern: clang
//! preprocesses it, a generated C file calls every `pulp_import_*` it declares, and
//! the imports of the module clang builds are compared with the registry.

use std::collections::BTreeMap;
use std::process::Command;

use pulp_ext::wasmtime::{Engine, ExternType, Module, ValType};
use pulp_host::Registry;
use pulp_tests::{root, skip, toolchain};

/// `(import name, C function, parameter count)` for every `PULP_IMPORT` declaration
/// in the preprocessed header.
fn declarations(preprocessed: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    let marker = "import_name(\"";
    let mut rest = preprocessed;
    while let Some(at) = rest.find(marker) {
        rest = &rest[at + marker.len()..];
        let name = &rest[..rest.find('"').unwrap()];
        let func_at = rest
            .find("pulp_import_")
            .expect("a declaration after import_name");
        let decl = &rest[func_at..];
        let open = decl.find('(').unwrap();
        let close = decl.find(')').unwrap();
        let params = decl[open + 1..close].trim();
        let count = if params.is_empty() || params == "void" {
            0
        } else {
            params.split(',').count()
        };
        out.push((name.to_string(), decl[..open].trim().to_string(), count));
    }
    out
}

fn wasm_name(t: &ValType) -> &'static str {
    match t {
        ValType::I32 => "i32",
        ValType::I64 => "i64",
        ValType::F32 => "f32",
        ValType::F64 => "f64",
        _ => "other",
    }
}

#[test]
fn pulp_h_declares_every_registry_import_with_its_signature_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let header = root().join("pdk/c/pulp.h");
    let mut pre = Command::new("clang");
    pre.args(["--target=wasm32-wasi", "-E", "-P", "-x", "c"])
        .arg(&header);
    let preprocessed = match pre.output() {
        Ok(o) if o.status.success() => String::from_utf8(o.stdout).unwrap(),
        Ok(o) => panic!(
            "clang -E {}: {}",
            header.display(),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return skip("clang (for pulp.h)"),
        Err(e) => panic!("clang: {e}"),
    };
    let decls = declarations(&preprocessed);
    assert!(decls.len() > 20, "too few declarations found: {decls:?}");

    // Call each declared import once, so the module imports every one.
    let mut c = String::from("#include \"pulp.h\"\n__attribute__((export_name(\"touch\"))) int touch(void) {\n    int r = 0;\n");
    for (_, func, n) in &decls {
        c.push_str(&format!("    r += {func}({});\n", vec!["0"; *n].join(", ")));
    }
    c.push_str("    return r;\n}\n");
    let source = dir.path().join("touch.c");
    std::fs::write(&source, c).unwrap();
    let wasm = dir.path().join("touch.wasm");
    let mut cc = toolchain::clang(&root(), &source, &wasm);
    cc.arg("-Wno-error");
    assert!(toolchain::build(&mut cc), "clang disappeared");

    let module = Module::from_file(&Engine::default(), &wasm).unwrap();
    let mut header_imports = BTreeMap::new();
    for i in module.imports().filter(|i| i.module() == "pulp") {
        let ExternType::Func(f) = i.ty() else {
            panic!("pulp.{} is not a function", i.name())
        };
        let list = |t: &mut dyn Iterator<Item = ValType>| {
            t.map(|t| wasm_name(&t)).collect::<Vec<_>>().join(", ")
        };
        let sig = format!("({}) -> {}", list(&mut f.params()), list(&mut f.results()));
        header_imports.insert(i.name().to_string(), sig);
    }
    let declared: Vec<_> = decls.iter().map(|d| d.0.clone()).collect();
    assert_eq!(
        header_imports.len(),
        declared.len(),
        "each declared import is called: {declared:?}"
    );

    let registry = Registry::new().unwrap();
    let mut registry_imports = BTreeMap::new();
    for e in registry
        .entries()
        .iter()
        .filter(|e| !e.capability.name().starts_with("test."))
    {
        for i in e.capability.imports() {
            registry_imports.insert(i.name.to_string(), i.signature());
        }
    }
    let mut problems = Vec::new();
    for (name, sig) in &header_imports {
        match registry_imports.get(name) {
            None => problems.push(format!(
                "pulp.h declares pulp.{name}, which no capability provides"
            )),
            Some(want) if want != sig => problems.push(format!(
                "pulp.h declares pulp.{name} as {sig}; the registry says {want}"
            )),
            Some(_) => {}
        }
    }
    for name in registry_imports
        .keys()
        .filter(|n| !header_imports.contains_key(*n))
    {
        problems.push(format!("pulp.h does not declare pulp.{name}"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
