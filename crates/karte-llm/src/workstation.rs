//! The chat engine of one ward workstation, put together from the machine's settings file.
//!
//! The desktop app and `karte draft` both get their engine here, so the rule a nurse learns ("院内サーバー when it
//! answers, この端末 otherwise") is the same in the window and on the command line, and no front end wires
//! [`Failover`], [`LocalWorker`] and [`HttpEngine`] by hand.
//!
//! A settings file that cannot be used (does not parse, names a certificate that cannot be read) is not a crash and
//! not a silent fallback: the workstation keeps the error ([`Workstation::problem`]), every model request answers
//! with it (`config.invalid`, with a message that says to call the administrator), and rules-only drafting still
//! works. Sending a ward to the local model when IT configured a server, because of a typo, is exactly what the
//! settings module refuses to do quietly.

use std::path::PathBuf;
use std::sync::Arc;

use karte_core::{Code, Error, Result};

use crate::failover::{Failover, FailoverConfig};
use crate::http::HttpEngine;
use crate::settings::{ServerSettingsExt, Settings};
use crate::worker::{LocalWorker, WorkerConfig};
use crate::{
    CancelToken, ChatEngine, ChatRequest, ChatResponse, EngineKind, Heard, Piece, Serving,
    Transcriber,
};

#[derive(Debug, Clone)]
pub struct WorkstationOptions {
    /// The model chosen by the user for this run (`KARTE_MODEL`, `--model`): wins over the settings file's
    /// `model.name`, which wins over the manifest's default.
    pub model: Option<String>,
    /// `karte-server`, run as the supervised `--local` worker: a llama.cpp crash costs the worker, never the
    /// caller. `None` when the binary was not found (an incomplete installation): model requests then fail with
    /// `worker.start_failed`, naming the missing program.
    pub worker: Option<PathBuf>,
    /// Pass the worker's JSON logs through to this process's stderr (the app's log).
    pub worker_stderr: bool,
}

impl WorkstationOptions {
    /// The installed layout: `karte-server` next to the running executable (the desktop app and the CLI are
    /// shipped side by side with it).
    pub fn beside_current_exe(model: Option<String>) -> Self {
        Self {
            model,
            worker: WorkerConfig::beside_current_exe(),
            worker_stderr: true,
        }
    }
}

/// The assembled engine, plus the handles the front ends need around it (re-check the server, stop the worker).
pub struct Workstation {
    engine: Arc<dyn ChatEngine>,
    voice: Arc<dyn Transcriber>,
    failover: Option<Arc<Failover>>,
    worker: Option<Arc<LocalWorker>>,
    problem: Option<Error>,
    model: Option<String>,
    server_configured: bool,
}

impl std::fmt::Debug for Workstation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workstation")
            .field("server_configured", &self.server_configured)
            .field("problem", &self.problem.as_ref().map(|e| e.code))
            .finish()
    }
}

fn worker_missing() -> Error {
    Error::new(
        Code::WorkerStartFailed,
        "この端末の文章生成プロセス（karte-server）がアプリと同じフォルダーにありません。管理者に再インストールを依頼してください。",
    )
}

impl Workstation {
    /// Reads the machine's settings file (`$KARTE_SETTINGS` or the platform's path) and assembles the engine.
    pub fn load(opts: WorkstationOptions) -> Self {
        Self::from_settings(Settings::load(), opts)
    }

    /// Assembles the engine from already-read settings; a settings error becomes [`Workstation::problem`].
    /// Nothing is started here: the worker starts on [`ChatEngine::prepare`] or on the first request.
    pub fn from_settings(settings: Result<Settings>, opts: WorkstationOptions) -> Self {
        let settings = match settings {
            Ok(s) => s,
            Err(e) => return Self::unusable(e, opts.model),
        };
        let model = opts.model.clone().or_else(|| settings.model.name.clone());
        let server = match &settings.server {
            None => None,
            Some(srv) => match srv.http_config().and_then(HttpEngine::new) {
                Ok(e) => Some(e),
                Err(e) => return Self::unusable(e, model),
            },
        };
        let server_configured = server.is_some();
        let send_audio = settings.server.as_ref().is_none_or(|s| s.send_audio);
        let (local, local_voice, worker): LocalParts = match &opts.worker {
            Some(program) => {
                let mut cfg = WorkerConfig::new(program);
                cfg.model.clone_from(&model);
                cfg.threads = settings.model.threads;
                cfg.inherit_stderr = opts.worker_stderr;
                let w = Arc::new(LocalWorker::new(cfg));
                (w.clone(), w.clone(), Some(w))
            }
            None => {
                let u = Arc::new(Unusable(worker_missing()));
                (u.clone(), u, None)
            }
        };
        let failover = Arc::new(
            Failover::new(server, local, FailoverConfig::default())
                .with_voice(local_voice, send_audio),
        );
        Self {
            engine: Arc::clone(&failover) as Arc<dyn ChatEngine>,
            voice: Arc::clone(&failover) as Arc<dyn Transcriber>,
            failover: Some(failover),
            worker,
            problem: None,
            model,
            server_configured,
        }
    }

    fn unusable(e: Error, model: Option<String>) -> Self {
        tracing::warn!(code = %e.code, "workstation settings unusable; model drafting disabled");
        let u = Arc::new(Unusable(e.clone()));
        Self {
            engine: u.clone(),
            voice: u,
            failover: None,
            worker: None,
            problem: Some(e),
            model,
            server_configured: false,
        }
    }

    /// The engine to draft with (karte-api's `Drafter::with_engine`).
    pub fn engine(&self) -> Arc<dyn ChatEngine> {
        Arc::clone(&self.engine)
    }

    /// Speech to text on this workstation (clinic server or worker, as the settings allow).
    pub fn transcriber(&self) -> Arc<dyn Transcriber> {
        Arc::clone(&self.voice)
    }

    /// Why model drafting cannot work on this workstation (the settings file), to show the user at start-up.
    pub fn problem(&self) -> Option<&Error> {
        self.problem.as_ref()
    }

    /// The model the local worker runs: a manifest name or a GGUF path; `None` = the manifest's default.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    pub fn server_configured(&self) -> bool {
        self.server_configured
    }

    /// Probes the clinic server now instead of waiting for the cached decision to expire (the 再接続 button).
    pub fn recheck(&self) -> Serving {
        match &self.failover {
            Some(f) => f.recheck(),
            None => self.engine.serving(),
        }
    }

    /// Stops the local worker (its stdin is closed; killed if it does not stop within 3 s). Call on exit: a process
    /// that ends without running destructors (an event loop that exits the process) would otherwise rely on the
    /// worker noticing its stdin closing, which it also does, but later.
    pub fn shutdown(&self) {
        if let Some(w) = &self.worker {
            w.shutdown();
        }
    }
}

/// The chat engine, the speech engine and the supervisor of this workstation's own side.
type LocalParts = (
    Arc<dyn ChatEngine>,
    Arc<dyn Transcriber>,
    Option<Arc<LocalWorker>>,
);

/// An engine that cannot work, answering every request with why.
struct Unusable(Error);

impl Transcriber for Unusable {
    fn transcribe(&self, _audio: &[u8]) -> Result<Heard> {
        Err(self.0.clone())
    }
}

impl ChatEngine for Unusable {
    fn chat(
        &self,
        _req: &ChatRequest,
        _cancel: &CancelToken,
        _on_token: &mut dyn FnMut(Piece<'_>),
    ) -> Result<ChatResponse> {
        Err(self.0.clone())
    }

    fn serving(&self) -> Serving {
        // Short: the window shows the full message (with its code) in its own alert.
        Serving::new(
            EngineKind::LocalWorker,
            format!("この端末のモデルを使えません（{}）", self.0.code),
        )
    }

    fn prepare(&self) -> Result<()> {
        Err(self.0.clone())
    }

    fn ready(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(program: Option<PathBuf>) -> WorkstationOptions {
        WorkstationOptions {
            model: None,
            worker: program,
            worker_stderr: false,
        }
    }

    /// Settings problems of every kind: the workstation is built (no panic), keeps the error with its code, and
    /// answers model requests with it; no worker is started.
    #[test]
    fn unusable_settings_are_kept_as_the_problem_and_answer_every_request() {
        let dir = tempfile::tempdir().unwrap();
        let missing_cert = dir.path().join("none.pem");
        let cases: Vec<(&str, String, Code)> = vec![
            ("syntax", "[server\nurl = 1\n".into(), Code::ConfigInvalid),
            (
                "unknown key",
                "[modle]\nname = \"x\"\n".into(),
                Code::ConfigInvalid,
            ),
            (
                "unreadable pin",
                format!(
                    "[server]\nurl = \"https://127.0.0.1:9\"\npinned_cert = \"{}\"\n",
                    missing_cert.display()
                ),
                Code::ConfigInvalid,
            ),
        ];
        for (name, text, code) in cases {
            let path = dir.path().join(format!("{}.toml", name.replace(' ', "_")));
            std::fs::write(&path, text).unwrap();
            let ws = Workstation::from_settings(
                Settings::load_from(&path),
                opts(Some("/nonexistent/karte-server".into())),
            );
            let p = ws.problem().unwrap_or_else(|| panic!("{name}: no problem"));
            assert_eq!(p.code, code, "{name}");
            assert!(p.message.contains("管理者"), "{name}: {}", p.message);
            let e = ws
                .engine()
                .chat(
                    &ChatRequest::new(vec![crate::ChatMessage::user("x")]),
                    &CancelToken::new(),
                    &mut |_| {},
                )
                .unwrap_err();
            assert_eq!(e.code, code, "{name}");
            assert!(!ws.engine().ready(), "{name}");
            assert_eq!(ws.engine().serving().label, "この端末", "{name}");
        }
    }

    #[test]
    fn missing_worker_binary_is_a_start_failure_not_a_panic() {
        let ws = Workstation::from_settings(Ok(Settings::default()), opts(None));
        assert!(ws.problem().is_none());
        let e = ws.engine().prepare().unwrap_err();
        assert_eq!(e.code, Code::WorkerStartFailed);
        assert!(e.message.contains("karte-server"));
    }

    #[test]
    fn model_choice_command_line_over_settings_over_default() {
        let s = Settings::parse("[model]\nname = \"qwen2.5-coder-0.5b\"\n").unwrap();
        let cases = [
            (Some("smollm2-135m"), Some("smollm2-135m")),
            (None, Some("qwen2.5-coder-0.5b")),
        ];
        for (given, want) in cases {
            let mut o = opts(None);
            o.model = given.map(str::to_string);
            let ws = Workstation::from_settings(Ok(s.clone()), o);
            assert_eq!(ws.model(), want);
        }
        let ws = Workstation::from_settings(Ok(Settings::default()), opts(None));
        assert_eq!(ws.model(), None);
    }

    #[test]
    fn without_a_server_the_indicator_says_this_workstation_and_why() {
        let ws = Workstation::from_settings(Ok(Settings::default()), opts(None));
        assert!(!ws.server_configured());
        let s = ws.recheck();
        assert_eq!(s.kind, EngineKind::LocalWorker);
        assert_eq!(s.label, "この端末");
        assert!(s.reason.contains("設定されていません"), "{}", s.reason);
    }
}
