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
