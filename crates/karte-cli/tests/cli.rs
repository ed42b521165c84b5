//! The `karte` binary as a user runs it: real files, real stdin, real models from the cache, exit codes and JSON.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const DICTATION: &str = "65歳男性。3日前から発熱と咳嗽あり、昨日から呼吸困難も出現。咽頭痛なし。BT 38.6℃、BP 132/78mmHg、HR 104/分、SpO2 93%（室内気）。右下肺野で湿性ラ音を聴取。CRP 12.3mg/dL。市中肺炎を疑う。胸部X線を施行予定。";

fn karte() -> Command {
    Command::new(env!("CARGO_BIN_EXE_karte"))
}

fn run_with_stdin(mut cmd: Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn model_dir() -> PathBuf {
    std::env::var_os("KARTE_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/karte/models"))
}

/// The test model must be in the cache: a missing model is a set-up error, never a skipped test.
fn test_model_path() -> PathBuf {
    let p = model_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.exists(),
        "{} is missing: run `cargo xtask setup`",
        p.display()
    );
    p
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn error_code(o: &Output) -> String {
    json_of(o)["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn no_llm_draft_json_contract() {
    let mut c = karte();
    c.args(["draft", "-", "--no-llm", "--format", "json"]);
    let o = run_with_stdin(c, DICTATION.as_bytes());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d = json_of(&o);
    let chars: Vec<char> = DICTATION.chars().collect();
    for sec in ["subjective", "objective", "assessment", "plan"] {
        let list = d["sections"][sec]
            .as_array()
            .unwrap_or_else(|| panic!("{sec} missing"));
        assert!(!list.is_empty(), "{sec} is empty");
        for s in list {
            assert!(
                s["text"].is_string() && s["flags"].as_array().unwrap().is_empty(),
                "{s}"
            );
            for sp in s["spans"].as_array().unwrap() {
                let (a, b) = (
                    sp[0].as_u64().unwrap() as usize,
                    sp[1].as_u64().unwrap() as usize,
                );
                assert!(a < b && b <= chars.len(), "span {a}..{b} outside the input");
            }
        }
    }
    // Character offsets, not bytes: the O sentence with the temperature points at the original 「BT 38.6℃」.
    let o_spans = &d["sections"]["objective"][0]["spans"][0];
    let (a, b) = (
        o_spans[0].as_u64().unwrap() as usize,
        o_spans[1].as_u64().unwrap() as usize,
    );
    assert_eq!(chars[a..b].iter().collect::<String>(), "BT 38.6℃");
    let tests: Vec<&str> = d["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["test"].as_str().unwrap())
        .collect();
    assert!(
        tests.contains(&"血算") && !tests.contains(&"胸部X線"),
        "{tests:?}"
    );
    for s in d["suggestions"].as_array().unwrap() {
        assert!(
            s["rule"].as_str().unwrap().contains('@')
                && s["reason"].is_string()
                && !s["spans"].as_array().unwrap().is_empty()
        );
    }
    assert_eq!(d["engine"]["kind"], "rules");
    assert!(d["timings_ms"]["total"].is_u64());
}

#[test]
fn text_output_has_japanese_headings() {
    let mut c = karte();
    c.args(["draft", "--no-llm"]);
    let o = run_with_stdin(c, DICTATION.as_bytes());
    let out = String::from_utf8(o.stdout).unwrap();
    for h in [
        "S（主観的情報）",
        "O（客観的情報）",
        "A（評価）",
        "P（計画）",
        "検査提案",
        "ルールのみ",
    ] {
        assert!(out.contains(h), "{h} missing in:\n{out}");
    }
}

/// Bad input: a stable code, a Japanese message, the documented exit status, and no dictation text on stderr.
#[test]
fn bad_input_table() {
    let big = "発熱あり。".repeat(5000);
    let cases: Vec<(&str, Vec<u8>, &str, i32)> = vec![
        ("empty", b"".to_vec(), "input.empty", 2),
        ("blank", "　\n ".as_bytes().to_vec(), "input.empty", 2),
        ("too large", big.as_bytes().to_vec(), "input.too_large", 2),
        (
            "invalid utf-8",
            vec![0xe7, 0x99, 0xba, 0xff, 0xfe, 0x41],
            "input.invalid_utf8",
            2,
        ),
        (
            "shift_jis",
            vec![0x94, 0xad, 0x94, 0x4d],
            "input.invalid_utf8",
            2,
        ),
    ];
    for (name, input, code, status) in cases {
        let mut c = karte();
        c.args(["draft", "--no-llm", "--format", "json"]);
        let o = run_with_stdin(c, &input);
        assert_eq!(o.status.code(), Some(status), "{name}");
        assert_eq!(error_code(&o), code, "{name}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("[{code}]")) && !err.contains("発熱あり。発熱"),
            "{name}: {err}"
        );
    }
    let o = karte()
        .args([
            "draft",
            "/nonexistent/x.txt",
            "--no-llm",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(error_code(&o), "input.unreadable");
}

/// Every reader stops at its limit: a device or an endless pipe is `input.too_large` after a bounded read, not
/// after reading gigabytes into memory (abuse test F4: 16 GB from the zero device in 16 s).
#[test]
fn endless_and_device_input_is_refused_at_the_limit() {
    let readers: &[&[&str]] = &[
        &["draft", "--no-llm"],
        &["scan"],
        &["redact"],
        &["guard", "check"],
    ];
    for args in readers {
        let o = karte().args(*args).arg("/dev/zero").output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("[input.too_large]"), "{args:?}: {err}");
    }

    // An endless pipe: the writer keeps going until the reader stops taking bytes.
    let mut child = karte()
        .args(["draft", "-", "--no-llm"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let line = "発熱と咳嗽あり\n".repeat(256);
        let mut written = 0usize;
        // 256 MiB is where the old reader would still be reading; the bounded one stops 3 orders earlier.
        while written < 256 << 20 {
            match stdin.write_all(line.as_bytes()) {
                Ok(()) => written += line.len(),
                Err(_) => break,
            }
        }
        written
    });
    let o = child.wait_with_output().unwrap();
    let written = writer.join().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("[input.too_large]"));
    assert!(
        written < 4 << 20,
        "{written} bytes were taken from the pipe before the answer"
    );
}

fn draft_with_model(model: &str, dir: Option<&Path>) -> Output {
    let mut c = karte();
    c.args(["draft", "-", "--format", "json", "--model", model]);
    if let Some(d) = dir {
        c.env("KARTE_MODEL_DIR", d);
    }
    run_with_stdin(c, DICTATION.as_bytes())
}

#[test]
fn model_problems_table() {
    let real = test_model_path();
    let dir = tempfile::tempdir().unwrap();
    // Missing: the message names the exact command that fetches it.
    let o = draft_with_model("smollm2-135m", Some(dir.path()));
    assert_eq!(error_code(&o), "model.not_found");
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("karte model fetch smollm2-135m"));
    // Unknown name.
    assert_eq!(
        error_code(&draft_with_model("gpt-9", None)),
        "model.unknown"
    );
    // Truncated: the first 10 MB of the real file.
    let bytes = std::fs::read(&real).unwrap();
    let target = dir.path().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    std::fs::write(&target, &bytes[..10 << 20]).unwrap();
    assert_eq!(
        error_code(&draft_with_model("smollm2-135m", Some(dir.path()))),
        "model.truncated"
    );
    // Tampered: right size, one byte flipped in the middle.
    let mut t = bytes.clone();
    let mid = t.len() / 2;
    t[mid] ^= 0x55;
    std::fs::write(&target, &t).unwrap();
    assert_eq!(
        error_code(&draft_with_model("smollm2-135m", Some(dir.path()))),
        "model.checksum_mismatch"
    );
    // A path that is not a GGUF file.
    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, b"this is not a model").unwrap();
    assert_eq!(
        error_code(&draft_with_model(junk.to_str().unwrap(), None)),
        "model.load_failed"
    );
    // Too large for free memory: a sparse 1 TiB file with a GGUF header is refused before loading.
    let huge = dir.path().join("huge.gguf");
    let f = std::fs::File::create(&huge).unwrap();
    (&f).write_all(b"GGUF\x03\x00\x00\x00").unwrap();
    f.set_len(1 << 40).unwrap();
    let o = draft_with_model(huge.to_str().unwrap(), None);
    assert_eq!(
        error_code(&o),
        "model.insufficient_memory",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The real test model drafts through the whole pipeline: the output is the documented JSON shape, every sentence
/// is either cited or flagged, and the engine reports its throughput.
#[test]
fn model_draft_with_test_model() {
    test_model_path();
    let o = draft_with_model("smollm2-135m", None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d = json_of(&o);
    assert_eq!(d["engine"]["kind"], "local");
    assert_eq!(d["engine"]["model"], "smollm2-135m");
    let total: usize = ["subjective", "objective", "assessment", "plan"]
        .iter()
        .map(|s| d["sections"][s].as_array().unwrap().len())
        .sum();
    assert!(total > 0);
    for sec in ["subjective", "objective", "assessment", "plan"] {
        for s in d["sections"][sec].as_array().unwrap() {
            let cited = !s["spans"].as_array().unwrap().is_empty();
            let flagged = s["flags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["code"] == "no_source");
            assert!(cited || flagged, "uncited sentence without a flag: {s}");
        }
    }
    assert!(d["timings_ms"]["generate"].is_u64());
}

#[test]
fn model_list_names_both_models() {
    let o = karte().args(["model", "list"]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("qwen2.5-coder-0.5b（既定）") && out.contains("smollm2-135m"),
        "{out}"
    );
}

/// `karte transcribe` on the committed TTS clip (synthetic dictation, 3.9 s at 24 kHz) with the real Whisper base,
/// and the refusal of a file that is not audio.
#[test]
fn transcribe_a_dictation_and_refuse_what_is_not_audio() {
    let clip =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/voice/d03-jf_alpha.wav");
    let o = karte()
        .args(["transcribe", "--format", "json"])
        .arg(&clip)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = json_of(&o);
    let text = t["text"].as_str().unwrap();
    assert!(text.contains("セフトリアキソン"), "{t}");
    assert!(t["speech_s"].as_f64().unwrap() > 1.0, "{t}");
    assert!(
        t["engine"].as_str().unwrap().starts_with("whisper-base"),
        "{t}"
    );
    // Whisper base hears 市中肺炎 as 指重肺炎 on this clip; the near-homophone correction (its dictionaries are built
    // by `cargo xtask setup`) puts the lexicon term back and says what it replaced, where.
    assert!(t.get("correction_note").is_none(), "{t}");
    let fixes = t["corrections"].as_array().expect("corrections array");
    assert!(
        fixes.iter().any(|c| c["to"] == "市中肺炎"
            && c["from"]
                .as_str()
                .is_some_and(|f| !f.is_empty() && f != "市中肺炎")
            && c["at"].as_u64().is_some()),
        "{t}"
    );
    assert!(text.contains("市中肺炎"), "{t}");

    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("録音.m4a");
    std::fs::write(&junk, b"\0\0\0\x20ftypM4A not decoded here").unwrap();
    let o = karte()
        .args(["transcribe", "--format", "json"])
        .arg(&junk)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(error_code(&o), "audio.unsupported");
}

/// A WAV file of `seconds` of digital silence (16 kHz, 16-bit mono), written out by hand.
fn silent_wav(path: &Path, seconds: u32) {
    let data_len = 16_000 * 2 * seconds;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&16_000u32.to_le_bytes());
    b.extend_from_slice(&32_000u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    b.resize(b.len() + data_len as usize, 0);
    std::fs::write(path, b).unwrap();
}

#[test]
fn draft_from_a_recording_and_say_when_it_holds_no_speech() {
    let clip =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/voice/d03-jf_alpha.wav");
    let draft_audio = |file: &Path| {
        karte()
            .args(["draft", "--no-llm", "--format", "json", "--audio"])
            .arg(file)
            .output()
            .unwrap()
    };
    let o = draft_audio(&clip);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d = json_of(&o);
    // The drug the physician said is in the draft's plan, cited from the heard text.
    let plan = d["sections"]["plan"].to_string();
    assert!(plan.contains("セフトリアキソン"), "{d}");

    let dir = tempfile::tempdir().unwrap();
    let silence = dir.path().join("silence.wav");
    silent_wav(&silence, 2);
    let o = draft_audio(&silence);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(error_code(&o), "audio.no_speech");
}
