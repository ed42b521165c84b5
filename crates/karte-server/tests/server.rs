//! karte-server end to end: a real server process on loopback with the fast test model, driven by real clients
//! (the `openai` Python package from PyPI, curl, karte-llm's HTTP client).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use common::{curl, curl_json, new_token, serial, Server, ADMIN, CLIENT};
use serde_json::{json, Value};

fn chat_body(stream: bool, max_tokens: u32) -> String {
    json!({
        "model": "x",
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": max_tokens,
        "stream": stream,
    })
    .to_string()
}

#[test]
fn openai_python_client_streams_plain_and_json_schema_and_gets_401_for_bad_tokens() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    // Streaming piece by piece is what is checked here; the block-mode guard releases text a sentence at a time
    // (a short answer is one piece), so it only counts here. The guard: tests/upstream.rs.
    common::guard_flag_only(dir.path());
    let srv = Server::start(dir.path(), &[]);
    let v = common::openai_client(&srv.base, 2);
    assert_eq!(v["models"], json!([common::model()]));
}

#[test]
fn curl_streams_sse_to_done_and_gets_401_without_token() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), &[]);
    let url = format!("{}/v1/chat/completions", srv.base);
    let auth = format!("Authorization: Bearer {CLIENT}");

    let (s, body) = curl(&[
        "-N",
        &url,
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "-d",
        &chat_body(true, 12),
    ]);
    assert_eq!(s, 200);
    let events: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{body}");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    let finishes: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes.len(), 1, "exactly one finish reason: {body}");

    let (s, v) = curl_json("POST", &url, CLIENT, Some(&chat_body(false, 8)));
    assert_eq!(s, 200);
    assert_eq!(v["object"], "chat.completion");
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() <= 8);

    // No token, a malformed header, an unknown token: all 401 with the same code.
    for args in [
        vec!["-X", "POST", url.as_str(), "-d", "{}"],
        vec![
            "-X",
            "POST",
            url.as_str(),
            "-H",
            "Authorization: Basic abc",
            "-d",
            "{}",
        ],
        vec![
            "-X",
            "POST",
            url.as_str(),
            "-H",
            "Authorization: Bearer kt_nope",
            "-d",
            "{}",
        ],
    ] {
        let (s, b) = curl(&args);
        assert_eq!(s, 401, "{args:?}");
        let v: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["error"]["code"], "server.unauthorized");
        assert_eq!(v["error"]["type"], "authentication_error");
    }
    // /v1/models needs a token too; /health and /metrics do not.
    let (s, _) = curl(&[&format!("{}/v1/models", srv.base)]);
    assert_eq!(s, 401);
    let (s, h) = curl(&[&format!("{}/health", srv.base)]);
    assert_eq!(s, 200);
    let h: Value = serde_json::from_str(&h).unwrap();
    assert_eq!(h["ready"], true);
    // Where the model runs: without the GPU backend, on the CPU; with it, on the device or on the CPU (fallback).
    let accelerator = h["accelerator"].as_str().unwrap_or_default();
    if cfg!(feature = "cuda") {
        assert!(!accelerator.is_empty(), "{h}");
    } else {
        assert_eq!(accelerator, "CPU", "{h}");
    }
    let (s, m) = curl(&[&format!("{}/metrics", srv.base)]);
    assert_eq!(s, 200);
    for needle in [
        "karte_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"} 2",
        "karte_requests_total{endpoint=\"/v1/chat/completions\",status=\"401\"} 3",
        "karte_errors_total{code=\"server.unauthorized\"}",
        "karte_time_to_first_token_seconds_count 2",
        "karte_queue_depth 0",
        "karte_tokens_per_second",
    ] {
        assert!(m.contains(needle), "metrics lack {needle}:\n{m}");
    }
}

#[test]
fn management_api_tokens_roles_rate_limits_load_and_log_level() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), &[]);
    let b = &srv.base;
    // A client token cannot manage.
    let (s, v) = curl_json("GET", &format!("{b}/admin/tokens"), CLIENT, None);
    assert_eq!(s, 403);
    assert_eq!(v["error"]["code"], "server.forbidden");

    let (id, tok) = new_token(b, "ward5-pc01", json!({"rate_limit_per_min": 2}));
    let (s, list) = curl_json("GET", &format!("{b}/admin/tokens"), ADMIN, None);
    assert_eq!(s, 200);
    let text = list.to_string();
    assert!(text.contains("ward5-pc01"));
    assert!(
        !text.contains(&tok),
        "a listed token never shows its secret"
    );
    assert!(!text.contains("hash"), "nor its hash: {text}");
    // The store on disk holds hashes only.
    let stored = std::fs::read_to_string(dir.path().join("tokens.json")).unwrap();
    assert!(!stored.contains(&tok) && !stored.contains(ADMIN) && !stored.contains(CLIENT));

    // Rate limit: two requests a minute, the third is 429 with Retry-After.
    let url = format!("{b}/v1/models");
    let auth = format!("Authorization: Bearer {tok}");
    for _ in 0..2 {
        assert_eq!(curl(&[&url, "-H", &auth]).0, 200);
    }
    let (s, out) = curl(&["-i", &url, "-H", &auth]);
    assert_eq!(s, 429);
    assert!(out.to_ascii_lowercase().contains("retry-after:"), "{out}");
    assert!(out.contains("server.rate_limited"));
    // Lift the limit, make it an admin: it can now list tokens.
    let (s, v) = curl_json(
        "PATCH",
        &format!("{b}/admin/tokens/{id}"),
        ADMIN,
        Some(r#"{"role":"admin","rate_limit_per_min":null}"#),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["role"], "admin");
    assert!(v["rate_limit_per_min"].is_null());
    assert_eq!(
        curl_json("GET", &format!("{b}/admin/tokens"), &tok, None).0,
        200
    );
    // Revoke: 401 from then on, and after a restart (persistent store).
    assert_eq!(
        curl_json(
            "POST",
            &format!("{b}/admin/tokens/{id}/revoke"),
            ADMIN,
            None
        )
        .0,
        200
    );
    assert_eq!(curl(&[&url, "-H", &auth]).0, 401);
    assert_eq!(
        curl_json(
            "POST",
            &format!("{b}/admin/tokens/tok_missing/revoke"),
            ADMIN,
            None
        )
        .1["error"]["code"],
        "server.token_not_found"
    );
    // Load and log level.
    let (s, load) = curl_json("GET", &format!("{b}/admin/load"), ADMIN, None);
    assert_eq!(s, 200);
    assert_eq!(load["ready"], true);
    assert_eq!(load["queue_depth"], 0);
    assert_eq!(load["max_parallel"], 4);
    let (s, _) = curl_json(
        "PUT",
        &format!("{b}/admin/log-level"),
        ADMIN,
        Some(r#"{"level":"debug"}"#),
    );
    assert_eq!(s, 200);
    assert_eq!(
        curl_json("GET", &format!("{b}/admin/log-level"), ADMIN, None).1["level"],
        "debug"
    );
    assert_eq!(
        curl_json(
            "PUT",
            &format!("{b}/admin/log-level"),
            ADMIN,
            Some(r#"{"level":"loud"}"#)
        )
        .0,
        400
    );
    drop(srv);
    let srv = Server::start(dir.path(), &[]);
    assert_eq!(
        curl(&[&format!("{}/v1/models", srv.base), "-H", &auth]).0,
        401
    );
}

/// Opens a streamed request on a raw socket and returns it after the first content chunk arrived.
fn open_stream(
    addr: &str,
    max_tokens: u32,
) -> (std::net::TcpStream, BufReader<std::net::TcpStream>) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let body = chat_body(true, max_tokens);
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {CLIENT}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    let mut contents = 0;
    while contents < 2 {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "stream ended early");
        if line.contains("\"content\":\"") && !line.contains("\"content\":\"\"") {
            contents += 1;
        }
    }
    (s, r)
}

fn load(base: &str) -> Value {
    curl_json("GET", &format!("{base}/admin/load"), ADMIN, None).1
}

fn send_raw(addr: &str, max_tokens: u32) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let body = chat_body(true, max_tokens);
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {CLIENT}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    s
}

fn wait_for(base: &str, what: &str, pred: impl Fn(&Value) -> bool) {
    let t = Instant::now();
    loop {
        let l = load(base);
        if pred(&l) {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "waited in vain for {what}: {l}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn full_queue_gets_429_and_a_disconnect_cancels_the_generation() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    // One sequence at a time and one waiting place: a third request finds the queue full.
    let srv = Server::start(dir.path(), &["--parallel", "1", "--max-queue", "1"]);
    let (sock, reader) = open_stream(&srv.addr, 2000);
    let waiting = send_raw(&srv.addr, 2000);
    wait_for(&srv.base, "one active, one queued", |l| {
        l["in_flight"] == 1 && l["queue_depth"] == 1
    });
    let auth = format!("Authorization: Bearer {CLIENT}");
    let (s, out) = curl(&[
        "-i",
        &format!("{}/v1/chat/completions", srv.base),
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "-d",
        &chat_body(false, 4),
    ]);
    assert_eq!(s, 429, "{out}");
    assert!(out.to_ascii_lowercase().contains("retry-after:"));
    assert!(out.contains("server.busy"));
    // Both clients hang up mid-generation: their sequences are cancelled and freed well before 2000 tokens each.
    sock.shutdown(std::net::Shutdown::Both).unwrap();
    drop(reader);
    waiting.shutdown(std::net::Shutdown::Both).unwrap();
    drop(waiting);
    wait_for(&srv.base, "everything freed after the disconnects", |l| {
        l["open_requests"] == 0 && l["in_flight"] == 0 && l["queue_depth"] == 0
    });
    let (s, _) = curl_json(
        "POST",
        &format!("{}/v1/chat/completions", srv.base),
        CLIENT,
        Some(&chat_body(false, 4)),
    );
    assert_eq!(s, 200, "the server serves again after the disconnects");
    let m = curl(&[&format!("{}/metrics", srv.base)]).1;
    assert!(
        m.contains("karte_errors_total{code=\"server.busy\"} 1"),
        "{m}"
    );
    assert!(m.contains("karte_rejected_total 1"), "{m}");
}

#[test]
fn per_request_token_limit_caps_max_tokens() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), &["--max-tokens", "5"]);
    let (s, v) = curl_json(
        "POST",
        &format!("{}/v1/chat/completions", srv.base),
        CLIENT,
        Some(&json!({"messages":[{"role":"user","content":"Count from one to fifty in words."}],"max_tokens":500}).to_string()),
    );
    assert_eq!(s, 200);
    assert!(
        v["usage"]["completion_tokens"].as_u64().unwrap() <= 5,
        "{v}"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    // Bad requests are 400 with Karte's code.
    for body in [
        r#"{"messages":[]}"#,
        r#"{"messages":[{"role":"wizard","content":"x"}]}"#,
        r#"not json"#,
    ] {
        let (s, v) = curl_json(
            "POST",
            &format!("{}/v1/chat/completions", srv.base),
            CLIENT,
            Some(body),
        );
        assert_eq!(s, 400, "{body}");
        assert_eq!(v["error"]["code"], "server.bad_request");
    }
}

/// A request that runs into `--request-timeout` ends normally with `finish_reason: "length"` and the text so far,
/// streamed or not. The model is asked to continue a count to 2000 (thousands of tokens), so it cannot finish
/// within the one second allowed; fewer tokens than `max_tokens` proves it was the time limit, not the token limit,
/// that cut it. (Unconstrained on purpose: a grammar-constrained answer cut short cannot parse, and the engine
/// reports that as `engine.bad_output` instead.)
#[test]
fn per_request_time_limit_ends_with_length() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(
        dir.path(),
        &["--request-timeout", "1", "--max-tokens", "3000"],
    );
    let url = format!("{}/v1/chat/completions", srv.base);
    let count: Vec<String> = (1..=60).map(|i| i.to_string()).collect();
    let body = |stream: bool| {
        json!({
            "messages": [
                {"role": "user", "content": "Count from 1 to 2000, separated by commas. Do not stop early."},
                {"role": "assistant", "content": count.join(", ")},
                {"role": "user", "content": "Continue from 61 to 2000."},
            ],
            "max_tokens": 3000,
            "stream": stream,
        })
        .to_string()
    };

    let (s, v) = curl_json("POST", &url, CLIENT, Some(&body(false)));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "length", "{v}");
    let n = v["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(
        n < 3000,
        "{n} tokens: cut by the token limit, not the time limit"
    );
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(
        text.is_empty(),
        n == 0,
        "the text so far is returned with its token count"
    );

    let auth = format!("Authorization: Bearer {CLIENT}");
    let (s, sse) = curl(&[
        "-N",
        &url,
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "-d",
        &body(true),
    ]);
    assert_eq!(s, 200);
    let events: Vec<&str> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{sse}");
    let finishes: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .map(|c| c["choices"][0]["finish_reason"].clone())
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes, vec![json!("length")], "{sse}");
}

/// One streamed request on a raw connection, checked for completeness: `[DONE]` and one finish reason.
fn complete_stream(addr: &str) -> Result<(), String> {
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let body = chat_body(true, 8);
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {CLIENT}\r\n\
         Content-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut all = String::new();
    std::io::Read::read_to_string(&mut s, &mut all).map_err(|e| e.to_string())?;
    if !all.starts_with("HTTP/1.1 200") {
        return Err(all.lines().next().unwrap_or("").to_string());
    }
    if !all.contains("data: [DONE]") {
        return Err("no [DONE]".into());
    }
    let finishes = all.matches("\"finish_reason\":\"").count();
    if finishes != 1 {
        return Err(format!("{finishes} finish reasons"));
    }
    Ok(())
}

#[test]
fn load_test_1_4_16_concurrent_clients_every_stream_complete() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), &["--max-queue", "32"]);
    for n in [1usize, 4, 16] {
        let deadline = Instant::now() + Duration::from_secs(4);
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let addr = srv.addr.clone();
                std::thread::spawn(move || {
                    let mut done = 0;
                    // At least one request per client, then more until the time is up.
                    loop {
                        complete_stream(&addr)?;
                        done += 1;
                        if Instant::now() >= deadline {
                            return Ok::<_, String>(done);
                        }
                    }
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(errors.is_empty(), "N={n}: {errors:?}");
        let total: usize = results.iter().map(|r| *r.as_ref().unwrap()).sum();
        eprintln!("N={n}: {total} complete streams");
        assert!(total >= n);
    }
    let m = curl(&[&format!("{}/metrics", srv.base)]).1;
    assert!(
        !m.contains("karte_errors_total{"),
        "no errors counted:\n{m}"
    );
}
