//! llama-cpp-2 on one owning thread.
//!
//! llama.cpp contexts are not thread-safe and the model must outlive every context made from it. Rather than spread
//! lifetimes and locks through the app, one worker thread owns the model and its context and serves jobs in order;
//! the rest of the program talks to it through channels, so [`Engine`] is `Send + Sync` and can sit in Tauri state or
//! an HTTP server as-is.
//!
//! Privacy rule for this crate: prompts and generated text never reach an error message or a log line. Only sizes,
//! counts and timings are logged.

mod gguf;
mod utf8;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

pub use karte_core::{Code, Error, Result};
use llama_cpp_2::model::LlamaModel;
use serde::{Deserialize, Serialize};

/// How to load a model. `n_ctx` and `n_batch` are fixed for the engine's lifetime because the KV cache is allocated
/// once at load.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub model_path: PathBuf,
    /// Shown to users and in logs instead of the path (a path can contain a person's login name).
    pub model_name: String,
    /// `None` uses every core: generation is memory-bound and this app is the only heavy process on a ward PC.
    pub n_threads: Option<i32>,
    pub n_ctx: u32,
    pub n_batch: u32,
}

impl EngineConfig {
    pub const DEFAULT_N_CTX: u32 = 4096;
    pub const DEFAULT_N_BATCH: u32 = 512;

    /// Defaults sized for a SOAP draft: a long dictation plus a structured answer fits in 4096 tokens.
    pub fn new(model_path: impl Into<PathBuf>, model_name: impl Into<String>) -> Self {
        Self {
            model_path: model_path.into(),
            model_name: model_name.into(),
            n_threads: None,
            n_ctx: Self::DEFAULT_N_CTX,
            n_batch: Self::DEFAULT_N_BATCH,
        }
    }

    fn threads(&self) -> i32 {
        self.n_threads.filter(|n| *n > 0).unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| i32::try_from(n.get()).unwrap_or(1))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub n_params: u64,
    pub n_ctx_train: u32,
    /// Size of the file on disk, the number a user can compare with what they downloaded.
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
}

#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub messages: Vec<ChatMessage>,
    /// When set, decoding is constrained so the output always parses as JSON of this shape (or the request fails).
    pub json_schema: Option<serde_json::Value>,
    pub max_tokens: u32,
    /// 0 = greedy: drafts must be reproducible for the same dictation.
    pub temperature: f32,
    pub seed: u32,
}

impl GenerateRequest {
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        Self {
            messages,
            json_schema: None,
            max_tokens: 512,
            temperature: 0.0,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    Eos,
    MaxTokens,
    /// The caller cancelled, or stopped listening (dropped the receiver).
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenStats {
    pub prompt_tokens: u32,
    pub generated_tokens: u32,
    pub prompt_ms: f64,
    pub generate_ms: f64,
    pub stop: StopReason,
}

/// Streamed to the caller of [`Engine::submit`]: any number of `Token`s, then exactly one `Done` or `Error`.
#[derive(Debug, Clone)]
pub enum GenEvent {
    /// Complete UTF-8 text (never half a character), in order; concatenated they are the whole output.
    Token(String),
    Done(GenStats),
    Error(Error),
}

/// Shared flag checked by the worker between tokens; cloning shares it, so the UI keeps one clone to press "stop".
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Throughput measured the way llama.cpp's `llama-bench` does (pp = prompt processing, tg = text generation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    pub n_prompt: u32,
    pub n_gen: u32,
    pub reps: u32,
    pub n_threads: i32,
    pub pp_tokens_per_s: f64,
    pub tg_tokens_per_s: f64,
    pub pp_stddev: f64,
    pub tg_stddev: f64,
}

pub(crate) enum Job {
    Generate {
        req: GenerateRequest,
        cancel: CancelToken,
        events: Sender<GenEvent>,
    },
    Bench {
        n_prompt: u32,
        n_gen: u32,
        reps: u32,
        reply: Sender<Result<BenchResult>>,
    },
}

/// A loaded model served by its own thread.
pub struct Engine {
    jobs: Option<Sender<Job>>,
    worker: Option<JoinHandle<()>>,
    /// Set on drop so the worker abandons the running generation and queued jobs instead of finishing them first.
    shutdown: CancelToken,
    /// Shared with the worker so that token counting does not queue behind a running generation: the vocabulary is
    /// read-only and llama.cpp's tokenizer keeps no per-call state in the model.
    model: Arc<LlamaModel>,
    info: ModelInfo,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Validates the file and the memory budget first, so the common failures (missing, half-downloaded, too big for
    /// this PC) come back as specific, actionable errors instead of a llama.cpp null pointer or an OOM kill.
    pub fn load(cfg: EngineConfig) -> Result<Engine> {
        if cfg.n_ctx == 0 || cfg.n_batch == 0 {
            return Err(Error::new(
                Code::ConfigInvalid,
                "エンジン設定が不正です（コンテキスト長とバッチサイズは 1 以上にしてください）。管理者に連絡してください。",
            ));
        }
        let file_size = worker::preflight(&cfg)?;
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let (jobs_tx, jobs_rx) = mpsc::channel();
        let thread_cfg = cfg.clone();
        let shutdown = CancelToken::new();
        let thread_shutdown = shutdown.clone();
        let worker = std::thread::Builder::new()
            .name("karte-engine".into())
            .spawn(move || worker::run(thread_cfg, file_size, thread_shutdown, ready_tx, jobs_rx))
            .map_err(|_| {
                Error::new(
                    Code::EngineFailed,
                    "文章生成エンジンを起動できませんでした。アプリを再起動してください。",
                )
            })?;
        match ready_rx.recv() {
            Ok(Ok((model, info))) => Ok(Engine {
                jobs: Some(jobs_tx),
                worker: Some(worker),
                shutdown,
                model,
                info,
            }),
            Ok(Err(e)) => {
                let _ = worker.join();
                Err(e)
            }
            Err(_) => {
                let _ = worker.join();
                Err(Error::new(
                    Code::ModelLoadFailed,
                    format!("モデル（{}）の読み込み中にエンジンが停止しました。モデルを再取得してください。", cfg.model_name),
                ))
            }
        }
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Queues a request; the worker serves requests one at a time in submission order.
    ///
    /// Dropping the receiver is a valid way to stop listening: the worker notices on the next token, abandons that
    /// generation and moves on to the next job.
    pub fn submit(&self, req: GenerateRequest, cancel: CancelToken) -> Receiver<GenEvent> {
        let (tx, rx) = mpsc::channel();
        let job = Job::Generate {
            req,
            cancel,
            events: tx,
        };
        if let Err(mpsc::SendError(Job::Generate { events, .. })) = self.send(job) {
            let _ = events.send(GenEvent::Error(stopped_error()));
        }
        rx
    }

    /// Blocking convenience over [`Engine::submit`]. A cancelled run is an error here (`EngineCancelled`) because a
    /// partial draft must not be mistaken for a finished one.
    pub fn generate(
        &self,
        req: GenerateRequest,
        cancel: &CancelToken,
        on_token: &mut dyn FnMut(&str),
    ) -> Result<(String, GenStats)> {
        let rx = self.submit(req, cancel.clone());
        let mut text = String::new();
        for ev in rx {
            match ev {
                GenEvent::Token(t) => {
                    on_token(&t);
                    text.push_str(&t);
                }
                GenEvent::Done(stats) if stats.stop == StopReason::Cancelled => {
                    return Err(cancelled_error())
                }
                GenEvent::Done(stats) => return Ok((text, stats)),
                GenEvent::Error(e) => return Err(e),
            }
        }
        Err(stopped_error())
    }

    /// Counts tokens without special tokens, for input-size checks before a request is built.
    pub fn tokenize_count(&self, text: &str) -> Result<usize> {
        let model = Arc::clone(&self.model);
        let text_len = text.len();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            model.vocab().tokenize(text.as_bytes(), false, false).len()
        }))
        .map_err(|_| {
            tracing::error!(text_bytes = text_len, "tokenizer panicked");
            Error::new(
                Code::EngineFailed,
                "入力文のトークン数を数えられませんでした。アプリを再起動してください。",
            )
        })
    }

    /// Measures prompt processing and generation speed with llama-bench's method, on this engine's thread settings.
    ///
    /// It runs on the worker thread between requests, in fresh contexts sized like llama-bench's (`n_ctx = n_prompt`
    /// for pp, `n_gen` for tg), so the numbers compare directly with `llama-bench -p N -n M -r R -t T`.
    pub fn bench(&self, n_prompt: u32, n_gen: u32, reps: u32) -> Result<BenchResult> {
        if reps == 0 || (n_prompt == 0 && n_gen == 0) {
            return Err(Error::new(
                Code::ConfigInvalid,
                "ベンチマークの設定が不正です（回数とトークン数は 1 以上にしてください）。",
            ));
        }
        let (tx, rx) = mpsc::channel();
        self.send(Job::Bench {
            n_prompt,
            n_gen,
            reps,
            reply: tx,
        })
        .map_err(|_| stopped_error())?;
        rx.recv().map_err(|_| stopped_error())?
    }

    fn send(&self, job: Job) -> std::result::Result<(), mpsc::SendError<Job>> {
        match &self.jobs {
            Some(tx) => tx.send(job),
            None => Err(mpsc::SendError(job)),
        }
    }
}

impl Drop for Engine {
    /// Closing the job channel ends the worker's loop; joining makes sure the context is freed before the model.
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.jobs.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

pub(crate) fn stopped_error() -> Error {
    Error::new(
        Code::EngineFailed,
        "文章生成エンジンが停止しています。アプリを再起動してください。",
    )
}

pub(crate) fn cancelled_error() -> Error {
    Error::new(Code::EngineCancelled, "文章の生成を中止しました。")
}

/// The file name only: full paths can contain a person's login name and do not belong in messages.
pub(crate) fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || "(不明)".to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Engine>();
        assert_send_sync::<CancelToken>();
    }

    #[test]
    fn cancel_token_clones_share_state() {
        let a = CancelToken::new();
        let b = a.clone();
        assert!(!b.is_cancelled());
        a.cancel();
        assert!(b.is_cancelled());
    }

    #[test]
    fn display_name_drops_directories() {
        assert_eq!(
            display_name(Path::new("/home/tanaka/models/m.gguf")),
            "m.gguf"
        );
    }
}
