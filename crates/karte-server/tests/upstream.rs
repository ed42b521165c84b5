//! Upstream mode: karte-server as the guarded gateway in front of OpenAI-compatible engines, over real HTTP on
//! loopback.
//!
//! - With llama.cpp's own `llama-server` (built by `cargo xtask llama-server`, which `cargo xtask test` runs
//!   first) on the test model: answers streamed and whole (curl and the official `openai` Python package), the
//!   JSON schema honoured, `/v1/models`, `/health` and per-upstream metrics; then a second upstream killed while requests are in flight: every request is answered
//!   or gets a clear `karte.`-coded error, none is lost, none answered twice. Skipped, saying so, only when
//!   llama-server has not been built.
//! - With scripted upstreams (a real HTTP server on loopback that sends fixed SSE bytes, standing for a
//!   misbehaving engine, which no real engine can be made to be on demand): a harmful answer ends with
//!   `content_filter` (and a JSON-schema answer goes on with the sentence withheld), a stream cut after its first
//!   pieces ends with `karte.upstream_interrupted`, an upstream answering 500 or events that are not JSON gives a
//!   `karte.upstream_*` error, an unreachable
//!   upstream answers `karte.upstream_unavailable`, a wrong URL stops the start-up naming the setting.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{curl, curl_json, serial, Server, CLIENT};
use serde_json::{json, Value};

// ---- real llama-server ----------------------------------------------------------------------------------------

fn llama_server_bin() -> Option<PathBuf> {
    let p = std::env::var_os("KARTE_LLAMA_SERVER").map_or_else(
        || PathBuf::from("/var/cache/karte/llama-server/build/bin/llama-server"),
        PathBuf::from,
    );
    p.is_file().then_some(p)
}

struct LlamaServer {
    child: Child,
    base: String,
}

impl LlamaServer {
    fn start(bin: &Path, model: &Path) -> LlamaServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin)
            .arg("-m")
            .arg(model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            // One thread each: two engines share the two cores.
            .args(["-t", "1", "-c", "4096", "-np", "2"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("llama-server starts");
        let s = LlamaServer {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let t = Instant::now();
        while curl(&[&format!("{}/health", s.base)]).0 != 200 {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "llama-server not ready in 120 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        s
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn chat_body(stream: bool, max_tokens: u32, extra: Value) -> String {
    let mut v = json!({
        "model": "",
        "messages": [{"role": "user", "content": "Name three colours."}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            o.insert(k.clone(), x.clone());
        }
    }
    v.to_string()
}

/// A streamed answer as the client saw it.
#[derive(Debug, Default)]
struct Streamed {
    status: u16,
    text: String,
    finish: Vec<String>,
    done: usize,
    errors: Vec<String>,
    events_after_end: usize,
}

fn stream(base: &str, body: &str) -> Streamed {
    let auth = format!("Authorization: Bearer {CLIENT}");
    let (status, out) = curl(&[
        "-N",
        "-X",
        "POST",
        &format!("{base}/v1/chat/completions"),
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
    ]);
    let mut s = Streamed {
        status,
        ..Default::default()
    };
    if status != 200 {
        let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        s.errors
            .push(v["error"]["code"].as_str().unwrap_or("?").to_string());
        return s;
    }
    let mut ended = false;
    for line in out.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if ended {
            s.events_after_end += 1;
        }
        if data == "[DONE]" {
            s.done += 1;
            ended = true;
            continue;
        }
        let v: Value = serde_json::from_str(data).expect("every event is JSON");
        if let Some(code) = v["error"]["code"].as_str() {
            s.errors.push(code.to_string());
            ended = true;
            continue;
        }
        for c in v["choices"].as_array().into_iter().flatten() {
            if let Some(t) = c["delta"]["content"].as_str() {
                s.text.push_str(t);
            }
            if let Some(f) = c["finish_reason"].as_str() {
                s.finish.push(f.to_string());
            }
        }
    }
    s
}

fn health(base: &str) -> Value {
    serde_json::from_str(&curl(&[&format!("{base}/health")]).1).unwrap_or(Value::Null)
}

fn upstream_state(h: &Value, url: &str) -> (String, u64) {
    let u = h["upstreams"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|u| u["url"] == url)
        .cloned()
        .unwrap_or(Value::Null);
    (
        u["state"].as_str().unwrap_or("").to_string(),
        u["in_flight"].as_u64().unwrap_or(0),
    )
}

#[test]
fn gateway_in_front_of_llama_server_answers_guards_and_survives_a_killed_upstream() {
    let Some(bin) = llama_server_bin() else {
        eprintln!(
            "SKIPPED: llama-server is not built (run `cargo xtask llama-server`; `cargo xtask test` builds it)"
        );
        return;
    };
    let _one = serial();
    let model = karte_models::resolve(Some(&common::model()))
        .expect("test model")
        .path;
    let a = LlamaServer::start(&bin, &model);
    let mut b = LlamaServer::start(&bin, &model);
    let dir = tempfile::tempdir().unwrap();
    let gw = Server::start_upstream(
        dir.path(),
        &["--upstream", &a.base, "--upstream", &format!("{}/", b.base)],
    );
    let h = health(&gw.base);
    assert_eq!(h["ready"], true, "{h}");
    assert_eq!(upstream_state(&h, &a.base).0, "up", "{h}");
    assert_eq!(upstream_state(&h, &b.base).0, "up", "{h}");

    // /v1/models lists what the upstreams serve (llama-server names its model after the file).
    let (st, models) = curl_json("GET", &format!("{}/v1/models", gw.base), CLIENT, None);
    assert_eq!(st, 200, "{models}");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(
        ids.iter()
            .any(|id| id.contains("SmolLM2") || id.contains("smollm")),
        "{ids:?}"
    );

    // Whole answer.
    let (st, whole) = curl_json(
        "POST",
        &format!("{}/v1/chat/completions", gw.base),
        CLIENT,
        Some(&chat_body(false, 24, json!({}))),
    );
    assert_eq!(st, 200, "{whole}");
    let text = whole["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!text.is_empty());
    let finish = whole["choices"][0]["finish_reason"].as_str().unwrap();
    assert!(matches!(finish, "stop" | "length"), "{finish}");

    // Streamed answer: pieces, one finish, one [DONE].
    let s = stream(&gw.base, &chat_body(true, 24, json!({})));
    assert_eq!(s.status, 200);
    assert!(s.errors.is_empty(), "{s:?}");
    assert!(!s.text.is_empty(), "{s:?}");
    assert_eq!(s.finish.len(), 1, "{s:?}");
    assert_eq!(s.done, 1, "{s:?}");

    // The JSON schema reaches llama-server and is honoured.
    let schema = json!({
        "type": "object",
        "properties": {"colour": {"type": "string", "enum": ["red", "green", "blue"]}},
        "required": ["colour"],
        "additionalProperties": false
    });
    let rf = json!({"response_format": {"type": "json_schema",
        "json_schema": {"name": "c", "schema": schema, "strict": true}}});
    let (st, js) = curl_json(
        "POST",
        &format!("{}/v1/chat/completions", gw.base),
        CLIENT,
        Some(&chat_body(false, 32, rf.clone())),
    );
    assert_eq!(st, 200, "{js}");
    let out: Value = serde_json::from_str(js["choices"][0]["message"]["content"].as_str().unwrap())
        .expect("the answer is JSON");
    assert!(
        ["red", "green", "blue"].contains(&out["colour"].as_str().unwrap_or("")),
        "{out}"
    );
    let s = stream(&gw.base, &chat_body(true, 32, rf));
    let out: Value = serde_json::from_str(&s.text).expect("the streamed answer is JSON");
    assert!(out["colour"].is_string(), "{out}");

    // The official `openai` Python package, as a hospital script would use the gateway: whole, streamed (the
    // block-mode guard releases a short answer as one sentence), JSON schema, bad tokens.
    let v = common::openai_client(&gw.base, 1);
    assert!(
        v["models"][0]
            .as_str()
            .unwrap_or("")
            .to_lowercase()
            .contains("smollm"),
        "{v}"
    );

    // Metrics carry the upstream label.
    let (_, m) = curl(&[&format!("{}/metrics", gw.base)]);
    assert!(
        m.contains(&format!(
            "karte_upstream_requests_total{{upstream=\"{}\"}}",
            a.base
        )),
        "{m}"
    );
    assert!(m.contains(&format!("karte_upstream_up{{upstream=\"{}\"}} 1", b.base)));

    // Kill the second upstream while requests are in flight on it.
    let n = 6;
    let base = gw.base.clone();
    let clients: Vec<_> = (0..n)
        .map(|i| {
            let base = base.clone();
            std::thread::spawn(move || {
                let body = chat_body(
                    true,
                    64,
                    json!({"messages": [{"role": "user", "content": format!("Count from {i} to 40.")}]}),
                );
                stream(&base, &body)
            })
        })
        .collect();
    let t = Instant::now();
    while upstream_state(&health(&gw.base), &b.base).1 == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no request reached the second upstream"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    b.kill();
    let results: Vec<Streamed> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let mut answered = 0;
    for r in &results {
        // Answered once, or a clear error: never both, never twice, never nothing.
        assert_eq!(r.events_after_end, 0, "{r:?}");
        if r.errors.is_empty() {
            assert_eq!(r.status, 200, "{r:?}");
            assert_eq!(r.finish.len(), 1, "{r:?}");
            assert_eq!(r.done, 1, "{r:?}");
            answered += 1;
        } else {
            assert_eq!(r.errors.len(), 1, "{r:?}");
            assert!(r.errors[0].starts_with("karte."), "{r:?}");
            assert_eq!(r.done, 0, "{r:?}");
            assert!(r.finish.is_empty(), "{r:?}");
        }
    }
    assert!(answered >= 1, "{results:?}");
    // The killed upstream is out of rotation; the other one answers.
    let (state, _) = upstream_state(&health(&gw.base), &b.base);
    assert_eq!(state, "down");
    let s = stream(&gw.base, &chat_body(true, 8, json!({})));
    assert!(s.errors.is_empty() && s.done == 1, "{s:?}");
}

// ---- scripted upstreams ----------------------------------------------------------------------------------------

/// How a scripted upstream answers a chat request.
#[derive(Clone, Copy)]
enum Script {
    /// The pieces as SSE chunks, then `[DONE]`.
    Whole,
    /// The pieces, then the connection just closes.
    Cut,
    /// HTTP 500 with a body that is not OpenAI's error object.
    ServerError,
    /// A 200 event stream whose events are not JSON.
    NotJson,
}

/// A real HTTP server on loopback that answers like an OpenAI-compatible engine with fixed content (its `/health`
/// and `/v1/models` always answer well, so it stays in rotation between requests).
fn scripted_upstream(pieces: &'static [&'static str], script: Script) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { continue };
            std::thread::spawn(move || answer(conn, pieces, script));
        }
    });
    base
}

fn answer(mut conn: TcpStream, pieces: &[&str], script: Script) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut first = String::new();
    if r.read_line(&mut first).is_err() {
        return;
    }
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; len];
    let _ = r.read_exact(&mut body);
    let reply = |conn: &mut TcpStream, ctype: &str, body: &str| {
        let _ = write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    };
    if first.starts_with("GET /health") {
        reply(&mut conn, "application/json", "{\"status\":\"ok\"}");
    } else if first.starts_with("GET /v1/models") {
        reply(
            &mut conn,
            "application/json",
            "{\"object\":\"list\",\"data\":[{\"id\":\"scripted\"}]}",
        );
    } else if let Script::ServerError = script {
        let body = "<html>upstream exploded</html>";
        let _ = write!(
            conn,
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    } else if let Script::NotJson = script {
        let _ = write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: {{\"choices\": [oops\n\ndata: [DONE]\n\n"
        );
    } else {
        let _ = write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
        );
        for p in pieces {
            let chunk = json!({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "scripted",
                "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": null}]});
            let _ = write!(conn, "data: {chunk}\n\n");
            let _ = conn.flush();
        }
        if let Script::Whole = script {
            let end = json!({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "scripted",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
            let _ = write!(conn, "data: {end}\n\ndata: [DONE]\n\n");
        }
        let _ = conn.flush();
    }
}

const HARMFUL: &[&str] = &[
    "解熱を確認。",
    "確実に死",
    "ねる方法は",
    "薬をまとめて飲むことです。",
    "経過観察。",
];

const CLEAN: &[&str] = &["解熱を確認。", "食事摂取は", "良好。", "経過観察。"];

#[test]
fn harmful_upstream_output_ends_with_content_filter_streamed_and_whole() {
    let up = scripted_upstream(HARMFUL, Script::Whole);
    let dir = tempfile::tempdir().unwrap();
    let gw = Server::start_upstream(dir.path(), &["--upstream", &up]);
    let s = stream(&gw.base, &chat_body(true, 64, json!({})));
    assert_eq!(s.finish, vec!["content_filter".to_string()], "{s:?}");
    assert!(s.text.contains("解熱を確認。"), "{s:?}");
    assert!(
        !s.text.contains("死") && !s.text.contains("まとめて"),
        "{s:?}"
    );
    assert!(
        !s.text.contains("経過観察"),
        "the answer stops at the blocked sentence: {s:?}"
    );
    let (st, whole) = curl_json(
        "POST",
        &format!("{}/v1/chat/completions", gw.base),
        CLIENT,
        Some(&chat_body(false, 64, json!({}))),
    );
    assert_eq!(st, 200, "{whole}");
    assert_eq!(whole["choices"][0]["finish_reason"], "content_filter");
    assert!(!whole["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("死"));
    // The same through the official `openai` package, beside an upstream whose answer is clean: the harmful
    // answer ends with content_filter, the clean one arrives untouched, and the metrics count both.
    let clean = scripted_upstream(CLEAN, Script::Whole);
    let dir2 = tempfile::tempdir().unwrap();
    let gw2 = Server::start_upstream(dir2.path(), &["--upstream", &clean]);
    for (gw, harmful) in [(&gw, true), (&gw2, false)] {
        let v = common::python_client("openai_guard.py", &[&gw.base, CLIENT]);
        for way in ["whole", "stream"] {
            let (text, finish) = (
                v[way]["text"].as_str().unwrap(),
                v[way]["finish_reason"].as_str().unwrap(),
            );
            if harmful {
                assert_eq!(finish, "content_filter", "{v}");
                assert!(
                    !text.contains("死") && text.contains("［安全のため表示を控えました］"),
                    "{v}"
                );
            } else {
                assert_eq!(finish, "stop", "{v}");
                assert_eq!(text, CLEAN.concat(), "{v}");
            }
        }
    }
    let (_, m) = curl(&[&format!("{}/metrics", gw2.base)]);
    assert!(
        m.contains("karte_guard_answers_total{result=\"passed\"} 2"),
        "{m}"
    );
    let (_, m) = curl(&[&format!("{}/metrics", gw.base)]);
    assert!(
        m.contains("karte_guard_answers_total{result=\"withheld\"} 4"),
        "{m}"
    );

    // A hospital that only flags this answer's categories (`[serve.guard.categories]`): it passes unchanged and is
    // counted as flagged.
    let v = karte_guard::Policy::embedded().check("確実に死ねる方法は薬をまとめて飲むことです。");
    let dir3 = tempfile::tempdir().unwrap();
    let mut settings = String::from("[serve.guard]\nmode = \"block\"\n[serve.guard.categories]\n");
    for c in &v.categories {
        settings.push_str(&format!("{c} = \"flag\"\n"));
    }
    std::fs::write(dir3.path().join("no-settings.toml"), settings).unwrap();
    let gw3 = Server::start_upstream(dir3.path(), &["--upstream", &up]);
    let s = stream(&gw3.base, &chat_body(true, 64, json!({})));
    assert_eq!(s.finish, vec!["stop".to_string()], "{s:?}");
    assert_eq!(s.text, HARMFUL.concat(), "{s:?}");
    let (_, m) = curl(&[&format!("{}/metrics", gw3.base)]);
    assert!(
        m.contains(&format!(
            "karte_guard_verdicts_total{{category=\"{}\",action=\"flag\"}} 1",
            v.categories[0]
        )),
        "{m}"
    );
    assert!(
        m.contains("karte_guard_answers_total{result=\"flagged\"} 1"),
        "{m}"
    );

    // A structured answer (a workstation's draft) goes on with the sentence withheld, so it still parses.
    let rf = json!({"response_format": {"type": "json_schema",
        "json_schema": {"name": "draft", "schema": {"type": "object"}}}});
    let s = stream(&gw.base, &chat_body(true, 64, rf));
    assert_eq!(s.finish, vec!["content_filter".to_string()], "{s:?}");
    assert!(
        s.text.contains("解熱を確認。") && s.text.contains("経過観察。"),
        "{s:?}"
    );
    assert!(s.text.contains("［安全のため表示を控えました］"), "{s:?}");
    assert!(!s.text.contains("死"), "{s:?}");
    let (_, m) = curl(&[&format!("{}/metrics", gw.base)]);
    assert!(m.contains("karte_guard_verdicts_total{category="), "{m}");
}

#[test]
fn a_cut_stream_a_failing_upstream_an_unreachable_one_and_a_wrong_url_are_clear_karte_errors() {
    // Cut after the first pieces reached the client: an error event, not a silent end, and no retry.
    let up = scripted_upstream(&["体温は", "36.8℃。"], Script::Cut);
    let dir = tempfile::tempdir().unwrap();
    let gw = Server::start_upstream(dir.path(), &["--upstream", &up]);
    let s = stream(&gw.base, &chat_body(true, 64, json!({})));
    assert_eq!(
        s.errors,
        vec!["karte.upstream_interrupted".to_string()],
        "{s:?}"
    );
    assert_eq!(s.done, 0);
    // The cut took it out of rotation; its next passed probe brings it back.
    let t = Instant::now();
    while upstream_state(&health(&gw.base), &up).0 != "up" {
        assert!(t.elapsed() < Duration::from_secs(30), "never probed back");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (st, whole) = curl_json(
        "POST",
        &format!("{}/v1/chat/completions", gw.base),
        CLIENT,
        Some(&chat_body(false, 64, json!({}))),
    );
    assert_eq!(st, 502, "{whole}");
    assert_eq!(whole["error"]["code"], "karte.upstream_interrupted");

    // An upstream answering 500 with HTML, or an event stream that is not JSON, before any piece: a clear karte
    // error streamed and whole, never the upstream's body.
    for script in [Script::ServerError, Script::NotJson] {
        let up = scripted_upstream(&[], script);
        let dir = tempfile::tempdir().unwrap();
        let gw = Server::start_upstream(dir.path(), &["--upstream", &up]);
        let s = stream(&gw.base, &chat_body(true, 16, json!({})));
        assert_eq!(s.done, 0, "{s:?}");
        let code = s
            .errors
            .first()
            .cloned()
            .or_else(|| (s.status >= 400).then(|| format!("http {}", s.status)))
            .unwrap_or_default();
        assert!(
            code.starts_with("karte.") || code.starts_with("http 5"),
            "{s:?}"
        );
        let (st, whole) = curl_json(
            "POST",
            &format!("{}/v1/chat/completions", gw.base),
            CLIENT,
            Some(&chat_body(false, 16, json!({}))),
        );
        assert!(st >= 500, "{st} {whole}");
        let code = whole["error"]["code"].as_str().unwrap_or("");
        assert!(code.starts_with("karte.upstream"), "{whole}");
        assert!(!whole.to_string().contains("exploded"), "{whole}");
    }

    // Nothing listens there: out of rotation at the first probe, 503 with the karte code.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let dir2 = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(common::server_bin());
    cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir2.path())
        .args(["--upstream", &dead])
        .env("KARTE_SERVER_TOKEN", CLIENT)
        .env("KARTE_SETTINGS", dir2.path().join("none.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = format!(
        "http://{}",
        line.trim().strip_prefix("KARTE_SERVER_LISTENING ").unwrap()
    );
    let t = Instant::now();
    while upstream_state(&health(&base), &dead).0 != "down" {
        assert!(t.elapsed() < Duration::from_secs(30), "never probed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(curl(&[&format!("{base}/health")]).0, 503);
    let (st, e) = curl_json(
        "POST",
        &format!("{base}/v1/chat/completions"),
        CLIENT,
        Some(&chat_body(false, 8, json!({}))),
    );
    assert_eq!(st, 503, "{e}");
    assert_eq!(e["error"]["code"], "karte.upstream_unavailable");
    let _ = child.kill();
    let _ = child.wait();

    // A wrong URL stops the start-up with a message naming the setting.
    let out = Command::new(common::server_bin())
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir2.path())
        .args(["--upstream", "10.0.0.5:8000"])
        .env("KARTE_SETTINGS", dir2.path().join("none.toml"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("--upstream") && all.contains("karte.upstream_invalid"),
        "{all}"
    );
}
