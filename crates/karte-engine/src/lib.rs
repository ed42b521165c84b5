//! llama-cpp-2 on one owning thread.
//!
//! llama.cpp contexts are not thread-safe and the model must outlive every context made from it. Rather than spread
//! lifetimes and locks through the app, one worker thread owns the model and its context; the rest of the program
//! talks to it through channels, so [`Engine`] is `Send + Sync` and can sit in Tauri state or an HTTP server as-is.
//!
//! For a server the worker does continuous batching: up to `n_parallel` requests are separate sequences of the one
//! context, all advanced by a single `llama_decode` per step (one token each, plus prompt chunks of requests that
//! are starting), so aggregate throughput grows with concurrency instead of requests waiting in line. Recent
//! prompts stay in the KV cache as their own sequences, and a request that shares their beginning (the drafting
//! instructions every note starts with) copies those cells instead of decoding them again.
//!
//! Privacy rule for this crate: prompts and generated text never reach an error message or a log line. Only sizes,
//! counts and timings are logged.

mod chat;
mod gguf;
mod utf8;
mod worker;

pub use chat::LazyEngine;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

pub use karte_core::{Code, Error, Result};
/// The engine contract's types, re-exported: the engine takes the one request and reports the one stats type, so
/// nothing converts between an "engine request" and a "chat request".
pub use karte_llm::{
    CancelToken, ChatEngine, ChatMessage, ChatRequest, ChatResponse, FinishReason, GenStats, Piece,
};
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
    /// KV cells shared by every sequence (requests in flight and cached prefixes): with `n_parallel` > 1 size it
    /// for that many prompts plus answers.
    pub n_ctx: u32,
    pub n_batch: u32,
    /// Requests decoded together in one llama context (continuous batching). 1 serves one request at a time.
    pub n_parallel: u32,
    /// Requests allowed to wait for a free sequence; one more is refused with `engine.busy` (HTTP 429).
    pub max_queue: usize,
    /// Recent prompts whose KV cells are kept so that a request sharing their beginning (the drafting
    /// instructions) decodes only its new suffix. 0 turns the cache off.
    pub prefix_cache: u32,
    /// Offload to a GPU when the build has a GPU backend (`--features cuda`) and a device is present; false keeps
    /// the model on the CPU. Without a GPU backend this has no effect.
    pub gpu: bool,
    /// Prompt-lookup speculative decoding for greedy requests. `KARTE_SPECULATION` (`off` / `lookup`) overrides it
    /// at load, so that an operator can rule speculation out without a new build or settings file.
    pub speculation: Speculation,
}

/// How greedy requests may generate several tokens per decode.
///
/// Drafts copy their input heavily (they rephrase and cite the dictation), so the tokens that followed the last few
/// generated tokens where they appeared earlier in the prompt or the answer are often the model's next tokens too.
/// `Lookup` proposes them and checks all of them in one decode, keeping the prefix greedy decoding agrees with:
/// no second model, and the kept tokens are the ones greedy decoding picks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Speculation {
    /// The default: lookup is exact only with plain attention (the engine switches flash attention off for it) and
    /// a build without llamafile sgemm and weight repacking, and in such a build a batch of guesses costs about what
    /// it saves (README, "Speculative decoding").
    #[default]
    Off,
    Lookup,
}

impl Speculation {
    /// `off` / `lookup` (case and surrounding spaces ignored); anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "none" | "0" | "false" => Some(Speculation::Off),
            "lookup" | "on" | "1" | "true" => Some(Speculation::Lookup),
            _ => None,
        }
    }

    /// The environment's choice, if it names one; an unknown value is logged and ignored rather than refusing to
    /// start the engine a ward PC needs.
    pub fn from_env() -> Option<Self> {
        let v = std::env::var("KARTE_SPECULATION").ok()?;
        let parsed = Self::parse(&v);
        if parsed.is_none() {
            tracing::warn!("KARTE_SPECULATION is neither off nor lookup; ignored");
        }
        parsed
    }
}

impl EngineConfig {
    pub const DEFAULT_N_CTX: u32 = 4096;
    pub const DEFAULT_N_BATCH: u32 = 512;
    pub const DEFAULT_MAX_QUEUE: usize = 64;
    pub const DEFAULT_PREFIX_CACHE: u32 = 4;

    /// Defaults sized for a SOAP draft: a long dictation plus a structured answer fits in 4096 tokens.
    pub fn new(model_path: impl Into<PathBuf>, model_name: impl Into<String>) -> Self {
        Self {
            model_path: model_path.into(),
            model_name: model_name.into(),
            n_threads: None,
            n_ctx: Self::DEFAULT_N_CTX,
            n_batch: Self::DEFAULT_N_BATCH,
            n_parallel: 1,
            max_queue: Self::DEFAULT_MAX_QUEUE,
            prefix_cache: Self::DEFAULT_PREFIX_CACHE,
            gpu: true,
            speculation: Speculation::default(),
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
    /// Where the model runs: "CPU", or the GPU device (e.g. "CUDA0 (NVIDIA H100 80GB HBM3)").
    #[serde(default)]
    pub accelerator: String,
}

/// The engine's current load and lifetime counters, for `/metrics` and the management API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadInfo {
    /// Requests waiting for a free sequence.
    pub queued: usize,
    /// Requests being decoded now.
    pub active: usize,
    pub max_parallel: usize,
    pub max_queue: usize,
    pub prefix_cache_entries: usize,
    pub requests_total: u64,
    /// Refused with `engine.busy` because the queue was full.
    pub rejected_total: u64,
    pub completed_total: u64,
    pub cancelled_total: u64,
    pub failed_total: u64,
    pub prompt_tokens_total: u64,
    pub cached_tokens_total: u64,
    pub generated_tokens_total: u64,
    /// Prompt-lookup guesses checked, and those kept: their ratio is the acceptance rate an operator watches.
    #[serde(default)]
    pub draft_proposed_total: u64,
    #[serde(default)]
    pub draft_accepted_total: u64,
    /// The speculation this engine runs with (after `KARTE_SPECULATION`).
    #[serde(default)]
    pub speculation: Speculation,
}

/// Counters the worker updates and any thread reads; relaxed ordering is enough for monitoring.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub queued: AtomicUsize,
    pub active: AtomicUsize,
    pub prefix_cache_entries: AtomicUsize,
    pub requests_total: AtomicU64,
    pub rejected_total: AtomicU64,
    pub completed_total: AtomicU64,
    pub cancelled_total: AtomicU64,
    pub failed_total: AtomicU64,
    pub prompt_tokens_total: AtomicU64,
    pub cached_tokens_total: AtomicU64,
    pub generated_tokens_total: AtomicU64,
    pub draft_proposed_total: AtomicU64,
    pub draft_accepted_total: AtomicU64,
}

/// Streamed to the caller of [`Engine::submit`]: any number of `Token`s, then exactly one `Done` or `Error`.
#[derive(Debug, Clone)]
pub enum GenEvent {
    /// Complete UTF-8 text (never half a character), in order; concatenated they are the whole output.
    Token(String),
    Done(GenStats),
    Error(Error),
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

/// Log-likelihood of one continuation given a context, as language-model evaluations (multiple choice, perplexity)
/// need it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// Sum of the natural-log probabilities of the continuation's tokens, each given the context and the
    /// continuation's earlier tokens. Always ≤ 0; 0 for an empty continuation.
    pub logprob: f64,
    /// Number of continuation tokens scored, for per-token averages.
    pub n_tokens: u32,
    /// Whether every continuation token was the model's most likely next token (greedy decoding would produce it).
    pub greedy: bool,
}

/// Where one request's events go (see [`Engine::try_submit_to`]).
pub struct EventSink(Box<dyn Fn(GenEvent) -> bool + Send>);

impl EventSink {
    /// `deliver` returns whether anyone is still listening.
    pub fn new(deliver: impl Fn(GenEvent) -> bool + Send + 'static) -> Self {
        Self(Box::new(deliver))
    }

    pub(crate) fn send(&self, ev: GenEvent) -> std::result::Result<(), ()> {
        if (self.0)(ev) {
            Ok(())
        } else {
            Err(())
        }
    }
}

pub(crate) enum Job {
    Score {
        context: String,
        continuations: Vec<String>,
        reply: Sender<Result<Vec<Scored>>>,
    },
    Generate {
        // Boxed: keeps the channel's messages (and `send`'s error) small.
        req: Box<ChatRequest>,
        cancel: CancelToken,
        events: EventSink,
        submitted: Instant,
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
    counters: Arc<Counters>,
    max_parallel: usize,
    max_queue: usize,
    speculation: Speculation,
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
    pub fn load(mut cfg: EngineConfig) -> Result<Engine> {
        if let Some(s) = Speculation::from_env() {
            cfg.speculation = s;
        }
        if cfg.n_ctx == 0 || cfg.n_batch == 0 || cfg.n_parallel == 0 || cfg.n_parallel > 128 {
            return Err(Error::new(
                Code::ConfigInvalid,
                "エンジン設定が不正です（コンテキスト長・バッチサイズ・並列数は 1 以上、並列数は 128 以下にしてください）。管理者に連絡してください。",
            ));
        }
        let file_size = worker::preflight(&cfg)?;
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let (jobs_tx, jobs_rx) = mpsc::channel();
        let thread_cfg = cfg.clone();
        let shutdown = CancelToken::new();
        let thread_shutdown = shutdown.clone();
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let worker = std::thread::Builder::new()
            .name("karte-engine".into())
            .spawn(move || {
                worker::run(
                    thread_cfg,
                    file_size,
                    thread_shutdown,
                    thread_counters,
                    ready_tx,
                    jobs_rx,
                )
            })
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
                counters,
                max_parallel: cfg.n_parallel as usize,
                max_queue: cfg.max_queue,
                speculation: cfg.speculation,
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

    /// Queues a request; up to `n_parallel` requests are decoded together, the rest start in submission order as
    /// sequences free up. A full queue answers with one `engine.busy` error event.
    ///
    /// Dropping the receiver is a valid way to stop listening: the worker notices on the next token, frees that
    /// sequence and its KV cells, and goes on with the others.
    pub fn submit(&self, req: ChatRequest, cancel: CancelToken) -> Receiver<GenEvent> {
        match self.try_submit(req, cancel) {
            Ok(rx) => rx,
            Err(e) => {
                let (tx, rx) = mpsc::channel();
                let _ = tx.send(GenEvent::Error(e));
                rx
            }
        }
    }

    /// [`Engine::submit`] that refuses up front (`engine.busy`) when the queue is full, so a server can answer 429
    /// before opening a stream.
    pub fn try_submit(&self, req: ChatRequest, cancel: CancelToken) -> Result<Receiver<GenEvent>> {
        let (tx, rx) = mpsc::channel();
        self.try_submit_to(req, cancel, EventSink::new(move |ev| tx.send(ev).is_ok()))?;
        Ok(rx)
    }

    /// [`Engine::try_submit`] with the caller's own sink, called on the engine's thread for every event: a server
    /// hands its async channel here, so that no thread sits between a token and the HTTP stream (a second wake-up
    /// per token cost karte-server ~8% of single-stream speed on 2 cores). The sink answering `false` (listener
    /// gone) stops the request, like a dropped receiver.
    pub fn try_submit_to(
        &self,
        req: ChatRequest,
        cancel: CancelToken,
        events: EventSink,
    ) -> Result<()> {
        let c = &self.counters;
        if c.queued.fetch_add(1, Ordering::Relaxed) >= self.max_queue {
            c.queued.fetch_sub(1, Ordering::Relaxed);
            c.rejected_total.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(max_queue = self.max_queue, "engine queue full");
            return Err(busy_error());
        }
        c.requests_total.fetch_add(1, Ordering::Relaxed);
        let job = Job::Generate {
            req: Box::new(req),
            cancel,
            events,
            submitted: Instant::now(),
        };
        if let Err(mpsc::SendError(Job::Generate { events, .. })) = self.send(job) {
            c.queued.fetch_sub(1, Ordering::Relaxed);
            let _ = events.send(GenEvent::Error(stopped_error()));
        }
        Ok(())
    }

    /// Queue depth, sequences in flight and lifetime counters, read without waiting for the worker.
    pub fn load_info(&self) -> LoadInfo {
        let c = &self.counters;
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LoadInfo {
            queued: c.queued.load(Ordering::Relaxed),
            active: c.active.load(Ordering::Relaxed),
            max_parallel: self.max_parallel,
            max_queue: self.max_queue,
            prefix_cache_entries: c.prefix_cache_entries.load(Ordering::Relaxed),
            requests_total: r(&c.requests_total),
            rejected_total: r(&c.rejected_total),
            completed_total: r(&c.completed_total),
            cancelled_total: r(&c.cancelled_total),
            failed_total: r(&c.failed_total),
            prompt_tokens_total: r(&c.prompt_tokens_total),
            cached_tokens_total: r(&c.cached_tokens_total),
            generated_tokens_total: r(&c.generated_tokens_total),
            draft_proposed_total: r(&c.draft_proposed_total),
            draft_accepted_total: r(&c.draft_accepted_total),
            speculation: self.speculation,
        }
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

    /// Scores each continuation after `context` (raw text: no chat template; a BOS token only if the model adds one).
    ///
    /// The context is tokenized on its own and each continuation on its own (without special tokens), so the
    /// boundary between them is where the caller put it; the context is decoded once and its KV cells are reused
    /// for every continuation. Runs on the worker between generation steps.
    pub fn score(&self, context: &str, continuations: &[String]) -> Result<Vec<Scored>> {
        let (tx, rx) = mpsc::channel();
        self.send(Job::Score {
            context: context.to_owned(),
            continuations: continuations.to_vec(),
            reply: tx,
        })
        .map_err(|_| stopped_error())?;
        rx.recv().map_err(|_| stopped_error())?
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

pub(crate) fn busy_error() -> Error {
    Error::new(
        Code::EngineBusy,
        "文章生成エンジンが混み合っています。しばらく待ってから再度お試しください。",
    )
}

/// The file name only: full paths can contain a person's login name and do not belong in messages.
pub(crate) fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || "(不明)".to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The GBNF grammar llama.cpp makes of a JSON schema (the same conversion the engine's sampler uses), without a
/// model: lets a server refuse a schema it cannot use before the request reaches the engine's thread.
pub fn json_schema_grammar(schema: &serde_json::Value) -> Result<String> {
    llama_cpp_2::json_schema_to_grammar(&schema.to_string()).map_err(|_| {
        Error::new(
            Code::ConfigInvalid,
            "出力形式（JSON スキーマ）を文法に変換できません。",
        )
    })
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
