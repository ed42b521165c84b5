//! Scores each line of stdin with the injection rules and classifier (for whoever edits the data or the tests).
//! Usage: cargo run --release -p karte-guard --example scan_injection < lines.txt
use std::io::BufRead;

fn main() {
    let m = karte_guard::injection_classifier::InjectionClassifier::embedded();
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        if line.trim().is_empty() {
            continue;
        }
        let rules: Vec<&str> = karte_guard::injection::detect_rules(&line)
            .iter()
            .map(|i| i.rule)
            .collect();
        let p = m.map_or(0.0, |m| m.max_probability(&line));
        println!("{p:.2}\t{}\t{line}", rules.join(","));
    }
}
