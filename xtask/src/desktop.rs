//! Building and testing the desktop app: the wasm UI, the Tauri binary, and the WebDriver end-to-end run.
//!
//! Plain `cargo` + `wasm-bindgen` instead of trunk or tauri-cli: trunk needs a newer rustc than the pinned one and
//! tauri-cli takes a quarter of an hour to install on two cores, while these two steps are all the app needs.

use crate::{cargo, project_root as workspace_root, run, step, target_dir, WASM_BINDGEN_VERSION};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// Files copied next to the generated `ui.js` / `ui_bg.wasm`.
const UI_STATIC_FILES: [&str; 3] = ["index.html", "main.js", "style.css"];

fn profile_dir(release: bool) -> &'static str {
    if release {
        "release"
    } else {
        "debug"
    }
}

/// A tool from PATH or `~/.cargo/bin`, where `cargo install` puts it even when that folder is not on PATH.
fn find_tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push(crate::cargo_home().join("bin"));
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

fn check_ui_toolchain() -> Result<PathBuf> {
    if let Ok(out) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    {
        if out.status.success()
            && !String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == WASM_TARGET)
        {
            bail!("the Rust target {WASM_TARGET} is missing: run `rustup target add {WASM_TARGET}` (or `cargo xtask setup`)");
        }
    }
    let Some(wb) = find_tool("wasm-bindgen") else {
        bail!("wasm-bindgen not found: run `cargo install wasm-bindgen-cli --version {WASM_BINDGEN_VERSION}` (without --locked; about 4 minutes)");
    };
    let out = Command::new(&wb)
        .arg("--version")
        .output()
        .with_context(|| format!("running {}", wb.display()))?;
    let version = String::from_utf8_lossy(&out.stdout);
    if !version
        .split_whitespace()
        .any(|w| w == WASM_BINDGEN_VERSION)
    {
        bail!(
            "{} is `{}`, the workspace pins wasm-bindgen {WASM_BINDGEN_VERSION}: run `cargo install wasm-bindgen-cli --version {WASM_BINDGEN_VERSION} --force`",
            wb.display(),
            version.trim()
        );
    }
    Ok(wb)
}

/// Builds the Leptos UI to wasm and lays out `ui/dist`, which Tauri embeds into the app binary.
pub fn build_ui(release: bool) -> Result<()> {
    let wasm_bindgen = check_ui_toolchain()?;
    let root = workspace_root();
    let profile = profile_dir(release);

    step(&format!("building the UI to wasm ({profile}; the first build compiles Leptos and takes several minutes)"));
    let mut build = cargo();
    build.args([
        "build",
        "-p",
        "ui",
        "--target",
        WASM_TARGET,
        "--features",
        "csr",
    ]);
    if release {
        build.arg("--release");
    }
    run(&mut build)?;

    let wasm = target_dir().join(WASM_TARGET).join(profile).join("ui.wasm");
    let dist = root.join("ui/dist");
    step(&format!(
        "generating JS bindings into {} (wasm-opt is skipped: Debian's wasm-opt breaks the module)",
        dist.display()
    ));
    std::fs::create_dir_all(&dist).with_context(|| format!("creating {}", dist.display()))?;
    run(Command::new(&wasm_bindgen)
        .args(["--target", "web", "--no-typescript", "--out-dir"])
        .arg(&dist)
        .arg(&wasm))?;
    for f in UI_STATIC_FILES {
        std::fs::copy(root.join("ui").join(f), dist.join(f))
            .with_context(|| format!("copying ui/{f} to ui/dist"))?;
    }
    Ok(())
}

/// Builds the UI and then the app with the UI embedded, and its local worker `karte-server` in the same folder
/// (the app starts it from beside its own executable, as installed); returns the app binary.
pub fn build_app(release: bool) -> Result<PathBuf> {
    build_ui(release)?;
    let profile = profile_dir(release);
    step(&format!(
        "building the desktop app and its worker karte-server ({profile}; a cold build compiles Tauri, WebKitGTK bindings and llama.cpp: 10-20 minutes on 2 cores)"
    ));
    let mut build = cargo();
    build.args(["build", "-p", "karte-desktop", "-p", "karte-server"]);
    if release {
        build.arg("--release");
    }
    run(&mut build)?;
    let dir = target_dir().join(profile);
    let bin = dir.join(format!("karte-desktop{}", std::env::consts::EXE_SUFFIX));
    let worker = dir.join(format!("karte-server{}", std::env::consts::EXE_SUFFIX));
    for b in [&bin, &worker] {
        if !b.is_file() {
            bail!("the build succeeded but {} is missing", b.display());
        }
    }
    step(&format!(
        "app binary: {} (worker beside it: {})",
        bin.display(),
        worker.display()
    ));
    Ok(bin)
}

/// Builds and starts the app (model from `$KARTE_MODEL`, default when unset). Without a display (a server, CI) it
/// runs on a private Xvfb display, so the app and its model load can still be exercised and screenshotted.
pub fn run_app(release: bool) -> Result<()> {
    let bin = build_app(release)?;
    let xvfb = match std::env::var("DISPLAY") {
        Ok(d) if !d.is_empty() => None,
        _ => Some(Xvfb::start()?),
    };
    let mut app = Command::new(&bin);
    if let Some(x) = &xvfb {
        step(&format!(
            "no DISPLAY: the window runs on Xvfb {d}; screenshot it with `DISPLAY={d} import -window root shot.png`",
            d = x.display
        ));
        app.env("DISPLAY", &x.display);
    }
    step("starting Karte (close the window or press Ctrl+C to stop)");
    let result = run(&mut app);
    drop(xvfb);
    result
}

/// An Xvfb server started for the tests; stopped on drop, also when the tests fail.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    /// Takes the first display number that has neither a lock file nor a socket, so a developer's own X server or a
    /// parallel run is never touched.
    fn start() -> Result<Xvfb> {
        let Some(xvfb) = find_tool("Xvfb") else {
            bail!("DISPLAY is unset and Xvfb is not installed: `apt-get install xvfb xauth` (or `cargo xtask setup`)");
        };
        for n in 99..160 {
            let lock = PathBuf::from(format!("/tmp/.X{n}-lock"));
            let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
            if lock.exists() || socket.exists() {
                continue;
            }
            let display = format!(":{n}");
            step(&format!("starting Xvfb on {display} (1280x800)"));
            let mut child = Command::new(&xvfb)
                .args([
                    display.as_str(),
                    "-screen",
                    "0",
                    "1280x800x24",
                    "-nolisten",
                    "tcp",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting Xvfb")?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if socket.exists() {
                    return Ok(Xvfb { child, display });
                }
                if child.try_wait()?.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        bail!("could not start Xvfb on any display from :99 to :159")
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        step(&format!("stopping Xvfb on {}", self.display));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds the app and runs the WebDriver tests against it, on a private Xvfb display when there is no display.
/// `KARTE_MODEL` picks the model the window loads; `KARTE_E2E_NO_LLM=1` drafts with the rules only. `filter`
/// runs only the tests whose names contain it.
pub fn e2e(filter: Option<&str>) -> Result<()> {
    let bin = build_app(false)?;
    let Some(tauri_driver) = find_tool("tauri-driver") else {
        bail!("tauri-driver not found: run `cargo install tauri-driver --locked` (about 30 s)");
    };
    if !Path::new("/usr/bin/WebKitWebDriver").is_file() {
        bail!("/usr/bin/WebKitWebDriver not found: `apt-get install webkit2gtk-driver`");
    }
    let xvfb = match std::env::var("DISPLAY") {
        Ok(d) if !d.is_empty() => {
            step(&format!("using the existing display {d}"));
            None
        }
        _ => Some(Xvfb::start()?),
    };
    let display = match &xvfb {
        Some(x) => x.display.clone(),
        None => std::env::var("DISPLAY").unwrap_or_default(),
    };
    step("running the desktop end-to-end tests (a draft with the model takes up to a few minutes on a CPU)");
    let mut test = cargo();
    test.args([
        "test",
        "-p",
        "karte-e2e",
        "--lib",
        "--test",
        "desktop",
        "--",
        "--test-threads=1",
        "--nocapture",
    ])
    .args(filter)
    .env("KARTE_DESKTOP_BIN", &bin)
    .env("TAURI_DRIVER", &tauri_driver)
    .env("DISPLAY", &display);
    let result = run(&mut test);
    drop(xvfb);
    result
}
