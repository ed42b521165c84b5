//! The supervised local worker: `karte-server --local` as a child process, spoken to over loopback HTTP.
//!
//! llama.cpp aborts the whole process on some internal errors (GGML_ASSERT), and no `catch_unwind` stops an abort.
//! Running the model in a child process turns that into "the worker died": the app, the window and the user's
//! dictation stay; the supervisor starts a new worker (with backoff, so a model that crashes at once does not spin
//! the CPU) and asks again, telling the caller to discard what it had streamed ([`Piece::Reset`]).
//!
//! Protocol (`karte_ipc::worker`; karte-server's `serve` module has the other side): one-time token in
//! `KARTE_WORKER_TOKEN` (never argv: any local user can read argv through `ps`); the child prints
//! `KARTE_SERVER_LISTENING 127.0.0.1:PORT` once bound;
//! the parent keeps the child's stdin open and closes it to stop the child, so a parent killed outright never
//! leaves an orphan model holding gigabytes.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use karte_core::{Code, Error, Result};
use rand::RngCore;

use crate::http::{HttpEngine, HttpEngineConfig};
use crate::{
    CancelToken, ChatEngine, ChatRequest, ChatResponse, EngineKind, Heard, Piece, Serving,
    Transcriber,
};

use karte_ipc::worker::{LISTENING_PREFIX, TOKEN_ENV};

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The `karte-server` binary (installed next to the desktop app).
    pub program: PathBuf,
    /// Manifest name or GGUF path passed as `--model`.
    pub model: Option<String>,
    pub threads: Option<i32>,
    /// Extra environment for the child (e.g. `KARTE_MODEL_DIR`); the token is added by the supervisor.
    pub env: Vec<(String, String)>,
    /// How long a fresh worker may take to bind and load its model.
    pub start_timeout: Duration,
    /// Attempts per request after the first (each after a restart).
    pub retries: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Longest silence in a streamed answer before the worker counts as hung (then it is killed and restarted).
    pub idle_timeout: Duration,
    /// Pass the worker's JSON logs through to our stderr (the app's log); off in tests to keep output readable.
    pub inherit_stderr: bool,
}

impl WorkerConfig {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            model: None,
            threads: None,
            env: Vec::new(),
            start_timeout: Duration::from_secs(120),
            retries: 2,
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            inherit_stderr: true,
        }
    }

    /// `karte-server` next to the running executable (the installed layout, and cargo's target dir in tests).
    pub fn beside_current_exe() -> Option<PathBuf> {
        let exe = std::env::current_exe().ok()?;
        let dir = exe.parent()?;
        let name = if cfg!(windows) {
            "karte-server.exe"
        } else {
            "karte-server"
        };
        [dir.join(name), dir.parent()?.join(name)]
            .into_iter()
            .find(|p| p.is_file())
    }
}

struct Running {
    child: Child,
    /// Held open: closing it tells the worker to stop.
    stdin: Option<ChildStdin>,
    engine: HttpEngine,
}

impl Running {
    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn stop(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if !self.alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Default)]
struct Supervision {
    running: Option<Running>,
    restarts: u32,
    consecutive_failures: u32,
    last_failure: Option<Instant>,
}

/// The supervisor. `Send + Sync`; requests to one worker are serialised by the worker's own queue.
pub struct LocalWorker {
    cfg: WorkerConfig,
    sup: Mutex<Supervision>,
}

impl std::fmt::Debug for LocalWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalWorker")
            .field("program", &self.cfg.program)
            .finish()
    }
}

fn start_failed(detail: &str) -> Error {
    Error::new(
        Code::WorkerStartFailed,
        format!("この端末の文章生成プロセスを起動できませんでした（{detail}）。アプリを再起動してください。続く場合は管理者に連絡してください。"),
    )
}

fn crashed() -> Error {
    Error::new(
        Code::WorkerCrashed,
        "この端末の文章生成プロセスが繰り返し停止しました。入力内容は保持されています。時間をおいて再度お試しください。",
    )
}

impl LocalWorker {
    pub fn new(cfg: WorkerConfig) -> Self {
        Self {
            cfg,
            sup: Mutex::new(Supervision::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Supervision> {
        self.sup.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many times the worker was restarted after dying (for the UI and tests).
    pub fn restarts(&self) -> u32 {
        self.lock().restarts
    }

    /// The running worker's process id, if any (tests kill it to prove recovery).
    pub fn pid(&self) -> Option<u32> {
        self.lock().running.as_ref().map(|r| r.child.id())
    }

    /// Starts the worker now (the app calls this at start-up so the first draft does not wait for the model).
    pub fn start(&self) -> Result<()> {
        self.engine().map(|_| ())
    }

    /// Stops the worker by closing its stdin (and kills it if it does not stop within 3 s).
    pub fn shutdown(&self) {
        if let Some(r) = self.lock().running.take() {
            r.stop();
        }
    }

    /// A live worker's client, starting or restarting the worker as needed.
    fn engine(&self) -> Result<HttpEngine> {
        let mut sup = self.lock();
        if let Some(r) = sup.running.as_mut() {
            if r.alive() {
                return clone_engine(&r.engine);
            }
            let status = r.child.try_wait().ok().flatten();
            tracing::warn!(?status, "local worker died; restarting");
            sup.running = None;
            sup.restarts += 1;
            sup.consecutive_failures += 1;
            sup.last_failure = Some(Instant::now());
        }
        // Backoff grows with consecutive failures, so a worker that dies at start does not spin.
        if sup.consecutive_failures > 0 {
            let exp = sup.consecutive_failures.saturating_sub(1).min(16);
            let wait = self
                .cfg
                .backoff_initial
                .saturating_mul(1 << exp)
                .min(self.cfg.backoff_max);
            std::thread::sleep(wait);
        }
        let r = self.spawn()?;
        let e = clone_engine(&r.engine)?;
        sup.running = Some(r);
        Ok(e)
    }

    fn spawn(&self) -> Result<Running> {
        let mut b = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut b);
        let token = hex::encode(b);
        let mut cmd = Command::new(&self.cfg.program);
        cmd.arg("--local")
            .env(TOKEN_ENV, &token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if self.cfg.inherit_stderr {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        if let Some(m) = &self.cfg.model {
            cmd.arg("--model").arg(m);
        }
        if let Some(t) = self.cfg.threads {
            cmd.arg("--threads").arg(t.to_string());
        }
        for (k, v) in &self.cfg.env {
            cmd.env(k, v);
        }
        let t0 = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|_| start_failed("実行ファイルがありません"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or_else(|| start_failed("出力"))?;
        // One thread reads the child's stdout for its whole life: the first line is the address, the rest is drained
        // so the child never blocks on a full pipe.
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("karte-worker-stdout".into())
            .spawn(move || {
                let mut sent = false;
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if !sent {
                        if let Some(addr) = line.strip_prefix(LISTENING_PREFIX) {
                            let _ = tx.send(addr.trim().to_string());
                            sent = true;
                        }
                    }
                }
            })
            .map_err(|_| start_failed("スレッド"))?;
        let fail = |mut child: Child, why: &str| {
            let _ = child.kill();
            let _ = child.wait();
            start_failed(why)
        };
        let addr = match rx.recv_timeout(self.cfg.start_timeout) {
            Ok(a) => a,
            Err(_) => return Err(fail(child, "応答なし")),
        };
        let mut hc = HttpEngineConfig::new(format!("http://{addr}"), Some(token));
        hc.kind = EngineKind::LocalWorker;
        hc.connect_timeout = Duration::from_secs(2);
        hc.idle_timeout = self.cfg.idle_timeout;
        let engine = HttpEngine::new(hc)?;
        let mut running = Running {
            child,
            stdin,
            engine,
        };
        // Wait for the model: /health says loading until it is ready, failed if it cannot load.
        loop {
            if !running.alive() {
                return Err(fail(running.child, "起動直後に停止"));
            }
            match running.engine.health(Duration::from_secs(2)) {
                Ok(h) if h.ready => break,
                Ok(h) if h.status == "failed" => {
                    return Err(fail(running.child, "モデルを読み込めません"))
                }
                _ => {}
            }
            if t0.elapsed() > self.cfg.start_timeout {
                return Err(fail(
                    running.child,
                    "モデルの読み込みが時間内に終わりません",
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        tracing::info!(
            pid = running.child.id(),
            start_ms = t0.elapsed().as_millis() as u64,
            "local worker ready"
        );
        Ok(running)
    }

    /// Marks the current worker dead (it crashed or hung): it is killed and restarted on next use.
    fn discard(&self) {
        let mut sup = self.lock();
        if let Some(mut r) = sup.running.take() {
            let _ = r.child.kill();
            let _ = r.child.wait();
            sup.restarts += 1;
        }
        sup.consecutive_failures += 1;
        sup.last_failure = Some(Instant::now());
    }

    fn succeeded(&self) {
        self.lock().consecutive_failures = 0;
    }
}

/// Each call gets its own client over the worker's address and token (reqwest clients are cheap to clone, but the
/// engine wraps its config; rebuilding keeps `HttpEngine` free of interior mutability).
fn clone_engine(e: &HttpEngine) -> Result<HttpEngine> {
    HttpEngine::new(e.config().clone())
}

/// Errors that mean "the worker, not the request, is the problem": retry on a fresh worker.
fn worker_fault(e: &Error) -> bool {
    matches!(
        e.code,
        Code::LlmUnreachable | Code::LlmTimeout | Code::LlmProtocol | Code::EngineFailed
    )
}

impl LocalWorker {
    /// Runs `call` on a live worker, restarting the worker and calling again (up to `retries` times) when the
    /// worker, not the request, failed. `call` gets a fresh client each attempt and must be repeatable: the
    /// request (a dictation, a recording) stays with the caller.
    fn with_retries<T>(
        &self,
        cancel: &CancelToken,
        mut call: impl FnMut(&HttpEngine) -> Result<T>,
    ) -> Result<T> {
        let mut attempt = 0;
        loop {
            if cancel.is_cancelled() {
                return Err(crate::cancelled());
            }
            let engine = match self.engine() {
                Ok(e) => e,
                Err(e) if attempt < self.cfg.retries => {
                    tracing::warn!(code = %e.code, attempt, "local worker start failed; retrying");
                    attempt += 1;
                    self.discard();
                    continue;
                }
                Err(e) => return Err(e),
            };
            match call(&engine) {
                Ok(r) => {
                    self.succeeded();
                    return Ok(r);
                }
                Err(e) if e.code == Code::EngineCancelled => return Err(e),
                Err(e) if worker_fault(&e) && attempt < self.cfg.retries => {
                    tracing::warn!(code = %e.code, attempt, "local worker failed mid-request; restarting and retrying");
                    attempt += 1;
                    self.discard();
                }
                Err(e) if worker_fault(&e) => {
                    self.discard();
                    tracing::error!(code = %e.code, "local worker keeps failing");
                    return Err(crashed());
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl ChatEngine for LocalWorker {
    fn chat(
        &self,
        req: &ChatRequest,
        cancel: &CancelToken,
        on_token: &mut dyn FnMut(Piece<'_>),
    ) -> Result<ChatResponse> {
        self.with_retries(cancel, |engine| {
            let mut streamed = false;
            let result = engine.chat(req, cancel, &mut |p| {
                if let Piece::Text(_) = p {
                    streamed = true;
                }
                on_token(p);
            });
            // The next attempt starts the answer over: the caller drops what this one streamed.
            if matches!(&result, Err(e) if worker_fault(e)) && streamed {
                on_token(Piece::Reset);
            }
            result
        })
    }

    fn serving(&self) -> Serving {
        Serving::new(EngineKind::LocalWorker, "この端末のモデルで生成します")
    }

    fn prepare(&self) -> Result<()> {
        self.start()
    }

    fn ready(&self) -> bool {
        // A worker being started holds the lock for the whole model load: that is "not ready", and the status
        // call must not wait for it.
        match self.sup.try_lock() {
            Ok(mut sup) => sup.running.as_mut().is_some_and(Running::alive),
            Err(_) => false,
        }
    }
}

impl Transcriber for LocalWorker {
    /// The recogniser runs in the worker, so a crash in it costs the worker: restarted, and the same recording
    /// heard again.
    fn transcribe(&self, audio: &[u8]) -> Result<Heard> {
        let transcript =
            self.with_retries(&CancelToken::new(), |engine| engine.transcribe(audio))?;
        Ok(Heard {
            transcript,
            kind: EngineKind::LocalWorker,
        })
    }
}

impl Drop for LocalWorker {
    fn drop(&mut self) {
        self.shutdown();
    }
}
