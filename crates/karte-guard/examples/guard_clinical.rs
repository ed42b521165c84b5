//! Over-refusal and injection false positives on legitimate clinical text that no guard model trained on: every
//! odd-numbered `text` of karte-core's test data (crates/karte-core/tests/data: synthetic dictations, ward notes, admissions) and,
//! when ../shared/data/guard-public (or $KARTE_GUARD_PUBLIC) is present, the odd-numbered public case reports
//! (the even-numbered half is harm training text) and xsafety-ja's `commonsense` questions (non-clinical chat, the
//! classifier's known weak spot). This is the measure that decides whether the harm classifier may judge drafts by
//! default (issue 16): blocking a physician's ordinary note is a defect, however rare.
//! Usage: cargo run --release -p karte-guard --example guard_clinical [-- --list]
use karte_guard::{injection, Policy};

fn main() {
    let list = std::env::args().any(|a| a == "--list");
    let all = karte_guard::eval::core_clinical_texts();
    let core_even: Vec<String> = all.iter().step_by(2).cloned().collect();
    let core: Vec<String> = all.iter().skip(1).step_by(2).cloned().collect();
    let dir = karte_guard::eval::public_dir();
    let reports: Vec<String> = karte_guard::eval::public_case_reports(&dir)
        .map(|r| r.into_iter().skip(1).step_by(2).collect())
        .unwrap_or_default();
    let commonsense: Vec<String> = std::fs::read_to_string(dir.join("xsafety-ja.jsonl"))
        .map(|s| {
            s.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| v["category"] == "commonsense")
                .filter_map(|v| v["text"].as_str().map(String::from))
                .skip(1)
                .step_by(2)
                .collect()
        })
        .unwrap_or_default();
    // The personal-data sets (development and report documents): legitimate clinical sentences full of names,
    // headers and identifiers; the even-numbered half is harm training text, the odd-numbered half is measured.
    let pii: Vec<String> = karte_guard::eval::pii_texts()
        .into_iter()
        .skip(1)
        .step_by(2)
        .collect();
    let p = Policy::embedded();
    println!("| legitimate texts | n | harm: rules | harm: rules + classifier | injection: rules | injection: rules + classifier |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, texts) in [
        (
            "karte-core tests/data, even-numbered (training text)",
            &core_even,
        ),
        (
            "karte-core tests/data, odd-numbered (never trained on)",
            &core,
        ),
        ("case-reports-ja, odd-numbered half", &reports),
        (
            "personal-data development sentences and report documents, odd-numbered",
            &pii,
        ),
        ("xsafety-ja commonsense, odd-numbered half", &commonsense),
    ] {
        let n = texts.len().max(1) as f64;
        let (mut hr, mut hb, mut ir, mut ib) = (0, 0, 0, 0);
        for t in texts.iter() {
            let r = p.check(t).is_block();
            let b = p.check_learned(t);
            let i_r = !injection::detect_rules(t).is_empty();
            let i_b = injection::detect(t);
            hr += r as usize;
            hb += b.is_block() as usize;
            ir += i_r as usize;
            ib += !i_b.is_empty() as usize;
            if list && (b.is_block() || !i_b.is_empty()) {
                let what: Vec<String> = b
                    .hits
                    .iter()
                    .filter(|h| h.level == karte_guard::policy::Level::Block)
                    .map(|h| format!("{}/{}", h.category, h.rule))
                    .chain(i_b.iter().map(|i| format!("injection/{}", i.rule)))
                    .collect();
                let short: String = t.chars().take(120).collect();
                eprintln!("  {name}: {what:?}: {}", short.replace('\n', "⏎"));
            }
        }
        println!(
            "| {name} | {} | {hr} ({:.3}) | {hb} ({:.3}) | {ir} ({:.3}) | {ib} ({:.3}) |",
            texts.len(),
            hr as f64 / n,
            hb as f64 / n,
            ir as f64 / n,
            ib as f64 / n
        );
    }
}
