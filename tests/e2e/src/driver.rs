//! Starting and always stopping `tauri-driver` (which starts WebKitWebDriver, which starts the app).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NATIVE_DRIVER: &str = "/usr/bin/WebKitWebDriver";

/// Finds `tauri-driver`: `$TAURI_DRIVER`, then `~/.cargo/bin` (where `cargo install` puts it, often not on PATH in
/// CI shells), then PATH.
pub fn find_tauri_driver() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("TAURI_DRIVER") {
        return Ok(PathBuf::from(p));
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(p) = cargo_home
        .map(|h| h.join("bin/tauri-driver"))
        .filter(|p| p.is_file())
    {
        return Ok(p);
    }
    if let Some(paths) = std::env::var_os("PATH") {
        if let Some(p) = std::env::split_paths(&paths)
            .map(|d| d.join("tauri-driver"))
            .find(|p| p.is_file())
        {
            return Ok(p);
        }
    }
    bail!("tauri-driver not found (looked at $TAURI_DRIVER, ~/.cargo/bin, PATH): install it with `cargo install tauri-driver --locked`, or run `cargo xtask setup`")
}

/// A running `tauri-driver`. Dropping it stops the driver, WebKitWebDriver and the app, also when a test panics:
/// a leftover app would hold the display and the model's memory for the next run.
pub struct TauriDriver {
    child: Child,
    pub url: String,
}

impl TauriDriver {
    pub fn start() -> Result<Self> {
        let bin = find_tauri_driver()?;
        if !Path::new(NATIVE_DRIVER).is_file() {
            bail!("{NATIVE_DRIVER} not found: install the Debian package webkit2gtk-driver");
        }
        let [port, native_port] = crate::free_ports()?;
        let mut cmd = Command::new(&bin);
        cmd.args([
            "--port",
            &port.to_string(),
            "--native-port",
            &native_port.to_string(),
        ])
        .args(["--native-driver", NATIVE_DRIVER])
        .stdin(Stdio::null());
        // Its own process group, so that the whole tree (driver, WebKitWebDriver, app) can be stopped by one id.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut driver = TauriDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        driver.wait_ready(Duration::from_secs(30))?;
        Ok(driver)
    }

    /// The driver's process id: the app and its worker are among its descendants.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let addr = self.url.trim_start_matches("http://").to_string();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("tauri-driver exited at start ({status}); see its output above");
            }
            if std::net::TcpStream::connect(&addr).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("tauri-driver did not listen on {addr} within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal_group(&self, signal: &str) {
        let pgid = self.child.id();
        // `kill` the binary, not a crate: one call, and the group id is the child we started.
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{pgid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for TauriDriver {
    fn drop(&mut self) {
        self.signal_group("-TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                // The driver is gone; make sure nothing it started lingers in the group.
                self.signal_group("-KILL");
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.signal_group("-KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
