//! The plugin author kit's commands: `polyscale plugin new` (a project
//! from a template embedded in this binary) and `polyscale plugin build`,
//! both through `polyscale-plugin-kit`, the same driver as `cargo xtask
//! plugin-examples`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use polyscale_plugin_kit::{BuildRequest, Built, Kind, Language, Toolchains};

/// Writes a new `language` plugin of `kind` into `dir` (missing or empty),
/// named after the directory; returns the files written.
pub fn new_project(dir: &Path, language: Language, kind: Kind) -> Result<Vec<PathBuf>> {
    polyscale_plugin_kit::new_project(dir, language, kind)
}

/// Builds the plugin in `dir` into `out` (default: `DIR/NAME.wasm`) and
/// checks it.
pub fn build(dir: &Path, out: Option<&Path>, kind: Option<Kind>) -> Result<Built> {
    let dir = dir.canonicalize().with_context(|| format!("plugin directory {}", dir.display()))?;
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("plugin").to_string();
    let out = out.map(Path::to_path_buf).unwrap_or_else(|| dir.join(format!("{name}.wasm")));
    let mut request = BuildRequest::new(&dir, out);
    request.kind = kind;
    polyscale_plugin_kit::build(&Toolchains::from_env(), &request)
}
