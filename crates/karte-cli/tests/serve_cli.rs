//! `karte serve`: the same server as `karte-server`, started from the CLI with the test model on loopback.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn curl(args: &[&str]) -> (u16, String) {
    let o = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn karte_serve_answers_on_loopback_with_the_env_token_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let model = std::env::var("KARTE_TEST_MODEL").unwrap_or_else(|_| "smollm2-135m".into());
    let token = "kt_cli_serve_test_token_0123456789abcdef0123456789abcdef012345";
    let mut child = Command::new(env!("CARGO_BIN_EXE_karte"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--model",
            &model,
            "--threads",
            "2",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("KARTE_SERVER_TOKEN", token)
        .env("KARTE_SETTINGS", dir.path().join("none.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("KARTE_SERVER_LISTENING ")
        .expect("address line")
        .to_string();
    let t = Instant::now();
    while !curl(&[&format!("http://{addr}/health")])
        .1
        .contains("\"ready\":true")
    {
        assert!(t.elapsed() < Duration::from_secs(120), "not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let url = format!("http://{addr}/v1/chat/completions");
    let body = r#"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":4}"#;
    let (s, b) = curl(&[
        &url,
        "-H",
        &format!("Authorization: Bearer {token}"),
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
    ]);
    assert_eq!(s, 200, "{b}");
    assert!(b.contains("\"chat.completion\""));
    let (s, b) = curl(&[&url, "-H", "Content-Type: application/json", "-d", body]);
    assert_eq!(s, 401);
    assert!(b.contains("server.unauthorized"));
    // The token store holds the env token's hash, not the token.
    let stored = std::fs::read_to_string(dir.path().join("tokens.json")).unwrap();
    assert!(!stored.contains(token));
    let _ = child.kill();
    let _ = child.wait();
}
