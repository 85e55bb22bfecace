//! The live view's browser check, shared by the sink's view test and the demo's end-to-end
//! test: runs `sink/tests/browser/view.mjs` (playwright-core driving Debian's headless
//! chromium) against a page URL with a JSON list of what must be seen, under a hard timeout.
//!
//! It only runs the script and reports; what to expect is the caller's, and so is skipping
//! (see [`require_or_skip`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// `sink/tests/browser`, where the script and its `node_modules` live.
pub fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sink/tests/browser")
}

/// Why the browser check cannot run here, if it cannot.
pub fn missing_tools() -> Option<String> {
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} is missing (Debian package chromium)"));
    }
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("node is missing".into());
    }
    let playwright = browser_dir().join("node_modules/playwright-core/package.json");
    (!playwright.exists()).then(|| format!("{} is missing (npm ci)", playwright.display()))
}

/// Whether `test` can run: `false` (after saying why) when a tool is missing, a panic instead
/// when `MESHTAP_REQUIRE_BROWSER` is set (`cargo xtask test` sets it).
pub fn require_or_skip(test: &str) -> bool {
    let Some(missing) = missing_tools() else {
        return true;
    };
    if std::env::var_os("MESHTAP_REQUIRE_BROWSER").is_some() {
        panic!("MESHTAP_REQUIRE_BROWSER is set but {missing}: run `cargo xtask install`");
    }
    eprintln!("SKIPPED {test}: {missing}");
    false
}

/// Runs `view.mjs` on `url` with `expect` (see the script for its keys), keeping chromium's
/// profile and the script's output under `work` and the screenshot at `screenshot`. Returns
/// the script's stdout when every check passed, else an error with stdout and stderr.
pub fn check_view(
    url: &str,
    expect: &serde_json::Value,
    screenshot: &Path,
    work: &Path,
    timeout: Duration,
) -> Result<String, String> {
    std::fs::create_dir_all(work).map_err(|e| e.to_string())?;
    let (out_path, err_path) = (work.join("view.stdout"), work.join("view.stderr"));
    let file = |path: &Path| std::fs::File::create(path).map_err(|e| e.to_string());
    let mut child = Command::new("node")
        .current_dir(browser_dir())
        .arg("view.mjs")
        .arg(url)
        .arg(screenshot)
        .arg(work.join("chromium-profile"))
        .arg(expect.to_string())
        .stdin(Stdio::null())
        .stdout(file(&out_path)?)
        .stderr(file(&err_path)?)
        .spawn()
        .map_err(|e| format!("node does not start: {e}"))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    match status {
        Some(status) if status.success() && stdout.contains("\"ok\":true") => Ok(stdout),
        Some(status) => Err(format!(
            "browser checks failed ({status}):\n{stdout}\n{stderr}"
        )),
        None => Err(format!(
            "browser run exceeded {timeout:?}:\n{stdout}\n{stderr}"
        )),
    }
}
