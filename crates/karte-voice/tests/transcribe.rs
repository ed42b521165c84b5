//! The real recogniser: Whisper base, fetched and verified (`cargo xtask fetch-model whisper-base`; `cargo xtask
//! test` fetches it before the workspace tests, as it fetches the test LLM).
//!
//! Not ignored: silence and noise (model load only; the voice-activity gate must keep the model from running).
//! Ignored by a plain `cargo test`, because they decode speech from a TTS clip (`cargo xtask voice-clips 1`, which
//! needs the TTS venv): the dictation check and the cache-equivalence check (the uncached reference decoder is
//! slow), and music, synthetic and recorded (decoded: it passes the gate). `cargo xtask voice-test` prepares the
//! clips and runs them with `--include-ignored`.

use karte_voice::{metrics, Options, Recogniser};
use std::path::PathBuf;

fn clips() -> PathBuf {
    std::env::var_os("KARTE_VOICE_CLIPS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/karte/voice-clips"))
}

fn recogniser() -> Recogniser {
    Recogniser::load_default().unwrap_or_else(|e| {
        panic!(
            "[{}] {} (run `cargo xtask fetch-model whisper-base`)",
            e.code, e.message
        )
    })
}

fn clip(id: &str) -> Vec<f32> {
    let path = clips().join(id);
    assert!(
        path.is_file(),
        "{} missing: run `cargo xtask voice-clips 1`",
        path.display()
    );
    karte_voice::audio::load_16k_mono(&path).unwrap()
}

/// Deterministic hiss (xorshift), uniform in [-amp, amp].
fn noise(n: usize, amp: f32) -> Vec<f32> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0) * amp
        })
        .collect()
}

/// Ten seconds of silence and of steady noise give no text (no 「ご視聴ありがとうございました」, no 「BGM、音楽」), and
/// say that there was no speech: the gate stops them before the model, whose answer on them is a hallucination.
#[test]
fn silence_and_noise_give_no_text() {
    let mut rec = recogniser();
    let n = 16_000 * 10;
    for (what, pcm) in [
        ("silence", vec![0.0f32; n]),
        ("quiet hiss", noise(n, 0.003)),
        ("loud hiss", noise(n, 0.3)),
    ] {
        let t = rec.transcribe_pcm(&pcm, &Options::default()).unwrap();
        assert!(
            t.segments.is_empty() && t.text.is_empty(),
            "{what}: {:?}",
            t.text
        );
        assert!(t.no_speech(), "{what}: speech_s {}", t.speech_s);
        assert!((t.duration_s - 10.0).abs() < 1e-9);
    }
}

/// A dictation spoken by the TTS is transcribed with its medical terms, with ordered segment times inside the
/// recording, also when it is surrounded by long silences and noise (which the gate cuts out; times still refer to
/// the original recording).
#[test]
#[ignore = "decodes speech (a minute or more in the debug build); needs a TTS clip: cargo xtask voice-test"]
fn dictation_is_transcribed() {
    let mut rec = recogniser();
    let reference = "三日前から発熱と咳嗽があり、本日から呼吸困難を自覚している。";
    let speech = clip("jf_alpha/d01.wav");
    let t = rec.transcribe_pcm(&speech, &Options::default()).unwrap();
    eprintln!("hyp: {}", t.text);
    let cer = metrics::cer(reference, &t.text);
    assert!(cer < 0.35, "CER {cer:.3}: {}", t.text);
    for term in ["発熱", "呼吸困難"] {
        assert!(t.text.contains(term), "{term} missing from {}", t.text);
    }
    assert!(!t.segments.is_empty() && !t.no_speech());
    assert!(t.engine.starts_with("whisper-base"));

    // 8 s of quiet hiss, the dictation, 8 s more: same words, times shifted by the leading 8 s.
    let lead = 16_000 * 8;
    let mut padded = noise(lead, 0.002);
    padded.extend(
        speech
            .iter()
            .zip(noise(speech.len(), 0.002))
            .map(|(a, b)| a + b),
    );
    padded.extend(noise(lead, 0.002));
    let p = rec.transcribe_pcm(&padded, &Options::default()).unwrap();
    eprintln!("padded hyp: {}", p.text);
    let cer_p = metrics::cer(reference, &p.text);
    assert!(cer_p < 0.35, "CER {cer_p:.3}: {}", p.text);
    assert!(
        p.speech_s < p.duration_s - 10.0,
        "gate kept {} s",
        p.speech_s
    );
    let first = &p.segments[0];
    let last = p.segments.last().unwrap();
    assert!(first.start_s >= 7.0 && first.start_s < 9.0, "{first:?}");
    assert!(last.end_s <= p.duration_s - 7.0, "{last:?}");
    assert!(p
        .segments
        .windows(2)
        .all(|w| w[0].end_s <= w[1].start_s + 1e-6));
}

/// The decoder's key/value cache changes the cost, not the result: candle's uncached decoder (every token re-run
/// at every step) gives the same transcript on two clips, one per voice.
#[test]
#[ignore = "runs the slow uncached reference decoder; needs TTS clips: cargo xtask voice-test"]
fn kv_cache_leaves_the_transcript_unchanged() {
    let mut rec = recogniser();
    for id in ["jf_alpha/d01.wav", "jm_kumo/d01.wav"] {
        let pcm = clip(id);
        let cached = rec.transcribe_pcm(&pcm, &Options::default()).unwrap();
        let reference = rec
            .transcribe_pcm(
                &pcm,
                &Options {
                    uncached_reference: true,
                    ..Default::default()
                },
            )
            .unwrap();
        eprintln!("{id}: {}", cached.text);
        assert!(!cached.text.is_empty());
        assert_eq!(cached.text, reference.text, "{id}");
        assert_eq!(cached.segments.len(), reference.segments.len(), "{id}");
        for (a, b) in cached.segments.iter().zip(&reference.segments) {
            assert_eq!((a.start_s, a.end_s), (b.start_s, b.end_s), "{id}");
            assert!((a.no_speech_prob - b.no_speech_prob).abs() < 1e-3, "{id}");
        }
    }
}

/// Ten seconds of synthetic music (a piano-like melody over a quiet chord, notes struck every 0.4 s) gives no text:
/// it passes the energy gate (its loudness moves like speech), so Whisper's no-speech probability and the loop guard
/// must stop it.
#[test]
#[ignore = "decodes a window of music (about a minute in the debug build on a busy machine); cargo xtask voice-test"]
fn music_gives_no_text() {
    let mut rec = recogniser();
    let sr = 16_000.0f32;
    let melody = [261.63, 329.63, 392.0, 523.25, 392.0, 329.63, 293.66, 349.23];
    let chord = [130.81, 164.81, 196.0];
    let pcm: Vec<f32> = (0..16_000 * 10)
        .map(|i| {
            let t = i as f32 / sr;
            let note = (t / 0.4) as usize;
            let since = t - note as f32 * 0.4;
            let env = (-since * 6.0).exp();
            let f = melody[note % melody.len()];
            let tone = |f: f32| {
                (1..=4)
                    .map(|h| (2.0 * std::f32::consts::PI * f * h as f32 * t).sin() / h as f32)
                    .sum::<f32>()
            };
            0.2 * env * tone(f) + 0.01 * chord.iter().map(|c| tone(*c)).sum::<f32>()
        })
        .collect();
    let t = rec.transcribe_pcm(&pcm, &Options::default()).unwrap();
    assert!(
        t.text.is_empty(),
        "music: {:?} (speech_s {})",
        t.text,
        t.speech_s
    );
}

/// A recorded music clip (`music-house_lo.mp3`: 7 s of a house-music loop with drums and bass, an 11 kHz MP3 as a
/// phone might leave it, from the pygame wheel's example data; `cargo xtask voice-clips` fetches it) gives no text,
/// heard whole and looped to fill Whisper's 30-s window.
#[test]
#[ignore = "decodes music (about a minute in the debug build on a busy machine); cargo xtask voice-test"]
fn recorded_music_gives_no_text() {
    let mut rec = recogniser();
    let once = clip("music-house_lo.mp3");
    assert!(once.len() > 16_000 * 6, "{} samples", once.len());
    let looped: Vec<f32> = once.iter().cycle().take(once.len() * 4).copied().collect();
    for pcm in [&once, &looped] {
        let t = rec.transcribe_pcm(pcm, &Options::default()).unwrap();
        let windows: Vec<_> = t
            .segments
            .iter()
            .map(|s| {
                (
                    s.no_speech_prob,
                    s.avg_logprob,
                    s.text.chars().take(20).collect::<String>(),
                )
            })
            .collect();
        assert!(
            t.text.is_empty(),
            "music: speech_s {}, windows (no-speech, log-probability, text) {windows:?}",
            t.speech_s
        );
    }
}
