//! `cargo xtask bench-vs REV [--model NAME] [--rounds N] [--reps N]`: karte-api's draft bench (the time from
//! pressing 下書き作成 to the complete draft, rules only and with a model) of this checkout against the same bench
//! at another commit, side by side in one run. The two builds take turns, round after round, so that the noise of
//! this shared machine hits both alike; the table gives the median over rounds and the ratio to REV.
//!
//! REV is checked out as a detached git worktree under the cache directory and built in its own target directory
//! (never the main one: cargo would mix the two checkouts' crates).

use crate::{cargo, run as sh, step};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Opts {
    rev: String,
    model: String,
    rounds: usize,
    reps: usize,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut it = args.iter();
    let rev = it
        .next()
        .filter(|r| !r.starts_with("--"))
        .context("usage: cargo xtask bench-vs REV [--model NAME] [--rounds N] [--reps N]")?
        .clone();
    let mut o = Opts {
        rev,
        model: crate::TEST_MODEL.to_string(),
        rounds: 3,
        reps: 3,
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--model" => o.model = it.next().context("--model NAME")?.clone(),
            "--rounds" => o.rounds = it.next().context("--rounds N")?.parse()?,
            "--reps" => o.reps = it.next().context("--reps N")?.parse()?,
            other => bail!("unknown option {other}"),
        }
    }
    Ok(o)
}

/// Builds the draft bench in `dir` with `target` and returns the executable.
fn build(dir: &Path, target: &Path) -> Result<PathBuf> {
    let out = cargo()
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .args([
            "bench",
            "-p",
            "karte-api",
            "--bench",
            "draft",
            "--no-run",
            "--message-format=json",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cargo bench --no-run")?;
    if !out.status.success() {
        bail!("building the draft bench in {} failed", dir.display());
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"]["name"] == "draft")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .context("no draft bench executable in cargo's output")
}

/// One run of a bench binary: (mode, sample) → median ms.
fn measure(bin: &Path, o: &Opts) -> Result<BTreeMap<(String, String), f64>> {
    let out = Command::new(bin)
        .args(["--model", &o.model, "--reps", &o.reps.to_string()])
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut m = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let key = (
            v["mode"].as_str().unwrap_or_default().to_string(),
            v["sample"].as_str().unwrap_or_default().to_string(),
        );
        m.insert(key, v["median_ms"].as_f64().unwrap_or(f64::NAN));
    }
    Ok(m)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn bench_vs(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let root = crate::project_root();
    let sha = String::from_utf8(
        Command::new("git")
            .args(["rev-parse", "--short", &o.rev])
            .current_dir(&root)
            .output()?
            .stdout,
    )?
    .trim()
    .to_string();
    if sha.is_empty() {
        bail!("{} is not a commit of this repository", o.rev);
    }
    let cache = Path::new("/var/cache/karte");
    let tree = cache.join(format!("rev-{sha}"));
    if !tree.exists() {
        step(&format!("bench-vs: checking out {sha}"));
        sh(Command::new("git").current_dir(&root).args([
            "worktree",
            "add",
            "--detach",
            tree.to_str().context("cache path")?,
            &sha,
        ]))?;
    }
    step("bench-vs: building the draft bench here and at the reference commit (release)");
    let head = build(&root, &crate::target_dir())?;
    let reference = build(&tree, &cache.join("target-rev"))?;
    let mut runs: BTreeMap<(String, String), (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for round in 0..o.rounds {
        step(&format!("bench-vs: round {}/{}", round + 1, o.rounds));
        // Alternate which goes first, so neither always runs on a cooler machine.
        let order = if round % 2 == 0 {
            [(&head, true), (&reference, false)]
        } else {
            [(&reference, false), (&head, true)]
        };
        for (bin, is_head) in order {
            for (k, ms) in measure(bin, &o)? {
                let e = runs.entry(k).or_default();
                if is_head {
                    e.0.push(ms)
                } else {
                    e.1.push(ms)
                }
            }
        }
    }
    println!(
        "\nDraft time, this checkout against {sha} (median of {} rounds × {} reps, model {}):\n",
        o.rounds, o.reps, o.model
    );
    println!("| mode | sample | this checkout ms | {sha} ms | ratio |");
    println!("|---|---|---:|---:|---:|");
    for ((mode, sample), (h, r)) in runs {
        if h.is_empty() || r.is_empty() {
            continue;
        }
        let (h, r) = (median(h), median(r));
        println!("| {mode} | {sample} | {h:.1} | {r:.1} | {:.2} |", h / r);
    }
    Ok(())
}
