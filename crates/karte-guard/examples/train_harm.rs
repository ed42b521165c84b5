//! Trains the harm classifier and writes assets/guard/harm_classifier.bin (issue 16).
//! Usage: cargo run --release -p karte-guard --example train_harm [-- --check]
//!
//! Training data: tests/data/classifier/train.toml and train2.toml (hand-written, 2026-12-07), the even-numbered texts
//! of karte-core's test data and of the personal-data development sets (lines, legitimate), plus the optional public
//! lines below. Development: tests/data/sensitive.toml, harmful.toml, classifier/dev.toml and dev2.toml. The threshold keeps the
//! classifier's own over-refusal (legitimate texts it blocks that the rules do not) at most 1 % on the development
//! set's legitimate texts (tests/data/sensitive.toml and the legitimate half of tests/data/classifier/dev.toml):
//! over-refusal is the constraint, recall what is maximised (see `chosen`). Then, unless `--no-refit`, the model is trained again on train + dev with that threshold kept; the
//! development numbers printed here are those of the train-only model, the honest ones. The held-out sets (tests/data/holdout, classifier.toml and
//! classifier2.toml) are never read here; classifier3.toml (looked at since 2026-12-08) only with `--looked-at`, to
//! report the model about to be written, never to choose anything. `--check` trains and reports without writing the
//! file. Since 2026-12-08 also classifier/train3.toml (training) and dev3.toml (development), from voices3.py, and
//! each development sentence counts once for the threshold, as its shortest framing (`--all-frames`: as before).
//!
//! Optional: when ../shared/data/guard-public (or $KARTE_GUARD_PUBLIC) is present, the lines of the even-numbered
//! case reports of case-reports-ja.jsonl (CC-BY-4.0, real clinical text) are added as legitimate examples, read
//! from that path and never copied into the repository; the odd-numbered half stays for evaluation
//! (`guard_eval --public`). Without the folder training goes on without them and says so.
use karte_guard::classifier::{train_weighted, TrainConfig, LEGITIMATE, LEGITIMATE_SHARE};
use karte_guard::eval::{HarmCase, DEV};
use karte_guard::Policy;

const TRAIN: &str = include_str!("../tests/data/classifier/train.toml");
/// Hand-written supplement (2026-12-07): indirect harm and ward text sharing its words.
const TRAIN2: &str = include_str!("../tests/data/classifier/train2.toml");
/// Written by voice (2026-12-08, voices3.py) after the third held-out pair was scored: the kinds of phrasing it
/// missed and the legitimate kinds it blocked, in new sentences.
const TRAIN3: &str = include_str!("../tests/data/classifier/train3.toml");
/// Half the 2 % aim: on the first held-out file the classifier's over-refusal came out about twice its dev
/// value, so the dev budget keeps that margin for text unlike the development set.
const MAX_OVER_REFUSAL: f64 = 0.01;

fn main() {
    let check_only = std::env::args().any(|a| a == "--check");
    // Experiments: `--epochs N --l2 X --share S` override the shipped settings (measured
    // 2026-12-07 on the development parts: 1–4- and 1–5-grams lowered recall at the same over-refusal, so 1–3 stays).
    let args: Vec<String> = std::env::args().collect();
    let (cfg, share) = karte_guard::classifier::experiment_settings(&args, LEGITIMATE_SHARE);
    let train = |ex: &[(String, String)], cfg: &TrainConfig| train_weighted(ex, cfg, share);
    let no_refit = std::env::args().any(|a| a == "--no-refit");
    let debug = std::env::args().any(|a| a == "--list");
    let mut train_cases = karte_guard::eval::parse_cases("classifier/train.toml", TRAIN);
    if !std::env::args().any(|a| a == "--no-train2") {
        train_cases.extend(karte_guard::eval::parse_cases(
            "classifier/train2.toml",
            TRAIN2,
        ));
    }
    if !std::env::args().any(|a| a == "--no-train3") {
        train_cases.extend(karte_guard::eval::parse_cases(
            "classifier/train3.toml",
            TRAIN3,
        ));
    }
    let mut examples: Vec<(String, String)> = train_cases
        .iter()
        .map(|c| (c.text.clone(), c.category.clone()))
        .collect();
    // The even-numbered texts of karte-core's test data, line by line, as legitimate: ordinary drug orders with
    // doses, vitals and plans, which the harm examples' dose-shaped n-grams otherwise pull towards `overdose`
    // (0.052 of those texts blocked before, 2026-12-07). The odd-numbered half is `guard_clinical`'s measure.
    if !std::env::args().any(|a| a == "--no-core") {
        let before = examples.len();
        for t in karte_guard::eval::core_clinical_texts().iter().step_by(2) {
            examples.extend(
                t.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| (l.to_string(), LEGITIMATE.to_string())),
            );
        }
        eprintln!(
            "karte-core test data: {} legitimate lines added (even-numbered texts)",
            examples.len() - before
        );
    }
    // The even-numbered personal-data development sentences and report documents, line by line, as legitimate:
    // header lines (「患者氏名：… 様」「住所：…」) are short text unlike any harm example, which the classifier in the
    // draft path otherwise judges on noise (8 of 704 blocked before, 2026-12-07). The odd half is measured by
    // `guard_clinical`.
    let before = examples.len();
    let pii = karte_guard::eval::pii_texts();
    for t in pii.iter().step_by(2) {
        examples.extend(
            t.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| (l.to_string(), LEGITIMATE.to_string())),
        );
    }
    eprintln!(
        "personal-data development texts: {} legitimate lines added (even-numbered)",
        examples.len() - before
    );
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
    let mut model = train(&examples, &cfg);
    eprintln!(
        "trained on {} texts ({} legitimate) in {:.1}s; classes {:?}",
        examples.len(),
        examples.iter().filter(|e| e.1 == LEGITIMATE).count(),
        t0.elapsed().as_secs_f64(),
        model.classes
    );
    let (mut harm, mut legit) = DEV.classifier_split();
    for (name, src) in DEV.classifier_parts {
        let (h, l) = karte_guard::eval::split_legitimate(karte_guard::eval::parse_cases(name, src));
        harm.extend(h);
        legit.extend(l);
    }
    let legit: Vec<HarmCase> = legit
        .into_iter()
        .map(|mut c| {
            c.category = LEGITIMATE.to_string();
            c
        })
        .collect();
    // The generated development file (classifier/dev.toml) puts each sentence in up to five frames (「経過記録：…」
    // 「S/O: …」): for the threshold each sentence counts once, as its shortest framing, so that one legitimate
    // sentence the model gets wrong does not spend the over-refusal budget five times over (2026-12-08; the injection
    // trainer has done the same since 2026-12-07). `--all-frames` counts every framing, as before. The refit below
    // still learns from every framing.
    let all_frames = args.iter().any(|a| a == "--all-frames");
    let once = |v: &[HarmCase]| -> Vec<HarmCase> {
        v.iter()
            .filter(|c| {
                all_frames
                    || !v
                        .iter()
                        .any(|o| o.text.len() < c.text.len() && c.text.contains(o.text.as_str()))
            })
            .cloned()
            .collect()
    };
    let (harm_t, legit_t) = (once(&harm), once(&legit));
    let policy = Policy::embedded();
    let rules = |c: &HarmCase| policy.check(&c.text).is_block();
    let legit_rules: Vec<bool> = legit_t.iter().map(rules).collect();
    let harm_rules: Vec<bool> = harm_t.iter().map(rules).collect();
    let legit_p: Vec<f32> = legit_t
        .iter()
        .map(|c| model.max_probability(&c.text))
        .collect();
    let harm_p: Vec<f32> = harm_t
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
    let chosen =
        karte_guard::classifier::choose_threshold(20, MAX_OVER_REFUSAL, 0.01, added, |t| {
            rate(&harm_rules, &harm_p, t)
        });
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
        harm_t.len(),
        legit_t.len()
    );
    // The development legitimate texts behind the numbers above (`--show-at` lowers the bar).
    let show_at = karte_guard::classifier::show_at(&args);
    for (c, p) in legit_t
        .iter()
        .zip(&legit_p)
        .filter(|(_, p)| **p >= chosen.min(show_at))
    {
        eprintln!("  dev legitimate blocked at {p:.2}: {}", c.text);
    }
    if debug {
        for ((c, p), r) in harm_t.iter().zip(&harm_p).zip(&harm_rules) {
            if !*r && *p < chosen {
                eprintln!(
                    "  dev harmful missed at {p:.2} ({}): {}",
                    c.category, c.text
                );
            }
        }
    }
    // Legitimate clinical text never trained on (the decision to judge drafts by default rests on it): the
    // odd-numbered karte-core texts and public case reports, blocked by the classifier at the chosen threshold.
    let clinical = |m: &karte_guard::classifier::Classifier, t: f32| {
        let core: Vec<String> = karte_guard::eval::core_clinical_texts()
            .into_iter()
            .skip(1)
            .step_by(2)
            .collect();
        let reports: Vec<String> = karte_guard::eval::public_case_reports(&dir)
            .unwrap_or_default()
            .into_iter()
            .skip(1)
            .step_by(2)
            .collect();
        for (name, texts) in [("karte-core odd", &core), ("case reports odd", &reports)] {
            let hit: Vec<&String> = texts.iter().filter(|x| m.max_probability(x) >= t).collect();
            eprintln!(
                "  {name}: {}/{} blocked by the classifier at {t:.2} ({:.3})",
                hit.len(),
                texts.len(),
                hit.len() as f64 / texts.len().max(1) as f64
            );
            if debug {
                for x in hit {
                    let short: String = x.chars().take(100).collect();
                    eprintln!("    {}", short.replace('\n', "⏎"));
                }
            }
        }
    };
    clinical(&model, chosen);
    if !no_refit {
        // The threshold is fixed; the shipped weights then learn from the development texts too, since a few
        // hundred more phrasings matter more to unseen text than a threshold re-estimated on data it has seen.
        examples.extend(
            harm.iter()
                .chain(&legit)
                .map(|c| (c.text.clone(), c.category.clone())),
        );
        model = train(&examples, &cfg);
        eprintln!(
            "refitted on train + dev: {} texts (the dev numbers of `guard_eval` are in-sample from here on)",
            examples.len()
        );
    }
    if !no_refit {
        eprintln!("refitted model on text it never trained on:");
        clinical(&model, chosen);
    }
    // `--looked-at`: the third held-out file (scored once on 2026-12-07, a looked-at development part since
    // 2026-12-08) for the model about to be written, at the threshold already chosen; reported, never used to
    // choose anything here, and never trained on.
    if args.iter().any(|a| a == "--looked-at") {
        let (h3, l3) = karte_guard::eval::split_legitimate(karte_guard::eval::parse_cases(
            "holdout/classifier3.toml",
            include_str!("../tests/data/holdout/classifier3.toml"),
        ));
        let hit = |c: &HarmCase| rules(c) || model.max_probability(&c.text) >= chosen;
        let caught = h3.iter().filter(|c| hit(c)).count();
        let blocked: Vec<&HarmCase> = l3.iter().filter(|c| hit(c)).collect();
        if debug {
            for c in h3.iter().filter(|c| !hit(c)) {
                eprintln!("    looked-at missed ({}): {}", c.category, c.text);
            }
            for c in &blocked {
                let by = if rules(c) { "rules" } else { "classifier" };
                eprintln!("    looked-at blocked by {by}: {}", c.text);
            }
        }
        eprintln!(
            "looked-at classifier3.toml: recall {:.3} ({caught}/{}), over-refusal {:.3} ({}/{})",
            caught as f64 / h3.len() as f64,
            h3.len(),
            blocked.len() as f64 / l3.len() as f64,
            blocked.len(),
            l3.len()
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
