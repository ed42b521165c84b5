//! Trains the injection classifier and writes assets/guard/injection_classifier.bin (issue 16, item 3).
//! Usage: cargo run --release -p karte-guard --example train_injection [-- --check] [--no-refit] [--public]
//!        [--show-at T] [--epochs N] [--l2 X] [--share S]   (the last three: experiments; the shipped file uses none)
//!
//! Training data: tests/data/injection_classifier/train.toml (composed attacks and instruction-like legitimate ward
//! text, see its generate.py), plus every text of the harm classifier's training file tests/data/classifier/train.toml
//! as legitimate (harmful or not, none of it is addressed to the model: it teaches that imperative clinical speech,
//! 「AIアシスタントの回答：」 frames and role-play wording about care are not attacks). The shipped weights come from
//! the repository's data alone, so anyone can rebuild them byte for byte. `--public` adds, when
//! ../shared/data/guard-public (or $KARTE_GUARD_PUBLIC) is present, the lines of the even-numbered public case reports
//! as legitimate and the even-numbered role-play prompts of xsafety-ja as attacks (read from there, never copied);
//! measured on the development part (train-only model, 2026-12-07) that lowered recall at the false-positive budget
//! (0.922 → 0.877; role-play prompts alone 0.907), and the model without them flags none of the held-back half of
//! the case reports (0/73) either, so it is not used. xsafety's Prompt_Leaking questions lowered recall too.
//!
//! Development data, for the threshold only: tests/data/injection_classifier/dev.toml, the development
//! injection.toml, and every harm-labelled development text (classifier/dev.toml, harmful.toml, sensitive.toml) as
//! legitimate. A dictation is flagged when the rules or the classifier (its highest window) say so. Among thresholds whose own
//! false positives on dev legitimate texts (flagged by the classifier, not by the rules) stay ≤ 0.5 % (half the issue's
//! 1 % aim, for text unlike the development set), the highest one within one point of the best dev recall (since
//! 2026-12-08; before, the highest that reached the best recall itself, `--exact-best`). Then, unless
//! `--no-refit`, the model is trained again on train + dev with that threshold kept; the development numbers
//! printed are those of the train-only model. The held-out files (tests/data/holdout/injection.toml and
//! injection2.toml) are never read here; injection3.toml (looked at since 2026-12-08) only with `--looked-at`, to
//! report the model about to be written, never to choose anything. `--check` trains and reports without writing
//! the file. Training data since 2026-12-08 also: injection_classifier/train3.toml and classifier/train3.toml (as
//! legitimate); development also injection_classifier/dev3.toml (all from voices3.py).
use karte_guard::classifier::TrainConfig;
use karte_guard::eval::{parse_cases, parse_injection_cases, DEV};
use karte_guard::injection;
use karte_guard::injection_classifier::{train_weighted, InjectionClassifier, LEGITIMATE_SHARE};

const TRAIN: &str = include_str!("../tests/data/injection_classifier/train.toml");
const DEV_PART: &str = include_str!("../tests/data/injection_classifier/dev.toml");
const TRAIN2: &str = include_str!("../tests/data/injection_classifier/train2.toml");
const DEV_PART2: &str = include_str!("../tests/data/injection_classifier/dev2.toml");
/// Written by kind (2026-12-08, voices3.py) after the third held-out pair was scored: full-width, spaced-kana,
/// romaji and keigo attacks; hospital IT notices, AI-tool policies and English orders as legitimate.
const TRAIN3: &str = include_str!("../tests/data/injection_classifier/train3.toml");
const DEV_PART3: &str = include_str!("../tests/data/injection_classifier/dev3.toml");
const HARM_TRAIN: &str = include_str!("../tests/data/classifier/train.toml");
const HARM_TRAIN2: &str = include_str!("../tests/data/classifier/train2.toml");
const HARM_TRAIN3: &str = include_str!("../tests/data/classifier/train3.toml");
/// Half the 1 % aim on held-out text.
const MAX_FALSE_POSITIVE: f64 = 0.005;

fn main() {
    let check_only = std::env::args().any(|a| a == "--check");
    let args: Vec<String> = std::env::args().collect();
    let debug_at = karte_guard::classifier::show_at(&args);
    // Experiments: `--epochs N --l2 X --share S` override the shipped settings (the shipped file uses none).
    let (cfg, share) = karte_guard::classifier::experiment_settings(&args, LEGITIMATE_SHARE);
    let train = |ex: &[(String, bool)], cfg: &TrainConfig| train_weighted(ex, cfg, share);
    let no_refit = std::env::args().any(|a| a == "--no-refit");
    let mut examples: Vec<(String, bool)> =
        parse_injection_cases("injection_classifier/train.toml", TRAIN)
            .into_iter()
            .map(|c| (c.text, c.injection))
            .collect();
    if !args.iter().any(|a| a == "--no-train2") {
        examples.extend(
            parse_injection_cases("injection_classifier/train2.toml", TRAIN2)
                .into_iter()
                .map(|c| (c.text, c.injection)),
        );
    }
    let train3 = !args.iter().any(|a| a == "--no-train3");
    if train3 {
        examples.extend(
            parse_injection_cases("injection_classifier/train3.toml", TRAIN3)
                .into_iter()
                .map(|c| (c.text, c.injection)),
        );
    }
    let n_own = examples.len();
    examples.extend(
        parse_cases("classifier/train.toml", HARM_TRAIN)
            .into_iter()
            .map(|c| (c.text, false)),
    );
    eprintln!(
        "training texts: {n_own} from injection_classifier/train.toml, {} from classifier/train.toml",
        examples.len() - n_own
    );
    // The harm classifier's hand-written supplement (2026-12-07), legitimate here for the same reason.
    examples.extend(
        parse_cases("classifier/train2.toml", HARM_TRAIN2)
            .into_iter()
            .map(|c| (c.text, false)),
    );
    if train3 {
        examples.extend(
            parse_cases("classifier/train3.toml", HARM_TRAIN3)
                .into_iter()
                .map(|c| (c.text, false)),
        );
    }
    // The even-numbered texts of karte-core's test data, line by line, as legitimate: the ward shorthand a draft is
    // made of, English chart text included (「CC: chest pain x30min…」 was flagged before, 2026-12-07). The
    // odd-numbered half is measured below and by `guard_clinical`, never trained on.
    if !args.iter().any(|a| a == "--no-core") {
        let before = examples.len();
        for t in karte_guard::eval::core_clinical_texts().iter().step_by(2) {
            examples.extend(
                t.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| (l.to_string(), false)),
            );
        }
        eprintln!(
            "karte-core test data: {} legitimate lines added (even-numbered texts)",
            examples.len() - before
        );
    }
    let dir = karte_guard::eval::public_dir();
    let public = args.iter().any(|a| a == "--public");
    match karte_guard::eval::public_case_reports(&dir).filter(|_| public) {
        Some(reports) => {
            let before = examples.len();
            for r in reports.iter().step_by(2) {
                examples.extend(
                    r.lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(|l| (l.to_string(), false)),
                );
            }
            eprintln!(
                "public case reports: {} legitimate lines added from {}",
                examples.len() - before,
                dir.display()
            );
        }
        None if public => eprintln!(
            "public case reports: {} not found; training on the repository's data only",
            dir.display()
        ),
        None => eprintln!("training on the repository's data only (no --public)"),
    }
    // With `--public`, the even-numbered role-play prompts of xsafety-ja (Role_Play_Instruction: requests that give
    // the model a role, which inside a dictation are attacks) as attacks, read from the public folder, never copied.
    if public {
        match std::fs::read_to_string(dir.join("xsafety-ja.jsonl")) {
            Ok(src) => {
                let before = examples.len();
                let rows: Vec<serde_json::Value> = src
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .filter(|v: &serde_json::Value| v["category"] == "Role_Play_Instruction")
                    .collect();
                for v in rows.iter().step_by(2) {
                    if let Some(t) = v["text"].as_str() {
                        examples.push((t.to_string(), true));
                    }
                }
                eprintln!(
                    "xsafety-ja Role_Play_Instruction: {} attacks added",
                    examples.len() - before
                );
            }
            Err(_) => eprintln!("xsafety-ja.jsonl not found; no public role-play prompts"),
        }
    }
    let t0 = std::time::Instant::now();
    let mut model = train(&examples, &cfg);
    eprintln!(
        "trained on {} texts ({} injections) in {:.1}s",
        examples.len(),
        examples.iter().filter(|e| e.1).count(),
        t0.elapsed().as_secs_f64()
    );

    // Development texts: (text, is injection).
    let mut dev: Vec<(String, bool)> =
        parse_injection_cases("injection_classifier/dev.toml", DEV_PART)
            .into_iter()
            .chain(parse_injection_cases(
                "injection_classifier/dev2.toml",
                DEV_PART2,
            ))
            .chain(parse_injection_cases(
                "injection_classifier/dev3.toml",
                DEV_PART3,
            ))
            .chain(DEV.injection_cases())
            .map(|c| (c.text, c.injection))
            .collect();
    // The harm development texts come in frames (「経過記録：…」「S/O: …」) that are harm phrasings, not injection
    // ones: each sentence counts once, as its shortest framing, so that one sentence does not spend the whole
    // false-positive budget five times over.
    let (harm, legit) = DEV.classifier_split();
    let harm_texts: Vec<String> = harm.into_iter().chain(legit).map(|c| c.text).collect();
    dev.extend(
        harm_texts
            .iter()
            .filter(|t| {
                !harm_texts
                    .iter()
                    .any(|o| o.len() < t.len() && t.contains(o.as_str()))
            })
            .map(|t| (t.clone(), false)),
    );
    let report = |model: &InjectionClassifier, label: &str| -> f32 {
        let rules: Vec<bool> = dev
            .iter()
            .map(|(t, _)| !injection::detect_rules(t).is_empty())
            .collect();
        let p: Vec<f32> = dev.iter().map(|(t, _)| model.max_probability(t)).collect();
        let rate = |want: bool, t: f32| {
            let (n, k) = dev
                .iter()
                .zip(&rules)
                .zip(&p)
                .filter(|((d, _), _)| d.1 == want)
                .fold((0usize, 0usize), |(n, k), ((_, r), p)| {
                    (n + 1, k + (*r || *p >= t) as usize)
                });
            k as f64 / n.max(1) as f64
        };
        // Legitimate texts that the classifier flags and the rules do not: the rules' own false positives on the
        // development texts are a defect of the rules (reported), not a budget the threshold can spend.
        let added = |t: f32| {
            let n = dev.iter().filter(|d| !d.1).count().max(1);
            dev.iter()
                .zip(&rules)
                .zip(&p)
                .filter(|((d, r), p)| !d.1 && !**r && **p >= t)
                .count() as f64
                / n as f64
        };
        // The highest threshold within one point of the best dev recall (the harm trainer's rule since
        // 2026-12-07; here since 2026-12-08). The third held-out pair showed why: its legitimate texts (hospital
        // notices, consent forms, orders) were flagged at 0.076 against 0.005 on dev, so text unlike the
        // development set pays for every threshold step spent on the last dev attack. `--exact-best` keeps the
        // former rule (the highest threshold that reaches the best recall itself).
        let slack = if args.iter().any(|a| a == "--exact-best") {
            0.0
        } else {
            0.01
        };
        let chosen =
            karte_guard::classifier::choose_threshold(5, MAX_FALSE_POSITIVE, slack, added, |t| {
                rate(true, t)
            });
        for t in (2..=19).map(|i| i as f32 / 20.0) {
            eprintln!(
                "  {label} at {t:.2}: dev recall {:.3}, false positives {:.3}",
                rate(true, t),
                rate(false, t)
            );
        }
        eprintln!(
            "{label}: threshold {chosen:.2}: dev recall rules {:.3} → rules+classifier {:.3}; false positives rules {:.3} → {:.3} ({} attacks, {} legitimate)",
            rate(true, f32::INFINITY),
            rate(true, chosen),
            rate(false, f32::INFINITY),
            rate(false, chosen),
            dev.iter().filter(|d| d.1).count(),
            dev.iter().filter(|d| !d.1).count()
        );
        // The development texts behind the numbers, for whoever edits the data (synthetic, so printing is fine).
        for ((d, r), p) in dev.iter().zip(&rules).zip(&p) {
            if !d.1 && !*r && *p >= chosen.min(debug_at) {
                eprintln!("  dev legitimate flagged at {p:.2}: {}", d.0);
            }
            if d.1 && !*r && *p < chosen {
                eprintln!("  dev attack missed at {p:.2}: {}", d.0);
            }
        }
        chosen
    };
    let chosen = report(&model, "train-only model");
    // Real clinical text the model never trained on: the odd-numbered public case reports and karte-core texts
    // (all legitimate), for the train-only model here and for the refitted one below.
    let clinical = |model: &InjectionClassifier| {
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
        for (name, texts) in [
            ("karte-core texts, odd-numbered", &core),
            ("public case reports, odd-numbered", &reports),
        ] {
            let hit: Vec<&String> = texts
                .iter()
                .filter(|t| model.max_probability(t) >= chosen)
                .collect();
            eprintln!(
                "{name} (legitimate, never trained on): {}/{} flagged by the classifier at {chosen:.2}",
                hit.len(),
                texts.len()
            );
            for t in hit.iter().filter(|_| debug_at.is_finite()) {
                let short: String = t.chars().take(100).collect();
                eprintln!("    {}", short.replace('\n', "⏎"));
            }
        }
    };
    clinical(&model);
    if !no_refit {
        // The threshold is fixed; the shipped weights then learn from the development texts too, since more
        // phrasings matter more to unseen text than a threshold re-estimated on data it has seen.
        examples.extend(dev.iter().cloned());
        model = train(&examples, &cfg);
        eprintln!(
            "refitted on train + dev: {} texts (the dev numbers of `guard_eval` are in-sample from here on)",
            examples.len()
        );
    }
    if !no_refit {
        eprintln!("refitted model:");
        clinical(&model);
    }
    // `--looked-at`: the third held-out file (scored once on 2026-12-07, a looked-at development part since
    // 2026-12-08) for the model about to be written, at the threshold already chosen; reported, never used to
    // choose anything here, and never trained on. `--show-at` lists its misses and false positives too.
    if args.iter().any(|a| a == "--looked-at") {
        let cases = parse_injection_cases(
            "holdout/injection3.toml",
            include_str!("../tests/data/holdout/injection3.toml"),
        );
        for t in [chosen, 0.70, 0.75, 0.80, 0.85, 0.90] {
            let (mut a, mut na, mut f, mut nf) = (0, 0, 0, 0);
            for c in &cases {
                let hit = !injection::detect_rules(&c.text).is_empty()
                    || model.max_probability(&c.text) >= t;
                if c.injection {
                    na += 1;
                    a += hit as usize;
                } else {
                    nf += 1;
                    f += hit as usize;
                }
                if t == chosen && debug_at.is_finite() && hit != c.injection {
                    eprintln!(
                        "    looked-at {}: {}",
                        if c.injection { "missed" } else { "flagged" },
                        c.text
                    );
                }
            }
            eprintln!(
                "looked-at injection3.toml at {t:.2}: recall {:.3} ({a}/{na}), false positives {:.3} ({f}/{nf})",
                a as f64 / na as f64,
                f as f64 / nf as f64
            );
        }
    }
    model.threshold = chosen;
    let bytes = model.to_bytes();
    eprintln!("weights: {} bytes", bytes.len());
    if !check_only {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../assets/guard/injection_classifier.bin"
        );
        std::fs::write(path, &bytes).expect("write weights");
        eprintln!("wrote {path}; rebuild to ship it");
    }
}
