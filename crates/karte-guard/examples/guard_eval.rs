//! The guard evaluation without building the whole CLI (same library call as `karte guard eval --misses`).
//! Usage: cargo run -p karte-guard --example guard_eval [-- --misses] [--holdout]
fn main() {
    let holdout = std::env::args().any(|a| a == "--holdout");
    let set = if holdout {
        karte_guard::eval::HOLDOUT
    } else {
        karte_guard::eval::DEV
    };
    let r = karte_guard::eval::run_on(&set);
    println!("{}", r.table());
    if std::env::args().any(|a| a == "--misses") {
        for m in &r.misses {
            println!("  {}: {}", m.what, m.text);
        }
    }
}
