//! `cargo xtask bench`: karte-engine against llama.cpp's own `llama-bench` on the same GGUF, thread count and
//! llama.cpp sources, in the same run (interleaved, so machine noise hits both), plus the time from pressing
//! 下書き作成 to the complete draft, and prompt-lookup speculation on against off on the drafting workload (issue 19).
//! Prints Markdown tables for BENCHMARKS.md.
//!
//! llama-bench is not in the crate's vendored llama.cpp, so it is built from the llama-cpp-python sdist's copy of
//! `tools/llama-bench`, compiled against the crate's own llama.cpp tree (same ggml version, same cmake defaults:
//! GGML_NATIVE=OFF, so both use ggml's default x86-64 + AVX2 variant).

use crate::run as sh;
use crate::{cargo, step, target_dir};
use anyhow::{anyhow, bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const SDIST: &str = "llama-cpp-python==0.3.36";
const THREADS: u32 = 2;

struct Opts {
    models: Vec<String>,
    reps: u32,
    skip_draft: bool,
    /// Only the lookup-on-vs-off section (no llama-bench, no draft bench).
    lookup_only: bool,
    skip_lookup: bool,
    /// Build the lookup example in the dev profile (dependencies, llama.cpp included, optimised as the workspace's
    /// `profile.dev.package."*"` says): minutes instead of a second cold llama.cpp build where only a dev build
    /// exists. Both sides of every ratio run in the same binary, so the ratios hold; absolute numbers are lower.
    dev: bool,
    /// Passed to the lookup example after `--` (e.g. `--reps 1 --samples 3 --threads 1`).
    lookup_args: Vec<String>,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        models: vec![],
        reps: 5,
        skip_draft: false,
        lookup_only: false,
        skip_lookup: false,
        dev: false,
        lookup_args: vec![],
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--model" => o.models.push(it.next().context("--model NAME")?.clone()),
            "--reps" => o.reps = it.next().context("--reps N")?.parse()?,
            "--no-draft" => o.skip_draft = true,
            "--lookup-only" => o.lookup_only = true,
            "--no-lookup" => o.skip_lookup = true,
            "--dev" => o.dev = true,
            "--" => {
                o.lookup_args = it.by_ref().cloned().collect();
            }
            other => bail!(
                "unknown option {other} (use --model NAME, --reps N, --no-draft, --lookup-only, --no-lookup, --dev, -- LOOKUP_BENCH_ARGS)"
            ),
        }
    }
    if o.models.is_empty() {
        o.models = vec![
            crate::TEST_MODEL.to_string(),
            karte_models::Manifest::embedded().default.clone(),
        ];
    }
    Ok(o)
}

pub fn bench(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    if !o.lookup_only {
        engine_and_draft(&o)?;
    }
    if !o.skip_lookup {
        lookup(&o)?;
    }
    Ok(())
}

/// karte-engine against llama-bench, and the button-to-draft bench.
fn engine_and_draft(o: &Opts) -> Result<()> {
    let llama_bench = build_llama_bench()?;
    step("bench: building karte-engine's engine_bench (release)");
    sh(cargo().args([
        "build",
        "--release",
        "-p",
        "karte-engine",
        "--example",
        "engine_bench",
    ]))?;
    let engine_bench = target_dir().join("release/examples/engine_bench");

    let mut table = String::from(
        "| model | test | llama-bench t/s | karte-engine t/s | ratio |\n|---|---|---:|---:|---:|\n",
    );
    for name in &o.models {
        let m = karte_models::resolve(Some(name)).map_err(|e| anyhow!("{}", e.message))?;
        karte_models::verify(&m).map_err(|e| anyhow!("{}", e.message))?;
        step(&format!(
            "bench: {name}: pp512 and tg128, {THREADS} threads, {} repetitions each, interleaved",
            o.reps
        ));
        let (mut ref_pp, mut ref_tg, mut our_pp, mut our_tg) = (vec![], vec![], vec![], vec![]);
        // Alternate reference and ours so that a noisy minute does not land on one side only.
        for round in 0..2 {
            let (pp, tg) = llama_bench_once(&llama_bench, &m.path, o.reps)?;
            ref_pp.push(pp);
            ref_tg.push(tg);
            let (pp, tg) = engine_bench_once(&engine_bench, &m.path, o.reps)?;
            our_pp.push(pp);
            our_tg.push(tg);
            eprintln!(
                "    round {}: llama-bench pp {:.1} tg {:.1} | karte-engine pp {:.1} tg {:.1}",
                round + 1,
                ref_pp[round],
                ref_tg[round],
                our_pp[round],
                our_tg[round]
            );
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        for (test, r, k) in [
            ("pp512", mean(&ref_pp), mean(&our_pp)),
            ("tg128", mean(&ref_tg), mean(&our_tg)),
        ] {
            table.push_str(&format!(
                "| {name} | {test} | {r:.1} | {k:.1} | {:.3} |\n",
                k / r
            ));
        }
    }
    println!("\n### karte-engine vs llama-bench ({THREADS} threads, same GGUF, same llama.cpp sources)\n\n{table}");

    if !o.skip_draft {
        let default = karte_models::Manifest::embedded().default.clone();
        step(&format!(
            "bench: button press to complete draft (karte-api Drafter, {default}, model preloaded)"
        ));
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "bench",
                "-p",
                "karte-api",
                "--bench",
                "draft",
                "--",
                "--model",
                &default,
                "--reps",
                "3",
            ])
            .output()?;
        if !out.status.success() {
            bail!(
                "draft bench failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut t = String::from("| dictation | chars | rules only (ms) | with model (ms) | generated tokens | tokens/s |\n|---|---:|---:|---:|---:|---:|\n");
        let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        for r in rows.iter().filter(|r| r["mode"] == "rules") {
            let m = rows
                .iter()
                .find(|x| x["mode"] == "model" && x["sample"] == r["sample"])
                .context("model row")?;
            t.push_str(&format!(
                "| {} | {} | {:.1} | {:.0}{} | {} | {:.1} |\n",
                r["sample"].as_str().unwrap_or(""),
                r["chars"],
                r["median_ms"].as_f64().unwrap_or(0.0),
                m["median_ms"].as_f64().unwrap_or(0.0),
                if m["fallback"] == true {
                    " (fallback)"
                } else {
                    ""
                },
                m["generated_tokens"],
                m["tokens_per_s"].as_f64().unwrap_or(0.0),
            ));
        }
        println!(
            "### Button press to complete draft (median of 3, {default}, {THREADS} cores)\n\n{t}"
        );
    }
    Ok(())
}

/// Prompt lookup on against off on the drafting workload (the five sample dictations and a long one, with the JSON
/// schema grammar, karte-api's token budget), for each model: karte-engine's `lookup_bench` example runs every
/// request on three engines in one process (off as shipped, with llama.cpp's flash attention; off with plain
/// attention, the path lookup must match byte for byte; lookup), reversing the order every repetition so that a
/// busy minute slows all three alike. One row per sample plus the total.
fn lookup(o: &Opts) -> Result<()> {
    let profile = if o.dev { "debug" } else { "release" };
    // A lookup_bench already built (e.g. by `cargo build -p karte-server -p karte-engine --examples`, whose feature
    // set differs from karte-engine's alone, so that cargo would build llama.cpp a second time) can be named.
    let bin = match std::env::var_os("KARTE_LOOKUP_BENCH_BIN") {
        Some(b) => PathBuf::from(b),
        None => {
            step(&format!(
                "bench: building karte-engine's lookup_bench ({profile})"
            ));
            let mut build = cargo();
            build.args(["build", "-p", "karte-engine", "--example", "lookup_bench"]);
            if !o.dev {
                build.arg("--release");
            }
            sh(&mut build)?;
            target_dir().join(profile).join("examples/lookup_bench")
        }
    };
    let mut extra = o.lookup_args.clone();
    if !extra.iter().any(|a| a == "--threads") {
        extra.extend(["--threads".into(), THREADS.to_string()]);
    }
    let mut table = String::from(
        "| model | dictation | tokens | generation t/s: off / off, plain attention / lookup | lookup ÷ off | whole draft s: off / lookup | off ÷ lookup | guesses kept | tokens kept per generated token | same bytes as plain attention |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for name in &o.models {
        let m = karte_models::resolve(Some(name)).map_err(|e| anyhow!("{}", e.message))?;
        karte_models::verify(&m).map_err(|e| anyhow!("{}", e.message))?;
        step(&format!(
            "bench: lookup on vs off, {name}, {}",
            extra.join(" ")
        ));
        let out = Command::new(&bin)
            .arg("--model")
            .arg(&m.path)
            .args(&extra)
            .env_remove("KARTE_SPECULATION")
            .output()?;
        if !out.status.success() {
            bail!(
                "lookup_bench failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        for row in String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        {
            let summary = row["summary"] == true;
            let sample = if summary {
                "**all**".to_string()
            } else {
                row["sample"].as_str().unwrap_or("").to_string()
            };
            // The example names a sample on stderr when lookup's bytes differ from plain attention's.
            let same = if summary {
                format!("{} differing", row["outputs_differing"])
            } else if stderr.contains(&format!("{sample} rep ")) {
                "no".into()
            } else {
                "yes".into()
            };
            let f = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
            let (off, plain, on) = (&row["off_flash_attn"], &row["off"], &row["lookup"]);
            table.push_str(&format!(
                "| {name} | {sample} | {:.0} | {:.1} / {:.1} / {:.1} | {:.2} | {:.1} / {:.1} | {:.2} | {:.0} % | {:.2} | {same} |\n",
                f(&on["tokens"]),
                f(&off["gen_tps"]),
                f(&plain["gen_tps"]),
                f(&on["gen_tps"]),
                f(&row["gen_speedup_vs_flash_attn"]),
                f(&off["total_ms"]) / 1e3,
                f(&on["total_ms"]) / 1e3,
                f(&row["total_speedup_vs_flash_attn"]),
                f(&on["acceptance"]) * 100.0,
                f(&on["accepted_per_token"]),
            ));
        }
    }
    println!(
        "\n### Prompt lookup on vs off, drafting workload ({profile} build; `lookup_bench {}`)\n\n{table}",
        extra.join(" ")
    );
    Ok(())
}

/// Run a benchmark binary with llama-bench's flags (engine_bench takes the same ones) and return its stdout.
fn bench_stdout(bin: &Path, model: &Path, reps: u32, extra: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new(bin)
        .arg("-m")
        .arg(model)
        .args([
            "-t",
            &THREADS.to_string(),
            "-p",
            "512",
            "-n",
            "128",
            "-r",
            &reps.to_string(),
        ])
        .args(extra)
        .output()?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

fn llama_bench_once(bin: &Path, model: &Path, reps: u32) -> Result<(f64, f64)> {
    let stdout = bench_stdout(bin, model, reps, &["-o", "json"])?;
    let v: serde_json::Value = serde_json::from_slice(&stdout).context("llama-bench JSON")?;
    let rows = v.as_array().context("llama-bench JSON array")?;
    let ts = |pp: bool| {
        rows.iter()
            .find(|r| (r["n_prompt"].as_u64().unwrap_or(0) > 0) == pp)
            .and_then(|r| r["avg_ts"].as_f64())
            .context("llama-bench row")
    };
    Ok((ts(true)?, ts(false)?))
}

fn engine_bench_once(bin: &Path, model: &Path, reps: u32) -> Result<(f64, f64)> {
    let out = bench_stdout(bin, model, reps, &[])?;
    let line = String::from_utf8_lossy(&out);
    let v: serde_json::Value =
        serde_json::from_str(line.lines().last().unwrap_or("")).context("engine_bench JSON")?;
    Ok((
        v["pp_tps"].as_f64().context("pp_tps")?,
        v["tg_tps"].as_f64().context("tg_tps")?,
    ))
}

/// Build llama-bench once into /var/cache/karte/llama-bench (skipped when the binary is there).
fn build_llama_bench() -> Result<PathBuf> {
    let cache = PathBuf::from("/var/cache/karte/llama-bench");
    let bin = cache.join("build/bin/llama-bench");
    if bin.exists() {
        return Ok(bin);
    }
    step("bench: building llama.cpp's llama-bench from the crate's sources (once, ~5 minutes)");
    let crate_tree = llama_cpp_sys_tree()?;
    let tree = cache.join("tree");
    if tree.exists() {
        fs::remove_dir_all(&tree)?;
    }
    fs::create_dir_all(&cache)?;
    sh(Command::new("cp").arg("-r").arg(&crate_tree).arg(&tree))?;
    let src = sdist_llama_cpp()?.join("tools/llama-bench");
    let dst = tree.join("tools/llama-bench");
    let _ = fs::remove_dir_all(&dst);
    sh(Command::new("cp").arg("-r").arg(&src).arg(&dst))?;
    fs::write(
        tree.join("tools/CMakeLists.txt"),
        "find_package(Threads REQUIRED)\nllama_add_compile_flags()\nadd_subdirectory(llama-bench)\n",
    )?;
    cmake_build(
        &tree,
        &cache.join("build"),
        "llama-bench",
        &["-DLLAMA_BUILD_SERVER=OFF"],
    )?;
    Ok(bin)
}

/// Configures and builds one llama.cpp tool from `tree` with the cmake defaults every reference build shares (so
/// llama-bench and llama-server differ from karte-engine's llama.cpp only by what `extra` names).
pub fn cmake_build(tree: &Path, build: &Path, target: &str, extra: &[&str]) -> Result<()> {
    sh(Command::new("cmake")
        .arg("-S")
        .arg(tree)
        .arg("-B")
        .arg(build)
        .args([
            "-DCMAKE_BUILD_TYPE=Release",
            "-DGGML_NATIVE=OFF",
            "-DLLAMA_BUILD_APP=OFF",
            "-DLLAMA_CURL=OFF",
            "-DLLAMA_BUILD_TESTS=OFF",
            "-DLLAMA_BUILD_EXAMPLES=OFF",
            "-DLLAMA_BUILD_TOOLS=ON",
            "-DGGML_CCACHE=OFF",
        ])
        .args(extra))?;
    sh(Command::new("cmake")
        .arg("--build")
        .arg(build)
        .args(["-j2", "--target", target]))
}

/// The llama.cpp tree inside the llama-cpp-python sdist (downloaded and unpacked once under
/// /var/cache/karte/llama-bench/sdist): the source of the tools the crate does not vendor.
pub fn sdist_llama_cpp() -> Result<PathBuf> {
    let sdist_dir = PathBuf::from("/var/cache/karte/llama-bench/sdist");
    fs::create_dir_all(&sdist_dir)?;
    let unpacked = || -> Result<Option<PathBuf>> {
        Ok(fs::read_dir(&sdist_dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.is_dir() && p.join("vendor/llama.cpp/tools").is_dir()))
    };
    if let Some(dir) = unpacked()? {
        return Ok(dir.join("vendor/llama.cpp"));
    }
    let find_tarball = || -> Result<Option<PathBuf>> {
        Ok(fs::read_dir(&sdist_dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.to_string_lossy().ends_with(".tar.gz")))
    };
    let tarball = match find_tarball()? {
        Some(t) => t,
        None => {
            sh(Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    "-d",
                ])
                .arg(&sdist_dir)
                .arg(SDIST))?;
            find_tarball()?.context("sdist tarball")?
        }
    };
    sh(Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&sdist_dir))?;
    Ok(unpacked()?
        .context("unpacked sdist")?
        .join("vendor/llama.cpp"))
}

/// The llama.cpp tree that llama-cpp-sys-2 vendors, at the version Cargo.lock picked.
pub fn llama_cpp_sys_tree() -> Result<PathBuf> {
    let lock = fs::read_to_string(crate::project_root().join("Cargo.lock"))?;
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"llama-cpp-sys-2\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .context("llama-cpp-sys-2 in Cargo.lock")?;
    let registry = crate::cargo_home().join("registry/src");
    for index in fs::read_dir(&registry)? {
        let p = index?
            .path()
            .join(format!("llama-cpp-sys-2-{version}/llama.cpp"));
        if p.exists() {
            return Ok(p);
        }
    }
    bail!(
        "llama-cpp-sys-2 {version} sources not found under {}: build the workspace first",
        registry.display()
    )
}
