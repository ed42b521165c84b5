//! Cost of the guard, in one run on one core:
//! 1. personal-data scan throughput (MB/s) over the labelled set, against width normalisation of the same text
//!    (the one pass any scan must make) as the reference;
//! 2. the streaming output guard's share of generation time: a real draft is generated with the model (default:
//!    the manifest's default), its token pieces recorded, then replayed through `StreamGuard`.
//!
//! Usage: cargo bench -p karte-api --bench guard -- [--model NAME] [--rounds N]

#[path = "common/args.rs"]
mod args;

use karte_core::normalize::normalize;
use karte_core::phrase;
use karte_core::pipeline::floor_sections;
use karte_engine::{
    CancelToken, ChatEngine, ChatMessage, ChatRequest, Engine, EngineConfig, Piece,
};
use karte_guard::stream::StreamGuard;
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

fn main() {
    let args = args::Args::parse(&["--model", "--rounds"]);
    let rounds = args.count("--rounds", 15);

    // 1. Scan throughput.
    let mut corpus: Vec<String> = karte_guard::eval::DEV
        .pii_cases()
        .into_iter()
        .map(|c| c.text)
        .collect();
    corpus.extend(
        karte_guard::eval::DEV
            .harmful_cases()
            .into_iter()
            .map(|c| c.text),
    );
    corpus.extend(
        karte_guard::eval::DEV
            .sensitive_cases()
            .into_iter()
            .map(|c| c.text),
    );
    let bytes: usize = corpus.iter().map(String::len).sum();
    let sentences = corpus.len();
    let mb = bytes as f64 / 1e6;
    let t_norm = time(rounds, || {
        for s in &corpus {
            std::hint::black_box(normalize(s));
        }
    });
    let t_scan = time(rounds, || {
        for s in &corpus {
            std::hint::black_box(karte_guard::scan(s));
        }
    });
    let t_policy = time(rounds, || {
        for s in &corpus {
            std::hint::black_box(karte_guard::Policy::embedded().check(s));
        }
    });
    let t_inj = time(rounds, || {
        for s in &corpus {
            std::hint::black_box(karte_guard::injection::detect(s));
        }
    });
    println!("corpus: {sentences} texts, {bytes} bytes (tests/data of karte-guard); median of {rounds} rounds, one thread\n");
    println!("| pass | MB/s | µs per text | time ÷ normalise |");
    println!("|---|---:|---:|---:|");
    for (name, t) in [
        ("normalise (reference)", t_norm),
        ("personal-data scan", t_scan),
        ("policy check (incl. dose table)", t_policy),
        ("injection detection", t_inj),
    ] {
        println!(
            "| {name} | {:.2} | {:.1} | {:.2} |",
            mb / t,
            t * 1e6 / sentences as f64,
            t / t_norm
        );
    }

    // 2. Streaming guard share of generation.
    let model = karte_models::resolve(args.text("--model").as_deref()).expect("model");
    karte_models::verify(&model).expect("model verified (cargo xtask setup)");
    let engine = Engine::load(EngineConfig::new(&model.path, &model.name)).expect("load");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/samples");
    let mut samples: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    samples.sort();
    println!("\nstreaming guard, model {}\n", model.name);
    println!("| sample | tokens | generation ms | guard ms | guard share |");
    println!("|---|---:|---:|---:|---:|");
    for p in samples {
        let input = std::fs::read_to_string(&p).unwrap();
        let dictation =
            karte_guard::Dictation::new(&input, karte_core::document::default_kind()).unwrap();
        let prompt = phrase::build(
            dictation.analysis().kind,
            &floor_sections(dictation.analysis()),
        );
        let mut req = ChatRequest::new(vec![
            ChatMessage::system(&prompt.system),
            ChatMessage::user(&prompt.user),
        ]);
        req.json_schema = Some(prompt.schema.clone());
        req.max_tokens = 1024;
        let mut pieces: Vec<String> = Vec::new();
        let stats = engine
            .chat(&req, &CancelToken::new(), &mut |piece| {
                if let Piece::Text(p) = piece {
                    pieces.push(p.to_string())
                }
            })
            .expect("generate")
            .stats;
        let generate_ms = stats.generate_ms.unwrap_or(0.0);
        let guard_ms = median(
            (0..rounds)
                .map(|_| {
                    let t = Instant::now();
                    let mut g = StreamGuard::new(&dictation);
                    for piece in &pieces {
                        std::hint::black_box(g.push(piece));
                    }
                    std::hint::black_box(g.finish());
                    t.elapsed().as_secs_f64() * 1000.0
                })
                .collect(),
        );
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.3}% |",
            p.file_stem().unwrap().to_string_lossy(),
            pieces.len(),
            generate_ms,
            guard_ms,
            100.0 * guard_ms / generate_ms
        );
    }
}
