//! The engine side of `cargo xtask bench-serve`: runs one load scenario against karte-engine in-process and prints
//! one JSON line per request, in the same record format xtask's HTTP client produces for an OpenAI-compatible
//! server, so both go through the same aggregation (tokens/s, TTFT percentiles).
//!
//! `serve_load --model M.gguf --threads 2 --parallel 16 --n-ctx 16384 --prefix-cache 4 --scenario FILE`
//! where FILE is `{"clients": [[{"system": "...", "user": "...", "max_tokens": 64}, ...], ...]}`: one list of
//! requests per concurrent client, each client sending its requests one after another (closed loop).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use karte_engine::{CancelToken, ChatMessage, ChatRequest, Engine, EngineConfig, GenEvent};
use serde::Deserialize;

#[derive(Deserialize)]
struct Scenario {
    clients: Vec<Vec<Req>>,
}

#[derive(Deserialize, Clone)]
struct Req {
    system: String,
    user: String,
    max_tokens: u32,
}

struct Args {
    model: String,
    threads: i32,
    parallel: u32,
    n_ctx: u32,
    prefix_cache: u32,
    scenario: String,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        model: String::new(),
        threads: 2,
        parallel: 16,
        n_ctx: 16384,
        prefix_cache: 4,
        scenario: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let val = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |s: &str| s.parse::<u32>().map_err(|e| format!("{s}: {e}"));
        match flag.as_str() {
            "--model" => a.model = val,
            "--threads" => a.threads = num(&val)? as i32,
            "--parallel" => a.parallel = num(&val)?,
            "--n-ctx" => a.n_ctx = num(&val)?,
            "--prefix-cache" => a.prefix_cache = num(&val)?,
            "--scenario" => a.scenario = val,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.model.is_empty() || a.scenario.is_empty() {
        return Err("usage: serve_load --model PATH --scenario FILE [--threads 2] [--parallel 16] [--n-ctx 16384] [--prefix-cache 4]".into());
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
    let scenario: Scenario = match std::fs::read_to_string(&args.scenario)
        .map_err(|e| e.to_string())
        .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("scenario: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = EngineConfig {
        n_threads: Some(args.threads),
        n_ctx: args.n_ctx,
        n_parallel: args.parallel,
        prefix_cache: args.prefix_cache,
        max_queue: 1024,
        ..EngineConfig::new(&args.model, "bench")
    };
    let engine = match Engine::load(cfg) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(e.code.exit_status());
        }
    };
    let t0 = Instant::now();
    let threads: Vec<_> = scenario
        .clients
        .into_iter()
        .enumerate()
        .map(|(client, reqs)| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                let mut out = Vec::new();
                for r in reqs {
                    let start = t0.elapsed().as_secs_f64() * 1e3;
                    let req = ChatRequest {
                        max_tokens: r.max_tokens,
                        ..ChatRequest::new(vec![
                            ChatMessage::system(r.system),
                            ChatMessage::user(r.user),
                        ])
                    };
                    let sent = Instant::now();
                    let mut ttft = None;
                    let mut record =
                        serde_json::json!({"client": client, "start_ms": start, "ok": false});
                    for ev in engine.submit(req, CancelToken::new()) {
                        match ev {
                            GenEvent::Token(_) => {
                                ttft.get_or_insert_with(|| sent.elapsed().as_secs_f64() * 1e3);
                            }
                            GenEvent::Done(s) => {
                                record = serde_json::json!({
                                    "client": client,
                                    "start_ms": start,
                                    "end_ms": t0.elapsed().as_secs_f64() * 1e3,
                                    "ttft_ms": ttft.unwrap_or(f64::NAN),
                                    "tokens": s.generated_tokens,
                                    "cached_tokens": s.cached_tokens,
                                    "ok": true,
                                });
                            }
                            GenEvent::Error(e) => {
                                record["error"] = e.code.as_str().into();
                            }
                        }
                    }
                    out.push(record);
                }
                out
            })
        })
        .collect();
    let mut failed = false;
    for t in threads {
        for r in t.join().expect("client thread") {
            failed |= r["ok"] != true;
            println!("{r}");
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
