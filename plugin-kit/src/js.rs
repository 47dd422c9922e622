//! JavaScript plugins: the ES module `app.js` componentized by
//! componentize-js (StarlingMonkey) with every WASI feature it can drop
//! disabled.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::tools::{Toolchains, copy_sources, run};
use crate::{Kind, wit_dir};

/// Every feature `componentize-js --disable` knows (its CLI has no `all`).
const DISABLED: [&str; 5] = ["stdio", "random", "clocks", "http", "fetch-event"];

pub(crate) fn build(tools: &Toolchains, dir: &Path, out: &Path, kind: Kind) -> Result<()> {
    let componentize_js = tools.componentize_js()?;
    let scratch = tools.scratch("js")?;
    let app = scratch.path().join("app");
    copy_sources(dir, &app)?;
    let wit = wit_dir(dir, scratch.path())?;
    // It leaves temporary folders in TMPDIR: give it one that goes away.
    let tmp = scratch.path().join("tmp");
    std::fs::create_dir_all(&tmp)?;
    let mut cmd = Command::new(componentize_js);
    cmd.arg("app.js")
        .arg("--wit")
        .arg(&wit)
        .args(["--world-name", kind.world(), "--disable"])
        .args(DISABLED)
        .arg("--out")
        .arg(out)
        .current_dir(&app)
        .env("TMPDIR", &tmp);
    run(cmd, &format!("componentize-js on {}", dir.display()))?;
    Ok(())
}
