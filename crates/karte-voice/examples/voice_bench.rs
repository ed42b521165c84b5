//! Recognition accuracy and speed on the synthetic dictations spoken by `cargo xtask voice-clips`.
//!
//!     cargo run -p karte-voice --example voice_bench -- CLIP_DIR [--voices jf_alpha,jm_kumo]
//!         [--prompt lexicon|none] [--limit N] [--split all|dev|heldout] [--uncached] [--raw-cache FILE]
//!
//! Prints one line per clip (id, split, CER and terms found before → after the near-homophone correction,
//! reference, hypothesis, corrected hypothesis and the replacements: all synthetic text) and a summary per split and
//! column: mean and pooled CER, lexicon-term recall, real-time factor (decode seconds / audio seconds, model load
//! excluded). With `--raw-cache`, Whisper's output per clip is kept in FILE (outside the repository) and reused, so
//! that the correction can be scored again without decoding again. The references and the held-out ids come from the repository's tests/data/voice/dictations.tsv (its
//! `# heldout:` line): tune on `dev`, report `heldout` untouched.

use karte_voice::{audio, correct, metrics, Options, Recogniser};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut dir = None;
    let mut voices = "jf_alpha,jm_kumo".to_string();
    let mut prompt = "lexicon".to_string();
    let mut limit = usize::MAX;
    let mut split = "all".to_string();
    let mut cache: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--voices" => voices = it.next().expect("--voices LIST").clone(),
            "--prompt" => prompt = it.next().expect("--prompt lexicon|none").clone(),
            "--limit" => limit = it.next().and_then(|n| n.parse().ok()).expect("--limit N"),
            "--uncached" => {}
            "--raw-cache" => cache = Some(PathBuf::from(it.next().expect("--raw-cache FILE"))),
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
        raw: true,
    };
    let mut raw = RawCache::load(cache, &prompt);
    let mut rec: Option<Recogniser> = None;
    let mut stats: [[Stats; 2]; 3] = Default::default();
    let mut warned = false;
    for voice in voices.split(',') {
        for (id, reference) in &items {
            let key = format!("{voice}/{id}");
            let out = match raw.get(&key) {
                Some(hit) => hit,
                None => {
                    let rec = rec.get_or_insert_with(|| {
                        let t0 = Instant::now();
                        let r = Recogniser::load_default()
                            .unwrap_or_else(|e| panic!("[{}] {}", e.code, e.message));
                        eprintln!("model loaded in {:.1} s", t0.elapsed().as_secs_f64());
                        r
                    });
                    let path = dir.join(voice).join(format!("{id}.wav"));
                    let pcm = audio::load_16k_mono(&path)
                        .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.message));
                    let t = Instant::now();
                    let tr = rec.transcribe_pcm(&pcm, &opts).expect("transcribe");
                    // Each kept window's confidence, to see how far speech stays from the silence thresholds.
                    for s in &tr.segments {
                        eprintln!(
                            "WINDOW {key}\tno_speech {:.3}\tavg_logprob {:.3}",
                            s.no_speech_prob, s.avg_logprob
                        );
                    }
                    let got = Raw {
                        text: tr.text,
                        duration_s: tr.duration_s,
                        decode_s: t.elapsed().as_secs_f64(),
                    };
                    raw.put(&key, &got);
                    got
                }
            };
            let decode_s = out.decode_s;
            // The correction pass on the decoded text (the recogniser applies it per segment; these clips are one
            // or two sentences). Without its dictionaries the "after" column equals "before".
            let (corrected, fixes) = match correct::correct(&out.text) {
                Ok(x) => x,
                Err(e) => {
                    if !warned {
                        eprintln!("correction skipped: {}", e.message);
                        warned = true;
                    }
                    (out.text.clone(), Vec::new())
                }
            };
            let r = metrics::normalize_spoken(reference);
            let held = heldout.contains(&id.as_str());
            let mut cols = [(0.0, 0, 0, 0); 2];
            for (col, hyp) in [out.text.as_str(), corrected.as_str()]
                .into_iter()
                .enumerate()
            {
                let c = metrics::cer(reference, hyp);
                let edits = metrics::edit_distance(&r, &metrics::normalize_spoken(hyp));
                let (h, all) = metrics::term_recall(reference, hyp);
                cols[col] = (c, edits, h, all);
                for k in [0, if held { 2 } else { 1 }] {
                    let s = &mut stats[k][col];
                    s.n += 1;
                    s.edits += edits;
                    s.ref_chars += r.len();
                    s.cer_sum += c;
                    s.hit += h;
                    s.terms += all;
                    s.audio_s += out.duration_s;
                    s.decode_s += decode_s;
                }
            }
            let tag = if held { "heldout" } else { "dev" };
            let [b, a] = cols;
            let fixes: Vec<String> = fixes
                .iter()
                .map(|f| format!("{}→{}", f.from, f.to))
                .collect();
            println!(
                "{voice}/{id}\t{tag}\tCER {:.3} → {:.3}\tterms {}/{} → {}/{}\tref {reference}\thyp {}\tcorrected {corrected}\t[{}]",
                b.0, a.0, b.2, b.3, a.2, a.3, out.text, fixes.join(" ")
            );
        }
    }
    for (name, s) in ["all", "dev", "heldout"].iter().zip(&stats) {
        for (col, s) in ["before", "after"].iter().zip(s) {
            if s.n == 0 {
                continue;
            }
            println!(
                "SUMMARY {name} {col:>6} correction: clips {}  prompt {prompt}  mean CER {:.3}  pooled CER {:.3}  term recall {}/{} = {:.3}  RTF {:.3} ({:.1} s audio, {:.1} s decoding)",
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
}

/// One clip's Whisper output before correction.
#[derive(Clone)]
struct Raw {
    text: String,
    duration_s: f64,
    decode_s: f64,
}

/// Raw transcripts kept in a file outside the repository (`--raw-cache FILE`, one line per clip:
/// `prompt<TAB>voice/id<TAB>duration_s<TAB>decode_s<TAB>text`), so that the correction pass can be tuned and scored
/// again without decoding the clips again. Decoding is deterministic (greedy), so a cached line is what a new run
/// would produce; delete the file after changing the recogniser.
struct RawCache {
    path: Option<PathBuf>,
    prompt: String,
    lines: std::collections::HashMap<String, Raw>,
}

impl RawCache {
    fn load(path: Option<PathBuf>, prompt: &str) -> Self {
        let mut lines = std::collections::HashMap::new();
        if let Some(text) = path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
            for l in text.lines() {
                let f: Vec<&str> = l.splitn(5, '\t').collect();
                if let [p, key, dur, dec, t] = f[..] {
                    if p == prompt {
                        lines.insert(
                            key.to_string(),
                            Raw {
                                text: t.to_string(),
                                duration_s: dur.parse().unwrap_or(0.0),
                                decode_s: dec.parse().unwrap_or(0.0),
                            },
                        );
                    }
                }
            }
        }
        RawCache {
            path,
            prompt: prompt.to_string(),
            lines,
        }
    }

    fn get(&self, key: &str) -> Option<Raw> {
        self.lines.get(key).cloned()
    }

    fn put(&mut self, key: &str, r: &Raw) {
        if let Some(p) = &self.path {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let text = r.text.replace(['\t', '\n'], " ");
            writeln!(
                f,
                "{}\t{key}\t{}\t{}\t{text}",
                self.prompt, r.duration_s, r.decode_s
            )
            .expect("write raw cache");
        }
        self.lines.insert(key.to_string(), r.clone());
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
