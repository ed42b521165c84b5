//! Engine tests against the real SmolLM2-135M file.
//!
//! All model tests live in this one binary and take `SERIAL` first: each loads llama.cpp with OpenMP threads, and two
//! at once on a 2-core machine make both crawl (and make timing-sensitive cancel tests flaky).

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use karte_engine::{
    CancelToken, ChatMessage, Code, Engine, EngineConfig, GenEvent, GenerateRequest, StopReason,
};
use serde_json::Value;

static SERIAL: Mutex<()> = Mutex::new(());

const TEST_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn serial() -> MutexGuard<'static, ()> {
    // A failed test poisons the mutex; the others should still run.
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn model_path() -> PathBuf {
    let dir = std::env::var_os("KARTE_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/karte/models"));
    let path = dir.join(TEST_MODEL);
    assert!(
        path.is_file(),
        "test model {} is missing: run `cargo xtask setup` (or point KARTE_MODEL_DIR at a folder that has it)",
        path.display()
    );
    path
}

fn config(path: PathBuf) -> EngineConfig {
    EngineConfig {
        n_ctx: 2048,
        n_threads: Some(2),
        ..EngineConfig::new(path, "smollm2-135m")
    }
}

fn load() -> Engine {
    Engine::load(config(model_path())).expect("test model loads")
}

fn chat(user: &str) -> GenerateRequest {
    GenerateRequest {
        max_tokens: 48,
        ..GenerateRequest::new(vec![
            ChatMessage::system("You are a concise assistant."),
            ChatMessage::user(user),
        ])
    }
}

fn soap_schema() -> Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "subjective": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string"},
                        "facts": {"type": "array", "items": {"type": "integer"}}
                    },
                    "required": ["text", "facts"]
                }
            }
        },
        "required": ["subjective"]
    })
}

/// Structural check of the schema above, written out so a grammar bug cannot hide behind a lenient validator.
fn validate_soap(v: &Value) -> Result<(), String> {
    let obj = v.as_object().ok_or("root is not an object")?;
    let subj = obj
        .get("subjective")
        .ok_or("missing subjective")?
        .as_array()
        .ok_or("subjective is not an array")?;
    for (i, item) in subj.iter().enumerate() {
        let item = item
            .as_object()
            .ok_or(format!("subjective[{i}] is not an object"))?;
        item.get("text")
            .and_then(Value::as_str)
            .ok_or(format!("subjective[{i}].text missing or not a string"))?;
        let facts = item
            .get("facts")
            .and_then(Value::as_array)
            .ok_or(format!("subjective[{i}].facts missing or not an array"))?;
        for f in facts {
            if !(f.is_i64() || f.is_u64()) {
                return Err(format!("subjective[{i}].facts has a non-integer: {f}"));
            }
        }
    }
    Ok(())
}

#[test]
fn json_schema_output_parses_and_validates() {
    let _g = serial();
    let engine = load();
    assert!(engine.info().n_params > 100_000_000);
    assert!(engine.info().n_ctx_train >= 2048);
    let req = GenerateRequest {
        json_schema: Some(soap_schema()),
        max_tokens: 400,
        ..GenerateRequest::new(vec![
            // A 135M model needs the shape spelled out, or it counts facts up to max_tokens (the engine then
            // correctly reports EngineBadOutput, see the next test).
            ChatMessage::system(
                r#"Return JSON like {"subjective": [{"text": "cough", "facts": [1]}]}. One item per complaint; facts are the sentence numbers."#,
            ),
            ChatMessage::user(
                "Sentences: [1] I have had a headache since yesterday. [2] I feel a little dizzy.",
            ),
        ])
    };
    let (text, stats) = engine
        .generate(req, &CancelToken::new(), &mut |_| {})
        .expect("constrained generation succeeds");
    let v: Value = serde_json::from_str(&text).expect("output parses as JSON");
    validate_soap(&v).unwrap_or_else(|e| panic!("schema violation: {e}; output: {text}"));
    assert_eq!(stats.stop, StopReason::Eos);
    assert!(stats.generated_tokens > 0 && stats.prompt_tokens > 0);
}

#[test]
fn grammar_cut_by_max_tokens_is_bad_output_not_broken_json() {
    let _g = serial();
    let engine = load();
    let req = GenerateRequest {
        json_schema: Some(soap_schema()),
        max_tokens: 5,
        ..chat("List the complaints: headache, dizziness, nausea.")
    };
    let err = engine
        .generate(req, &CancelToken::new(), &mut |_| {})
        .unwrap_err();
    assert_eq!(err.code, Code::EngineBadOutput);
    // The engine is still usable afterwards.
    let (_, stats) = engine
        .generate(chat("Say hello."), &CancelToken::new(), &mut |_| {})
        .unwrap();
    assert!(stats.generated_tokens > 0);
}

#[test]
fn streamed_tokens_concatenate_to_the_returned_text() {
    let _g = serial();
    let engine = load();
    let mut streamed = String::new();
    let mut pieces = 0;
    let (text, stats) = engine
        .generate(chat("Name three fruits."), &CancelToken::new(), &mut |t| {
            streamed.push_str(t);
            pieces += 1;
        })
        .unwrap();
    assert_eq!(streamed, text);
    assert!(stats.generated_tokens > 0, "{stats:?}");
    assert!(pieces > 0);
    assert!(stats.prompt_ms > 0.0 && stats.generate_ms > 0.0);

    // Same greedy request through the raw event stream: identical text (the KV cache was cleared in between).
    let mut from_events = String::new();
    let mut done = None;
    for ev in engine.submit(chat("Name three fruits."), CancelToken::new()) {
        match ev {
            GenEvent::Token(t) => from_events.push_str(&t),
            GenEvent::Done(s) => done = Some(s),
            GenEvent::Error(e) => panic!("unexpected error: {e}"),
        }
    }
    let done = done.expect("a Done event ends the stream");
    assert_eq!(from_events, text);
    assert_eq!(done.generated_tokens, stats.generated_tokens);
}

#[test]
fn japanese_prompt_streams_valid_utf8() {
    let _g = serial();
    let engine = load();
    let mut pieces = Vec::new();
    let (text, _) = engine
        .generate(
            chat("「頭痛」を英語に翻訳してください。日本語でも答えてください。"),
            &CancelToken::new(),
            &mut |t| pieces.push(t.to_owned()),
        )
        .unwrap();
    assert_eq!(pieces.concat(), text);
    assert!(
        engine
            .tokenize_count("患者は昨日から頭痛を訴えている。")
            .unwrap()
            > 0
    );
}

#[test]
fn cancel_after_first_token_is_engine_cancelled() {
    let _g = serial();
    let engine = load();
    let cancel = CancelToken::new();
    let mut seen = 0;
    let req = GenerateRequest {
        max_tokens: 200,
        ..chat("Write a long story about a cat.")
    };
    let err = engine
        .generate(req.clone(), &cancel, &mut |_| {
            seen += 1;
            cancel.cancel();
        })
        .unwrap_err();
    assert_eq!(err.code, Code::EngineCancelled);
    assert!(
        (1..=2).contains(&seen),
        "stopped promptly, saw {seen} pieces"
    );

    // On the event stream a cancel ends with Done(Cancelled).
    let cancel = CancelToken::new();
    let rx = engine.submit(req, cancel.clone());
    let mut last = None;
    for ev in rx {
        if let GenEvent::Token(_) = ev {
            cancel.cancel();
        }
        last = Some(ev);
    }
    match last {
        Some(GenEvent::Done(s)) => assert_eq!(s.stop, StopReason::Cancelled),
        other => panic!("expected Done(Cancelled), got {other:?}"),
    }
}

#[test]
fn missing_file_is_model_not_found() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let err = Engine::load(config(dir.path().join("nope.gguf"))).unwrap_err();
    assert_eq!(err.code, Code::ModelNotFound);
    assert!(err.message.contains("nope.gguf"));
    assert!(
        !err.message.contains(&*dir.path().to_string_lossy()),
        "no directories in messages"
    );
}

#[test]
fn truncated_model_is_an_error_not_a_crash() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.gguf");
    let mut head = vec![0u8; 1024 * 1024];
    File::open(model_path())
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    File::create(&cut).unwrap().write_all(&head).unwrap();
    let err = Engine::load(config(cut)).unwrap_err();
    assert!(
        matches!(err.code, Code::ModelTruncated | Code::ModelLoadFailed),
        "unexpected code {:?}: {}",
        err.code,
        err.message
    );
}

#[test]
fn garbage_files_are_errors() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let plain = dir.path().join("garbage.gguf");
    std::fs::write(&plain, noise(64 * 1024)).unwrap();
    let err = Engine::load(config(plain)).unwrap_err();
    assert_eq!(err.code, Code::ModelLoadFailed);

    // Right magic, nonsense after it.
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(noise(64 * 1024));
    let magic = dir.path().join("magic.gguf");
    std::fs::write(&magic, bytes).unwrap();
    let err = Engine::load(config(magic)).unwrap_err();
    assert!(
        matches!(err.code, Code::ModelTruncated | Code::ModelLoadFailed),
        "{err}"
    );

    let empty = dir.path().join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(
        Engine::load(config(empty)).unwrap_err().code,
        Code::ModelTruncated
    );
}

#[test]
fn huge_sparse_model_is_insufficient_memory_before_loading() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.gguf");
    let mut f = File::create(&path).unwrap();
    // A well-formed, empty GGUF v3 header: the only problem is the size.
    f.write_all(b"GGUF").unwrap();
    f.write_all(&3u32.to_le_bytes()).unwrap();
    f.write_all(&0u64.to_le_bytes()).unwrap();
    f.write_all(&0u64.to_le_bytes()).unwrap();
    f.set_len(200 * 1024 * 1024 * 1024).unwrap();
    drop(f);
    let t = std::time::Instant::now();
    let err = Engine::load(config(path)).unwrap_err();
    assert_eq!(err.code, Code::ModelInsufficientMemory, "{err}");
    assert!(err.message.contains("MiB"), "{}", err.message);
    assert!(t.elapsed().as_secs() < 5, "rejected before any load");
}

#[test]
fn two_engines_one_after_another() {
    let _g = serial();
    let first = load();
    let (a, _) = first
        .generate(chat("Say hello."), &CancelToken::new(), &mut |_| {})
        .unwrap();
    drop(first);
    let second = load();
    let (b, stats) = second
        .generate(chat("Say hello."), &CancelToken::new(), &mut |_| {})
        .unwrap();
    assert!(stats.generated_tokens > 0);
    assert_eq!(a, b, "greedy output is reproducible across engines");
}

#[test]
fn dropped_receiver_does_not_break_the_next_request() {
    let _g = serial();
    let engine = load();
    let rx = engine.submit(
        GenerateRequest {
            max_tokens: 200,
            ..chat("Write a long story about a dog.")
        },
        CancelToken::new(),
    );
    match rx.recv().unwrap() {
        GenEvent::Token(_) => {}
        other => panic!("expected a token first, got {other:?}"),
    }
    drop(rx);
    let (text, stats) = engine
        .generate(chat("Say hello."), &CancelToken::new(), &mut |_| {})
        .unwrap();
    assert!(stats.generated_tokens > 0 && !text.is_empty());
    assert_ne!(stats.stop, StopReason::Cancelled);
}

#[test]
fn prompt_longer_than_context_is_engine_failed() {
    let _g = serial();
    let engine = Engine::load(EngineConfig {
        n_ctx: 256,
        ..config(model_path())
    })
    .unwrap();
    let long = "headache ".repeat(400);
    let err = engine
        .generate(chat(&long), &CancelToken::new(), &mut |_| {})
        .unwrap_err();
    assert_eq!(err.code, Code::EngineFailed);
    assert!(
        !err.message.contains("headache"),
        "prompt text must not leak into errors"
    );
}

#[test]
fn bench_reports_positive_throughput() {
    let _g = serial();
    let engine = load();
    let r = engine.bench(64, 16, 2).unwrap();
    assert!(r.pp_tokens_per_s > 0.0 && r.tg_tokens_per_s > 0.0, "{r:?}");
    assert_eq!(r.n_threads, 2);
}

#[test]
fn dropping_the_engine_stops_a_running_generation() {
    let _g = serial();
    let engine = load();
    let rx = engine.submit(
        GenerateRequest {
            max_tokens: 1000,
            ..chat("Write a very long story about a horse.")
        },
        CancelToken::new(),
    );
    assert!(matches!(rx.recv().unwrap(), GenEvent::Token(_)));
    let t = std::time::Instant::now();
    drop(engine);
    // The proof is the Cancelled stop below; the time bound only catches a hang (under CPU contention a single
    // OpenMP token step can take seconds, so no tight bound).
    assert!(t.elapsed().as_secs() < 60, "drop hung");
    let last = rx.into_iter().last();
    assert!(
        matches!(last, Some(GenEvent::Done(ref s)) if s.stop == StopReason::Cancelled),
        "{last:?}"
    );
}

#[test]
fn sampled_output_under_a_schema_is_valid_json_or_bad_output() {
    let _g = serial();
    let engine = load();
    for seed in 1..=3 {
        let req = GenerateRequest {
            json_schema: Some(soap_schema()),
            max_tokens: 200,
            temperature: 0.8,
            seed,
            ..GenerateRequest::new(vec![
                ChatMessage::system(
                    r#"Return JSON like {"subjective": [{"text": "cough", "facts": [1]}]}."#,
                ),
                ChatMessage::user("[1] My stomach hurts. [2] I slept badly."),
            ])
        };
        match engine.generate(req, &CancelToken::new(), &mut |_| {}) {
            Ok((text, _)) => {
                let v: Value = serde_json::from_str(&text).expect("output parses as JSON");
                validate_soap(&v)
                    .unwrap_or_else(|e| panic!("schema violation: {e}; output: {text}"));
            }
            Err(e) => assert_eq!(e.code, Code::EngineBadOutput, "{e}"),
        }
    }
}
