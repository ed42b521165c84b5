//! `cargo run -p karte-core --example quality [-- --misses]`: the quality table of issue 18 (section accuracy per
//! writing style, problem grouping, suggestion hit rate, contraindicated suggestions and warnings) on the
//! development and held-out sets, and with `--misses` every miss.

use karte_core::quality::{run_on, table, DEV, HOLDOUT};

fn main() {
    let misses = std::env::args().any(|a| a == "--misses");
    let dev = run_on(&DEV);
    let holdout = run_on(&HOLDOUT);
    print!("{}", table(&dev, &holdout));
    if misses {
        for r in [&dev, &holdout] {
            println!("\n{} misses ({}):", r.name, r.misses.len());
            for m in &r.misses {
                println!("  {m}");
            }
        }
    }
}
