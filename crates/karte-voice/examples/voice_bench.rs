//! Recognition accuracy and speed on the synthetic dictations spoken by `cargo xtask voice-clips`.
//!
//!     cargo run -p karte-voice --example voice_bench -- CLIP_DIR [--voices jf_alpha,jm_kumo]
//!         [--prompt lexicon|none] [--limit N]
//!
//! Prints one line per clip (id, CER, terms found, reference and hypothesis: all synthetic text) and a summary:
//! mean and pooled CER, lexicon-term recall, real-time factor (decode seconds / audio seconds, model load excluded).

use karte_voice::{audio, metrics, Options, Recogniser};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut dir = None;
    let mut voices = "jf_alpha,jm_kumo".to_string();
    let mut prompt = "lexicon".to_string();
    let mut limit = usize::MAX;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--voices" => voices = it.next().expect("--voices LIST").clone(),
            "--prompt" => prompt = it.next().expect("--prompt lexicon|none").clone(),
            "--limit" => limit = it.next().and_then(|n| n.parse().ok()).expect("--limit N"),
            d => dir = Some(PathBuf::from(d)),
        }
    }
    let dir = dir
        .expect("usage: voice_bench CLIP_DIR [--voices a,b] [--prompt lexicon|none] [--limit N]");
    let refs =
        std::fs::read_to_string(dir.join("dictations.tsv")).expect("CLIP_DIR/dictations.tsv");
    let items: Vec<(String, String)> = refs
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            l.split_once('\t')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .take(limit)
        .collect();
    let opts = Options {
        prompt: match prompt.as_str() {
            "none" => Some(String::new()),
            _ => None,
        },
    };
    let t0 = Instant::now();
    let mut rec =
        Recogniser::load_default().unwrap_or_else(|e| panic!("[{}] {}", e.code, e.message));
    eprintln!("model loaded in {:.1} s", t0.elapsed().as_secs_f64());
    let (mut edits, mut ref_chars, mut cer_sum, mut n) = (0usize, 0usize, 0.0f64, 0usize);
    let (mut hit, mut terms) = (0usize, 0usize);
    let (mut audio_s, mut decode_s) = (0.0f64, 0.0f64);
    for voice in voices.split(',') {
        for (id, reference) in &items {
            let path = dir.join(voice).join(format!("{id}.wav"));
            let pcm = audio::load_16k_mono(&path)
                .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.message));
            let t = Instant::now();
            let out = rec.transcribe_pcm(&pcm, &opts).expect("transcribe");
            decode_s += t.elapsed().as_secs_f64();
            audio_s += out.duration_s;
            let c = metrics::cer(reference, &out.text);
            let r = metrics::normalize(reference);
            edits += metrics::edit_distance(&r, &metrics::normalize(&out.text));
            ref_chars += r.len();
            cer_sum += c;
            n += 1;
            let (h, all) = metrics::term_recall(reference, &out.text);
            hit += h;
            terms += all;
            println!(
                "{voice}/{id}\tCER {c:.3}\tterms {h}/{all}\tref {reference}\thyp {}",
                out.text
            );
        }
    }
    println!(
        "SUMMARY clips {n}  prompt {prompt}  mean CER {:.3}  pooled CER {:.3}  term recall {hit}/{terms} = {:.3}  RTF {:.3} ({:.1} s audio, {:.1} s decoding)",
        cer_sum / n.max(1) as f64,
        edits as f64 / ref_chars.max(1) as f64,
        hit as f64 / terms.max(1) as f64,
        decode_s / audio_s.max(1e-9),
        audio_s,
        decode_s
    );
}
