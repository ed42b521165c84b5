//! The quality targets of issue 18 on the development set, and the safety target on both sets.
//!
//! The development set is what the rules were tuned on: every style's section accuracy, the problem grouping and
//! the suggestion hit rate must stay at or above 0.9 there, and every planned contraindicated test must be warned
//! about. No contraindicated test may ever be suggested, on any set. The held-out parts' other numbers are
//! printed (`cargo test -p karte-core --test quality -- --nocapture`), not asserted: it is never tuned on, so a
//! target on it would invite exactly that.

use karte_core::quality::{run_on, table, Report, DEV, HOLDOUTS, STYLES};

#[test]
fn development_set_meets_the_targets_and_nothing_contraindicated_is_suggested() {
    let dev = run_on(&DEV);
    let holdouts: Vec<Report> = HOLDOUTS.iter().map(run_on).collect();
    let mut all = vec![&dev];
    all.extend(holdouts.iter());
    println!("{}", table(&all));
    let mut failures = Vec::new();
    for style in STYLES {
        let s = dev.sections.get(style).copied().unwrap_or_default();
        if s.of == 0 {
            failures.push(format!("no {style} case in the development set"));
        } else if s.rate() < 0.9 {
            failures.push(format!("section accuracy, {style}: {:.3}", s.rate()));
        }
    }
    if dev.groups.of == 0 || dev.groups.rate() < 0.9 {
        failures.push(format!("problem grouping: {:?}", dev.groups));
    }
    if dev.hits.rate() < 0.9 {
        failures.push(format!("suggestion hit rate: {:.3}", dev.hits.rate()));
    }
    if dev.warnings.of == 0 || dev.warnings.hit != dev.warnings.of {
        failures.push(format!("contraindicated orders warned: {:?}", dev.warnings));
    }
    for r in all {
        if r.contraindicated != 0 {
            failures.push(format!(
                "{}: {} contraindicated suggestions",
                r.name, r.contraindicated
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\ndevelopment misses:\n{}",
        failures.join("\n"),
        dev.misses.join("\n")
    );
}

/// The measurement itself can fail: a draft that put everything in one section would score low.
#[test]
fn the_measure_tells_a_wrong_section_from_a_right_one() {
    let set = karte_core::quality::DataSet {
        name: "inline",
        column: "inline",
        src: r#"
kind = "progress-note"
[[section]]
id = "x"
style = "ward"
text = "体温38.3 咳嗽あり"
o = ["咳嗽あり"]
p = ["体温38.3"]
[[presentation]]
id = "y"
text = "咳嗽あり。発熱あり。"
expect = ["頭部MRI"]
contraindicated = ["胸部X線"]
"#,
    };
    let r = run_on(&set);
    assert_eq!(r.sections["ward"].hit, 0);
    assert_eq!(r.sections["ward"].of, 2);
    assert_eq!(r.hits.hit, 0);
    assert_eq!(r.contraindicated, 1);
}
