//! The guard evaluation without building the whole CLI (same library call as `karte guard eval --misses`).
//! Usage: cargo run -p karte-guard --example guard_eval [-- --misses] [--holdout] [--reports]
//! `--reports` scores the report-style documents (development part; with `--holdout`, the held-out part).
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
    if has("--misses") {
        for m in &r.misses {
            println!("  {}: {}", m.what, m.text.replace('\n', "⏎"));
        }
    }
}
