//! Builds the guest components in `plugins/` for `wasm32-wasip2` and embeds
//! them, so the host binary finds its components without any flag.
//!
//! The guest workspace is built with the same cargo, in release mode, into
//! `<target-dir>/wasm-components` (shared by every profile of the host), and
//! the target is added with rustup when missing.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
/// (const name, crate artifact name) of each embedded component.
const COMPONENTS: &[(&str, &str)] = &[
    ("PRODUCT", "product_component"),
    ("ACCOUNT", "account_component"),
    ("FAULTY_PRODUCT", "faulty_product_component"),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let plugins = manifest_dir.join("../plugins").canonicalize().expect("plugins/ next to host/");
    let wit = manifest_dir.join("../wit");
    watch(&plugins, &wit);

    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let target_dir = wasm_target_dir(&out_dir);
    ensure_target();

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's flags and wrappers are for the host, not the guests.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PROFILE_RELEASE_DEBUG",
        "CARGO_LLVM_COV",
    ] {
        cmd.env_remove(var);
    }
    let output = cmd.output().expect("running cargo for the guest components");
    if !output.status.success() {
        panic!("building the guest components failed:\n{}", String::from_utf8_lossy(&output.stderr));
    }

    let mut generated = String::new();
    for (name, artifact) in COMPONENTS {
        let built = target_dir.join(TARGET).join("release").join(format!("{artifact}.wasm"));
        let embedded = out_dir.join(format!("{artifact}.wasm"));
        fs::copy(&built, &embedded).unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
        generated.push_str(&format!(
            "/// `{artifact}`, built from `plugins/`.\npub static {name}: &[u8] = include_bytes!({:?});\n",
            embedded.display().to_string()
        ));
    }
    fs::write(out_dir.join("components.rs"), generated).unwrap();
}

/// Reruns when guest sources or the WIT change (not on the guest target dir).
fn watch(plugins: &Path, wit: &Path) {
    println!("cargo:rerun-if-changed={}", wit.display());
    for entry in ["Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", plugins.join(entry).display());
    }
    let mut dirs = vec![plugins.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                if path.join("Cargo.toml").exists() {
                    println!("cargo:rerun-if-changed={}", path.display());
                } else {
                    dirs.push(path);
                }
            }
        }
    }
}

/// `<target-dir>/wasm-components`: the target dir is the ancestor of
/// OUT_DIR holding cargo's CACHEDIR.TAG.
fn wasm_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|p| p.join("CACHEDIR.TAG").exists())
        .map(|t| t.join("wasm-components"))
        .unwrap_or_else(|| out_dir.join("wasm-components"))
}

fn ensure_target() {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == TARGET))
        .unwrap_or(false);
    if !installed {
        let status = Command::new("rustup").args(["target", "add", TARGET]).status();
        if !matches!(status, Ok(s) if s.success()) {
            panic!("the {TARGET} target is missing and `rustup target add {TARGET}` failed; install it and retry");
        }
    }
}
