//! Plugin project templates, embedded with `include_str!`: what
//! `polyscale plugin new` writes. Each is a small working plugin derived
//! from the examples (pricing: the setting `percent`, default 10, off every
//! line; validation: at most the setting `max`, default 10, units a line),
//! with a copy of the contract in `wit/plugin.wit` and a README.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::{Kind, Language, PLUGIN_WIT};

/// One file of a template: its path in the project and its text, where
/// `{{name}}` is the project's name and `{{ident}}` the same as an
/// identifier (`-` → `_`).
type File = (&'static str, &'static str);

const GITIGNORE: File = (".gitignore", "*.wasm\n/target\n__pycache__/\nnode_modules/\n");

fn template(language: Language, kind: Kind) -> Vec<File> {
    use Kind::*;
    use Language::*;
    let source: File = match (language, kind) {
        (Rust, Pricing) => ("src/lib.rs", include_str!("../templates/rust/pricing.rs")),
        (Rust, Validation) => ("src/lib.rs", include_str!("../templates/rust/validation.rs")),
        (Python, Pricing) => ("app.py", include_str!("../templates/python/pricing.py")),
        (Python, Validation) => ("app.py", include_str!("../templates/python/validation.py")),
        (Js, Pricing) => ("app.js", include_str!("../templates/js/pricing.js")),
        (Js, Validation) => ("app.js", include_str!("../templates/js/validation.js")),
        (C, Pricing) => ("plugin.c", include_str!("../templates/c/pricing.c")),
        (C, Validation) => ("plugin.c", include_str!("../templates/c/validation.c")),
    };
    let mut files =
        vec![source, ("wit/plugin.wit", PLUGIN_WIT), ("README.md", include_str!("../templates/README.md")), GITIGNORE];
    if language == Rust {
        files.push(("Cargo.toml", include_str!("../templates/rust/Cargo.toml")));
    }
    files
}

/// What each language's README says about building by hand.
fn by_hand(language: Language, kind: Kind) -> String {
    let world = kind.world();
    match language {
        Language::Rust => "rustup target add wasm32-wasip2\ncargo build --release --target wasm32-wasip2".to_string(),
        Language::Python => format!(
            "python3 -m venv .venv && .venv/bin/pip install componentize-py=={}\n\
             .venv/bin/componentize-py -d wit -w {world} componentize app --stub-wasi -o {{{{name}}}}.wasm",
            crate::COMPONENTIZE_PY
        ),
        Language::Js => format!(
            "npm install @bytecodealliance/componentize-js@{}\n\
             npx componentize-js app.js --wit wit --world-name {world} \\\n  \
             --disable stdio random clocks http fetch-event -o {{{{name}}}}.wasm",
            crate::COMPONENTIZE_JS
        ),
        Language::C => format!(
            "# wit-bindgen-cli and wasm-tools from crates.io; clang, lld and wasi-libc\n\
             wit-bindgen c wit --world {world}\n\
             clang --target=wasm32-wasi -mexec-model=reactor -O2 -I . plugin.c {world}.c {world}_component_type.o -o core.wasm\n\
             wasm-tools component new core.wasm -o {{{{name}}}}.wasm"
        ),
    }
}

/// Writes a new `language` plugin of `kind` into `dir` (which must not
/// exist or be empty), named after the directory, and returns the files
/// written.
pub fn new_project(dir: &Path, language: Language, kind: Kind) -> Result<Vec<PathBuf>> {
    let name = dir.file_name().and_then(|n| n.to_str()).filter(|n| valid_name(n)).with_context(|| {
        format!("{}: a plugin's name is lower case letters, digits and dashes, starting with a letter", dir.display())
    })?;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!("{} exists and is not empty", dir.display());
    }
    let fill = |text: &str| {
        text.replace("{{language}}", language.name())
            .replace("{{kind}}", kind.world())
            .replace("{{by-hand}}", &by_hand(language, kind))
            .replace("{{name}}", name)
            .replace("{{ident}}", &name.replace('-', "_"))
    };
    let mut written = Vec::new();
    for (path, text) in template(language, kind) {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("template files are in the project"))?;
        std::fs::write(&path, fill(text)).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "bogo", "min-order-2"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "2x", "Bogo", "a_b", "a-", "a b", "../x"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn every_template_has_its_source_and_the_contract() {
        for language in Language::ALL {
            for kind in Kind::ALL {
                let files = template(language, kind);
                assert!(
                    files.iter().any(|(p, t)| *p == "wit/plugin.wit" && t.contains("package polyscale:plugin@1.0.0"))
                );
                let source = &files[0].1;
                let export = match (language, kind) {
                    (Language::Rust, _) => format!("world: \"{}\"", kind.world()),
                    (Language::Python, Kind::Pricing) => "class Pricer".into(),
                    (Language::Python, Kind::Validation) => "class Validator".into(),
                    (Language::Js, _) => format!("export const {}", kind.interface()),
                    (Language::C, _) => format!("exports_polyscale_plugin_{}_", kind.interface()),
                };
                assert!(source.contains(&export), "{language} {kind}: {export}");
            }
        }
    }
}
