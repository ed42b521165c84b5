//! Helpers for the end-to-end tests: a minimal W3C WebDriver client and a guard around `tauri-driver`.
//!
//! The tests drive the real window (Tauri + WebKitGTK) the way a physician does. A full WebDriver crate would pull
//! an async stack into the test build; the dozen endpoints needed here are plain JSON over HTTP.

pub mod driver;
pub mod procs;
pub mod ward;
pub mod webdriver;

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// Reads a required environment variable, failing with what to set and why. The tests must fail, not skip, when
/// their environment is missing: a skipped desktop test looks like a passing one in CI.
pub fn require_env(name: &str, why: &str) -> Result<String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => bail!("{name} is not set: {why}. Run the desktop tests through `cargo xtask e2e`, which builds the app, starts Xvfb and sets it."),
    }
}

/// Where screenshots go: `$KARTE_ARTIFACTS_DIR`, else the shared cache outside the repo (CI collects it there).
pub fn artifacts_dir() -> Result<PathBuf> {
    let dir = std::env::var_os("KARTE_ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/karte/artifacts"));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating artifacts dir {}", dir.display()))?;
    Ok(dir)
}

/// `N` distinct free TCP ports. All listeners are held until every port is chosen: released one at a time, the
/// kernel may hand the same port out twice, and tauri-driver then cannot start its native driver. Another process
/// could still take one before tauri-driver binds it; that race is rare, and its failure is reported clearly.
pub fn free_ports<const N: usize>() -> Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").context("finding a free TCP port"))
        .collect::<Result<Vec<_>>>()?;
    let mut ports = [0; N];
    for (port, l) in ports.iter_mut().zip(&listeners) {
        *port = l.local_addr()?.port();
    }
    Ok(ports)
}
