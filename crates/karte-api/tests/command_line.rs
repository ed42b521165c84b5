//! `Drafter::for_command_line` (what `karte draft` uses) reads the machine's settings file: one test binary of its
//! own, because it points `KARTE_SETTINGS` at its files and the environment is shared by a binary's threads.

use std::sync::Arc;

use karte_api::Drafter;
use karte_core::Code;
use karte_engine::LazyEngine;
use karte_llm::{ChatEngine, EngineKind};

/// What `karte draft` passes: the model in this process, loaded only when a draft needs it.
fn in_process(model: Option<String>) -> Arc<dyn ChatEngine> {
    Arc::new(LazyEngine::from_manifest(model))
}

#[test]
fn command_line_drafter_follows_the_settings_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.toml");
    std::env::set_var("KARTE_SETTINGS", &path);

    // No file: the model in this process, as before (no indicator: nothing to choose between).
    let d = Drafter::for_command_line(Some("smollm2-135m".into()), in_process).unwrap();
    let s = d.status();
    assert!(s.serving.is_none(), "{s:?}");
    assert_eq!(s.model, "smollm2-135m");

    // A broken file is an error with its code, not a silent fallback.
    std::fs::write(&path, "[server]\nurl = \"ftp://clinic\"\n").unwrap();
    let e = match Drafter::for_command_line(None, in_process) {
        Err(e) => e,
        Ok(_) => panic!("a broken settings file was accepted"),
    };
    assert_eq!(e.code, Code::ConfigInvalid);
    assert!(e.message.contains("settings.toml"), "{}", e.message);

    // A clinic server that does not answer: the failover picks this workstation, and says why.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &path,
        format!("[server]\nurl = \"http://127.0.0.1:{port}\"\n[model]\nname = \"smollm2-135m\"\n"),
    )
    .unwrap();
    let d = Drafter::for_command_line(None, in_process).unwrap();
    let s = d.status();
    let sv = s.serving.expect("a workstation engine reports who serves");
    assert_eq!(sv.kind, EngineKind::LocalWorker);
    assert!(
        sv.reason.contains("院内サーバーに接続できません"),
        "{}",
        sv.reason
    );
    assert_eq!(
        s.model, "smollm2-135m",
        "the settings' model is the worker's"
    );
}
