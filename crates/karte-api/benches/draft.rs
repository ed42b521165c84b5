//! Time from pressing 下書き作成 to the complete draft, through the same `Drafter::draft` the window calls, for
//! every sample dictation of about 300 characters: rules only, and with a model (loaded once beforehand, as the
//! window preloads it at start). Prints one JSON line per (mode, sample) for `cargo xtask bench` to tabulate.
//!
//! Usage: cargo bench -p karte-api --bench draft -- [--model NAME] [--reps N]

#[path = "common/args.rs"]
mod args;

use karte_api::{DraftOptions, Drafter};
use karte_engine::LazyEngine;
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let args = args::Args::parse(&["--model", "--reps"]);
    let model = args.text("--model");
    let reps = args.count("--reps", 3);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/samples");
    let mut samples: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("assets/samples")
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    samples.sort();
    let drafter = Drafter::new(
        Arc::new(LazyEngine::from_manifest(model.clone())),
        model.clone(),
    );
    if let Err(e) = drafter.preload() {
        eprintln!("{e}");
        std::process::exit(1);
    }
    for (no_llm, mode) in [(true, "rules"), (false, "model")] {
        for (name, text) in &samples {
            let mut ms = Vec::new();
            let mut last = None;
            for _ in 0..reps {
                let t = Instant::now();
                let out = drafter
                    .draft(text, &DraftOptions { no_llm, kind: None }, &mut |_| {})
                    .expect("draft");
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
                last = Some(out);
            }
            ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let out = last.unwrap();
            println!(
                "{}",
                serde_json::json!({
                    "mode": mode,
                    "sample": name,
                    "chars": text.chars().count(),
                    "median_ms": ms[ms.len() / 2],
                    "min_ms": ms[0],
                    "model": out.engine.model,
                    "generated_tokens": out.engine.stats.as_ref().map(|s| s.generated_tokens),
                    "tokens_per_s": out.engine.stats.as_ref().and_then(|s| s.tokens_per_s()),
                    "fallback": out.engine.fallback_reason.is_some(),
                })
            );
        }
    }
}
