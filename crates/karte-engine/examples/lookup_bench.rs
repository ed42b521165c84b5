//! Prompt-lookup speculation against plain greedy decoding on the drafting workload (the sample dictations and a
//! long one, built as karte-api builds them), in one process: three engines on the same model (plain with plain
//! attention, lookup, and plain with llama.cpp's flash attention, today's speed), each request run on all three,
//! the order reversing every repetition, so that a busy machine slows them alike.
//!
//! `cargo run -p karte-engine --release --example lookup_bench -- --model M.gguf [--threads 2] [--reps 2]
//! [--long-parts 3] [--max-tokens N]` prints one JSON line per sample and one `"summary"` line: generation tokens/s
//! (tokens over the engine's generation time), whole-request time, and the share of guessed tokens kept.

#[path = "../tests/common/drafts.rs"]
mod drafts;

use std::process::ExitCode;

use karte_engine::{CancelToken, Engine, EngineConfig, GenEvent, GenStats, Speculation};

#[derive(Default, Clone, Copy)]
struct Sum {
    tokens: f64,
    gen_ms: f64,
    total_ms: f64,
    proposed: f64,
    accepted: f64,
    runs: f64,
    prompt_tokens: f64,
    prompt_ms: f64,
}

impl Sum {
    fn add(&mut self, s: &GenStats) {
        self.tokens += f64::from(s.generated_tokens);
        self.gen_ms += s.generate_ms.unwrap_or(0.0);
        self.total_ms += s.total_ms;
        self.proposed += f64::from(s.draft_proposed);
        self.accepted += f64::from(s.draft_accepted);
        self.runs += 1.0;
        self.prompt_tokens += f64::from(s.prompt_tokens - s.cached_tokens);
        self.prompt_ms += s.prompt_ms.unwrap_or(0.0);
    }
    fn tps(&self) -> f64 {
        self.tokens / (self.gen_ms / 1e3)
    }
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "gen_tps": round(self.tps()),
            "total_ms": round(self.total_ms / self.runs.max(1.0)),
            "tokens": round(self.tokens / self.runs.max(1.0)),
            "prompt_tokens": round(self.prompt_tokens / self.runs.max(1.0)),
            "prompt_tps": round(self.prompt_tokens / (self.prompt_ms / 1e3)),
            "acceptance": if self.proposed > 0.0 { round(self.accepted / self.proposed) } else { 0.0 },
            "accepted_per_token": if self.tokens > 0.0 { round(self.accepted / self.tokens) } else { 0.0 },
        })
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The streamed text, and the stats when the answer completed (a grammar answer cut by `max_tokens` is an error,
/// but its text still shows whether both engines agree).
fn run(engine: &Engine, req: &karte_engine::ChatRequest) -> (String, Option<GenStats>) {
    let mut text = String::new();
    for ev in engine.submit(req.clone(), CancelToken::new()) {
        match ev {
            GenEvent::Token(t) => text.push_str(&t),
            GenEvent::Done(s) => return (text, Some(s)),
            GenEvent::Error(e) => {
                eprintln!("{}", e.code);
                return (text, None);
            }
        }
    }
    (text, None)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let Some(model) = arg("--model") else {
        eprintln!("usage: lookup_bench --model PATH [--threads N] [--reps N] [--long-parts N] [--max-tokens N] [--grammar on|off] [--samples N]");
        return ExitCode::from(2);
    };
    let threads = arg("--threads").and_then(|t| t.parse().ok());
    let reps: usize = arg("--reps").and_then(|r| r.parse().ok()).unwrap_or(2);
    let long_parts: usize = arg("--long-parts")
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let max_tokens: Option<u32> = arg("--max-tokens").and_then(|r| r.parse().ok());
    let grammar = arg("--grammar").is_none_or(|g| g != "off");
    // Each engine is told explicitly; the environment must not make them equal.
    std::env::remove_var("KARTE_SPECULATION");
    let load = |speculation, flash: &str| {
        // Read while the engine creates its context, i.e. within `load`.
        std::env::set_var("KARTE_FLASH_ATTN", flash);
        Engine::load(EngineConfig {
            n_threads: threads,
            n_ctx: 8192,
            speculation,
            ..EngineConfig::new(&model, "bench")
        })
    };
    // Plain decoding with llama.cpp's own attention choice (flash attention on the CPU) is today's speed; plain
    // with plain attention is what lookup must reproduce byte for byte.
    let engines = match (
        load(Speculation::Off, "off"),
        load(Speculation::Lookup, "off"),
        load(Speculation::Off, "auto"),
    ) {
        (Ok(a), Ok(b), Ok(c)) => [a, b, c],
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("{}: {}", e.code, e.message);
            return ExitCode::FAILURE;
        }
    };
    let off = &engines[0];
    let mut all = [Sum::default(); 3];
    let mut differ = 0;
    let only: Option<usize> = arg("--samples").and_then(|n| n.parse().ok());
    let mut samples = drafts::samples(long_parts);
    if let Some(n) = only {
        samples.truncate(n);
    }
    for (name, text) in samples {
        let mut req = drafts::request(&text, grammar, 0);
        // karte-api's budget: twice the source's tokens plus slack for the JSON around them.
        let user = req.messages[1].content.clone();
        let source = off.tokenize_count(&user).unwrap_or(user.chars().count()) as u32;
        req.max_tokens = max_tokens.unwrap_or((source * 2 + 256).min(3072));
        let mut sums = [Sum::default(); 3];
        let mut same_as_flash_attn = true;
        for rep in 0..reps {
            let order: [usize; 3] = if rep % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
            let mut texts = [String::new(), String::new(), String::new()];
            for which in order {
                let engine = &engines[which];
                let (t, s) = run(engine, &req);
                if let Some(s) = s {
                    sums[which].add(&s);
                    all[which].add(&s);
                }
                texts[which] = t;
            }
            same_as_flash_attn &= texts[0] == texts[2];
            if texts[0] != texts[1] {
                differ += 1;
                eprintln!("{name} rep {rep}: lookup output differs from plain greedy");
            }
        }
        println!(
            "{}",
            serde_json::json!({
                "sample": name,
                "off": sums[0].json(),
                "lookup": sums[1].json(),
                "off_flash_attn": sums[2].json(),
                "gen_speedup": round(sums[1].tps() / sums[0].tps()),
                "total_speedup": round(sums[0].total_ms / sums[1].total_ms),
                "gen_speedup_vs_flash_attn": round(sums[1].tps() / sums[2].tps()),
                "total_speedup_vs_flash_attn": round(sums[2].total_ms / sums[1].total_ms),
                "same_as_flash_attn": same_as_flash_attn,
            })
        );
    }
    println!(
        "{}",
        serde_json::json!({
            "summary": true,
            "model": off.info().name,
            "grammar": grammar,
            "reps": reps,
            "off": all[0].json(),
            "lookup": all[1].json(),
            "off_flash_attn": all[2].json(),
            "gen_speedup": round(all[1].tps() / all[0].tps()),
            "total_speedup": round(all[0].total_ms / all[1].total_ms),
            "gen_speedup_vs_flash_attn": round(all[1].tps() / all[2].tps()),
            "total_speedup_vs_flash_attn": round(all[2].total_ms / all[1].total_ms),
            "outputs_differing": differ,
        })
    );
    ExitCode::SUCCESS
}
