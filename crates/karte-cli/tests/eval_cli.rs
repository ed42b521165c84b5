//! `karte eval` end to end with real processes: a remote candidate served by `karte serve` (karte-server) on
//! loopback beside an unreachable endpoint, a run killed mid-way and resumed, and the canary kit and exposure
//! commands on the fast model.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const CLIENT: &str = "kt_test_client_0123456789abcdef0123456789abcdef0123456789abcdef0";
const ADMIN: &str = "kt_test_admin_0123456789abcdef0123456789abcdef0123456789abcdef01";

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn model() -> String {
    std::env::var("KARTE_TEST_MODEL")
        .ok()
        .filter(|m| !m.ends_with(".gguf"))
        .unwrap_or_else(|| "smollm2-135m".into())
}

fn karte() -> Command {
    Command::new(env!("CARGO_BIN_EXE_karte"))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path) -> Server {
    let mut child = karte()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--model",
            &model(),
            "--threads",
            "1",
            "--data-dir",
        ])
        .arg(dir)
        .env("KARTE_ADMIN_TOKEN", ADMIN)
        .env("KARTE_SERVER_TOKEN", CLIENT)
        .env("KARTE_SETTINGS", dir.join("no-settings.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let addr = line
        .strip_prefix("KARTE_SERVER_LISTENING ")
        .expect("listening line")
        .to_string();
    std::thread::spawn(move || for _ in lines {});
    let base = format!("http://{addr}");
    let t = Instant::now();
    loop {
        let o = Command::new("curl")
            .args(["-s", &format!("{base}/health")])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&o.stdout).contains("\"ready\":true") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(180), "server not ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    Server(child, base)
}

fn results_of<'a>(r: &'a serde_json::Value, cand: &str) -> Vec<&'a serde_json::Value> {
    r["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["candidate"] == cand)
        .collect()
}

#[test]
fn remote_candidate_through_karte_server_and_an_unreachable_endpoint() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let out = dir.path().join("out");
    let o: Output = karte()
        .args(["eval", "run", "--candidate"])
        .arg(format!("remote={}", server.1))
        .args([
            "--candidate",
            "down=http://127.0.0.1:9",
            "--suite",
            "privacy,speed",
            "--smoke",
            "--limit",
            "1",
        ])
        .args(["--max-tokens", "64", "--out"])
        .arg(&out)
        .env("KARTE_EVAL_TOKEN", CLIENT)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = json(&out.join("results.json"));
    let remote = results_of(&r, "remote");
    assert_eq!(remote.len(), 2);
    for x in &remote {
        assert_eq!(x["outcome"]["status"], "measured", "{x}");
    }
    let speed = remote.iter().find(|x| x["suite"] == "speed").unwrap();
    let m = &speed["outcome"]["measures"];
    assert!(
        m["gen_tps"].as_f64().unwrap() > 0.0 && m["ttft_ms"].as_f64().unwrap() > 0.0,
        "{m}"
    );
    // karte-server sends its engine's prompt time with the answer (the one stats type on the wire), so prompt speed
    // is the server's measurement; its memory is not ours: not measured rather than made up. (A server without
    // Karte's usage fields leaves prompt speed unmeasured: karte-llm's `openai` tests.)
    assert!(m["prompt_tps"].as_f64().unwrap() > 0.0, "{m}");
    assert!(m.get("peak_mem_mb").is_none(), "{m}");
    let cand = r["meta"]["candidates"].as_array().unwrap();
    assert_eq!(cand[0]["info"]["kind"], "remote");
    assert_eq!(cand[0]["info"]["model"], model());
    let down = results_of(&r, "down");
    assert_eq!(down.len(), 2);
    assert!(
        down.iter()
            .all(|x| x["outcome"]["code"] == "llm.unreachable"),
        "{down:?}"
    );
    assert_eq!(cand[1]["error"]["code"], "llm.unreachable");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| remote | remote |"), "{md}");
    assert!(md.contains("down · `priv-01`: [llm.unreachable]"), "{md}");
    // The bearer token never reaches the report.
    assert!(
        !md.contains(CLIENT)
            && !std::fs::read_to_string(out.join("report.html"))
                .unwrap()
                .contains(CLIENT)
    );
    // Without the token the server refuses, and the run says so per item.
    let out2 = dir.path().join("out2");
    let o = karte()
        .args(["eval", "run", "--candidate"])
        .arg(format!("remote={}", server.1))
        .args(["--suite", "speed", "--smoke", "--limit", "1", "--out"])
        .arg(&out2)
        .env_remove("KARTE_EVAL_TOKEN")
        .output()
        .unwrap();
    assert!(o.status.success());
    let r = json(&out2.join("results.json"));
    assert_eq!(
        r["meta"]["candidates"][0]["error"]["code"], "server.unauthorized",
        "{}",
        r["meta"]
    );
}

#[test]
fn a_killed_run_continues_from_its_cache() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let args = |c: &mut Command| {
        c.args(["eval", "run", "--candidate"])
            .arg(format!("smol={}", model()))
            .args([
                "--suite",
                "privacy,speed",
                "--smoke",
                "--threads",
                "1",
                "--max-tokens",
                "48",
                "--out",
            ])
            .arg(&out);
    };
    let mut c = karte();
    args(&mut c);
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let cache = out.join("cache.jsonl");
    let t = Instant::now();
    while std::fs::read_to_string(&cache).map_or(0, |s| s.lines().count()) < 1 {
        assert!(t.elapsed() < Duration::from_secs(600), "no item finished");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !out.join("results.json").exists(),
        "the run was killed before it finished"
    );
    let mut c = karte();
    args(&mut c);
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = json(&out.join("results.json"));
    let from_cache = r["meta"]["from_cache"].as_u64().unwrap();
    let now = r["meta"]["measured_now"].as_u64().unwrap();
    assert!(from_cache >= 1, "{}", r["meta"]);
    assert_eq!(from_cache + now, 2);

    // Another build of the program (here: the same binary with one byte more) may have other guard rules: its
    // run measures everything again instead of reusing the older build's pipeline results.
    let rebuilt = dir.path().join("karte-rebuilt");
    let mut bin = std::fs::read(env!("CARGO_BIN_EXE_karte")).unwrap();
    bin.push(0);
    std::fs::write(&rebuilt, bin).unwrap();
    std::fs::set_permissions(
        &rebuilt,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut c = Command::new(&rebuilt);
    args(&mut c);
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = json(&out.join("results.json"));
    assert_eq!(r["meta"]["from_cache"].as_u64(), Some(0), "{}", r["meta"]);
    assert_eq!(r["meta"]["measured_now"].as_u64(), Some(2), "{}", r["meta"]);
}

#[test]
fn canary_kit_and_exposure_commands() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let kit = dir.path().join("kit.json");
    let o = karte()
        .args([
            "eval",
            "canary-kit",
            "--count",
            "1",
            "--repeats",
            "1,10",
            "--seed",
            "3",
            "--out",
        ])
        .arg(&kit)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let k = json(&kit);
    assert_eq!(k["canaries"].as_array().unwrap().len(), 2);
    let train = std::fs::read_to_string(dir.path().join("kit.json.train.txt")).unwrap();
    assert_eq!(train.lines().count(), 11);
    let exp = dir.path().join("exposure.md");
    let o = karte()
        .args(["eval", "exposure", "--candidate"])
        .arg(format!("smol={}", model()))
        .arg("--kit")
        .arg(&kit)
        .args(["--samples", "15", "--out"])
        .arg(&exp)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(&exp).unwrap();
    assert!(
        md.contains("canary-001") && md.contains("canary-002") && md.contains("Secret Sharer"),
        "{md}"
    );
    let e = json(&dir.path().join("exposure.md.json"));
    for c in e["canaries"].as_array().unwrap() {
        let rank = c["rank"].as_u64().unwrap();
        assert!((1..=16).contains(&rank));
        let want = 16f64.log2() - (rank as f64).log2();
        assert!((c["sampled_rank"].as_f64().unwrap() - want).abs() < 1e-9);
    }
    // An endpoint gives no log-likelihoods: a clear error, not a made-up number.
    let o = karte()
        .args([
            "eval",
            "exposure",
            "--candidate",
            "r=http://127.0.0.1:9",
            "--kit",
        ])
        .arg(&kit)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("[eval.scoring_unsupported]"));
    // A broken kit file.
    std::fs::write(dir.path().join("bad.json"), "{\"format\":1}").unwrap();
    let o = karte()
        .args(["eval", "exposure", "--candidate"])
        .arg(format!("smol={}", model()))
        .arg("--kit")
        .arg(dir.path().join("bad.json"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("[eval.kit_invalid]"));
}
