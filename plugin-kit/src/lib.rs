//! The one place that knows how to build a merchant plugin.
//!
//! A plugin is a directory in one of four languages, told apart by what it
//! holds ([`detect_language`]):
//!
//! | language | file | built with |
//! |---|---|---|
//! | Rust | `Cargo.toml` | `cargo build --release --target wasm32-wasip2` (wit-bindgen in the crate) |
//! | Python | `app.py` | `componentize-py` [`COMPONENTIZE_PY`] in a private venv, `--stub-wasi` |
//! | JavaScript | `app.js` | `@bytecodealliance/componentize-js` [`COMPONENTIZE_JS`] from npm, WASI features disabled |
//! | C | `*.c` | bindings from the `wit-bindgen-c` library, `clang --target=wasm32-wasi`, then `wit-component` |
//!
//! [`build`] turns the directory into a component and [`check()`] decodes
//! the result and holds it to the contract: it must export the `pricer` or
//! `validator` interface of `polyscale:plugin@1.0.0` and import nothing but
//! that package's `log` (and `types`, which has no functions) and, for
//! Rust only, WASI 0.2 interfaces other than sockets and HTTP.
//!
//! Missing toolchains are bootstrapped into a cache directory
//! ([`Toolchains`]): the Python venv and the npm packages are installed
//! there on first use, at pinned versions. What cannot be bootstrapped
//! without root (Python's `venv` module, Node.js, clang and wasi-libc) is
//! reported with the command that installs it.
//!
//! Plugins that are not Rust build against the contract this crate carries
//! ([`PLUGIN_WIT`]) unless their directory has a `wit/` folder of its own.
//!
//! [`new_project`] writes a new plugin project from the templates embedded
//! here (`templates/`), one per language and kind.

mod c;
mod check;
mod js;
mod python;
mod rust;
mod template;
mod tools;

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

pub use check::{Checked, check};
pub use template::new_project;
pub use tools::{COMPONENTIZE_JS, COMPONENTIZE_PY, JCO, Toolchains};

/// The plugin contract, `wit/plugin/plugin.wit` (frozen).
pub const PLUGIN_WIT: &str = include_str!("../../wit/plugin/plugin.wit");

/// The contract's package.
pub const PACKAGE: &str = "polyscale:plugin@1.0.0";

/// A plugin's source language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Language {
    Rust,
    Python,
    Js,
    C,
}

impl Language {
    pub const ALL: [Language; 4] = [Language::Rust, Language::Python, Language::Js, Language::C];

    /// `rust`, `python`, `js`, `c`.
    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::Js => "js",
            Language::C => "c",
        }
    }

    pub fn parse(name: &str) -> Option<Language> {
        Language::ALL.into_iter().find(|l| l.name() == name)
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a plugin does: its world in the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Pricing,
    Validation,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Pricing, Kind::Validation];

    /// The world: `pricing` or `validation`.
    pub fn world(self) -> &'static str {
        match self {
            Kind::Pricing => "pricing",
            Kind::Validation => "validation",
        }
    }

    /// The exported interface's name: `pricer` or `validator`.
    pub fn interface(self) -> &'static str {
        match self {
            Kind::Pricing => "pricer",
            Kind::Validation => "validator",
        }
    }

    /// `polyscale:plugin/pricer@1.0.0` or `…/validator@1.0.0`.
    pub fn export(self) -> String {
        format!("polyscale:plugin/{}@1.0.0", self.interface())
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.world() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.world())
    }
}

/// The language of the plugin in `dir`: `Cargo.toml` (Rust), `app.py`
/// (Python), `app.js` (JavaScript) or `.c` files (C); exactly one of them.
pub fn detect_language(dir: &Path) -> Result<Language> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let mut found = Vec::new();
    if dir.join("Cargo.toml").is_file() {
        found.push(Language::Rust);
    }
    if dir.join("app.py").is_file() {
        found.push(Language::Python);
    }
    if dir.join("app.js").is_file() {
        found.push(Language::Js);
    }
    if !c_sources(dir)?.is_empty() {
        found.push(Language::C);
    }
    match found.as_slice() {
        [one] => Ok(*one),
        [] => bail!(
            "{}: not a plugin directory (expected Cargo.toml for Rust, app.py for Python, app.js for JavaScript or .c files for C)",
            dir.display()
        ),
        many => bail!(
            "{}: holds plugins in several languages ({}); keep one per directory",
            dir.display(),
            many.iter().map(|l| l.name()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The kind a plugin's source implements, from the name each language's
/// bindings require of the export (`class Pricer` in Python, `export const
/// pricer` in JavaScript, `exports_polyscale_plugin_pricer_price` in C).
/// `None` for Rust (the world is named in the crate) or when the source
/// names neither or both.
pub fn detect_kind(dir: &Path, language: Language) -> Result<Option<Kind>> {
    let (sources, markers): (Vec<PathBuf>, [(&str, Kind); 2]) = match language {
        Language::Rust => return Ok(None),
        Language::Python => {
            (vec![dir.join("app.py")], [("class Pricer", Kind::Pricing), ("class Validator", Kind::Validation)])
        }
        Language::Js => (
            vec![dir.join("app.js")],
            [("export const pricer", Kind::Pricing), ("export const validator", Kind::Validation)],
        ),
        Language::C => (
            c_sources(dir)?,
            [
                ("exports_polyscale_plugin_pricer_price", Kind::Pricing),
                ("exports_polyscale_plugin_validator_validate", Kind::Validation),
            ],
        ),
    };
    let mut kinds = Vec::new();
    for source in &sources {
        let text = std::fs::read_to_string(source).with_context(|| format!("reading {}", source.display()))?;
        for (marker, kind) in markers {
            if text.contains(marker) && !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
    }
    Ok(if kinds.len() == 1 { Some(kinds[0]) } else { None })
}

/// The `.c` files directly in `dir`, sorted.
fn c_sources(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "c") && path.is_file() {
            sources.push(path);
        }
    }
    sources.sort();
    Ok(sources)
}

/// What to build.
#[derive(Clone, Debug)]
pub struct BuildRequest {
    /// The plugin's directory.
    pub dir: PathBuf,
    /// The component to write.
    pub out: PathBuf,
    /// The kind it must be; detected from the source when `None` (see
    /// [`detect_kind`]), and for Rust from the built component.
    pub kind: Option<Kind>,
    /// Rust only: cargo's target directory (cargo's own choice when
    /// `None`).
    pub cargo_target_dir: Option<PathBuf>,
}

impl BuildRequest {
    pub fn new(dir: impl Into<PathBuf>, out: impl Into<PathBuf>) -> BuildRequest {
        BuildRequest { dir: dir.into(), out: out.into(), kind: None, cargo_target_dir: None }
    }
}

/// A built and checked plugin.
#[derive(Clone, Debug)]
pub struct Built {
    pub language: Language,
    pub path: PathBuf,
    pub size: u64,
    pub checked: Checked,
}

/// Builds the plugin in `request.dir` into the component `request.out`,
/// then [`check()`]s it (a component that fails the check is removed).
pub fn build(tools: &Toolchains, request: &BuildRequest) -> Result<Built> {
    let dir = request.dir.canonicalize().with_context(|| format!("plugin directory {}", request.dir.display()))?;
    let language = detect_language(&dir)?;
    let out = absolute(&request.out)?;
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let kind = match (request.kind, detect_kind(&dir, language)?) {
        (Some(asked), Some(found)) if asked != found => {
            bail!("{}: the source implements a {found} plugin, not a {asked} one", dir.display())
        }
        (Some(asked), _) => Some(asked),
        (None, found) => found,
    };
    let kind_needed = || {
        kind.ok_or_else(|| {
            anyhow::anyhow!(
                "{}: cannot tell whether this {language} plugin is for pricing or validation \
                 (its source implements neither or both); say which with --kind",
                dir.display()
            )
        })
    };
    match language {
        Language::Rust => rust::build(&dir, &out, request.cargo_target_dir.as_deref())?,
        Language::Python => python::build(tools, &dir, &out, kind_needed()?)?,
        Language::Js => js::build(tools, &dir, &out, kind_needed()?)?,
        Language::C => c::build(tools, &dir, &out, kind_needed()?)?,
    }
    let bytes = std::fs::read(&out).with_context(|| format!("reading {}", out.display()))?;
    let checked = match check(&bytes, language == Language::Rust) {
        Ok(checked) => checked,
        Err(e) => {
            let _ = std::fs::remove_file(&out);
            return Err(e.context(format!("{} is not a valid plugin", dir.display())));
        }
    };
    if let Some(kind) = kind
        && checked.kind != kind
    {
        let _ = std::fs::remove_file(&out);
        bail!("{}: expected a {kind} plugin, built a {} plugin", dir.display(), checked.kind);
    }
    Ok(Built { language, path: out, size: bytes.len() as u64, checked })
}

fn absolute(path: &Path) -> Result<PathBuf> {
    Ok(if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir()?.join(path) })
}

/// The WIT directory to build against: the plugin's own `wit/`, or the
/// contract this crate carries, written into `scratch`.
fn wit_dir(dir: &Path, scratch: &Path) -> Result<PathBuf> {
    let own = dir.join("wit");
    if own.is_dir() {
        return Ok(own);
    }
    let carried = scratch.join("wit");
    std::fs::create_dir_all(&carried)?;
    std::fs::write(carried.join("plugin.wit"), PLUGIN_WIT)?;
    Ok(carried)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn detects_one_language_per_directory() {
        assert_eq!(detect_language(dir_with(&[("Cargo.toml", "")]).path()).unwrap(), Language::Rust);
        assert_eq!(detect_language(dir_with(&[("app.py", "")]).path()).unwrap(), Language::Python);
        assert_eq!(detect_language(dir_with(&[("app.js", "")]).path()).unwrap(), Language::Js);
        assert_eq!(detect_language(dir_with(&[("a.c", ""), ("b.c", "")]).path()).unwrap(), Language::C);
        let none = detect_language(dir_with(&[("main.py", "")]).path()).unwrap_err().to_string();
        assert!(none.contains("not a plugin directory"), "{none}");
        let both = detect_language(dir_with(&[("app.py", ""), ("app.js", "")]).path()).unwrap_err().to_string();
        assert!(both.contains("python, js"), "{both}");
    }

    #[test]
    fn detects_the_kind_from_the_required_export() {
        let kind = |lang, file, text| detect_kind(dir_with(&[(file, text)]).path(), lang).unwrap();
        assert_eq!(kind(Language::Python, "app.py", "class Pricer(exports.Pricer):"), Some(Kind::Pricing));
        assert_eq!(kind(Language::Js, "app.js", "export const validator = {"), Some(Kind::Validation));
        assert_eq!(
            kind(Language::C, "p.c", "void exports_polyscale_plugin_pricer_price(cart_t *c)"),
            Some(Kind::Pricing)
        );
        assert_eq!(kind(Language::Js, "app.js", "export const pricer = {}; export const validator = {}"), None);
        assert_eq!(kind(Language::Python, "app.py", "print('hi')"), None);
        assert_eq!(kind(Language::Rust, "Cargo.toml", ""), None);
    }

    #[test]
    fn the_carried_contract_is_the_frozen_one() {
        assert!(PLUGIN_WIT.contains("package polyscale:plugin@1.0.0;"));
        for kind in Kind::ALL {
            assert!(PLUGIN_WIT.contains(&format!("world {} {{", kind.world())));
            assert!(PLUGIN_WIT.contains(&format!("interface {} {{", kind.interface())));
        }
    }
}
