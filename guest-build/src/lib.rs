//! Build-script support: builds guest components of the `plugins/` Cargo
//! workspace for `wasm32-wasip2` and writes a Rust file that embeds them,
//! so a binary finds its components without any flag.
//!
//! The guest workspace is built with the same cargo, in release mode, into
//! `<target-dir>/wasm-components` (shared by every profile and every crate
//! that embeds components), and the target is added with rustup when
//! missing. Only the named packages are built, and the build script reruns
//! only when their sources (or the WIT) change.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

/// One component to embed: the `static` name, the guest package, and the
/// crate directory under `plugins/` (watched for changes).
pub struct Guest {
    pub name: &'static str,
    pub package: &'static str,
    pub dir: &'static str,
}

/// Builds `guests` and writes `$OUT_DIR/components.rs` with one
/// `pub static NAME: &[u8]` per guest.
pub fn embed(guests: &[Guest]) {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let plugins = manifest_dir.join("../plugins").canonicalize().expect("plugins/ next to this crate");
    watch(&plugins, &manifest_dir.join("../wit"), guests);

    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let target_dir = wasm_target_dir(&out_dir);
    ensure_target();

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for guest in guests {
        cmd.args(["-p", guest.package]);
    }
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
    for guest in guests {
        let artifact = guest.package.replace('-', "_");
        let built = target_dir.join(TARGET).join("release").join(format!("{artifact}.wasm"));
        let embedded = out_dir.join(format!("{artifact}.wasm"));
        fs::copy(&built, &embedded).unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
        generated.push_str(&format!(
            "/// `{}`, built from `plugins/{}`.\npub static {}: &[u8] = include_bytes!({:?});\n",
            guest.package,
            guest.dir,
            guest.name,
            embedded.display().to_string()
        ));
    }
    fs::write(out_dir.join("components.rs"), generated).unwrap();
}

/// Reruns when the guests' sources, the shared guest library, the guest
/// workspace manifest or the WIT change (not on the guest target dir).
fn watch(plugins: &Path, wit: &Path, guests: &[Guest]) {
    println!("cargo:rerun-if-changed={}", wit.display());
    for entry in ["Cargo.toml", "Cargo.lock", "guest"] {
        println!("cargo:rerun-if-changed={}", plugins.join(entry).display());
    }
    for guest in guests {
        println!("cargo:rerun-if-changed={}", plugins.join(guest.dir).display());
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
