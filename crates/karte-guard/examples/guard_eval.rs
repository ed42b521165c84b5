//! The guard evaluation without building the whole CLI (same library call as `karte guard eval --misses`).
//! Usage: cargo run -p karte-guard --example guard_eval [-- --misses] [--holdout] [--reports] [--public]
//! `--reports` scores the report-style documents (development part; with `--holdout`, the held-out part).
//! `--public` also scores the public sets in ../shared/data/guard-public (or $KARTE_GUARD_PUBLIC), if present.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |a: &str| args.iter().any(|x| x == a);
    let r = if has("--reports") {
        let set = if has("--holdout") {
            karte_guard::eval::REPORTS_HOLDOUT
        } else {
            karte_guard::eval::REPORTS_DEV
        };
        let r = karte_guard::eval::run_reports(&set);
        println!("{}", r.report_table());
        r
    } else {
        let set = if has("--holdout") {
            karte_guard::eval::HOLDOUT
        } else {
            karte_guard::eval::DEV
        };
        let r = karte_guard::eval::run_on(&set);
        println!("{}", r.table());
        r
    };
    if has("--public") {
        let dir = karte_guard::eval::public_dir();
        match karte_guard::eval::public_table(&dir) {
            Some(t) => println!("{t}"),
            None => println!(
                "\npublic sets: {} not found; skipped (they are optional, never shipped)",
                dir.display()
            ),
        }
    }
    if let Some(m) = karte_guard::classifier::Classifier::embedded() {
        // Scoring cost per sentence: the classifier must stay a small share of the guard's time.
        let (harm, legit) = karte_guard::eval::DEV.classifier_split();
        let texts: Vec<&str> = harm.iter().chain(&legit).map(|c| c.text.as_str()).collect();
        let t0 = std::time::Instant::now();
        let mut n = 0usize;
        for _ in 0..20 {
            for t in &texts {
                std::hint::black_box(m.score(t));
                n += 1;
            }
        }
        println!(
            "classifier: {:.1} µs per text ({} texts × 20, mean {} chars)",
            t0.elapsed().as_secs_f64() * 1e6 / n as f64,
            texts.len(),
            texts.iter().map(|t| t.chars().count()).sum::<usize>() / texts.len().max(1)
        );
        // What a draft sentence costs the policy: the rules alone (`check`) against rules + classifier
        // (`check_learned`, the draft path since 2026-12-07), same texts, same run.
        let p = karte_guard::Policy::embedded();
        let time = |f: &dyn Fn(&str)| {
            let t0 = std::time::Instant::now();
            for _ in 0..20 {
                for t in &texts {
                    f(t);
                }
            }
            t0.elapsed().as_secs_f64() * 1e6 / (20 * texts.len()) as f64
        };
        let rules = time(&|t| {
            std::hint::black_box(p.check(t));
        });
        let both = time(&|t| {
            std::hint::black_box(p.check_learned(t));
        });
        println!("policy per text: rules {rules:.1} µs, rules + classifier {both:.1} µs");
    }
    if let Some(m) = karte_guard::injection_classifier::InjectionClassifier::embedded() {
        // The injection classifier's cost per dictation (every window of it), against the rules' on the same texts.
        let texts: Vec<String> = karte_guard::eval::DEV
            .injection_cases()
            .into_iter()
            .map(|c| c.text)
            .collect();
        let time = |f: &dyn Fn(&str)| {
            let t0 = std::time::Instant::now();
            for _ in 0..20 {
                for t in &texts {
                    f(t);
                }
            }
            t0.elapsed().as_secs_f64() * 1e6 / (20 * texts.len()) as f64
        };
        let c = time(&|t| {
            std::hint::black_box(m.max_probability(t));
        });
        let r = time(&|t| {
            std::hint::black_box(karte_guard::injection::detect_rules(t));
        });
        println!(
            "injection classifier: {c:.1} µs per dictation, rules {r:.1} µs ({} dictations × 20, mean {} chars)",
            texts.len(),
            texts.iter().map(|t| t.chars().count()).sum::<usize>() / texts.len().max(1)
        );
    }
    if has("--misses") {
        let parts = r.part_comparisons.iter().flat_map(|(_, c)| &c.misses);
        // The first injection comparison is the part's injection.toml, whose misses are in `r.misses` already.
        let inj = r
            .injection_comparisons
            .iter()
            .skip(1)
            .flat_map(|(_, c)| &c.misses);
        for m in r
            .misses
            .iter()
            .chain(&r.comparison.misses)
            .chain(parts)
            .chain(inj)
        {
            println!("  {}: {}", m.what, m.text.replace('\n', "⏎"));
        }
    }
}
