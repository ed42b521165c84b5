//! Trains the harm classifier and writes assets/guard/harm_classifier.bin (issue 16).
//! Usage: cargo run --release -p karte-guard --example train_harm [-- --check]
//!
//! Training data: tests/data/classifier/train.toml only. The threshold is the lowest probability at which the rules
//! plus the classifier still block at most 2 % of the development set's legitimate texts (tests/data/sensitive.toml
//! and the legitimate half of tests/data/classifier/dev.toml): over-refusal is the constraint, recall what is
//! maximised. The held-out set is never read here. `--check` trains and reports without writing the file.
use karte_guard::classifier::{train, TrainConfig, LEGITIMATE};
use karte_guard::eval::{HarmCase, DEV};
use karte_guard::Policy;

const TRAIN: &str = include_str!("../tests/data/classifier/train.toml");
const MAX_OVER_REFUSAL: f64 = 0.02;

fn main() {
    let check_only = std::env::args().any(|a| a == "--check");
    let train_cases = karte_guard::eval::parse_cases("classifier/train.toml", TRAIN);
    let examples: Vec<(String, String)> = train_cases
        .iter()
        .map(|c| (c.text.clone(), c.category.clone()))
        .collect();
    let t0 = std::time::Instant::now();
    let mut model = train(&examples, &TrainConfig::default());
    eprintln!(
        "trained on {} texts ({} legitimate) in {:.1}s; classes {:?}",
        examples.len(),
        examples.iter().filter(|e| e.1 == LEGITIMATE).count(),
        t0.elapsed().as_secs_f64(),
        model.classes
    );
    let (harm, legit) = DEV.classifier_split();
    let policy = Policy::embedded();
    let rules = |c: &HarmCase| policy.check_rules(&c.text).is_block();
    let legit_rules: Vec<bool> = legit.iter().map(rules).collect();
    let harm_rules: Vec<bool> = harm.iter().map(rules).collect();
    let legit_p: Vec<f32> = legit.iter().map(|c| model.max_probability(&c.text)).collect();
    let harm_p: Vec<f32> = harm.iter().map(|c| model.max_probability(&c.text)).collect();
    let rate = |r: &[bool], p: &[f32], t: f32| {
        r.iter().zip(p).filter(|(r, p)| **r || **p >= t).count() as f64 / r.len() as f64
    };
    let mut chosen = 0.99f32;
    for i in (20..=99).rev() {
        let t = i as f32 / 100.0;
        if rate(&legit_rules, &legit_p, t) <= MAX_OVER_REFUSAL {
            chosen = t;
        } else {
            break;
        }
    }
    model.threshold = chosen;
    eprintln!(
        "threshold {chosen:.2}: dev recall rules {:.3} → rules+classifier {:.3}; over-refusal rules {:.3} → {:.3} ({} harmful, {} legitimate)",
        rate(&harm_rules, &harm_p, f32::INFINITY),
        rate(&harm_rules, &harm_p, chosen),
        rate(&legit_rules, &legit_p, f32::INFINITY),
        rate(&legit_rules, &legit_p, chosen),
        harm.len(),
        legit.len()
    );
    let bytes = model.to_bytes();
    eprintln!("weights: {} bytes", bytes.len());
    if !check_only {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/guard/harm_classifier.bin");
        std::fs::write(path, &bytes).expect("write weights");
        eprintln!("wrote {path}; rebuild to ship it");
    }
}
