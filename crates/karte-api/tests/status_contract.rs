//! `EngineStatus` and `Progress` are karte-ipc's, shared with the window: these tests pin the JSON the window's own
//! tests render (ui/tests/fixtures) as the wire format, and the indicator's texts to what a real `Workstation` says.

use std::sync::Arc;

use karte_api::{Drafter, EngineStatus, Progress};
use karte_llm::{EngineKind, Settings, Workstation, WorkstationOptions};

const FIXTURES: [&str; 3] = [
    include_str!("../../../ui/tests/fixtures/engine_status_server.json"),
    include_str!("../../../ui/tests/fixtures/engine_status_local.json"),
    include_str!("../../../ui/tests/fixtures/engine_status_problem.json"),
];

#[test]
fn the_windows_status_fixtures_are_what_karte_api_writes() {
    for text in FIXTURES {
        let fixture: serde_json::Value = serde_json::from_str(text).unwrap();
        let status: EngineStatus = serde_json::from_str(text).expect("karte-api reads the fixture");
        assert_eq!(serde_json::to_value(&status).unwrap(), fixture);
    }
}

#[test]
fn a_reset_is_written_as_the_window_parses_it() {
    let p = Progress::Reset {
        message: "生成をやり直しています".into(),
    };
    assert_eq!(
        serde_json::to_value(&p).unwrap(),
        serde_json::json!({"type": "reset", "message": "生成をやり直しています"})
    );
}

fn workstation(settings: &str) -> Drafter {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.toml");
    std::fs::write(&path, settings).unwrap();
    let ws = Workstation::from_settings(
        Settings::load_from(&path),
        WorkstationOptions {
            model: Some("smollm2-135m".into()),
            // Never started by these tests: only the status is asked for.
            worker: Some("/nonexistent/karte-server".into()),
            worker_stderr: false,
        },
    );
    Drafter::for_workstation(Arc::new(ws))
}

#[test]
fn a_real_workstation_reports_the_indicator_the_window_shows() {
    // A clinic server on a port nobody listens on: the health check is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = workstation(&format!("[server]\nurl = \"http://127.0.0.1:{port}\"\n"));
    let s = d.status();
    let sv = s.serving.expect("a workstation reports who serves");
    assert_eq!(sv.kind, EngineKind::LocalWorker);
    let local: EngineStatus = serde_json::from_str(FIXTURES[1]).unwrap();
    assert_eq!(
        Some(sv.clone()),
        local.serving,
        "the fixture's text is the real one"
    );
    assert!(!s.loaded, "the worker was never started");
    assert!(s.problem.is_none());
    assert_eq!(s.model, "smollm2-135m");
    // 再接続 probes again and still finds nobody.
    assert_eq!(d.reconnect().serving, Some(sv));

    let d = workstation("[server]\nurll = \"http://127.0.0.1:9\"\n");
    let s = d.status();
    let p = s.problem.expect("a broken settings file is reported");
    assert_eq!(p.code, karte_core::Code::ConfigInvalid);
    assert!(
        p.message.contains("行目") && p.message.contains("urll"),
        "{}",
        p.message
    );
    assert!(p.message.contains("管理者"), "{}", p.message);
    assert_eq!(s.serving.map(|s| s.label).as_deref(), Some("この端末"));
}
