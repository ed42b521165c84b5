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
/// The base the recipes start from and take the tokenizer of (a manifest model: `cargo xtask fetch-model`);
/// `KARTE_TRAIN_BASE` names another (a larger Qwen for `--full` on GPUs).
const SMOKE_BASE: &str = "smollm2-135m";

fn base_name() -> String {
    std::env::var("KARTE_TRAIN_BASE")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| SMOKE_BASE.to_string())
}

/// How a recipe is started: the venv's python, or `accelerate launch --config_file $KARTE_TRAIN_ACCELERATE_CONFIG`
/// (one GPU, 8 with FSDP, several nodes with DeepSpeed: training/accelerate/) with the same arguments.
fn recipe_cmd(venv: &Path) -> Command {
    match std::env::var_os("KARTE_TRAIN_ACCELERATE_CONFIG").filter(|v| !v.is_empty()) {
        Some(cfg) => {
            let mut c = Command::new(venv.join("bin/accelerate"));
            c.arg("launch").arg("--config_file").arg(cfg);
            c
        }
        None => Command::new(venv.join("bin/python")),
    }
}

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

/// The `karte` binary the corpus step, the ward and the checks call: `KARTE_BIN` when set (an already-built binary,
/// e.g. the one `cargo xtask test` made: building karte-cli alone resolves other features and rebuilds llama.cpp,
/// 20+ minutes on two cores), else `cargo build -p karte-cli` into the target dir.
fn karte_bin() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("KARTE_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        if !bin.exists() {
            bail!("KARTE_BIN={} does not exist", bin.display());
        }
        return Ok(bin);
    }
    step("train: building karte (its guard pseudonymises the corpus; it loads the results)");
    run(crate::cargo().args(["build", "-p", "karte-cli"]))?;
    Ok(target_dir().join("debug/karte"))
}

/// A command that loads a model: under `flock $KARTE_MODEL_LOCK` when that is set, so that on a machine shared
/// with other model runs (the development machine) two never compete for the cores and skew each other's timings.
fn model_cmd(program: &Path) -> Command {
    match std::env::var_os("KARTE_MODEL_LOCK").filter(|v| !v.is_empty()) {
        Some(lock) => {
            let mut c = Command::new("flock");
            c.arg(lock).arg(program);
            c
        }
        None => Command::new(program),
    }
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

/// Seconds per step of a run, written next to its outputs for the report.
struct Timings(Vec<(String, f64)>);

impl Timings {
    fn time<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let t = std::time::Instant::now();
        let r = f()?;
        self.0.push((name.to_string(), t.elapsed().as_secs_f64()));
        Ok(r)
    }
    fn json(&self) -> String {
        let fields: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("  \"{k}\": {v:.1}"))
            .collect();
        format!("{{\n{}\n}}\n", fields.join(",\n"))
    }
}

/// What the two scales run. The smoke run proves every step on two shared CPU cores within `cargo xtask test`:
/// each recipe trains a few steps, every GGUF loads and drafts, the exposure is measured, one item of every eval
/// suite runs per model; `--full` runs the same steps at real sizes and counts.
struct Plan {
    scale: &'static str,
    /// `karte eval run` settings: at smoke scale one item of each suite's CI subset (gates included, so the policy
    /// really decides; a toy model may fail them and then "none" is recommended) with short raw answers.
    eval: &'static [&'static str],
    /// Canaries per insertion count of the kit, and the random alternatives each is ranked among.
    canaries: &'static str,
    exposure_samples: &'static str,
    /// Which models the exposure is measured on: at smoke scale the two trained on the corpus (the canaries are
    /// there); at full scale the base (the reference for "never saw it") and the feedback model too.
    exposure_models: &'static [&'static str],
    /// Whether the chosen model drafts the ward's encounters (its drafts become the rejected side), or the rules
    /// engine does: at smoke scale five toy-model drafts would take most of the run (a debug build drafts at a few
    /// tokens/s on two shared cores), and every GGUF's drafting is checked on its own anyway.
    ward_model: bool,
}

const SMOKE: Plan = Plan {
    scale: "smoke",
    eval: &["--smoke", "--limit", "1", "--max-tokens", "16"],
    canaries: "1",
    exposure_samples: "20",
    exposure_models: &["scratch", "continued"],
    ward_model: false,
};

const FULL: Plan = Plan {
    scale: "full",
    eval: &[],
    canaries: "5",
    exposure_samples: "1000",
    exposure_models: &["base", "scratch", "continued", "feedback"],
    ward_model: true,
};

/// `cargo xtask train [--smoke|--full] [OUT]`.
pub fn train(args: &[String]) -> Result<()> {
    let plan = match args.first().map(String::as_str) {
        Some("--smoke") | None => &SMOKE,
        Some("--full") => &FULL,
        Some(other) => bail!("usage: cargo xtask train [--smoke|--full] [OUT]; got {other}"),
    };
    let out = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join(format!("train-{}", plan.scale)));
    let karte = karte_bin()?;
    run_plan(plan, &out, &karte)
}

/// The smoke run as `cargo xtask test` runs it, with the debug `karte` its workspace tests built (its unit tests
/// are the run's first step).
pub fn smoke_with(karte: &Path) -> Result<()> {
    run_plan(&SMOKE, &target_dir().join("train-smoke"), karte)
}

/// corpus → scratch → continued → `karte eval run` (which is better) → a ward's real `karte feedback export` →
/// feedback (DPO) → canary exposure and `karte eval run` over base and the three recipes → report. Every GGUF is
/// checked with `karte model verify` and a `karte draft --model` that the model itself wrote.
fn run_plan(plan: &Plan, out: &Path, karte: &Path) -> Result<()> {
    let scale = plan.scale;
    let mut t = Timings(Vec::new());
    let venv = t.time("venv", train_venv)?;
    t.time("unit tests", || train_test_with(karte))?;
    let base_name = base_name();
    crate::fetch_model(Some(&base_name))?;
    let base = karte_models::resolve(Some(&base_name))
        .map_err(|e| anyhow::anyhow!("[{}] {}", e.code, e.message))?
        .path;
    let root = project_root();
    if out.exists() {
        std::fs::remove_dir_all(out)?;
    }
    std::fs::create_dir_all(out)?;
    let out = out.canonicalize()?;

    let kit = out.join("canary-kit.json");
    let corpus = out.join("corpus");
    let py = venv.join("bin/python");
    let recipe = |args: &[&std::ffi::OsStr]| -> Command {
        let mut c = recipe_cmd(&venv);
        c.args(["-m", "karte_train"])
            .args(args)
            .env("PYTHONPATH", root.join("training"))
            .current_dir(&root);
        c
    };
    let module = |args: &[&std::ffi::OsStr]| -> Command {
        let mut c = Command::new(&py);
        c.args(["-m", "karte_train"])
            .args(args)
            .env("PYTHONPATH", root.join("training"))
            .current_dir(&root);
        c
    };
    t.time("canary kit", || {
        step("train: canary kit (to measure memorisation later)");
        run(Command::new(karte)
            .args(["eval", "canary-kit", "--count", plan.canaries])
            .args(["--repeats", "1,10", "--out"])
            .arg(&kit))
    })?;
    t.time("corpus", || {
        step("train: corpus (karte redact, dedup, held-out split)");
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
        ]))
    })?;
    let gguf_of = |recipe: &str| out.join(recipe).join(format!("{recipe}-q4_1.gguf"));
    for name in ["scratch", "continued"] {
        t.time(name, || {
            step(&format!("train: recipe {name} ({scale})"));
            let dir = out.join(name);
            run(&mut recipe(&[
                name.as_ref(),
                "--base".as_ref(),
                base.as_os_str(),
                "--corpus".as_ref(),
                corpus.as_os_str(),
                "--out".as_ref(),
                dir.as_os_str(),
                "--scale".as_ref(),
                scale.as_ref(),
            ]))
        })?;
        t.time(&format!("{name} checks"), || {
            check_loads(karte, &gguf_of(name), &root)
        })?;
    }

    // Which of the two the clinicians' feedback improves: karte eval's policy decides (the same eval directory is
    // used again below, so these two candidates come from its cache there).
    let eval_dir = out.join("eval");
    let candidate = |name: &str, path: &Path| format!("{name}={}", path.display());
    t.time("eval scratch/continued", || {
        step("train: karte eval run over scratch and continued (which one the feedback improves)");
        run(model_cmd(karte)
            .args(["eval", "run", "--threads", "2", "--out"])
            .arg(&eval_dir)
            .args(plan.eval)
            .args(["--candidate", &candidate("scratch", &gguf_of("scratch"))])
            .args([
                "--candidate",
                &candidate("continued", &gguf_of("continued")),
            ]))
    })?;
    run(&mut module(&["choose-start".as_ref(), out.as_os_str()]))?;
    let start = std::fs::read_to_string(out.join("feedback-start.txt"))?
        .trim()
        .to_string();
    if !["scratch", "continued"].contains(&start.as_str()) {
        bail!("choose-start picked {start:?}, not scratch or continued");
    }

    // The ward: drafts (by the chosen model at full scale), corrected and signed by physicians, suggestions reviewed
    // by nurses, all through the karte CLI in a throw-away store; its `karte feedback export` is the DPO data.
    let export = out.join("feedback-export.jsonl");
    t.time("ward (feedback export)", || {
        step("train: a synthetic ward through the karte CLI, then karte feedback export");
        // The ward's model drafts take KARTE_MODEL_LOCK themselves (the Python side reads it too).
        let mut c = module(&[
            "feedback-store".as_ref(),
            "--karte".as_ref(),
            karte.as_os_str(),
            "--out".as_ref(),
            export.as_os_str(),
        ]);
        if plan.ward_model {
            c.arg("--model").arg(gguf_of(&start));
        }
        run(&mut c)
    })?;
    t.time("feedback", || {
        step(&format!(
            "train: recipe feedback (DPO on top of {start}, {scale})"
        ));
        run(&mut recipe(&[
            "feedback".as_ref(),
            "--base".as_ref(),
            base.as_os_str(),
            "--start".as_ref(),
            gguf_of(&start).as_os_str(),
            "--start-recipe".as_ref(),
            start.as_ref(),
            "--pairs".as_ref(),
            export.as_os_str(),
            "--corpus".as_ref(),
            corpus.as_os_str(),
            "--out".as_ref(),
            out.join("feedback").as_os_str(),
            "--scale".as_ref(),
            scale.as_ref(),
        ]))
    })?;
    t.time("feedback checks", || {
        check_loads(karte, &gguf_of("feedback"), &root)
    })?;

    let models = [
        ("base", base.clone()),
        ("scratch", gguf_of("scratch")),
        ("continued", gguf_of("continued")),
        ("feedback", gguf_of("feedback")),
    ];
    t.time("canary exposure", || {
        step("train: canary exposure (the kit the corpus step inserted)");
        std::fs::create_dir_all(out.join("exposure"))?;
        for (name, path) in models
            .iter()
            .filter(|(n, _)| plan.exposure_models.contains(n))
        {
            run(model_cmd(karte)
                .args(["eval", "exposure", "--candidate", &candidate(name, path)])
                .arg("--kit")
                .arg(&kit)
                .args(["--samples", plan.exposure_samples, "--out"])
                .arg(out.join("exposure").join(format!("{name}.md"))))?;
        }
        Ok(())
    })?;
    t.time("eval all", || {
        step("train: karte eval run over base, scratch, continued and feedback");
        let mut c = model_cmd(karte);
        c.args(["eval", "run", "--threads", "2", "--out"])
            .arg(&eval_dir)
            .args(plan.eval);
        for (name, path) in &models {
            c.args(["--candidate", &candidate(name, path)]);
        }
        run(&mut c)
    })?;
    std::fs::write(out.join("timings.json"), t.json())?;
    step("train: report");
    let commit = git_commit(&root);
    run(&mut module(&[
        "report".as_ref(),
        out.as_os_str(),
        "--commit".as_ref(),
        commit.as_ref(),
    ]))?;
    eprintln!(
        "\n    models, cards and the report ({}) under {}",
        out.join("report/REPORT.md").display(),
        out.display()
    );
    Ok(())
}

/// The commit the run was built from, `-dirty` when the tree had changes (the report must say what it measured).
fn git_commit(root: &Path) -> String {
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let dirty = !succeeds(
        Command::new("git")
            .args(["diff", "--quiet", "HEAD"])
            .current_dir(root),
    );
    if dirty {
        format!("{head}-dirty")
    } else {
        head
    }
}

/// The acceptance for every GGUF the recipes write: Karte verifies it, and a draft with it is the model's own (karte
/// draft reports the engine that wrote it: a draft the rules engine made instead would prove nothing).
fn check_loads(karte: &Path, gguf: &Path, root: &Path) -> Result<()> {
    step(&format!(
        "train: karte model verify / draft --model {}",
        gguf.display()
    ));
    run(model_cmd(karte).args(["model", "verify"]).arg(gguf))?;
    let mut draft = model_cmd(karte);
    draft
        .args(["draft", "--format", "json", "--model"])
        .arg(gguf)
        .arg(root.join("training/data/check/dictation.txt"));
    eprintln!("    $ {}", crate::display(&draft));
    let o = draft
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot start karte draft")?;
    if !o.status.success() {
        bail!(
            "karte draft --model {} failed ({})",
            gguf.display(),
            o.status
        );
    }
    let json: serde_json::Value =
        serde_json::from_slice(&o.stdout).context("karte draft --format json: not JSON")?;
    let engine = &json["engine"];
    let tokens = engine["generated_tokens"].as_u64().unwrap_or(0);
    if engine["kind"] != "local" || tokens == 0 {
        bail!(
            "karte draft --model {}: the draft is not the model's (engine: {engine})",
            gguf.display()
        );
    }
    eprintln!(
        "    drafted by the model: {tokens} tokens, {:.1} tokens/s",
        engine["tokens_per_s"].as_f64().unwrap_or(0.0)
    );
    Ok(())
}
