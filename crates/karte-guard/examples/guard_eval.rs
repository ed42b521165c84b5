//! The guard evaluation without building the whole CLI (same library call as `karte guard eval --misses`).
//! Usage: cargo run -p karte-guard --example guard_eval [-- --misses]
fn main() {
    let r = karte_guard::eval::run();
    println!("{}", r.table());
    if std::env::args().any(|a| a == "--misses") {
        for m in &r.misses {
            println!("  {}: {}", m.what, m.text);
        }
    }
}
