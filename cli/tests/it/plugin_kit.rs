//! The plugin author kit through the real binary: `polyscale plugin new`
//! writes a template project and `polyscale plugin build` builds it with
//! the real toolchains into a component that passes the contract check.
//!
//! Toolchains are shared with `cargo xtask plugin-examples`
//! (`<target>/plugin-tools`); Rust templates build in
//! `<target>/plugin-kit-tests`, kept between runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use polyscale_plugin_kit::{Kind, check};
use tempfile::TempDir;

/// The Cargo target directory this test was built in.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("CARGO_TARGET_TMPDIR is <target>/tmp").to_path_buf()
}

fn polyscale(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_polyscale"))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir().join("plugin-kit-tests"))
        .env("POLYSCALE_PLUGIN_TOOLS", target_dir().join("plugin-tools"))
        .env("NO_COLOR", "1")
        .output()
        .expect("polyscale runs")
}

fn succeed(dir: &Path, args: &[&str]) -> String {
    let output = polyscale(dir, args);
    assert!(
        output.status.success(),
        "polyscale {} failed:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn fail(dir: &Path, args: &[&str]) -> String {
    let output = polyscale(dir, args);
    assert!(!output.status.success(), "polyscale {} succeeded", args.join(" "));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `new` then `build` for `lang` and both kinds; checks the components.
fn new_and_build(lang: &str, allow_wasi: bool) {
    let tmp = TempDir::new().unwrap();
    for kind in Kind::ALL {
        let name = format!("my-{lang}-{kind}");
        let said = succeed(tmp.path(), &["plugin", "new", "--lang", lang, "--kind", kind.world(), &name]);
        assert!(said.contains("wit/plugin.wit"), "{said}");
        let project = tmp.path().join(&name);
        assert!(project.join("README.md").is_file());
        let contract = std::fs::read_to_string(project.join("wit/plugin.wit")).unwrap();
        assert!(contract.contains("package polyscale:plugin@1.0.0;"));

        // From inside the project, default output: NAME.wasm there.
        let said = succeed(&project, &["plugin", "build"]);
        assert!(said.contains(&format!("{lang} {kind} plugin")), "{said}");
        let component = std::fs::read(project.join(format!("{name}.wasm"))).unwrap();
        let checked = check(&component, allow_wasi).unwrap();
        assert_eq!(checked.kind, kind);
        assert!(checked.exports.contains(&kind.export()), "{checked:?}");

        // From outside, with -o.
        let out = tmp.path().join("out").join(format!("{name}.wasm"));
        succeed(tmp.path(), &["plugin", "build", &name, "-o", out.to_str().unwrap()]);
        assert_eq!(check(&std::fs::read(&out).unwrap(), allow_wasi).unwrap().kind, kind);
    }
}

#[test]
fn plugin_kit_rust_templates_build() {
    new_and_build("rust", true);
}

#[test]
fn plugin_kit_c_templates_build_without_wasi() {
    new_and_build("c", false);
}

/// Bootstraps componentize-py and componentize-js on first use (about a
/// minute), unless `cargo xtask plugin-examples` already did.
#[test]
fn plugin_kit_python_and_js_templates_build_without_wasi() {
    new_and_build("python", false);
    new_and_build("js", false);
}

#[test]
fn plugin_kit_refuses_with_reasons() {
    let tmp = TempDir::new().unwrap();
    let said = fail(tmp.path(), &["plugin", "build", "."]);
    assert!(said.contains("not a plugin directory"), "{said}");

    let said = fail(tmp.path(), &["plugin", "new", "--lang", "rust", "--kind", "pricing", "Bad_Name"]);
    assert!(said.contains("lower case"), "{said}");

    succeed(tmp.path(), &["plugin", "new", "--lang", "c", "--kind", "pricing", "taken"]);
    let said = fail(tmp.path(), &["plugin", "new", "--lang", "c", "--kind", "pricing", "taken"]);
    assert!(said.contains("not empty"), "{said}");

    // A pricing plugin built as a validation one.
    let said = fail(tmp.path(), &["plugin", "build", "taken", "--kind", "validation"]);
    assert!(said.contains("validation"), "{said}");

    // libc I/O pulls in WASI, which C plugins may not import.
    let project = tmp.path().join("taken");
    let source = std::fs::read_to_string(project.join("plugin.c")).unwrap();
    let source = source
        .replace("#include <stdlib.h>", "#include <stdlib.h>\n#include <stdio.h>")
        .replace("size_t count = cart->lines.len;", "size_t count = cart->lines.len;\n    printf(\"pricing\\n\");");
    std::fs::write(project.join("plugin.c"), source).unwrap();
    let said = fail(tmp.path(), &["plugin", "build", "taken"]);
    assert!(said.contains("imports WASI"), "{said}");
    assert!(!project.join("taken.wasm").exists());
}
