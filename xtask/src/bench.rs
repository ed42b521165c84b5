//! `cargo xtask bench`: karte-engine against llama.cpp's own `llama-bench` on the same GGUF, thread count and
//! llama.cpp sources, in the same run (interleaved, so machine noise hits both), plus the time from pressing
//! 下書き作成 to the complete draft. Prints Markdown tables for BENCHMARKS.md.
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
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        models: vec![],
        reps: 5,
        skip_draft: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--model" => o.models.push(it.next().context("--model NAME")?.clone()),
            "--reps" => o.reps = it.next().context("--reps N")?.parse()?,
            "--no-draft" => o.skip_draft = true,
            other => bail!("unknown option {other} (use --model NAME, --reps N, --no-draft)"),
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
