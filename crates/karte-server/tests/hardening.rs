//! Issue 24's server points, end to end: a real karte-server process on loopback with the fast test model, driven
//! over real HTTP (raw sockets, curl).
//!
//! - slow and idle connections are closed within the stated timeouts, at most `max_connections` are open (derived
//!   from a low descriptor limit), the cap is logged once per burst, and `/health` stays answerable meanwhile;
//! - one table of bad requests, each answered with its status and stable code, naming the field, never repeating
//!   what the client sent;
//! - an oversized schema is refused well under a second, a prompt longer than the context is 400, not 500;
//! - a client's cost (tokens), not only its number of requests, counts against its rate limit;
//! - plain HTTP on a non-loopback address is refused unless `--insecure-plaintext`, and then warned about;
//! - the bearer scheme is case-insensitive.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{curl, curl_json, serial, Server, ADMIN, CLIENT};
use serde_json::{json, Value};

fn chat_url(srv: &Server) -> String {
    format!("{}/v1/chat/completions", srv.base)
}

/// Every line of the server's JSON log files in `dir`.
fn log_lines(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if let Ok(t) = std::fs::read_to_string(e.path()) {
                out.extend(t.lines().map(str::to_string));
            }
        }
    }
    out
}

fn metric(srv: &Server, line_start: &str) -> f64 {
    let m = curl(&[&format!("{}/metrics", srv.base)]).1;
    m.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in\n{m}"))
}

/// How a test connection misbehaves.
#[derive(Clone, Copy)]
enum Abuse {
    /// Sends a request line, then one header line every second, never the blank line that ends the head.
    Slow,
    /// Sends nothing.
    Idle,
}

/// Opens one abusive connection and returns how long the server kept it open (`None`: still open after `give_up`).
fn abuse(addr: String, how: Abuse, give_up: Duration) -> Option<Duration> {
    let t = Instant::now();
    let mut s = TcpStream::connect(&addr).expect("connects (the kernel queues it even at the cap)");
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    if let Abuse::Slow = how {
        if s.write_all(b"GET /health HTTP/1.1\r\nHost: karte\r\n")
            .is_err()
        {
            return Some(t.elapsed());
        }
    }
    let mut buf = [0u8; 512];
    while t.elapsed() < give_up {
        match s.read(&mut buf) {
            Ok(0) => return Some(t.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if let Abuse::Slow = how {
                    if s.write_all(b"X-Slow: 1\r\n").is_err() {
                        return Some(t.elapsed());
                    }
                }
            }
            Err(_) => return Some(t.elapsed()),
        }
    }
    None
}

/// F3: 50 slow and 50 idle connections against a server whose descriptor limit (128) derives a cap of 64 open
/// connections. Before the fix none of them was ever closed and nothing was logged.
#[test]
fn slow_and_idle_connections_are_closed_and_health_answers_under_a_low_descriptor_limit() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::write(
        dir.path().join("no-settings.toml"),
        "[serve]\nheader_read_timeout_s = 2\nidle_timeout_s = 3\n",
    )
    .unwrap();
    let log_dir = logs.to_str().unwrap().to_string();
    let srv = Server::start_prefixed(
        &["prlimit", "--nofile=128:128", "--"],
        "127.0.0.1:0",
        dir.path(),
        &["--log-dir", &log_dir],
        "http",
    );
    let give_up = Duration::from_secs(40);
    let attackers: Vec<_> = (0..100)
        .map(|i| {
            let addr = srv.addr.clone();
            let how = if i % 2 == 0 { Abuse::Slow } else { Abuse::Idle };
            std::thread::spawn(move || abuse(addr, how, give_up))
        })
        .collect();
    // /health keeps answering while they are held: at worst after one wave of timeouts frees slots.
    let t = Instant::now();
    let mut polls = 0;
    while t.elapsed() < Duration::from_secs(8) {
        let (s, b) = curl(&["--max-time", "20", &format!("{}/health", srv.base)]);
        assert_eq!(s, 200, "/health during the attack: {b}");
        polls += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    let held: Vec<Option<Duration>> = attackers.into_iter().map(|h| h.join().unwrap()).collect();
    let open: Vec<usize> = held
        .iter()
        .enumerate()
        .filter(|(_, d)| d.is_none())
        .map(|(i, _)| i)
        .collect();
    assert!(
        open.is_empty(),
        "{} of 100 connections still open after {give_up:?}: {open:?}",
        open.len()
    );
    // Stated timeouts 2 s and 3 s; a connection that waited in the kernel's queue behind the first 64 gets its own
    // timeout after it is accepted: two waves at most, plus slack for a busy machine.
    let longest = held.iter().flatten().max().unwrap();
    assert!(
        *longest < Duration::from_secs(20),
        "longest-held connection {longest:?}"
    );
    eprintln!("{polls} /health polls answered; longest-held abusive connection {longest:?}");
    assert_eq!(
        metric(&srv, "karte_connections_max "),
        64.0,
        "the cap is the descriptor limit (128) less the reserve (64)"
    );
    assert!(
        metric(
            &srv,
            "karte_connections_timed_out_total{reason=\"header\"} "
        ) >= 50.0
    );
    assert!(metric(&srv, "karte_connections_timed_out_total{reason=\"idle\"} ") >= 50.0);

    // The cap was logged, once per burst (not once per connection), without any client address.
    std::thread::sleep(Duration::from_millis(500));
    let cap_lines: Vec<String> = log_lines(&logs)
        .into_iter()
        .filter(|l| l.contains("connection cap reached"))
        .collect();
    assert!(
        (1..=5).contains(&cap_lines.len()),
        "cap warnings: {cap_lines:?}"
    );
    for l in &cap_lines {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["level"], "WARN", "{l}");
        assert!(!l.contains("127.0.0.1"), "no client address: {l}");
    }
    assert!(metric(&srv, "karte_connection_cap_reached_total ") >= 1.0);
    // And it serves as before.
    let (s, _) = curl_json("GET", &format!("{}/v1/models", srv.base), CLIENT, None);
    assert_eq!(s, 200);
}

/// A small prompt with a field replaced or added.
fn chat(extra: Value) -> String {
    let mut b = json!({"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 4});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b.to_string()
}

fn with_schema(schema: Value) -> String {
    chat(
        json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}),
    )
}

/// F8, F10, F5, F11 (server parts of points 6 and 8): one table of bad requests. Before the fix these were accepted
/// (temperature, top_p, n, rate limit 0, revoked PATCH, last-admin revoke), answered "not JSON" (wrong types),
/// 400 (a body over the limit), or 500 (unusable schemas, a prompt over the context).
#[test]
fn bad_requests_are_refused_with_their_status_code_and_field() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), &[]);
    let b = srv.base.clone();
    // Set-up for the management rows: a revoked token, and the id of the only admin token.
    let (s, v) = curl_json(
        "POST",
        &format!("{b}/admin/tokens"),
        ADMIN,
        Some(r#"{"name":"ward1-pc01"}"#),
    );
    assert_eq!(s, 201, "{v}");
    let revoked = v["id"].as_str().unwrap().to_string();
    assert_eq!(
        curl_json(
            "POST",
            &format!("{b}/admin/tokens/{revoked}/revoke"),
            ADMIN,
            None
        )
        .0,
        200
    );
    let list = curl_json("GET", &format!("{b}/admin/tokens"), ADMIN, None).1;
    let admin_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "env-admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let marker = "山田太郎";
    let big_enum: Vec<String> = (0..5000).map(|i| format!("{i:0>100}")).collect();
    let long_prompt = "hello ".repeat(25_000);
    let too_big = format!(
        r#"{{"messages":[{{"role":"user","content":"{}"}}]}}"#,
        "a".repeat(2 * 1024 * 1024)
    );
    let chat_url = chat_url(&srv);
    let tokens = format!("{b}/admin/tokens");
    let revoked_url = format!("{b}/admin/tokens/{revoked}");
    let admin_url = format!("{b}/admin/tokens/{admin_id}");
    let admin_revoke = format!("{b}/admin/tokens/{admin_id}/revoke");
    // (method, url, token, body, status, code, what the message must name)
    let table: Vec<(&str, &str, &str, String, u16, &str, &str)> = vec![
        ("POST", &chat_url, CLIENT, chat(json!({"temperature": -1})), 400, "server.bad_request", "temperature"),
        ("POST", &chat_url, CLIENT, chat(json!({"temperature": 1e308})), 400, "server.bad_request", "temperature"),
        ("POST", &chat_url, CLIENT, chat(json!({"top_p": -3})), 400, "server.bad_request", "top_p"),
        ("POST", &chat_url, CLIENT, chat(json!({"top_p": 0})), 400, "server.bad_request", "top_p"),
        ("POST", &chat_url, CLIENT, chat(json!({"n": 1000})), 400, "server.bad_request", "n は"),
        ("POST", &chat_url, CLIENT, chat(json!({"max_tokens": -5})), 400, "server.bad_request", "max_tokens"),
        ("POST", &chat_url, CLIENT, chat(json!({"max_tokens": marker})), 400, "server.bad_request", "max_tokens"),
        ("POST", &chat_url, CLIENT, chat(json!({"seed": -1})), 400, "server.bad_request", "seed"),
        (
            "POST", &chat_url, CLIENT,
            json!({"messages": [{"role": "user", "content": null}]}).to_string(),
            400, "server.bad_request", "messages[0].content",
        ),
        (
            "POST", &chat_url, CLIENT,
            json!({"messages": [{"role": "user", "content": marker}, {"role": "user", "content": 5}]}).to_string(),
            400, "server.bad_request", "messages[1].content",
        ),
        ("POST", &chat_url, CLIENT, "{}".into(), 400, "server.bad_request", "messages がありません"),
        ("POST", &chat_url, CLIENT, format!("{{\"messages\": \"{marker}"), 400, "server.bad_request", "JSON"),
        ("POST", &chat_url, CLIENT, "not json".into(), 400, "server.bad_request", "JSON として読めません"),
        (
            "POST", &chat_url, CLIENT,
            chat(json!({"response_format": {"type": marker}})),
            400, "server.bad_request", "response_format",
        ),
        (
            "POST", &chat_url, CLIENT, with_schema(json!({"type": "wizard"})),
            400, "server.bad_request", "response_format.json_schema.schema.type",
        ),
        (
            "POST", &chat_url, CLIENT, with_schema(json!({"type": "array", "items": {"type": "string"}, "minItems": 1_000_000})),
            400, "server.bad_request", "response_format.json_schema.schema.minItems",
        ),
        (
            "POST", &chat_url, CLIENT, with_schema(json!({"type": "string", "minLength": 100_000_000u64})),
            400, "server.bad_request", "response_format.json_schema.schema.minLength",
        ),
        (
            "POST", &chat_url, CLIENT, with_schema(json!({"$ref": "#"})),
            400, "server.bad_request", "response_format.json_schema.schema.$ref",
        ),
        (
            "POST", &chat_url, CLIENT, with_schema(json!({"type": "string", "enum": big_enum})),
            400, "server.schema_too_complex", "response_format.json_schema.schema",
        ),
        (
            "POST", &chat_url, CLIENT, with_schema(json!({"anyOf": (0..300).map(|i| json!({"const": i})).collect::<Vec<_>>()})),
            400, "server.schema_too_complex", "response_format.json_schema.schema.anyOf",
        ),
        (
            "POST", &chat_url, CLIENT, json!({"messages": [{"role": "user", "content": long_prompt}], "max_tokens": 4}).to_string(),
            400, "server.prompt_too_long", "トークン",
        ),
        ("POST", &chat_url, CLIENT, too_big, 413, "input.too_large", "大きすぎます"),
        ("POST", &tokens, ADMIN, r#"{"name":"pc","rate_limit_per_min":0}"#.into(), 400, "server.bad_request", "rate_limit_per_min"),
        ("POST", &tokens, ADMIN, r#"{"name":5}"#.into(), 400, "server.bad_request", "name"),
        ("POST", &tokens, ADMIN, r#"{"holder":"workstation"}"#.into(), 400, "server.bad_request", "name がありません"),
        ("PATCH", &admin_url, ADMIN, r#"{"rate_limit_per_min":0}"#.into(), 400, "server.bad_request", "rate_limit_per_min"),
        ("PATCH", &revoked_url, ADMIN, r#"{"role":"admin"}"#.into(), 409, "server.token_revoked", "失効"),
        ("PATCH", &revoked_url, ADMIN, r#"{"rate_limit_per_min":5}"#.into(), 409, "server.token_revoked", "失効"),
        ("PATCH", &admin_url, ADMIN, r#"{"role":"client"}"#.into(), 409, "server.last_admin", "管理者"),
        ("POST", &admin_revoke, ADMIN, String::new(), 409, "server.last_admin", "管理者"),
    ];
    let body_file = dir.path().join("body.json");
    let mut failures = Vec::new();
    for (method, url, token, body, status, code, needle) in &table {
        std::fs::write(&body_file, body).unwrap();
        let auth = format!("Authorization: Bearer {token}");
        let data = format!("@{}", body_file.display());
        let (s, out) = curl(&[
            "-X",
            method,
            url,
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &data,
        ]);
        let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        let short: String = body.chars().take(60).collect();
        if s != *status || v["error"]["code"] != *code || !msg.contains(needle) {
            failures.push(format!(
                "{method} {short}: got {s} {out}; want {status} {code} naming {needle:?}"
            ));
        }
        if msg.contains(marker) || msg.contains("hello") {
            failures.push(format!(
                "{method} {short}: the message repeats the request: {msg}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The refused admin changes changed nothing: the admin token still manages.
    let (s, list) = curl_json("GET", &format!("{b}/admin/tokens"), ADMIN, None);
    assert_eq!(s, 200);
    assert!(list.to_string().contains("\"role\":\"admin\""), "{list}");
    // Valid sampling fields are accepted, and the server still answers.
    let (s, v) = curl_json(
        "POST",
        &chat_url,
        CLIENT,
        Some(&chat(
            json!({"temperature": 0.7, "top_p": 1, "n": 1, "seed": 3}),
        )),
    );
    assert_eq!(s, 200, "{v}");
}

/// F5: the 0.5 MB, 5,000-value enum is refused in well under a second (it held the engine for 9.5 s).
#[test]
fn the_oversized_enum_schema_is_refused_in_well_under_a_second() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), &[]);
    let values: Vec<String> = (0..5000).map(|i| format!("{i:0>100}")).collect();
    let body = json!({
        "messages": [{"role": "user", "content": "Pick one."}],
        "max_tokens": 8,
        "response_format": {"type": "json_schema", "json_schema": {"name": "pick", "schema": {"type": "string", "enum": values}}},
    })
    .to_string();
    assert!(body.len() > 500_000);
    let file = dir.path().join("enum.json");
    std::fs::write(&file, &body).unwrap();
    let auth = format!("Authorization: Bearer {CLIENT}");
    let data = format!("@{}", file.display());
    let t = Instant::now();
    let (s, out) = curl(&[
        &chat_url(&srv),
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &data,
    ]);
    let took = t.elapsed();
    assert_eq!(s, 400, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["error"]["code"], "server.schema_too_complex");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    // A small request right after is served normally.
    let (s, _) = curl_json("POST", &chat_url(&srv), CLIENT, Some(&chat(json!({}))));
    assert_eq!(s, 200);
}

/// Point 6: a client's cost counts against its limit. A token allowed 4 requests a minute sends one request of
/// about 3,000 prompt tokens (1 + 3 units): its minute is used up, so even a small call is refused. Before, only
/// the number of requests counted and the small call was the second of four.
#[test]
fn a_clients_token_cost_counts_against_its_rate_limit() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), &[]);
    let (s, v) = curl_json(
        "POST",
        &format!("{}/admin/tokens", srv.base),
        ADMIN,
        Some(r#"{"name":"ward2-pc03","rate_limit_per_min":4}"#),
    );
    assert_eq!(s, 201, "{v}");
    let tok = v["token"].as_str().unwrap().to_string();
    let big = json!({
        "messages": [{"role": "user", "content": "hello ".repeat(3400)}],
        "max_tokens": 4,
    })
    .to_string();
    let (s, v) = curl_json("POST", &chat_url(&srv), &tok, Some(&big));
    assert_eq!(s, 200, "{v}");
    let prompt = v["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(prompt >= 3072, "the prompt is at least 3 units: {prompt}");
    let (s, v) = curl_json("GET", &format!("{}/v1/models", srv.base), &tok, None);
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["error"]["code"], "server.rate_limited");
    // Another token is not affected.
    assert_eq!(
        curl_json("GET", &format!("{}/v1/models", srv.base), CLIENT, None).0,
        200
    );
}

/// F11: the scheme of `Authorization` is case-insensitive (RFC 7235 §2.1).
#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), &[]);
    let url = format!("{}/v1/models", srv.base);
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let h = format!("Authorization: {scheme} {CLIENT}");
        assert_eq!(curl(&[&url, "-H", &h]).0, 200, "{scheme}");
    }
    for bad in [
        format!("Authorization: Basic {CLIENT}"),
        format!("Authorization: Bearer{CLIENT}"),
        "Authorization: bearer ".to_string(),
    ] {
        assert_eq!(curl(&[&url, "-H", &bad]).0, 401, "{bad}");
    }
}

/// F7: plain HTTP on an address other hosts can reach is refused with its code and a non-zero exit, before the
/// model is loaded; `--insecure-plaintext` allows it, with a warning in the log.
#[test]
fn plain_http_on_a_non_loopback_address_needs_insecure_plaintext() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let base_args = |data: &Path| {
        let mut c = Command::new(common::server_bin());
        c.args([
            "--listen",
            "0.0.0.0:0",
            "--model",
            &common::model(),
            "--data-dir",
        ])
        .arg(data)
        .env("KARTE_ADMIN_TOKEN", ADMIN)
        .env("KARTE_SETTINGS", data.join("no-settings.toml"))
        .stdin(Stdio::piped());
        c
    };
    // Refused at once; a server that listens instead is killed after 30 s and fails the test.
    let child = base_args(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (exited, exit_seen) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        // The child is not reaped before `exited` is sent, so this pid is still ours when it is killed.
        if exit_seen.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    });
    let t = Instant::now();
    let out = child.wait_with_output().unwrap();
    let _ = exited.send(());
    watchdog.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("[server.plaintext_refused]"), "{err}");
    assert!(err.contains("--insecure-plaintext"), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).is_empty(),
        "nothing listened"
    );
    assert!(t.elapsed() < Duration::from_secs(30));

    // With the flag it listens, and says so at warning level.
    let logs = dir.path().join("logs");
    let mut child = base_args(dir.path())
        .args(["--insecure-plaintext", "--log-dir"])
        .arg(&logs)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert!(
        first.starts_with("KARTE_SERVER_LISTENING 0.0.0.0:"),
        "{first:?}"
    );
    let t = Instant::now();
    let warned = loop {
        let w = log_lines(&logs)
            .into_iter()
            .find(|l| l.contains("\"WARN\"") && l.contains("insecure-plaintext"));
        if w.is_some() || t.elapsed() > Duration::from_secs(10) {
            break w;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(warned.is_some(), "no warning in {:?}", log_lines(&logs));

    // The settings file's key does the same.
    std::fs::write(
        dir.path().join("no-settings.toml"),
        "[serve]\ninsecure_plaintext = true\n",
    )
    .unwrap();
    let mut child = base_args(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(first.starts_with("KARTE_SERVER_LISTENING"), "{first:?}");
}
