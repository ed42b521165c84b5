//! A discharge summary beside a progress note, with the same model in the same run (issue 15's bench): time to the
//! first text shown and to the complete draft, through the same `Drafter::document` / `Drafter::draft` the window
//! calls. Workloads: the sample dictation `pneumonia` (a progress note), the 12-note stay
//! `09-long-stay-cellulitis` and the 39-note, 10,000-character stay `12-long-stay-10000` (karte-core's synthetic
//! admissions); each repetition runs all three in turn (order reversed every other time) after the model is loaded.
//! Prints a Markdown table with each time's ratio to the progress note's.
//!
//! Usage: cargo bench --workspace --profile dev --bench documents -- [--model NAME] [--reps N]
//! (`--workspace` keeps the workspace's features, so llama.cpp is not built a second time.)

#[path = "common/args.rs"]
mod args;

#[path = "../tests/common/admissions.rs"]
#[allow(dead_code)] // the test reads the rest
mod admissions;

use karte_api::{DraftOptions, Drafter, Progress};
use karte_engine::LazyEngine;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// (ms to the first text shown, ms to the complete draft, generated tokens, parts asked)
fn timed(run: impl FnOnce(&mut dyn FnMut(Progress)) -> karte_core::DraftOutput) -> [f64; 4] {
    let t = Instant::now();
    let mut first = None;
    let mut parts = 0.0;
    let out = run(&mut |p| match p {
        Progress::Token { text, .. } if first.is_none() && !text.trim().is_empty() => {
            first = Some(t.elapsed().as_secs_f64() * 1000.0)
        }
        Progress::Stage { stage, .. } if stage == "generate" => parts += 1.0,
        _ => {}
    });
    let total = t.elapsed().as_secs_f64() * 1000.0;
    let tokens = out
        .engine
        .stats
        .as_ref()
        .map_or(0.0, |s| f64::from(s.generated_tokens));
    [first.unwrap_or(f64::NAN), total, tokens, parts]
}

fn main() {
    let args = args::Args::parse(&["--model", "--reps"]);
    let model = args.text("--model");
    let reps = args.count("--reps", 2);
    let note = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../assets/samples/pneumonia.txt"
    ))
    .unwrap();
    let stays = ["09-long-stay-cellulitis", "12-long-stay-10000"].map(admissions::stay);
    let drafter = Drafter::new(
        Arc::new(LazyEngine::from_manifest(model.clone())),
        model.clone(),
    );
    if let Err(e) = drafter.preload() {
        eprintln!("{e}");
        std::process::exit(1);
    }
    let opts = DraftOptions::default();
    let mut rows: BTreeMap<String, Vec<[f64; 4]>> = BTreeMap::new();
    for rep in 0..reps {
        let mut order: Vec<usize> = (0..=stays.len()).collect();
        if rep % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let (name, r) = if i == 0 {
                (
                    "progress note (pneumonia.txt)".to_string(),
                    timed(|p| drafter.draft(&note, &opts, p).expect("note")),
                )
            } else {
                let stay = &stays[i - 1];
                let d = &stay.draft;
                (
                    format!("discharge summary ({}, {} notes)", stay.name, d.notes.len()),
                    timed(|p| {
                        drafter
                            .document(d.clone(), &opts, p)
                            .expect("document")
                            .draft
                    }),
                )
            };
            eprintln!("{name}: {r:?}");
            rows.entry(name).or_default().push(r);
        }
    }
    let median = |v: &[[f64; 4]], k: usize| {
        let mut x: Vec<f64> = v.iter().map(|r| r[k]).collect();
        x.sort_by(|a, b| a.partial_cmp(b).unwrap());
        x[x.len() / 2]
    };
    let note_row = rows
        .keys()
        .find(|k| k.starts_with("progress"))
        .unwrap()
        .clone();
    let (nf, nt) = (median(&rows[&note_row], 0), median(&rows[&note_row], 1));
    println!(
        "| workload ({}, {reps} runs, median) | parts | generated tokens | first text, s (× note) | complete, s (× note) |",
        model.as_deref().unwrap_or("default model")
    );
    println!("|---|---:|---:|---:|---:|");
    for (name, v) in &rows {
        let (f, t) = (median(v, 0), median(v, 1));
        println!(
            "| {name} | {} | {} | {:.1} ({:.2}×) | {:.1} ({:.2}×) |",
            median(v, 3),
            median(v, 2),
            f / 1000.0,
            f / nf,
            t / 1000.0,
            t / nt
        );
    }
}
