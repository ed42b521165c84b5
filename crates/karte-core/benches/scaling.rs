//! How the rules-only draft grows with the input: the same dictation shape at 1/8, 1/4, 1/2 and the whole of the
//! 20,000-character limit. Linear work doubles from row to row (ratio 2, 4, 8 against the smallest); pairwise work
//! quadruples (4, 16, 64), which is what a pasted log of 9,999 × 発熱 took before (11.8 s in a debug build).
//! The reference is the smallest input of the same shape, run in the same process, so machine noise cancels.
//!
//! Usage: cargo bench -p karte-core --bench scaling [-- --reps N]

use std::time::Instant;

/// (shape, one unit); each row repeats the unit to fill a fraction of the limit.
const SHAPES: &[(&str, &str)] = &[
    ("one clause, repeated finding", "発熱"),
    ("list of findings", "発熱、"),
    ("history list", "既往に高血圧症、"),
    ("sentences with vitals", "BT 38.6℃。"),
    ("labs in one clause", "CRP 12.3mg/dL "),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let reps: usize = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1))
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    println!("| input | characters | facts | median ms | ratio to the smallest |");
    println!("|---|---:|---:|---:|---:|");
    for (shape, unit) in SHAPES {
        let per = unit.chars().count();
        let mut reference = None;
        for eighths in [1, 2, 4, 8] {
            let n = karte_core::MAX_INPUT_CHARS * eighths / 8 / per;
            let text = unit.repeat(n);
            let mut ms = Vec::new();
            let mut facts = 0;
            for _ in 0..reps {
                let t = Instant::now();
                let d = karte_core::draft_floor(&text, karte_core::document::default_kind())
                    .expect("draft");
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
                facts = d.facts.len();
            }
            ms.sort_by(|a, b| a.total_cmp(b));
            let median = ms[ms.len() / 2];
            let base = *reference.get_or_insert(median);
            println!(
                "| {shape} | {} | {facts} | {median:.1} | {:.2} |",
                text.chars().count(),
                median / base
            );
        }
    }
}
