//! Python plugins: `app.py` (and any modules beside it) componentized by
//! componentize-py with its WASI imports replaced by trapping stubs.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::tools::{Toolchains, copy_sources, run};
use crate::{Kind, wit_dir};

pub(crate) fn build(tools: &Toolchains, dir: &Path, out: &Path, kind: Kind) -> Result<()> {
    let componentize_py = tools.componentize_py()?;
    // componentize-py writes `__pycache__` beside the sources it loads:
    // build from a copy so the plugin's directory stays as it is.
    let scratch = tools.scratch("python")?;
    let app = scratch.path().join("app");
    copy_sources(dir, &app)?;
    let wit = wit_dir(dir, scratch.path())?;
    let mut cmd = Command::new(componentize_py);
    cmd.arg("-d")
        .arg(&wit)
        .args(["-w", kind.world(), "componentize", "app", "--stub-wasi", "-p", "."])
        .arg("-o")
        .arg(out)
        .current_dir(&app);
    run(cmd, &format!("componentize-py on {}", dir.display()))?;
    Ok(())
}
