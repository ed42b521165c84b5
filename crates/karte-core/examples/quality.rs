//! `cargo run -p karte-core --example quality [-- --misses]`: the quality table of issue 18 (section accuracy per
//! writing style, problem grouping, suggestion hit rate, contraindicated suggestions and warnings) on the
//! development and held-out sets. `--misses` lists the development set's misses (what to work on);
//! `--holdout-misses` lists the held-out set's, to read, never to tune on.

use karte_core::quality::{run_on, table, DEV, HOLDOUT};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let dev = run_on(&DEV);
    let holdout = run_on(&HOLDOUT);
    print!("{}", table(&dev, &holdout));
    for (r, shown) in [
        (&dev, flag("--misses")),
        (&holdout, flag("--holdout-misses")),
    ] {
        if shown {
            println!("\n{} misses ({}):", r.name, r.misses.len());
            for m in &r.misses {
                println!("  {m}");
            }
        }
    }
}
