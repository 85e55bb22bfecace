//! Installs what the live view's browser test (`sink/tests/view_browser.rs`) needs: Debian's
//! `chromium` and the `playwright-core` pinned in `sink/tests/browser/package-lock.json`.
//!
//! Each step checks first and does nothing when the tool is already there.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::install::apt_get_install;
use crate::process::{root, run};

/// Where the browser test's `package.json` and lock file live.
const BROWSER_TEST_DIR: &str = "sink/tests/browser";

pub fn chromium_and_playwright() -> Result<()> {
    if !Path::new("/usr/bin/chromium").exists() {
        apt_get_install("chromium")?;
    }
    let dir = root().join(BROWSER_TEST_DIR);
    if !dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        run(Command::new("npm")
            .current_dir(&dir)
            .args(["ci", "--no-audit", "--no-fund"]))?;
    }
    Ok(())
}
