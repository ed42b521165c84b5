//! Personal-data scan throughput on one core, without the model: part 1 of `cargo bench -p karte-api --bench
//! guard` (same corpus, same median-of-rounds method), so the scan's cost can be checked without building
//! llama.cpp. The report-style sets are timed on their own too, since their documents are long and header-heavy.
//!
//! Usage: cargo run --release -p karte-guard --example scan_bench [-- --rounds N]

use karte_core::normalize::normalize;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Seconds per pass of `f` over the corpus: median of `rounds`.
fn time(rounds: usize, mut f: impl FnMut()) -> f64 {
    median(
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// The corpus of the karte-api bench: every personal-data, harmful and sensitive text of the development set.
fn dev_corpus() -> Vec<String> {
    let set = karte_guard::eval::DEV;
    let mut corpus: Vec<String> = set.pii_cases().into_iter().map(|c| c.text).collect();
    corpus.extend(set.harmful_cases().into_iter().map(|c| c.text));
    corpus.extend(set.sensitive_cases().into_iter().map(|c| c.text));
    corpus
}

fn row(name: &str, corpus: &[String], rounds: usize) {
    let bytes: usize = corpus.iter().map(String::len).sum();
    let mb = bytes as f64 / 1e6;
    let t_norm = time(rounds, || {
        for s in corpus {
            std::hint::black_box(normalize(s));
        }
    });
    let t_scan = time(rounds, || {
        for s in corpus {
            std::hint::black_box(karte_guard::scan(s));
        }
    });
    println!(
        "| {name} | {} | {bytes} | {:.2} | {:.2} | {:.1} | {:.2} |",
        corpus.len(),
        mb / t_norm,
        mb / t_scan,
        t_scan * 1e6 / corpus.len() as f64,
        t_scan / t_norm
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    println!("median of {rounds} rounds, one thread");
    println!(
        "| corpus | texts | bytes | normalise MB/s | scan MB/s | µs per text | scan ÷ normalise |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    row(
        "development set (karte-api bench corpus)",
        &dev_corpus(),
        rounds,
    );
    let reports: Vec<String> = karte_guard::eval::REPORT_SETS
        .iter()
        .flat_map(|s| s.pii_cases())
        .map(|c| c.text)
        .collect();
    row("report-style documents (dev + held-out)", &reports, rounds);
}
