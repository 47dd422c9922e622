//! Rust plugins: a cdylib crate with wit-bindgen, built by cargo for
//! `wasm32-wasip2` (whose linker already makes a component).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::tools::run;

pub(crate) const TARGET: &str = "wasm32-wasip2";

pub(crate) fn build(dir: &Path, out: &Path, target_dir: Option<&Path>) -> Result<()> {
    ensure_target()?;
    let manifest = dir.join("Cargo.toml");
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(["build", "--release", "--target", TARGET, "--message-format=json-render-diagnostics", "--manifest-path"])
        .arg(&manifest);
    if let Some(target_dir) = target_dir {
        cmd.arg("--target-dir").arg(target_dir);
    }
    // Flags and wrappers of an outer build (xtask, a build script) are for
    // the host, not the plugin.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PROFILE_RELEASE_DEBUG",
        "CARGO_LLVM_COV",
    ] {
        cmd.env_remove(var);
    }
    if target_dir.is_some() {
        cmd.env_remove("CARGO_TARGET_DIR");
    }
    let output = run(cmd, &format!("cargo build of {}", dir.display()))?;
    let built = component_of(&String::from_utf8_lossy(&output.stdout), &manifest)?;
    std::fs::copy(&built, out).with_context(|| format!("copying {built} to {}", out.display()))?;
    Ok(())
}

/// The `.wasm` cargo built for the package of `manifest`, from its JSON
/// messages.
fn component_of(messages: &str, manifest: &Path) -> Result<String> {
    let manifest = manifest.canonicalize()?;
    for line in messages.lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else { continue };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let same = message["manifest_path"].as_str().and_then(|p| Path::new(p).canonicalize().ok());
        if same.as_deref() != Some(manifest.as_path()) {
            continue;
        }
        let is_cdylib = message["target"]["crate_types"].as_array().is_some_and(|t| t.iter().any(|t| t == "cdylib"));
        if !is_cdylib {
            continue;
        }
        if let Some(wasm) = message["filenames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|f| f.ends_with(".wasm"))
        {
            return Ok(wasm.to_string());
        }
    }
    bail!("cargo built no .wasm for {}: a plugin crate needs `[lib] crate-type = [\"cdylib\"]`", manifest.display())
}

fn ensure_target() -> Result<()> {
    let Ok(listed) = Command::new("rustup").args(["target", "list", "--installed"]).output() else {
        // No rustup: the toolchain is managed otherwise; cargo will say
        // whether it can build for the target.
        return Ok(());
    };
    if String::from_utf8_lossy(&listed.stdout).lines().any(|l| l.trim() == TARGET) {
        return Ok(());
    }
    let mut add = Command::new("rustup");
    add.args(["target", "add", TARGET]);
    run(add, &format!("rustup target add {TARGET}")).map(drop)
}
