//! The toolchains' cache: where the pinned Python and npm tools are
//! installed on first use, and the scratch space of builds.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// `componentize-py`, from PyPI, in a venv of its own.
pub const COMPONENTIZE_PY: &str = "0.25.1";
/// `@bytecodealliance/componentize-js`, from npm.
pub const COMPONENTIZE_JS: &str = "0.23.0";
/// `@bytecodealliance/jco`, from npm: not needed to build, only to run
/// components under Node.js (`cargo xtask plugin-examples` does).
pub const JCO: &str = "1.35.0";

/// The cache of bootstrapped toolchains. Installs are serialised by a lock
/// file per tool, so concurrent builds share one install.
#[derive(Clone, Debug)]
pub struct Toolchains {
    root: PathBuf,
}

impl Toolchains {
    pub fn new(root: impl Into<PathBuf>) -> Toolchains {
        Toolchains { root: root.into() }
    }

    /// `$POLYSCALE_PLUGIN_TOOLS`, else `$CARGO_TARGET_DIR/plugin-tools`, else
    /// `$XDG_CACHE_HOME/polyscale/plugin-tools`, else
    /// `~/.cache/polyscale/plugin-tools`.
    pub fn default_root() -> PathBuf {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(dir) = var("POLYSCALE_PLUGIN_TOOLS") {
            return dir;
        }
        if let Some(dir) = var("CARGO_TARGET_DIR") {
            return dir.join("plugin-tools");
        }
        let cache =
            var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache"))).unwrap_or_else(std::env::temp_dir);
        cache.join("polyscale").join("plugin-tools")
    }

    pub fn from_env() -> Toolchains {
        Toolchains::new(Toolchains::default_root())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh, empty directory for one build, under `work/`.
    pub(crate) fn scratch(&self, what: &str) -> Result<Scratch> {
        let parent = self.root.join("work");
        std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
        let dir = parent.join(format!("{what}-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }

    /// `componentize-py` [`COMPONENTIZE_PY`], installed in
    /// `python/componentize-py-VERSION` (a venv) when missing.
    pub(crate) fn componentize_py(&self) -> Result<PathBuf> {
        let venv = self.root.join("python").join(format!("componentize-py-{COMPONENTIZE_PY}"));
        let tool = venv.join("bin").join("componentize-py");
        self.install_once(&venv, &format!("componentize-py {COMPONENTIZE_PY}"), |venv| {
            let python = find_program(&["python3", "python"]).ok_or_else(|| {
                anyhow::anyhow!(
                    "Python plugins need python3 (with its venv module) to install componentize-py; \
                     install it (Debian: apt-get install python3 python3-venv)"
                )
            })?;
            let mut create = Command::new(&python);
            create.args(["-m", "venv"]).arg(venv);
            run(create, "creating a Python venv").context(
                "python3 could not create a venv (Debian: apt-get install python3-venv), needed to install componentize-py",
            )?;
            let mut pip = Command::new(venv.join("bin").join("pip"));
            pip.args(["install", "--quiet", "--disable-pip-version-check"])
                .arg(format!("componentize-py=={COMPONENTIZE_PY}"));
            run(pip, &format!("pip install componentize-py=={COMPONENTIZE_PY}"))?;
            Ok(())
        })?;
        Ok(tool)
    }

    /// The `componentize-js` CLI [`COMPONENTIZE_JS`], npm-installed in
    /// `npm/componentize-js-VERSION` when missing.
    pub(crate) fn componentize_js(&self) -> Result<PathBuf> {
        self.npm_tool("componentize-js", "@bytecodealliance/componentize-js", COMPONENTIZE_JS, "componentize-js")
    }

    /// The `jco` CLI [`JCO`] (with its WASI shim for Node.js,
    /// `@bytecodealliance/preview2-shim`, beside it in `node_modules`),
    /// npm-installed in `npm/jco-VERSION` when missing.
    pub fn jco(&self) -> Result<PathBuf> {
        self.npm_tool("jco", "@bytecodealliance/jco", JCO, "jco")
    }

    fn npm_tool(&self, dir_name: &str, package: &str, version: &str, bin: &str) -> Result<PathBuf> {
        let prefix = self.root.join("npm").join(format!("{dir_name}-{version}"));
        let tool = prefix.join("node_modules").join(".bin").join(bin);
        self.install_once(&prefix, &format!("{package}@{version}"), |prefix| {
            let npm = find_program(&["npm"]).ok_or_else(|| {
                anyhow::anyhow!(
                    "JavaScript plugins need Node.js and npm to install {package}; install them \
                     (Debian: apt-get install nodejs npm)"
                )
            })?;
            std::fs::create_dir_all(prefix)?;
            std::fs::write(prefix.join("package.json"), "{\"private\": true}\n")?;
            // npm and the tool leave folders in TMPDIR: keep them here.
            let tmp = prefix.join("tmp");
            std::fs::create_dir_all(&tmp)?;
            let mut install = Command::new(npm);
            install
                .args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--save-exact"])
                .arg(format!("{package}@{version}"))
                .current_dir(prefix)
                .env("TMPDIR", &tmp);
            run(install, &format!("npm install {package}@{version}"))?;
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(())
        })?;
        Ok(tool)
    }

    /// Runs `install(dir)` unless `dir` holds a finished install, under a
    /// lock; a half-done install (no `.installed` marker) is redone.
    fn install_once(&self, dir: &Path, what: &str, install: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        let marker = dir.join(".installed");
        if marker.exists() {
            return Ok(());
        }
        let parent = dir.parent().expect("tool dirs have a parent");
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        let lock_path = parent.join(format!("{}.lock", dir.file_name().unwrap_or_default().to_string_lossy()));
        let lock = File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
        lock.lock().with_context(|| format!("locking {}", lock_path.display()))?;
        if marker.exists() {
            return Ok(());
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing the unfinished {}", dir.display()))?;
        }
        eprintln!("plugin-kit: installing {what} into {}", dir.display());
        let started = Instant::now();
        install(dir).with_context(|| format!("installing {what}"))?;
        std::fs::write(&marker, what)?;
        eprintln!("plugin-kit: installed {what} in {:.1} s", started.elapsed().as_secs_f64());
        Ok(())
    }
}

/// A build's scratch directory, removed when dropped.
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unique() -> u128 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    nanos * 1000 + u128::from(NEXT.fetch_add(1, Ordering::Relaxed) % 1000)
}

/// The first of `names` found on `PATH`.
pub(crate) fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| is_executable(candidate))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `cmd` to completion, its output captured; an error carries what it
/// printed.
pub(crate) fn run(mut cmd: Command, what: &str) -> Result<Output> {
    let output = cmd.output().with_context(|| format!("{what}: cannot run {:?}", cmd.get_program()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let said = [stderr.trim(), stdout.trim()].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join("\n");
        bail!("{what} failed ({}):\n{}", output.status, tail(&said, 60));
    }
    Ok(output)
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Copies the plugin's sources into `to`, leaving out build output
/// (`target`, `node_modules`, `__pycache__`, `.wasm` files) and dot files.
pub(crate) fn copy_sources(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        if name_str.starts_with('.')
            || ["target", "node_modules", "__pycache__"].contains(&name_str.as_ref())
            || name_str.ends_with(".wasm")
        {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_sources(&entry.path(), &to.join(&name))?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), to.join(&name))
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}
