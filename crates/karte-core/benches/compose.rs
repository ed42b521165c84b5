//! The rules-only 退院時サマリー of the long synthetic stay (twelve notes, `tests/data/admissions/09-…`), of that
//! stay cut to 2, 4 and 8 of its notes, and of the 33-day stay of 10,000 characters (`12-…`), against the reference
//! in the same run: the rules-only progress note of the admission note's text (what a physician waits for today).
//! Target: a ten-note summary ≤ 100 ms.
//!
//! Usage: cargo bench -p karte-core --bench compose [-- --reps N]

use karte_core::compose::{compose, SourceNote};
use karte_core::document::{default_kind, kind, Document};
use std::collections::BTreeMap;
use std::time::Instant;

#[derive(serde::Deserialize)]
struct Case {
    inputs: BTreeMap<String, String>,
    notes: Vec<Note>,
}

#[derive(serde::Deserialize)]
struct Note {
    date: String,
    text: String,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let reps: usize = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1))
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    let load = |text: &str| -> (Case, Vec<SourceNote>) {
        let case: Case = toml::from_str(text).expect("the stay parses");
        let notes = case
            .notes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                SourceNote::rendered(
                    format!("E{i:04}@1"),
                    n.date.clone(),
                    Document::from_text(default_kind(), &n.text).expect("note"),
                )
            })
            .collect();
        (case, notes)
    };
    let (case, notes) = load(include_str!(
        "../tests/data/admissions/09-long-stay-cellulitis.toml"
    ));
    let (long_case, long_notes) = load(include_str!(
        "../tests/data/admissions/12-long-stay-10000.toml"
    ));
    let summary = kind("discharge-summary").expect("kind");
    // Warm the lexicons and kinds once, as the app has by the time a physician asks.
    compose(summary, &notes, &case.inputs).expect("compose");

    let mut reference = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        karte_core::draft_floor(&case.notes[0].text, default_kind()).expect("floor");
        reference.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let reference = median(reference);
    println!("| draft | notes | characters | median ms | ratio to the progress note |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| progress note, rules only (reference) | 1 | {} | {reference:.2} | 1.00 |",
        case.notes[0].text.chars().count()
    );
    let runs = [2, 4, 8, notes.len()]
        .map(|n| (&notes[..n], &case.inputs))
        .into_iter()
        .chain([(&long_notes[..], &long_case.inputs)]);
    for (part, inputs) in runs {
        let chars: usize = part.iter().map(|n| n.text.chars().count()).sum();
        let mut ms = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            compose(summary, part, inputs).expect("compose");
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let m = median(ms);
        println!(
            "| 退院時サマリー, rules only | {} | {chars} | {m:.2} | {:.2} |",
            part.len(),
            m / reference
        );
    }
}
