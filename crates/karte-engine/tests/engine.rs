//! Engine tests against the real SmolLM2-135M file.
//!
//! All model tests live in this one binary and take `SERIAL` first: each loads llama.cpp with OpenMP threads, and two
//! at once on a 2-core machine make both crawl (and make timing-sensitive cancel tests flaky).

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use karte_engine::{
    CancelToken, ChatEngine, ChatMessage, ChatRequest, Code, Engine, EngineConfig, FinishReason,
    GenEvent, GenStats, Piece,
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

/// The engine through the `ChatEngine` contract, as every caller drives it, with the finished answer as a pair.
trait Generate {
    fn generate(
        &self,
        req: ChatRequest,
        cancel: &CancelToken,
        on_token: &mut dyn FnMut(&str),
    ) -> Result<(String, GenStats), karte_engine::Error>;
}

impl Generate for Engine {
    fn generate(
        &self,
        req: ChatRequest,
        cancel: &CancelToken,
        on_token: &mut dyn FnMut(&str),
    ) -> Result<(String, GenStats), karte_engine::Error> {
        let r = self.chat(&req, cancel, &mut |p| {
            if let Piece::Text(t) = p {
                on_token(t)
            }
        })?;
        Ok((r.text, r.stats))
    }
}

fn load() -> Engine {
    Engine::load(config(model_path())).expect("test model loads")
}

fn chat(user: &str) -> ChatRequest {
    ChatRequest {
        max_tokens: 48,
        ..ChatRequest::new(vec![
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
    let req = ChatRequest {
        json_schema: Some(soap_schema()),
        max_tokens: 400,
        ..ChatRequest::new(vec![
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
    assert_eq!(stats.finish, FinishReason::Stop);
    assert!(stats.generated_tokens > 0 && stats.prompt_tokens > 0);
}

#[test]
fn grammar_cut_by_max_tokens_is_bad_output_not_broken_json() {
    let _g = serial();
    let engine = load();
    let req = ChatRequest {
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
    assert!(stats.prompt_ms > Some(0.0) && stats.generate_ms > Some(0.0));

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

/// SmolLM2's vocabulary spells most kanji as two or three byte tokens, so a token limit often falls inside a
/// character. The answer then ends at the last whole character: never U+FFFD in a nurse's note.
#[test]
fn an_answer_cut_inside_a_character_ends_at_the_last_whole_one() {
    let _g = serial();
    let engine = load();
    let request = |max_tokens| ChatRequest {
        max_tokens,
        ..chat("次の文をそのまま書き写してください：患者は昨日から頭痛と発熱を訴えている。")
    };
    let (full, _) = engine
        .generate(request(24), &CancelToken::new(), &mut |_| {})
        .unwrap();
    let mut held_back = 0;
    let mut previous = String::new();
    for n in 1..=24 {
        let (text, stats) = engine
            .generate(request(n), &CancelToken::new(), &mut |_| {})
            .unwrap();
        assert!(!text.contains('\u{FFFD}'), "max_tokens {n}: {text:?}");
        assert!(
            full.starts_with(&text),
            "max_tokens {n}: {text:?} / {full:?}"
        );
        if stats.finish == FinishReason::Length && text == previous {
            // One more token and no more text: that token is part of a character still incomplete.
            held_back += 1;
        }
        previous = text;
    }
    assert!(held_back > 0, "no cut fell inside a character: {full:?}");
}

#[test]
fn cancel_after_first_token_is_engine_cancelled() {
    let _g = serial();
    let engine = load();
    let cancel = CancelToken::new();
    let mut seen = 0;
    let req = ChatRequest {
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
        Some(GenEvent::Done(s)) => assert_eq!(s.finish, FinishReason::Cancelled),
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
        ChatRequest {
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
    assert_ne!(stats.finish, FinishReason::Cancelled);
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
        ChatRequest {
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
        matches!(last, Some(GenEvent::Done(ref s)) if s.finish == FinishReason::Cancelled),
        "{last:?}"
    );
}

#[test]
fn sampled_output_under_a_schema_is_valid_json_or_bad_output() {
    let _g = serial();
    let engine = load();
    for seed in 1..=3 {
        let req = ChatRequest {
            json_schema: Some(soap_schema()),
            max_tokens: 200,
            temperature: 0.8,
            seed,
            ..ChatRequest::new(vec![
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

/// (context, likely continuation, scrambled continuation): the scrambled one has the same words in an order no text
/// would have, so any working model must find it less likely.
const SCORE_CASES: &[(&str, &str, &str)] = &[
    (
        "One, two, three, four,",
        " five, six, seven, eight",
        " eight seven, six five,",
    ),
    (
        "The patient was given a glass of",
        " water to drink.",
        " drink to water glass.",
    ),
    (
        "Monday, Tuesday, Wednesday,",
        " Thursday, Friday",
        " Friday Thursday,,",
    ),
];

#[test]
fn score_prefers_likely_continuations_and_is_never_positive() {
    let _g = serial();
    let engine = load();
    for (context, likely, scrambled) in SCORE_CASES {
        let s = engine
            .score(context, &[likely.to_string(), scrambled.to_string()])
            .unwrap();
        assert_eq!(s.len(), 2);
        for x in &s {
            assert!(x.logprob <= 0.0 && x.logprob.is_finite(), "{x:?}");
            assert!(x.n_tokens > 0, "{x:?}");
        }
        assert!(
            !s[1].greedy,
            "a scrambled text is not what greedy decoding writes"
        );
        assert!(
            s[0].logprob > s[1].logprob,
            "{context:?}: likely {:?} vs scrambled {:?}",
            s[0],
            s[1]
        );
    }
}

#[test]
fn score_equals_the_sum_of_single_token_steps() {
    let _g = serial();
    let engine = load();
    let context = "One, two, three, four,";
    // Words that are one token each with their leading space, so the text can be cut at token boundaries.
    let steps = [" five", ",", " six", ",", " seven"];
    let whole = steps.concat();
    let all = engine.score(context, std::slice::from_ref(&whole)).unwrap()[0];
    assert_eq!(all.n_tokens as usize, steps.len(), "one token per step");
    let mut sum = 0.0;
    let mut ctx = context.to_string();
    for step in steps {
        // Context + step tokenizes as context tokens + the step's token (no merge across the cut).
        assert_eq!(
            engine.tokenize_count(&format!("{ctx}{step}")).unwrap(),
            engine.tokenize_count(&ctx).unwrap() + 1
        );
        let s = engine.score(&ctx, &[step.to_string()]).unwrap()[0];
        assert_eq!(s.n_tokens, 1);
        sum += s.logprob;
        ctx.push_str(step);
    }
    // Different batch shapes change float rounding a little, never the value.
    assert!(
        (all.logprob - sum).abs() < 1e-2 * sum.abs().max(1.0),
        "{} vs {sum}",
        all.logprob
    );
}

#[test]
fn score_is_deterministic_and_independent_of_the_other_continuations() {
    let _g = serial();
    let engine = load();
    let (context, a, b) = SCORE_CASES[1];
    let together = engine
        .score(context, &[a.to_string(), b.to_string(), String::new()])
        .unwrap();
    let again = engine
        .score(context, &[a.to_string(), b.to_string(), String::new()])
        .unwrap();
    assert_eq!(together, again, "same input, same scores");
    let alone_b = engine.score(context, &[b.to_string()]).unwrap();
    assert_eq!(
        together[1], alone_b[0],
        "earlier continuations leave no trace"
    );
    assert_eq!(together[2].n_tokens, 0);
    assert_eq!(together[2].logprob, 0.0);
}

fn engine_with(n_parallel: u32, prefix_cache: u32, max_queue: usize) -> Engine {
    Engine::load(EngineConfig {
        n_parallel,
        prefix_cache,
        max_queue,
        ..config(model_path())
    })
    .expect("test model loads")
}

/// Reads one request's events to the end: (text, stats) or the error.
fn collect(
    rx: std::sync::mpsc::Receiver<GenEvent>,
) -> Result<(String, GenStats), karte_engine::Error> {
    let mut text = String::new();
    for ev in rx {
        match ev {
            GenEvent::Token(t) => text.push_str(&t),
            GenEvent::Done(s) => return Ok((text, s)),
            GenEvent::Error(e) => return Err(e),
        }
    }
    panic!("stream ended without Done or Error")
}

fn assert_agrees(batched: &str, alone: &str, i: usize) {
    let same = batched
        .chars()
        .zip(alone.chars())
        .take_while(|(a, b)| a == b)
        .count();
    assert!(
        same >= 40.min(alone.chars().count()),
        "request {i}: batched output diverges after {same} chars:\n{batched}\nvs\n{alone}"
    );
}

/// Different clinical-style questions (English: SmolLM2 is an English model) for concurrent requests.
const BATCH_PROMPTS: &[&str] = &[
    "Name three symptoms of influenza.",
    "What is a normal resting heart rate for an adult?",
    "Give one tip for sleeping better.",
    "What does a thermometer measure?",
];

#[test]
fn concurrent_requests_agree_with_one_at_a_time_and_repeat_exactly() {
    let _g = serial();
    let alone: Vec<String> = {
        let engine = engine_with(1, 0, 64);
        BATCH_PROMPTS
            .iter()
            .map(|p| {
                collect(engine.submit(chat(p), CancelToken::new()))
                    .unwrap()
                    .0
            })
            .collect()
    };
    let engine = engine_with(4, 0, 64);
    let rxs: Vec<_> = BATCH_PROMPTS
        .iter()
        .map(|p| engine.submit(chat(p), CancelToken::new()))
        .collect();
    let together: Vec<_> = rxs.into_iter().map(|rx| collect(rx).unwrap()).collect();
    // llama.cpp's CPU kernels sum in an order that depends on how many rows a matrix product has, so a sequence
    // decoded beside others is not bit-identical to one decoded alone, and greedy decoding can flip at a near-tie
    // after a while. Cross-talk between sequences would derail an answer from its first tokens; a shared opening
    // of 40+ characters rules that out.
    for (i, (text, stats)) in together.iter().enumerate() {
        assert_agrees(text, &alone[i], i);
        assert!(
            stats.ttft_ms > Some(0.0) && stats.generated_tokens > 0,
            "{stats:?}"
        );
    }
    // The same batch again is bit-identical: no state leaks from one batch (or finished sequence) to the next.
    let rxs: Vec<_> = BATCH_PROMPTS
        .iter()
        .map(|p| engine.submit(chat(p), CancelToken::new()))
        .collect();
    let again: Vec<_> = rxs.into_iter().map(|rx| collect(rx).unwrap().0).collect();
    for (i, text) in again.iter().enumerate() {
        assert_eq!(
            text, &together[i].0,
            "prompt {i}: same batch, different text"
        );
    }
    let load = engine.load_info();
    assert_eq!(load.completed_total, 2 * BATCH_PROMPTS.len() as u64);
    assert_eq!((load.active, load.queued), (0, 0));
    assert_eq!(load.max_parallel, 4);
}

#[test]
fn requests_beyond_n_parallel_wait_and_all_complete() {
    let _g = serial();
    let engine = engine_with(2, 0, 64);
    let long = |p: &str| ChatRequest {
        max_tokens: 40,
        ..chat(&format!("Write a long story about {p}."))
    };
    let rxs: Vec<_> = ["a cat", "a dog", "a horse", "a bird"]
        .iter()
        .map(|p| engine.submit(long(p), CancelToken::new()))
        .collect();
    // While the first two stream, the other two wait: never more than n_parallel active.
    let first = rxs[0].recv().unwrap();
    assert!(matches!(first, GenEvent::Token(_)), "{first:?}");
    let load = engine.load_info();
    assert!(load.active <= 2, "{load:?}");
    assert!(load.active + load.queued >= 2, "{load:?}");
    let mut prefix = match first {
        GenEvent::Token(t) => t,
        _ => unreachable!(),
    };
    let mut results = Vec::new();
    for (i, rx) in rxs.into_iter().enumerate() {
        let (text, stats) = collect(rx).unwrap();
        if i == 0 {
            prefix.push_str(&text);
        }
        results.push(stats);
    }
    assert!(!prefix.is_empty());
    for s in &results {
        assert!(s.generated_tokens > 0, "{s:?}");
    }
    // The last two waited for a sequence; the first two did not.
    assert!(results[3].queue_ms > results[0].queue_ms, "{results:?}");
    assert_eq!(engine.load_info().completed_total, 4);
}

#[test]
fn full_queue_is_engine_busy_and_counted() {
    let _g = serial();
    let engine = engine_with(1, 0, 1);
    let running = engine.submit(
        ChatRequest {
            max_tokens: 300,
            ..chat("Write a very long story about a ship.")
        },
        CancelToken::new(),
    );
    // Once it streams it holds the only sequence, so the next request waits in the queue of one...
    assert!(matches!(running.recv().unwrap(), GenEvent::Token(_)));
    let waiting = engine.submit(chat("Say hello."), CancelToken::new());
    // ...and the one after that is refused at once.
    let err = engine
        .try_submit(chat("Say hello."), CancelToken::new())
        .unwrap_err();
    assert_eq!(err.code, Code::EngineBusy);
    match engine
        .submit(chat("Say hello."), CancelToken::new())
        .recv()
        .unwrap()
    {
        GenEvent::Error(e) => assert_eq!(e.code, Code::EngineBusy),
        other => panic!("expected engine.busy, got {other:?}"),
    }
    let load = engine.load_info();
    assert_eq!((load.active, load.queued, load.rejected_total), (1, 1, 2));
    drop(running); // a disconnect frees the sequence for the waiting request
    let (_, stats) = collect(waiting).unwrap();
    assert!(stats.generated_tokens > 0);
    let load = engine.load_info();
    assert_eq!(load.cancelled_total, 1, "{load:?}");
    assert_eq!(
        load.requests_total, 2,
        "refused requests are not accepted ones"
    );
}

#[test]
fn max_time_ends_the_answer_early() {
    let _g = serial();
    let engine = load();
    let req = ChatRequest {
        max_tokens: 300,
        max_time: Some(std::time::Duration::from_millis(300)),
        ..chat("Write a very long story about a mountain.")
    };
    let (_, stats) = collect(engine.submit(req, CancelToken::new())).unwrap();
    assert_eq!(stats.finish, FinishReason::TimeLimit, "{stats:?}");
    assert!(stats.generated_tokens < 300, "{stats:?}");
}

#[test]
fn grammar_and_free_text_requests_share_a_batch() {
    let _g = serial();
    let engine = engine_with(3, 0, 64);
    let constrained = ChatRequest {
        json_schema: Some(soap_schema()),
        max_tokens: 400,
        ..ChatRequest::new(vec![
            ChatMessage::system(
                r#"Return JSON like {"subjective": [{"text": "cough", "facts": [1]}]}. One item per complaint; facts are the sentence numbers."#,
            ),
            ChatMessage::user(
                "Sentences: [1] I have had a headache since yesterday. [2] I feel a little dizzy.",
            ),
        ])
    };
    let free1 = engine.submit(chat("Write a long story about a cat."), CancelToken::new());
    let json = engine.submit(constrained, CancelToken::new());
    let free2 = engine.submit(chat("Name three fruits."), CancelToken::new());
    let (text, stats) = collect(json).unwrap();
    let v: Value = serde_json::from_str(&text).expect("output parses as JSON");
    validate_soap(&v).unwrap_or_else(|e| panic!("schema violation: {e}; output: {text}"));
    assert_eq!(stats.finish, FinishReason::Stop);
    let (t1, _) = collect(free1).unwrap();
    let (t2, _) = collect(free2).unwrap();
    assert!(
        serde_json::from_str::<Value>(&t1).is_err() && serde_json::from_str::<Value>(&t2).is_err(),
        "the grammar stays with its own sequence"
    );
}

/// One long shared instruction, then different dictations: the second and later requests reuse its KV cells.
fn shared_prefix_request(user: &str) -> ChatRequest {
    let system = "You are a careful clinical documentation assistant. Write short, factual answers. \
                  Never invent findings. Use plain English. Keep each answer under three sentences. "
        .repeat(4);
    ChatRequest {
        max_tokens: 40,
        ..ChatRequest::new(vec![ChatMessage::system(system), ChatMessage::user(user)])
    }
}

#[test]
fn prefix_cache_reuses_the_shared_instructions_with_identical_output() {
    let _g = serial();
    let users = [
        "The patient reports a cough for three days.",
        "The patient reports pain in the left knee.",
        "The patient reports a cough for three days.",
    ];
    let without: Vec<_> = {
        let engine = engine_with(1, 0, 64);
        users
            .iter()
            .map(|u| collect(engine.submit(shared_prefix_request(u), CancelToken::new())).unwrap())
            .collect()
    };
    for (_, s) in &without {
        assert_eq!(s.cached_tokens, 0, "cache off: {s:?}");
    }
    let engine = engine_with(1, 4, 64);
    let with: Vec<_> = users
        .iter()
        .map(|u| collect(engine.submit(shared_prefix_request(u), CancelToken::new())).unwrap())
        .collect();
    assert_eq!(with[0].1.cached_tokens, 0, "nothing cached yet");
    // The instructions are well over 100 tokens; the second dictation differs after them.
    assert!(with[1].1.cached_tokens > 100, "{:?}", with[1].1);
    assert!(with[1].1.cached_tokens < with[1].1.prompt_tokens);
    // The exact repeat reuses all but the last prompt token (its logits are needed to start the answer).
    assert_eq!(with[2].1.cached_tokens + 1, with[2].1.prompt_tokens);
    for (i, ((a, _), (b, _))) in with.iter().zip(&without).enumerate() {
        assert_eq!(a, b, "request {i}: output with the prefix cache differs");
    }
    let load = engine.load_info();
    assert!(
        load.prefix_cache_entries >= 1 && load.prefix_cache_entries <= 4,
        "{load:?}"
    );
    assert!(load.cached_tokens_total > 200, "{load:?}");
}

/// A request that opts out (llama-server's `cache_prompt: false`) neither reuses the cache nor fills it, on an
/// engine whose cache is on: what makes a benchmark's "cache off" series a real one.
#[test]
fn a_request_can_opt_out_of_the_prefix_cache() {
    let _g = serial();
    let engine = engine_with(1, 4, 64);
    let off = |u: &str| ChatRequest {
        prefix_cache: false,
        ..shared_prefix_request(u)
    };
    let (_, s) = collect(engine.submit(off("Say hello."), CancelToken::new())).unwrap();
    assert_eq!(s.cached_tokens, 0);
    assert_eq!(
        engine.load_info().prefix_cache_entries,
        0,
        "opted out: not remembered"
    );
    collect(engine.submit(shared_prefix_request("Say hello."), CancelToken::new())).unwrap();
    assert_eq!(engine.load_info().prefix_cache_entries, 1);
    let (_, s) = collect(engine.submit(off("Say goodbye."), CancelToken::new())).unwrap();
    assert_eq!(s.cached_tokens, 0, "opted out: the warm cache is not used");
    let (_, s) =
        collect(engine.submit(shared_prefix_request("Say goodbye."), CancelToken::new())).unwrap();
    assert!(
        s.cached_tokens > 100,
        "the same prompt with the cache: {s:?}"
    );
}

#[test]
fn prefix_cache_works_across_concurrent_requests() {
    let _g = serial();
    let engine = engine_with(4, 4, 64);
    // Warm the cache with the instructions, then four dictations at once all start from them.
    collect(engine.submit(shared_prefix_request("Say hello."), CancelToken::new())).unwrap();
    let users = [
        "The patient reports a cough for three days.",
        "The patient reports pain in the left knee.",
        "The patient reports a mild fever.",
        "The patient reports trouble sleeping.",
    ];
    let rxs: Vec<_> = users
        .iter()
        .map(|u| engine.submit(shared_prefix_request(u), CancelToken::new()))
        .collect();
    let together: Vec<_> = rxs.into_iter().map(|rx| collect(rx).unwrap()).collect();
    let reference = engine_with(1, 0, 64);
    for (i, (text, stats)) in together.iter().enumerate() {
        assert!(stats.cached_tokens > 100, "request {i}: {stats:?}");
        let (alone, _) =
            collect(reference.submit(shared_prefix_request(users[i]), CancelToken::new())).unwrap();
        // Batched: same tolerance as concurrent_requests_agree_with_one_at_a_time_and_repeat_exactly (the exact
        // cache-on == cache-off check is prefix_cache_reuses_the_shared_instructions_with_identical_output).
        assert_agrees(text, &alone, i);
    }
}
