//! Throughput of karte-engine measured like `llama-bench`, to compare the Rust path with llama.cpp's own tool.
//!
//! `cargo run -p karte-engine --release --example engine_bench -- --model M.gguf --threads 2 -p 512 -n 128 -r 5`
//! prints one JSON line: `{"pp_tps":..,"tg_tps":..,...}` (compare with `llama-bench -m M.gguf -t 2 -p 512 -n 128 -r 5`).

use std::process::ExitCode;

use karte_engine::{Engine, EngineConfig};

struct Args {
    model: String,
    threads: Option<i32>,
    n_prompt: u32,
    n_gen: u32,
    reps: u32,
    n_batch: u32,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        model: String::new(),
        threads: None,
        n_prompt: 512,
        n_gen: 128,
        reps: 5,
        n_batch: 512,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |s: String| s.parse::<u32>().map_err(|e| format!("{s}: {e}"));
        match flag.as_str() {
            "--model" | "-m" => a.model = val()?,
            "--threads" | "-t" => a.threads = Some(num(val()?)? as i32),
            "-p" | "--n-prompt" => a.n_prompt = num(val()?)?,
            "-n" | "--n-gen" => a.n_gen = num(val()?)?,
            "-r" | "--reps" => a.reps = num(val()?)?,
            "-b" | "--batch-size" => a.n_batch = num(val()?)?,
            "-h" | "--help" => return Err(
                "usage: engine_bench --model PATH [--threads N] [-p 512] [-n 128] [-r 5] [-b 512]"
                    .into(),
            ),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.model.is_empty() {
        return Err("--model PATH is required".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let cfg = EngineConfig {
        n_threads: args.threads,
        // The bench makes its own llama-bench-sized contexts; the engine's own context only has to exist.
        n_ctx: 512,
        n_batch: args.n_batch,
        ..EngineConfig::new(&args.model, "bench")
    };
    let result = Engine::load(cfg).and_then(|e| e.bench(args.n_prompt, args.n_gen, args.reps));
    match result {
        Ok(r) => {
            let out = serde_json::json!({
                "pp_tps": r.pp_tokens_per_s,
                "tg_tps": r.tg_tokens_per_s,
                "pp_stddev": r.pp_stddev,
                "tg_stddev": r.tg_stddev,
                "n_prompt": r.n_prompt,
                "n_gen": r.n_gen,
                "reps": r.reps,
                "threads": r.n_threads,
            });
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.code.exit_status())
        }
    }
}
