//! `cargo xtask train-venv | train-test | train --smoke|--full`: the model-building side (training/).
//!
//! The training stack (PyTorch, transformers, trl, peft, accelerate, datasets) lives in its own venv outside the
//! clone, installed from `training/requirements.lock` with `--require-hashes`: several GB that CI should cache
//! and that the test venv must not carry. The recipes themselves are Python (trl's trainers); xtask only builds the
//! `karte` binary whose guard pseudonymises the corpus and which loads the results, and runs the steps in order.

use crate::{project_root, run, step, succeeds, target_dir};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the training venv lives (`KARTE_TRAIN_VENV` overrides).
pub const TRAIN_VENV_DIR: &str = "/var/cache/karte/train-venv";
/// The base the smoke recipes start from and take the tokenizer of (a manifest model: `cargo xtask fetch-model`).
const SMOKE_BASE: &str = "smollm2-135m";

pub fn train_venv_dir() -> PathBuf {
    std::env::var_os("KARTE_TRAIN_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(TRAIN_VENV_DIR))
}

/// True where a CUDA GPU is usable: then the lock is installed whole; on a CPU-only machine `triton` (1 GB, GPU
/// kernels only) is left out. PyPI has no CPU-only torch for Linux x86_64, so the nvidia-* runtime wheels torch
/// imports stay either way.
fn has_gpu() -> bool {
    succeeds(Command::new("nvidia-smi").arg("-L"))
}

/// Creates the venv and installs the lock into it, unless a stamp says this exact lock is already installed.
pub fn train_venv() -> Result<PathBuf> {
    step("train: Python training stack (venv)");
    let dir = train_venv_dir();
    let lock_path = project_root().join("training/requirements.lock");
    let lock = std::fs::read_to_string(&lock_path).context("reading training/requirements.lock")?;
    let gpu = has_gpu();
    let filtered = if gpu {
        lock
    } else {
        without_package(&lock, "triton")
    };
    let stamp_text = format!("{}\n{filtered}", if gpu { "gpu" } else { "cpu" });
    let stamp = dir.join(".karte-train-lock");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(stamp_text.as_str()) {
        eprintln!("    {} matches training/requirements.lock", dir.display());
        return Ok(dir);
    }
    let python = dir.join("bin/python");
    if !python.exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&dir))
            .context("python3 -m venv failed: install python3-venv")?;
    }
    let req = dir.join("requirements.lock");
    std::fs::write(&req, &filtered)?;
    eprintln!(
        "    installing the locked training stack into {} ({}; ~6 GB, several minutes the first time)",
        dir.display(),
        if gpu { "GPU" } else { "CPU: without triton" }
    );
    run(Command::new(&python)
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
        .args(["--no-cache-dir", "--require-hashes", "--no-deps", "-r"])
        .arg(&req))?;
    std::fs::write(&stamp, stamp_text)?;
    Ok(dir)
}

/// Drops one `name==version \` entry with its `--hash` continuation lines from a hashed requirements file.
fn without_package(lock: &str, name: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in lock.lines() {
        if !line.starts_with(' ') {
            skipping = line.starts_with(&format!("{name}=="));
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Builds the `karte` binary the corpus step and the checks call.
fn karte_bin() -> Result<PathBuf> {
    step("train: building karte (its guard pseudonymises the corpus; it loads the results)");
    run(crate::cargo().args(["build", "-p", "karte-cli"]))?;
    Ok(target_dir().join("debug/karte"))
}

/// The corpus step's unit tests: only python3 (stdlib) and the real `karte` binary, a few seconds.
pub fn train_test() -> Result<()> {
    train_test_with(&karte_bin()?)
}

/// As [`train_test`] with a `karte` binary already built: `cargo xtask test` passes the one its workspace test run
/// made (karte-cli's integration tests build it), since `cargo build -p karte-cli` resolves other features than the
/// workspace and would rebuild llama.cpp for a few seconds of tests.
pub fn train_test_with(karte: &Path) -> Result<()> {
    step("train: corpus unit tests (python3 -m unittest, real karte redact)");
    run(Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "tests", "-t", "."])
        .current_dir(project_root().join("training"))
        .env("KARTE_BIN", karte))
}

/// corpus → scratch → continued → GGUF → `karte model verify` and `karte draft --model` on each file.
pub fn train(args: &[String]) -> Result<()> {
    let scale = match args.first().map(String::as_str) {
        Some("--smoke") | None => "smoke",
        Some("--full") => "full",
        Some(other) => bail!("usage: cargo xtask train [--smoke|--full] [OUT]; got {other}"),
    };
    let out = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join(format!("train-{scale}")));
    let venv = train_venv()?;
    train_test()?;
    let karte = target_dir().join("debug/karte");
    crate::fetch_model(Some(SMOKE_BASE))?;
    let base = karte_models::resolve(Some(SMOKE_BASE))
        .map_err(|e| anyhow::anyhow!("[{}] {}", e.code, e.message))?
        .path;
    let root = project_root();
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    std::fs::create_dir_all(&out)?;

    step("train: canary kit (to measure memorisation later)");
    let kit = out.join("canary-kit.json");
    run(Command::new(&karte)
        .args([
            "eval",
            "canary-kit",
            "--count",
            "2",
            "--repeats",
            "1,10",
            "--out",
        ])
        .arg(&kit))?;
    step("train: corpus (karte redact, dedup, held-out split)");
    let corpus = out.join("corpus");
    let py = venv.join("bin/python");
    let module = |args: &[&std::ffi::OsStr]| -> Command {
        let mut c = Command::new(&py);
        c.args(["-m", "karte_train"])
            .args(args)
            .env("PYTHONPATH", root.join("training"))
            .current_dir(&root);
        c
    };
    run(&mut module(&[
        "corpus".as_ref(),
        root.join("training/data/sample").as_os_str(),
        root.join("assets/samples").as_os_str(),
        "--out".as_ref(),
        corpus.as_os_str(),
        "--karte".as_ref(),
        karte.as_os_str(),
        "--canary-lines".as_ref(),
        out.join("canary-kit.json.train.txt").as_os_str(),
    ]))?;
    for recipe in ["scratch", "continued"] {
        step(&format!("train: recipe {recipe} ({scale})"));
        let dir = out.join(recipe);
        run(&mut module(&[
            recipe.as_ref(),
            "--base".as_ref(),
            base.as_os_str(),
            "--corpus".as_ref(),
            corpus.as_os_str(),
            "--out".as_ref(),
            dir.as_os_str(),
            "--scale".as_ref(),
            scale.as_ref(),
        ]))?;
        let gguf = dir.join(format!("{recipe}-q4_1.gguf"));
        check_loads(&karte, &gguf, &root)?;
    }
    eprintln!("\n    models and cards under {}", out.display());
    Ok(())
}

/// The acceptance for every GGUF the recipes write: Karte verifies it and drafts with it.
fn check_loads(karte: &Path, gguf: &Path, root: &Path) -> Result<()> {
    step(&format!(
        "train: karte model verify / draft --model {}",
        gguf.display()
    ));
    run(Command::new(karte).args(["model", "verify"]).arg(gguf))?;
    run(Command::new(karte)
        .args(["draft", "--format", "json", "--model"])
        .arg(gguf)
        .arg(root.join("assets/samples/uti-elderly.txt")))
}
