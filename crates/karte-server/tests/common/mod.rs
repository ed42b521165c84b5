//! Real karte-server processes on loopback for the integration tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const ADMIN: &str = "kt_test_admin_0123456789abcdef0123456789abcdef0123456789abcdef01";
pub const CLIENT: &str = "kt_test_client_0123456789abcdef0123456789abcdef0123456789abcdef0";

/// Model tests share two cores: one server at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// The fast test model (manifest name), as CI sets it.
pub fn model() -> String {
    std::env::var("KARTE_TEST_MODEL").unwrap_or_else(|_| "smollm2-135m".into())
}

pub fn server_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_karte-server"))
}

pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("KARTE_VENV")
        .map_or_else(|| PathBuf::from("/var/cache/karte/venv"), PathBuf::from);
    let py = venv.join("bin").join("python");
    assert!(
        py.is_file(),
        "{} is missing: run `cargo xtask setup` (it creates the venv with the openai package)",
        py.display()
    );
    py
}

pub struct Server {
    pub child: Child,
    pub addr: String,
    pub base: String,
}

fn stderr() -> Stdio {
    if std::env::var_os("KARTE_TEST_SERVER_LOG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

/// Writes the settings file a [`Server`] started on `data_dir` reads, with the answer guard counting verdicts
/// only (`[serve.guard] mode = "flag"`): for tests of streaming and failover timing, which the guard's hold-back
/// of up to one sentence would otherwise change.
pub fn guard_flag_only(data_dir: &Path) {
    std::fs::write(
        data_dir.join("no-settings.toml"),
        "[serve.guard]\nmode = \"flag\"\n",
    )
    .unwrap();
}

impl Server {
    /// Starts `karte-server --listen 127.0.0.1:0` with the test model, the admin and client tokens from the
    /// environment, and waits until `/health` says ready.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_on("127.0.0.1:0", data_dir, extra, "http")
    }

    pub fn start_on(listen: &str, data_dir: &Path, extra: &[&str], scheme: &str) -> Server {
        Self::start_prefixed(&[], listen, data_dir, extra, scheme)
    }

    /// As [`Server::start_on`], run through `prefix` (e.g. `prlimit --nofile=128:128 --`), which must exec the
    /// server in its own process so that the child is the server.
    pub fn start_prefixed(
        prefix: &[&str],
        listen: &str,
        data_dir: &Path,
        extra: &[&str],
        scheme: &str,
    ) -> Server {
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(server_bin());
                c
            }
            None => Command::new(server_bin()),
        };
        cmd.args(["--model", &model(), "--threads", "2"]);
        Self::spawn(cmd, listen, data_dir, extra, scheme)
    }

    /// Upstream mode: no model here; `extra` names the `--upstream` URLs.
    pub fn start_upstream(data_dir: &Path, extra: &[&str]) -> Server {
        Self::spawn(
            Command::new(server_bin()),
            "127.0.0.1:0",
            data_dir,
            extra,
            "http",
        )
    }

    fn spawn(
        mut cmd: Command,
        listen: &str,
        data_dir: &Path,
        extra: &[&str],
        scheme: &str,
    ) -> Server {
        cmd.args(["--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("KARTE_ADMIN_TOKEN", ADMIN)
            .env("KARTE_SERVER_TOKEN", CLIENT)
            .env("KARTE_SETTINGS", data_dir.join("no-settings.toml"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr());
        let mut child = cmd.spawn().expect("karte-server starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = lines.next().expect("a line").expect("utf-8");
        let addr = line
            .strip_prefix("KARTE_SERVER_LISTENING ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        std::thread::spawn(move || for _ in lines {});
        let base = format!("{scheme}://{addr}");
        let s = Server { child, addr, base };
        if scheme == "http" {
            s.wait_ready();
        }
        s
    }

    pub fn wait_ready(&self) {
        let t = Instant::now();
        loop {
            if let Ok(o) = Command::new("curl")
                .args(["-s", &format!("{}/health", self.base)])
                .output()
            {
                if String::from_utf8_lossy(&o.stdout).contains("\"ready\":true") {
                    return;
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "server not ready in 120 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// curl, returning (status, body). `args` come after the defaults.
pub fn curl(args: &[&str]) -> (u16, String) {
    let o = Command::new("curl")
        .args(["-s", "-S", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A JSON request with a bearer token.
pub fn curl_json(
    method: &str,
    url: &str,
    token: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let auth = format!("Authorization: Bearer {token}");
    let mut args = vec![
        "-X",
        method,
        url,
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
    ];
    if let Some(b) = body {
        args.push("-d");
        args.push(b);
    }
    let (s, b) = curl(&args);
    (
        s,
        serde_json::from_str(&b).unwrap_or(serde_json::Value::Null),
    )
}

/// Runs `tests/clients/SCRIPT` with the test venv's Python (the official `openai` package) and returns the JSON it
/// prints; a script that fails fails the test with its stderr.
pub fn python_client(script: &str, args: &[&str]) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let o = Command::new(venv_python())
        .arg(path)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "python client {script} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A client token made through the management API: (id, token).
pub fn new_token(base: &str, name: &str, extra: serde_json::Value) -> (String, String) {
    let mut body = serde_json::json!({"name": name, "holder": "workstation", "role": "client"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (s, v) = curl_json(
        "POST",
        &format!("{base}/admin/tokens"),
        ADMIN,
        Some(&body.to_string()),
    );
    assert_eq!(s, 201, "{v}");
    (
        v["id"].as_str().unwrap().to_string(),
        v["token"].as_str().unwrap().to_string(),
    )
}

/// Runs the official `openai` Python package against `base` (tests/clients/openai_client.py) and checks what every
/// mode must give it: a whole and a streamed answer that agree (greedy), usage, a JSON-schema answer that parses
/// with the required keys, and 401 with Karte's code for unknown and revoked tokens. Returns what it observed, for
/// the mode's own checks. A streamed answer arrives in at least `min_pieces` pieces.
pub fn openai_client(base: &str, min_pieces: u64) -> serde_json::Value {
    let (_, good) = new_token(base, "ward3-pc07", serde_json::json!({}));
    let (revoked_id, revoked) = new_token(base, "ward3-pc08", serde_json::json!({}));
    let (s, _) = curl_json(
        "POST",
        &format!("{base}/admin/tokens/{revoked_id}/revoke"),
        ADMIN,
        None,
    );
    assert_eq!(s, 200);
    let v = python_client("openai_client.py", &[base, &good, &revoked]);
    // Non-streamed answer.
    assert!(
        matches!(
            v["plain"]["finish_reason"].as_str(),
            Some("stop" | "length")
        ),
        "{v}"
    );
    assert!(
        v["plain"]["completion_tokens"].as_u64().unwrap() >= 1,
        "{v}"
    );
    assert!(!v["plain"]["content"].as_str().unwrap().is_empty(), "{v}");
    // Streamed answer: pieces, a finish reason, usage at the end.
    assert!(v["stream"]["pieces"].as_u64().unwrap() >= min_pieces, "{v}");
    assert!(
        matches!(
            v["stream"]["finish_reason"].as_str(),
            Some("stop" | "length")
        ),
        "{v}"
    );
    assert!(
        v["stream"]["completion_tokens"].as_u64().unwrap() >= 1,
        "{v}"
    );
    // Greedy decoding: the streamed text equals the whole answer.
    assert_eq!(v["stream"]["text"], v["plain"]["content"], "{v}");
    // JSON schema: the answer parses with the required keys and types.
    assert_eq!(v["schema"]["finish_reason"], "stop", "{v}");
    let parsed = &v["schema"]["parsed"];
    assert!(parsed["color"].is_string(), "{v}");
    assert!(parsed["count"].is_i64() || parsed["count"].is_u64(), "{v}");
    // Unknown and revoked tokens: 401 with Karte's code, as the openai package's AuthenticationError.
    for t in ["unknown_token", "revoked_token"] {
        assert_eq!(v[t]["status"], 401, "{v}");
        assert_eq!(v[t]["code"], "server.unauthorized", "{v}");
    }
    v
}
