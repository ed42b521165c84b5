//! The client side of "a chat engine".
//!
//! Drafting code (karte-api, karte-eval, the desktop app) should not care whether a model runs in this process, in
//! the supervised local worker, or on the clinic's GPU server: they all take a [`ChatRequest`], stream text pieces,
//! and end with [`ChatStats`]. [`ChatEngine`] is that one contract; the implementations are
//!
//! - [`LocalEngine`]: karte-engine in this process (tests, CLI, evaluation);
//! - [`HttpEngine`]: any OpenAI-compatible `/v1/chat/completions` server, karte-server above all (SSE streaming,
//!   bearer token, timeouts, pinned TLS certificate);
//! - [`worker::LocalWorker`]: a `karte-server --local` child process behind [`HttpEngine`], restarted when
//!   llama.cpp takes it down, so a crash costs the model, never the caller;
//! - [`failover::Failover`]: the clinic server when configured and healthy, the local worker otherwise, with text
//!   pseudonymised before it leaves the workstation;
//! - [`workstation::Workstation`]: the above put together from the settings file, the one way the desktop app and
//!   the CLI get "the engine of this workstation".
//!
//! The trait is blocking with a token callback on purpose: every caller already runs drafting on a blocking thread
//! (Tauri's blocking pool, the CLI's main thread), and a callback keeps the guard's sentence-by-sentence release
//! (karte-guard `StreamGuard`) simple. Do not call it from inside an async runtime's worker thread.
//!
//! Privacy rule for this crate: no prompt or generated text in errors or logs; only sizes, counts, timings, ids.

pub mod failover;
pub mod http;
pub mod local;
pub mod openai;
pub mod settings;
pub mod worker;
pub mod workstation;

pub use http::{HttpEngine, HttpEngineConfig, TlsSettings};
pub use karte_core::{Code, Error, Result};
pub use karte_engine::{CancelToken, ChatMessage};
pub use local::LocalEngine;
pub use settings::{ServerSettingsExt, Settings};
pub use workstation::{Workstation, WorkstationOptions};

use serde::{Deserialize, Serialize};

/// What a drafting caller asks of any engine. Mirrors karte-engine's `GenerateRequest` so that the local path and
/// the HTTP path are the same request, field for field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    /// When set, the output always parses as JSON of this shape (grammar-constrained decoding on the engine side,
    /// `response_format: {type: json_schema}` over HTTP).
    pub json_schema: Option<serde_json::Value>,
    pub max_tokens: u32,
    /// 0 = greedy: drafts must be reproducible for the same dictation.
    pub temperature: f32,
    pub seed: u32,
}

impl ChatRequest {
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        Self {
            messages,
            json_schema: None,
            max_tokens: 512,
            temperature: 0.0,
            seed: 0,
        }
    }

    /// Characters over all messages: the size that logs may carry instead of the text.
    pub fn size_chars(&self) -> usize {
        self.messages
            .iter()
            .map(|m| m.content.chars().count())
            .sum()
    }
}

/// Why generation ended, with OpenAI's names (`stop`, `length`) so that HTTP and local answers compare directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its answer (end-of-sequence).
    Stop,
    /// The token or time limit was reached: the text may be cut short.
    Length,
    /// The caller cancelled.
    Cancelled,
}

impl FinishReason {
    pub fn as_openai(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }

    pub fn from_openai(s: &str) -> Option<Self> {
        match s {
            "stop" => Some(FinishReason::Stop),
            "length" => Some(FinishReason::Length),
            "cancelled" => Some(FinishReason::Cancelled),
            _ => None,
        }
    }
}

/// Which kind of engine produced an answer: the UI shows it (院内サーバー / この端末) and karte-api records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    /// karte-engine inside this process.
    InProcess,
    /// The supervised `karte-server --local` child process on this workstation.
    LocalWorker,
    /// The clinic's inference server (or any other OpenAI-compatible server).
    Server,
}

impl EngineKind {
    /// The short Japanese label for the status bar.
    pub fn label_ja(self) -> &'static str {
        match self {
            EngineKind::InProcess | EngineKind::LocalWorker => "この端末",
            EngineKind::Server => "院内サーバー",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatStats {
    /// The model's name as the engine reports it (never a file path).
    pub model: String,
    pub kind: EngineKind,
    pub prompt_tokens: u32,
    pub generated_tokens: u32,
    /// From sending the request to the first text piece, as the caller saw it (network included).
    pub time_to_first_token_ms: Option<f64>,
    /// From sending the request to the end of the answer.
    pub total_ms: f64,
    pub finish: FinishReason,
}

impl ChatStats {
    /// Generated tokens per second over the generation phase (after the first token), the number users compare.
    pub fn tokens_per_s(&self) -> Option<f64> {
        let ttft = self.time_to_first_token_ms.unwrap_or(0.0);
        let gen_ms = self.total_ms - ttft;
        (self.generated_tokens > 1 && gen_ms > 0.0)
            .then(|| f64::from(self.generated_tokens - 1) * 1000.0 / gen_ms)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The whole answer: the concatenation of the pieces given to the callback.
    pub text: String,
    pub stats: ChatStats,
}

/// What an engine streams to its caller while it generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// The next piece of the answer: complete UTF-8, in order.
    Text(&'a str),
    /// Discard every piece received so far: the request is being answered again from the start, by a restarted
    /// worker or by the other engine after a failover. Shown text must be cleared, not appended to.
    Reset,
}

/// "A chat engine": one request in, text pieces streamed to `on_token`, one response out.
///
/// Contract every implementation keeps (tests in each module hold it):
/// - the `Text` pieces given to `on_token` after the last `Reset`, concatenated, equal `ChatResponse::text`;
/// - a cancelled request returns `Err` with `engine.cancelled`, never a partial text posing as finished;
/// - errors carry a stable [`Code`] and a Japanese message without any of the request's text.
pub trait ChatEngine: Send + Sync {
    fn chat(
        &self,
        req: &ChatRequest,
        cancel: &CancelToken,
        on_token: &mut dyn FnMut(Piece<'_>),
    ) -> Result<ChatResponse>;

    /// Which engine would serve the next request, and why (for the UI's indicator).
    fn serving(&self) -> Serving;

    /// Token count of `text` in the model's vocabulary, where the engine can tell without a request (in process).
    /// Drafting sizes its answer budget from it; `None` makes the caller estimate.
    fn count_tokens(&self, _text: &str) -> Option<usize> {
        None
    }

    /// Gets the engine ready now (starts the local worker and loads its model), so that the first draft does not
    /// pay for it. The window calls it at start-up; engines that need nothing do nothing.
    fn prepare(&self) -> Result<()> {
        Ok(())
    }

    /// Whether a request would start at once, without first starting a worker or loading a model (the status
    /// line's 読み込み済み). Must not block on the network.
    fn ready(&self) -> bool {
        true
    }
}

/// The indicator the window shows: which engine serves and why, already in Japanese.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Serving {
    pub kind: EngineKind,
    /// 院内サーバー or この端末.
    pub label: String,
    /// Why this engine: e.g. 院内サーバーに接続できません（応答なし） when the clinic server is down.
    pub reason: String,
}

impl Serving {
    pub fn new(kind: EngineKind, reason: impl Into<String>) -> Self {
        Self {
            kind,
            label: kind.label_ja().to_string(),
            reason: reason.into(),
        }
    }
}

pub(crate) fn cancelled() -> Error {
    Error::new(Code::EngineCancelled, "文章の生成を中止しました。")
}
