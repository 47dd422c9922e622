//! Every template, written by `new_project` and built by the real
//! toolchains, is a plugin of its kind that passes the contract check.
//!
//! Toolchains come from `<target>/plugin-tools` (shared with `cargo xtask
//! plugin-examples`, which installs them); Rust templates build in
//! `<target>/plugin-kit-tests`, kept between runs.

use std::path::{Path, PathBuf};

use polyscale_plugin_kit::{BuildRequest, Kind, Language, Toolchains, build, check, new_project};

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("CARGO_TARGET_TMPDIR is <target>/tmp").to_path_buf()
}

fn template_builds(language: Language) {
    let tools = Toolchains::new(target_dir().join("plugin-tools"));
    let tmp = tempfile::tempdir().unwrap();
    for kind in Kind::ALL {
        let dir = tmp.path().join(format!("my-{language}-{kind}"));
        let written = new_project(&dir, language, kind).unwrap();
        assert!(written.contains(&dir.join("wit/plugin.wit")), "{written:?}");
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(!readme.contains("{{"), "unfilled placeholder in the README:\n{readme}");

        let out = tmp.path().join(format!("my-{language}-{kind}.wasm"));
        let mut request = BuildRequest::new(&dir, &out);
        request.cargo_target_dir = Some(target_dir().join("plugin-kit-tests"));
        let built = build(&tools, &request).unwrap_or_else(|e| panic!("{language} {kind}: {e:#}"));
        assert_eq!((built.language, built.checked.kind), (language, kind));
        let again = check(&std::fs::read(&out).unwrap(), language == Language::Rust).unwrap();
        assert_eq!(again, built.checked);
        if language != Language::Rust {
            assert!(
                !built.checked.imports.iter().any(|i| i.starts_with("wasi:")),
                "{language} {kind} imports WASI: {:?}",
                built.checked.imports
            );
        }
    }
}

#[test]
fn rust_templates_build() {
    template_builds(Language::Rust);
}

#[test]
fn c_templates_build() {
    template_builds(Language::C);
}

#[test]
fn python_templates_build() {
    template_builds(Language::Python);
}

#[test]
fn js_templates_build() {
    template_builds(Language::Js);
}

#[test]
fn a_c_plugin_with_libc_io_is_refused() {
    let tools = Toolchains::new(target_dir().join("plugin-tools"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("noisy");
    new_project(&dir, Language::C, Kind::Pricing).unwrap();
    let source = std::fs::read_to_string(dir.join("plugin.c")).unwrap();
    let source = source
        .replace("#include <stdlib.h>", "#include <stdlib.h>\n#include <stdio.h>")
        .replace("size_t count = cart->lines.len;", "size_t count = cart->lines.len;\n    printf(\"pricing\\n\");");
    std::fs::write(dir.join("plugin.c"), source).unwrap();
    let out = tmp.path().join("noisy.wasm");
    let error = format!("{:#}", build(&tools, &BuildRequest::new(&dir, &out)).unwrap_err());
    assert!(error.contains("imports WASI") && error.contains("fd_write"), "{error}");
    assert!(!out.exists());
}

#[test]
fn a_kind_the_source_does_not_implement_is_refused() {
    let tools = Toolchains::new(target_dir().join("plugin-tools"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pricer");
    new_project(&dir, Language::C, Kind::Pricing).unwrap();
    let mut request = BuildRequest::new(&dir, tmp.path().join("pricer.wasm"));
    request.kind = Some(Kind::Validation);
    let error = format!("{:#}", build(&tools, &request).unwrap_err());
    assert!(error.contains("implements a pricing plugin, not a validation one"), "{error}");
}
