//! Trains the harm classifier and writes assets/guard/harm_classifier.bin (issue 16).
//! Usage: cargo run --release -p karte-guard --example train_harm [-- --check]
//!
//! Training data: tests/data/classifier/train.toml (plus the optional public lines below). The threshold keeps the
//! classifier's own over-refusal (legitimate texts it blocks that the rules do not) at most 1 % on the development
//! set's legitimate texts (tests/data/sensitive.toml and the legitimate half of tests/data/classifier/dev.toml):
//! over-refusal is the constraint, recall what is maximised (see `chosen`). Then, unless `--no-refit`, the model is trained again on train + dev with that threshold kept; the
//! development numbers printed here are those of the train-only model, the honest ones. The held-out sets (tests/data/holdout, classifier.toml and
//! classifier2.toml) are never read here. `--check` trains and reports without writing the file.
//!
//! Optional: when ../shared/data/guard-public (or $KARTE_GUARD_PUBLIC) is present, the lines of the even-numbered
//! case reports of case-reports-ja.jsonl (CC-BY-4.0, real clinical text) are added as legitimate examples, read
//! from that path and never copied into the repository; the odd-numbered half stays for evaluation
//! (`guard_eval --public`). Without the folder training goes on without them and says so.
use karte_guard::classifier::{train, TrainConfig, LEGITIMATE};
use karte_guard::eval::{HarmCase, DEV};
use karte_guard::Policy;

const TRAIN: &str = include_str!("../tests/data/classifier/train.toml");
/// Half the 2 % aim: on the first held-out file the classifier's over-refusal came out about twice its dev
/// value, so the dev budget keeps that margin for text unlike the development set.
const MAX_OVER_REFUSAL: f64 = 0.01;

fn main() {
    let check_only = std::env::args().any(|a| a == "--check");
    let no_refit = std::env::args().any(|a| a == "--no-refit");
    let train_cases = karte_guard::eval::parse_cases("classifier/train.toml", TRAIN);
    let mut examples: Vec<(String, String)> = train_cases
        .iter()
        .map(|c| (c.text.clone(), c.category.clone()))
        .collect();
    let dir = karte_guard::eval::public_dir();
    match karte_guard::eval::public_case_reports(&dir) {
        Some(reports) => {
            let before = examples.len();
            for r in reports.iter().step_by(2) {
                examples.extend(
                    r.lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(|l| (l.to_string(), LEGITIMATE.to_string())),
                );
            }
            eprintln!(
                "public case reports: {} legitimate lines added from {}",
                examples.len() - before,
                dir.display()
            );
        }
        None => eprintln!(
            "public case reports: {} not found; training on the repository's data only",
            dir.display()
        ),
    }
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
    let legit: Vec<HarmCase> = legit
        .into_iter()
        .map(|mut c| {
            c.category = LEGITIMATE.to_string();
            c
        })
        .collect();
    let policy = Policy::embedded();
    let rules = |c: &HarmCase| policy.check(&c.text).is_block();
    let legit_rules: Vec<bool> = legit.iter().map(rules).collect();
    let harm_rules: Vec<bool> = harm.iter().map(rules).collect();
    let legit_p: Vec<f32> = legit
        .iter()
        .map(|c| model.max_probability(&c.text))
        .collect();
    let harm_p: Vec<f32> = harm
        .iter()
        .map(|c| model.max_probability(&c.text))
        .collect();
    let rate = |r: &[bool], p: &[f32], t: f32| {
        r.iter().zip(p).filter(|(r, p)| **r || **p >= t).count() as f64 / r.len() as f64
    };
    // Legitimate texts that the classifier blocks and the rules do not: the rules' own over-refusal on the new dev
    // lines is a defect of the rules (reported apart), not a budget the threshold can spend or repay.
    let added = |t: f32| {
        legit_rules
            .iter()
            .zip(&legit_p)
            .filter(|(r, p)| !**r && **p >= t)
            .count() as f64
            / legit_rules.len() as f64
    };
    // Among thresholds that keep the classifier's own dev over-refusal ≤ MAX_OVER_REFUSAL (1 %), those within one point of the best dev recall; of
    // these, the highest. The lowest would maximise recall on paper, but when dev recall is saturated it spends
    // the over-refusal budget on nothing, and short text unlike the dev set (orders, fragments) pays for it.
    let feasible: Vec<f32> = (20..=99)
        .map(|i| i as f32 / 100.0)
        .filter(|&t| added(t) <= MAX_OVER_REFUSAL)
        .collect();
    let best = feasible
        .iter()
        .map(|&t| rate(&harm_rules, &harm_p, t))
        .fold(0.0, f64::max);
    let near: Vec<f32> = feasible
        .into_iter()
        .filter(|&t| rate(&harm_rules, &harm_p, t) >= best - 0.01)
        .collect();
    let chosen = near.last().copied().unwrap_or(0.99);
    for t in (4..=18).map(|i| i as f32 / 20.0) {
        eprintln!(
            "  at {t:.2}: dev recall {:.3}, over-refusal {:.3} (classifier's own {:.3})",
            rate(&harm_rules, &harm_p, t),
            rate(&legit_rules, &legit_p, t),
            added(t)
        );
    }
    eprintln!(
        "threshold {chosen:.2}: dev recall rules {:.3} → rules+classifier {:.3}; over-refusal rules {:.3} → {:.3} ({} harmful, {} legitimate)",
        rate(&harm_rules, &harm_p, f32::INFINITY),
        rate(&harm_rules, &harm_p, chosen),
        rate(&legit_rules, &legit_p, f32::INFINITY),
        rate(&legit_rules, &legit_p, chosen),
        harm.len(),
        legit.len()
    );
    // The development texts behind the numbers above, for whoever edits the data (synthetic, so printing is fine).
    for (c, p) in legit.iter().zip(&legit_p).filter(|(_, p)| **p >= chosen) {
        eprintln!("  dev legitimate blocked at {p:.2}: {}", c.text);
    }
    if !no_refit {
        // The threshold is fixed; the shipped weights then learn from the development texts too, since a few
        // hundred more phrasings matter more to unseen text than a threshold re-estimated on data it has seen.
        examples.extend(
            harm.iter()
                .chain(&legit)
                .map(|c| (c.text.clone(), c.category.clone())),
        );
        model = train(&examples, &TrainConfig::default());
        eprintln!(
            "refitted on train + dev: {} texts (the dev numbers of `guard_eval` are in-sample from here on)",
            examples.len()
        );
    }
    model.threshold = chosen;
    let bytes = model.to_bytes();
    eprintln!("weights: {} bytes", bytes.len());
    if !check_only {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../assets/guard/harm_classifier.bin"
        );
        std::fs::write(path, &bytes).expect("write weights");
        eprintln!("wrote {path}; rebuild to ship it");
    }
}
