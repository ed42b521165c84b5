//! Recognition accuracy and speed on the synthetic dictations spoken by `cargo xtask voice-clips`.
//!
//!     cargo run -p karte-voice --example voice_bench -- CLIP_DIR [--voices jf_alpha,jm_kumo]
//!         [--prompt lexicon|none] [--limit N] [--split all|dev|heldout] [--uncached]
//!
//! Prints one line per clip (id, split, CER, terms found, reference and hypothesis: all synthetic text) and a summary
//! per split: mean and pooled CER, lexicon-term recall, real-time factor (decode seconds / audio seconds, model load
//! excluded). The references and the held-out ids come from the repository's tests/data/voice/dictations.tsv (its
//! `# heldout:` line): tune on `dev`, report `heldout` untouched.

use karte_voice::{audio, metrics, Options, Recogniser};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut dir = None;
    let mut voices = "jf_alpha,jm_kumo".to_string();
    let mut prompt = "lexicon".to_string();
    let mut limit = usize::MAX;
    let mut split = "all".to_string();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--voices" => voices = it.next().expect("--voices LIST").clone(),
            "--prompt" => prompt = it.next().expect("--prompt lexicon|none").clone(),
            "--limit" => limit = it.next().and_then(|n| n.parse().ok()).expect("--limit N"),
            "--uncached" => {}
            "--split" => split = it.next().expect("--split all|dev|heldout").clone(),
            d => dir = Some(PathBuf::from(d)),
        }
    }
    let dir = dir
        .expect("usage: voice_bench CLIP_DIR [--voices a,b] [--prompt lexicon|none] [--limit N]");
    let tsv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/voice/dictations.tsv"
    );
    let refs = std::fs::read_to_string(tsv).expect("tests/data/voice/dictations.tsv");
    let heldout: Vec<&str> = refs
        .lines()
        .find_map(|l| l.strip_prefix("# heldout:"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let items: Vec<(String, String)> = refs
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            l.split_once('\t')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .filter(|(id, _)| match split.as_str() {
            "dev" => !heldout.contains(&id.as_str()),
            "heldout" => heldout.contains(&id.as_str()),
            _ => true,
        })
        .take(limit)
        .collect();
    let opts = Options {
        prompt: match prompt.as_str() {
            "none" => Some(String::new()),
            _ => None,
        },
        uncached_reference: std::env::args().any(|a| a == "--uncached"),
    };
    let t0 = Instant::now();
    let mut rec =
        Recogniser::load_default().unwrap_or_else(|e| panic!("[{}] {}", e.code, e.message));
    eprintln!("model loaded in {:.1} s", t0.elapsed().as_secs_f64());
    let mut stats: [Stats; 3] = Default::default();
    for voice in voices.split(',') {
        for (id, reference) in &items {
            let path = dir.join(voice).join(format!("{id}.wav"));
            let pcm = audio::load_16k_mono(&path)
                .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.message));
            let t = Instant::now();
            let out = rec.transcribe_pcm(&pcm, &opts).expect("transcribe");
            let decode_s = t.elapsed().as_secs_f64();
            let c = metrics::cer(reference, &out.text);
            let r = metrics::normalize_spoken(reference);
            let edits = metrics::edit_distance(&r, &metrics::normalize_spoken(&out.text));
            let (h, all) = metrics::term_recall(reference, &out.text);
            let held = heldout.contains(&id.as_str());
            for k in [0, if held { 2 } else { 1 }] {
                let s = &mut stats[k];
                s.n += 1;
                s.edits += edits;
                s.ref_chars += r.len();
                s.cer_sum += c;
                s.hit += h;
                s.terms += all;
                s.audio_s += out.duration_s;
                s.decode_s += decode_s;
            }
            let tag = if held { "heldout" } else { "dev" };
            println!(
                "{voice}/{id}\t{tag}\tCER {c:.3}\tterms {h}/{all}\tref {reference}\thyp {}",
                out.text
            );
        }
    }
    for (name, s) in ["all", "dev", "heldout"].iter().zip(&stats) {
        if s.n == 0 {
            continue;
        }
        println!(
            "SUMMARY {name}: clips {}  prompt {prompt}  mean CER {:.3}  pooled CER {:.3}  term recall {}/{} = {:.3}  RTF {:.3} ({:.1} s audio, {:.1} s decoding)",
            s.n,
            s.cer_sum / s.n as f64,
            s.edits as f64 / s.ref_chars.max(1) as f64,
            s.hit,
            s.terms,
            s.hit as f64 / s.terms.max(1) as f64,
            s.decode_s / s.audio_s.max(1e-9),
            s.audio_s,
            s.decode_s
        );
    }
}

#[derive(Default)]
struct Stats {
    n: usize,
    edits: usize,
    ref_chars: usize,
    cer_sum: f64,
    hit: usize,
    terms: usize,
    audio_s: f64,
    decode_s: f64,
}
