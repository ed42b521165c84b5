//! `cargo run -p karte-core --example quality [-- --misses]`: the quality table of issue 18 (section accuracy per
//! writing style, problem grouping, suggestion hit rate, contraindicated suggestions and warnings) on the
//! development set and every held-out part (a column each). `--misses` lists the development set's misses (what to
//! work on); `--holdout-misses` lists the held-out parts', to read, never to tune on. `--dev-only` leaves the
//! held-out parts unscored, for tuning without a look at them. `--rules-only` drafts without the clause-role model
//! (what the rules reach alone).

use karte_core::quality::{run_on, table, Report, DEV, HOLDOUTS};

fn main() {
    if std::env::args().any(|a| a == "--rules-only") {
        karte_core::classify::with_trial_model(None, report)
    } else {
        report()
    }
}

fn report() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let dev = run_on(&DEV);
    let holdouts: Vec<Report> = if flag("--dev-only") {
        Vec::new()
    } else {
        HOLDOUTS.iter().map(run_on).collect()
    };
    let mut all = vec![&dev];
    all.extend(holdouts.iter());
    print!("{}", table(&all));
    let shown = |r: &Report| {
        if std::ptr::eq(r, &dev) {
            flag("--misses")
        } else {
            flag("--holdout-misses")
        }
    };
    for r in all.iter().copied() {
        if shown(r) {
            println!("\n{} misses ({}):", r.name, r.misses.len());
            for m in &r.misses {
                println!("  {m}");
            }
        }
    }
}
