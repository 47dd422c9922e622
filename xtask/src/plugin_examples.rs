//! `cargo xtask plugin-examples [--out DIR]`: builds the example plugins
//! of `plugins/examples/` with the plugin kit, checks each against the
//! contract, writes `manifest.json`, then (when Node.js is there) runs
//! each once on a sample cart under jco and compares its answer.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use polyscale_plugin_kit::{BuildRequest, Kind, Language, Toolchains};
use serde_json::{Value, json};

/// One example: its output name, directory under `plugins/examples/`,
/// language, kind, the settings of its sample run, and what it must answer
/// (and log) on the sample cart.
struct Example {
    name: &'static str,
    dir: &'static str,
    language: Language,
    kind: Kind,
    settings: Value,
    answer: Value,
    log: Value,
}

fn examples() -> Vec<Example> {
    vec![
        Example {
            name: "rust-tiered-discount",
            dir: "rust/tiered-discount",
            language: Language::Rust,
            kind: Kind::Pricing,
            settings: json!([]),
            answer: json!([
                {"line": 0, "change": {"tag": "discount", "val": 499}, "message": "10% off from 5 units"},
                {"line": 1, "change": {"tag": "discount", "val": 3000}, "message": "20% off from 10 units"},
            ]),
            log: json!([]),
        },
        Example {
            name: "rust-max-quantity",
            dir: "rust/max-quantity",
            language: Language::Rust,
            kind: Kind::Validation,
            settings: json!([{"name": "max", "value": "4"}]),
            answer: json!([
                {"code": "MAX_QUANTITY", "message": "At most 4 units a line (5 asked)", "target": "lines[0].quantity"},
                {"code": "MAX_QUANTITY", "message": "At most 4 units a line (12 asked)", "target": "lines[1].quantity"},
            ]),
            log: json!([]),
        },
        Example {
            name: "python-bogo",
            dir: "python/bogo",
            language: Language::Python,
            kind: Kind::Pricing,
            settings: json!([]),
            answer: json!([
                {"line": 0, "change": {"tag": "discount", "val": 1998}, "message": "Buy one, get one free (2 free)"},
                {"line": 1, "change": {"tag": "discount", "val": 7500}, "message": "Buy one, get one free (6 free)"},
                {"line": 3, "change": {"tag": "discount", "val": 1299}, "message": "Buy one, get one free (1 free)"},
            ]),
            log: json!(["bogo: 3 of 4 lines discounted"]),
        },
        Example {
            name: "js-min-order",
            dir: "js/min-order",
            language: Language::Js,
            kind: Kind::Validation,
            settings: json!([{"name": "minimum", "value": "50000"}]),
            answer: json!([{
                "code": "MINIMUM_ORDER",
                "message": "The minimum order is 50000 EUR (minor units); this one is 22535",
                "target": "",
            }]),
            log: json!([]),
        },
        Example {
            name: "c-price-ending",
            dir: "c/price-ending",
            language: Language::C,
            kind: Kind::Pricing,
            settings: json!([]),
            answer: json!([{"line": 1, "change": {"tag": "unit-price", "val": 1199}, "message": "Price ends in 99"}]),
            log: json!([]),
        },
    ]
}

/// The sample cart: 5 × 999, 12 × 1250, 1 × 42, 2 × 1299 less 100 (EUR).
fn sample_cart(settings: &Value) -> Value {
    let line = |id: &str, quantity: i64, amount: i64, discount: i64| json!({"productId": id, "quantity": quantity, "unitPrice": {"amount": amount, "currency": "EUR"}, "discount": discount});
    json!({
        "step": "checkout",
        "merchantId": "m-1",
        "lines": [line("p-1", 5, 999, 0), line("p-2", 12, 1250, 0), line("p-3", 1, 42, 0), line("p-4", 2, 1299, 100)],
        "settings": settings,
    })
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask/ is in the repository").to_path_buf()
}

/// `$CARGO_TARGET_DIR`, else the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// `<target dir>/plugin-examples`.
pub fn default_out() -> PathBuf {
    target_dir().join("plugin-examples")
}

pub fn run(args: &[String]) -> Result<PathBuf, String> {
    let mut out = default_out();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => out = PathBuf::from(args.next().ok_or("--out needs a directory")?),
            other => {
                return Err(format!("plugin-examples: unknown argument {other} (usage: plugin-examples [--out DIR])"));
            }
        }
    }
    let out = if out.is_absolute() { out } else { std::env::current_dir().map_err(|e| e.to_string())?.join(out) };
    build_all(&out)?;
    Ok(out)
}

fn build_all(out: &Path) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let tools = Toolchains::new(target_dir().join("plugin-tools"));
    eprintln!("xtask: plugin toolchains in {}", tools.root().display());
    let started = Instant::now();
    let mut entries = Vec::new();
    for example in examples() {
        let dir = repo_root().join("plugins/examples").join(example.dir);
        let path = out.join(format!("{}.wasm", example.name));
        let mut request = BuildRequest::new(&dir, &path);
        request.kind = Some(example.kind);
        // The guest workspace's target dir, shared with the build scripts
        // that embed the Rust examples (polyscale-guest-build).
        request.cargo_target_dir = Some(target_dir().join("wasm-components"));
        let one = Instant::now();
        let built = polyscale_plugin_kit::build(&tools, &request).map_err(|e| format!("{}: {e:#}", example.name))?;
        if built.language != example.language || built.checked.kind != example.kind {
            return Err(format!(
                "{}: built a {} {} plugin, expected {} {}",
                example.name, built.language, built.checked.kind, example.language, example.kind
            ));
        }
        let extra: Vec<&String> = built.checked.exports.iter().filter(|e| **e != example.kind.export()).collect();
        eprintln!(
            "xtask: {:<22} {:>10} bytes  {:>5.1} s  exports {}{}; imports {}",
            example.name,
            built.size,
            one.elapsed().as_secs_f64(),
            example.kind.export(),
            if extra.is_empty() {
                String::new()
            } else {
                format!(" (and the toolchain's {})", extra.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))
            },
            if built.checked.imports.is_empty() { "nothing".to_string() } else { built.checked.imports.join(", ") },
        );
        entries.push(json!({
            "name": example.name,
            "language": example.language.name(),
            "kind": example.kind.world(),
            "path": path,
            "size": built.size,
            "exports": built.checked.exports,
            "imports": built.checked.imports,
        }));
    }
    let manifest = json!({"contract": polyscale_plugin_kit::PACKAGE, "plugins": entries});
    let manifest_path = out.join("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_string_pretty(&manifest).unwrap() + "\n")
        .map_err(|e| format!("writing {}: {e}", manifest_path.display()))?;
    eprintln!(
        "xtask: {} plugins built and checked in {:.1} s; {}",
        entries.len(),
        started.elapsed().as_secs_f64(),
        manifest_path.display()
    );
    execute_all(&tools, out)
}

/// Runs each built example once on the sample cart under Node.js (jco
/// transpile + its WASI shim) and compares the answers. Skipped, saying so,
/// when Node.js is not installed.
fn execute_all(tools: &Toolchains, out: &Path) -> Result<(), String> {
    if Command::new("node").arg("--version").output().is_err() {
        eprintln!("xtask: node not found; the example plugins were built and checked but not run");
        return Ok(());
    }
    let started = Instant::now();
    let jco = tools.jco().map_err(|e| format!("{e:#}"))?;
    // Transpiled modules go beside jco's node_modules, where their imports
    // (and the runner's) resolve.
    let prefix = jco.ancestors().nth(3).ok_or("jco's install prefix")?.to_path_buf();
    let work = prefix.join(format!("run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let result = execute_in(&jco, &work, out);
    let _ = std::fs::remove_dir_all(&work);
    if result.is_ok() {
        eprintln!("xtask: example plugins run under jco in {:.1} s", started.elapsed().as_secs_f64());
    }
    result
}

fn execute_in(jco: &Path, work: &Path, out: &Path) -> Result<(), String> {
    let mut cases = Vec::new();
    for example in examples() {
        let transpiled = work.join(example.name);
        let mut cmd = Command::new(jco);
        cmd.arg("transpile")
            .arg(out.join(format!("{}.wasm", example.name)))
            .args(["--instantiation", "async", "--no-typescript", "--quiet", "--name", example.name, "-o"])
            .arg(&transpiled);
        crate::run(cmd)?;
        cases.push(json!({
            "name": example.name,
            "module": format!("file://{}", transpiled.join(format!("{}.js", example.name)).display()),
            "kind": example.kind.world(),
            "cart": sample_cart(&example.settings),
        }));
    }
    let runner = work.join("run-plugins.mjs");
    std::fs::write(&runner, include_str!("run-plugins.mjs")).map_err(|e| e.to_string())?;
    let cases_path = work.join("cases.json");
    std::fs::write(&cases_path, serde_json::to_string(&cases).unwrap()).map_err(|e| e.to_string())?;
    let mut node = Command::new("node");
    // componentize-py's CPython uses extended constant expressions, which
    // Node.js before 22 accepts only behind a flag.
    let v8_options = Command::new("node").arg("--v8-options").output().map(|o| o.stdout).unwrap_or_default();
    if String::from_utf8_lossy(&v8_options).contains("--experimental-wasm-extended-const") {
        node.arg("--experimental-wasm-extended-const");
    }
    let output = node.arg(&runner).arg(&cases_path).output().map_err(|e| format!("running node: {e}"))?;
    if !output.status.success() {
        return Err(format!("node {}: {}", runner.display(), String::from_utf8_lossy(&output.stderr)));
    }
    let mut failures = Vec::new();
    let results: Vec<Value> =
        String::from_utf8_lossy(&output.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    for example in examples() {
        let Some(result) = results.iter().find(|r| r["name"] == example.name) else {
            failures.push(format!("{}: no result", example.name));
            continue;
        };
        if let Some(error) = result.get("error") {
            failures.push(format!("{}: {}", example.name, error.as_str().unwrap_or_default()));
        } else if result["answer"] != example.answer || result["log"] != example.log {
            failures.push(format!(
                "{}: answered {} (log {}), expected {} (log {})",
                example.name, result["answer"], result["log"], example.answer, example.log
            ));
        } else {
            eprintln!("xtask: {:<22} ran: {}", example.name, result["answer"]);
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("example plugins gave wrong answers on the sample cart:\n  {}", failures.join("\n  ")))
    }
}
