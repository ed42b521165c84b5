//! `/v1/audio/transcriptions` end to end: a real karte-server, the real Whisper base model from the offline cache,
//! one committed TTS clip (tests/data/voice/d03-jf_alpha.wav, 3.9 s, 24 kHz), and the official `openai` Python
//! client.

mod common;

use common::{new_token, serial, Server};
use std::path::Path;

const REFERENCE: &str = "市中肺炎と診断し、セフトリアキソンを開始する。";

fn silence_wav(path: &Path) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for _ in 0..16_000 * 3 {
        w.write_sample(0i16).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn openai_client_transcribes_speech_gets_nothing_for_silence_and_clear_refusals() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), &[]);
    let (_, token) = new_token(&srv.base, "ward3-pc07", serde_json::json!({}));
    let speech =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/voice/d03-jf_alpha.wav");
    let silence = dir.path().join("silence.wav");
    silence_wav(&silence);
    let v = common::python_client(
        "openai_transcribe.py",
        &[
            &srv.base,
            &token,
            speech.to_str().unwrap(),
            silence.to_str().unwrap(),
        ],
    );

    let text = v["verbose"]["text"].as_str().unwrap();
    let cer = karte_voice::metrics::cer(REFERENCE, text);
    eprintln!("transcript (synthetic dictation): {text} — CER {cer:.3}");
    assert!(cer <= 0.35, "CER {cer:.3}: {text}");
    assert_eq!(v["verbose"]["language"], "japanese", "{v}");
    let duration = v["verbose"]["duration"].as_f64().unwrap();
    assert!((duration - 3.91).abs() < 0.05, "{v}");
    let segments = v["verbose"]["segments"].as_array().unwrap();
    assert!(!segments.is_empty(), "{v}");
    for s in segments {
        let (start, end) = (s["start"].as_f64().unwrap(), s["end"].as_f64().unwrap());
        assert!(0.0 <= start && start < end && end <= duration + 0.5, "{v}");
    }
    // verbose_json lists the near-homophone corrections (Whisper base hears 市中肺炎 as 指重肺炎 on this clip), which
    // the openai client keeps as an extra field.
    let fixes = v["verbose"]["corrections"].as_array().expect("corrections");
    assert!(
        fixes
            .iter()
            .any(|c| c["to"] == "市中肺炎" && c["from"] != "市中肺炎" && c["at"].is_u64()),
        "{v}"
    );
    // The same audio in the default JSON form gives the same text (decoding is deterministic).
    assert_eq!(v["json"], v["verbose"]["text"], "{v}");
    assert_eq!(v["silence"], "", "silence must give no text: {v}");
    assert_eq!(v["not_audio"]["status"], 400, "{v}");
    assert_eq!(v["not_audio"]["code"], "audio.unsupported", "{v}");
    assert_eq!(v["bad_token"], 401, "{v}");

    // The audit trail has the transcriptions, with lengths and never the words.
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let entries: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["event"] == "transcription")
        .collect();
    assert_eq!(entries.len(), 4, "{audit}");
    assert!(entries[0]["speech_ms"].as_u64().unwrap() > 1000, "{audit}");
    assert_eq!(entries[2]["speech_ms"], 0, "{audit}");
    assert_eq!(entries[3]["error"], "audio.unsupported", "{audit}");
    assert!(!text.is_empty() && !audit.contains(text), "{audit}");
}
