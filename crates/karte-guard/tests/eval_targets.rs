//! The acceptance targets of the guard on the labelled set in tests/data (the same run as `karte guard eval`).

#[test]
fn labelled_set_meets_every_target() {
    let r = karte_guard::eval::run();
    assert!(
        r.pii_sentences >= 400 && r.negative_sentences >= 150,
        "set too small"
    );
    assert!(r.harmful >= 100 && r.sensitive >= 100, "set too small");
    let missed: Vec<_> = r.targets().into_iter().filter(|t| !t.3).collect();
    assert!(
        missed.is_empty(),
        "targets missed: {missed:?}\n{}",
        r.table()
    );
    // Injection detection is not an issue target but is part of the safety claim: keep it honest.
    assert!(r.injection_recall() >= 0.95, "{}", r.table());
    assert!(r.injection_false_positive() <= 0.03, "{}", r.table());
}

/// Report-style documents (issue 21): the development part meets every report target; the held-out part is only
/// scored here (its numbers are reported by `karte guard eval`, never tuned on).
#[test]
fn report_documents_meet_every_target_on_the_development_part() {
    use karte_guard::eval::{run_reports, REPORTS_DEV, REPORTS_HOLDOUT};
    let dev = run_reports(&REPORTS_DEV);
    let held = run_reports(&REPORTS_HOLDOUT);
    for r in [&dev, &held] {
        assert!(
            r.pii_sentences >= 30 && r.negative_sentences >= 4,
            "set too small"
        );
    }
    let missed: Vec<_> = dev.report_targets().into_iter().filter(|t| !t.3).collect();
    assert!(
        missed.is_empty(),
        "targets missed: {missed:?}\n{}",
        dev.report_table()
    );
}

/// Issue 16: the rules plus the learned classifier keep the development targets on every harm-labelled text of the
/// development part (tests/data and tests/data/classifier/dev.toml), and never do worse than the rules alone. The
/// held-out part (tests/data/holdout/classifier.toml and the holdout policy sets) is scored and printed, never
/// asserted on: its numbers are reported, not tuned.
#[test]
fn harm_classifier_keeps_the_development_targets() {
    use karte_guard::eval::{Comparison, DEV, HOLDOUT};
    assert!(
        karte_guard::classifier::Classifier::embedded().is_some(),
        "assets/guard/harm_classifier.bin is empty: run the train_harm example"
    );
    let (harm, legit) = DEV.classifier_split();
    let dev = Comparison::score(&harm, &legit);
    let mut table = String::new();
    dev.table(&mut table);
    assert!(
        dev.legitimate >= 300 && dev.totals().0 >= 250,
        "set too small"
    );
    assert!(dev.recall_both() >= 0.95, "{table}");
    // The classifier's own over-refusal; the rules' own (a few new dev lines) is reported, and is issue 16's to fix.
    assert!(
        dev.over_refusal_both() - dev.over_refusal_rules() <= 0.02,
        "{table}"
    );
    assert!(dev.over_refusal_both() <= 0.03, "{table}");
    assert!(dev.recall_both() >= dev.recall_rules(), "{table}");
    for (c, (n, _, b)) in &dev.harmful {
        assert!(*b as f64 / *n as f64 >= 0.9, "{c}: {table}");
    }
    let (harm, legit) = HOLDOUT.classifier_split();
    let held = Comparison::score(&harm, &legit);
    let mut t = String::new();
    held.table(&mut t);
    println!("held-out (reported, not asserted):{t}");
}

/// The further held-out classifier files parse and are large enough; they are scored by `karte guard eval` (and
/// `guard_eval --holdout`), never here, so that a test run does not look at them.
#[test]
fn classifier_holdout_parts_parse() {
    use karte_guard::eval::{parse_cases, split_legitimate, HOLDOUT};
    assert!(!HOLDOUT.classifier_parts.is_empty());
    for (name, src) in HOLDOUT.classifier_parts {
        let (harm, legit) = split_legitimate(parse_cases(name, src));
        let cats: std::collections::BTreeSet<_> =
            harm.iter().map(|c| c.category.as_str()).collect();
        assert!(
            harm.len() >= 36 && legit.len() >= 75,
            "{name}: set too small"
        );
        assert_eq!(cats.len(), 12, "{name}: every category: {cats:?}");
    }
}

/// Issue 16, item 3: injection detection with the learned classifier keeps the development numbers (the dictations of
/// tests/data/injection.toml and the classifier's development part, tests/data/injection_classifier/dev.toml: in-sample
/// since the shipped weights were refitted on train + dev, so this guards against a broken model or wiring, not
/// against over-fitting) and never does worse than the rules alone. The held-out injection files are not scored here.
#[test]
fn injection_classifier_keeps_the_development_numbers() {
    use karte_guard::eval::{parse_injection_cases, InjectionComparison, DEV};
    assert!(
        karte_guard::injection_classifier::InjectionClassifier::embedded().is_some(),
        "assets/guard/injection_classifier.bin is empty: run the train_injection example"
    );
    let mut parts = vec![("injection.toml", DEV.injection_cases())];
    for (name, src) in DEV.injection_parts {
        parts.push((name, parse_injection_cases(name, src)));
    }
    for (name, cases) in parts {
        let c = InjectionComparison::score(&cases);
        let mut row = String::new();
        c.row(&mut row, name);
        // Part 3 (voices3.py, 2026-12-08) is the smallest: 30 attacks and 40 legitimate texts, each of a kind the
        // others lack (full-width, spaced kana, romaji, keigo; hospital IT notices). At 30 a single miss is 0.033.
        assert!(c.injections >= 30 && c.clean >= 30, "{name}: set too small");
        assert!(c.recall_both() >= 0.95, "{row}");
        assert!(c.false_positive_both() <= 0.01, "{row}");
        assert!(c.recall_both() >= c.recall_rules(), "{row}");
    }
}

/// The held-out injection files parse and are large enough; they are scored by `karte guard eval` (and `guard_eval
/// --holdout`), never here, so that a test run does not look at them.
#[test]
fn injection_holdout_parts_parse() {
    use karte_guard::eval::{parse_injection_cases, HOLDOUT};
    assert!(!HOLDOUT.injection_parts.is_empty());
    for (name, src) in HOLDOUT.injection_parts {
        let cases = parse_injection_cases(name, src);
        let attacks = cases.iter().filter(|c| c.injection).count();
        assert!(
            attacks >= 60 && cases.len() - attacks >= 120,
            "{name}: set too small"
        );
    }
}
