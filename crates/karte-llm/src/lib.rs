//! The client side of "a chat engine".
//!
//! Drafting code (karte-api, karte-eval, the desktop app) should not care whether a model runs in this process, in
//! the supervised local worker, or on the clinic's GPU server: they all take a [`ChatRequest`], stream text pieces,
//! and end with [`GenStats`]. [`ChatEngine`] is that one contract; the implementations are
//!
//! - karte-engine's `Engine`: llama.cpp in this process (the CLI without a clinic server, evaluation, and
//!   karte-server itself). This crate does not link llama.cpp, so the desktop app, which only ever talks to a
//!   worker, does not either;
//! - [`HttpEngine`]: any OpenAI-compatible `/v1/chat/completions` server, karte-server above all (SSE streaming,
//!   bearer token, timeouts, pinned TLS certificate);
//! - [`worker::LocalWorker`]: a `karte-server --local` child process behind [`HttpEngine`], restarted when
//!   llama.cpp takes it down, so a crash costs the model, never the caller;
//! - [`failover::Failover`]: the clinic server when configured and healthy, the local worker otherwise, with text
//!   pseudonymised before it leaves the workstation;
//! - [`upstream::UpstreamPool`]: several OpenAI-compatible engines (llama-server, vLLM, TGI) as one, least
//!   loaded first, a failed one out of rotation until its health probe passes: karte-server's upstream mode;
//! - [`Transcriber`]: the same places for speech (`/v1/audio/transcriptions`), without the in-process engine: the
//!   recogniser never runs in the desktop app's process;
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
pub mod openai;
pub mod settings;
pub mod upstream;
pub mod worker;
pub mod workstation;

pub use http::{HttpEngine, HttpEngineConfig, TlsSettings};
pub use karte_core::{Code, Error, Result};
pub use karte_core::{EngineKind, FinishReason, GenStats};
pub use settings::{ServerSettingsExt, Settings};
pub use workstation::{Workstation, WorkstationOptions};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One message of a chat, in the roles the chat template knows (`system`, `user`, `assistant`).
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

/// Shared flag checked between tokens; cloning shares it, so the UI keeps one clone to press "stop".
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

/// What a caller asks of any engine: the in-process engine runs it as is, [`HttpEngine`] sends it and karte-server
/// reads it back (both through [`openai::ChatCompletionRequest`]), so every path is the same request, field for
/// field.
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
    /// Wall-clock limit from submission (queueing included); reaching it ends the answer like `max_tokens` does
    /// ([`FinishReason::TimeLimit`]). A server sets it from its own limits; it is not sent over HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_time: Option<Duration>,
    /// Whether this request may reuse and feed the engine's shared-prefix cache. Off decodes the whole prompt, as
    /// an engine without the cache would: what a benchmark compares against (llama-server's `cache_prompt`).
    #[serde(default = "yes")]
    pub prefix_cache: bool,
    /// Whether this request may be decoded with the engine's speculative decoding (prompt lookup) when the engine
    /// runs with it. Off decodes one token per step whatever the engine's setting: a client that must have the
    /// plain path's bytes (lookup is exact only in some llama.cpp builds) or that compares the two asks for it
    /// (`"speculation": "off"` over HTTP). On cannot turn speculation on in an engine that runs without it.
    #[serde(default = "yes")]
    pub speculation: bool,
}

fn yes() -> bool {
    true
}

impl ChatRequest {
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        Self {
            messages,
            json_schema: None,
            max_tokens: 512,
            temperature: 0.0,
            seed: 0,
            max_time: None,
            prefix_cache: true,
            speculation: true,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The whole answer: the concatenation of the pieces given to the callback.
    pub text: String,
    pub stats: GenStats,
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

pub use karte_ipc::Serving;

/// Speech to text for a dictation, on whichever engine hears it: the clinic server when it answers (and the settings
/// allow audio to leave the workstation), the supervised worker otherwise. The same rule as drafting, so a ward
/// without its server still dictates.
///
/// The caller keeps the recording: a failed attempt (a dead worker, a server cut mid-upload) is retried from the same
/// bytes, and an error leaves the audio where it was. Errors carry no words of the dictation.
pub trait Transcriber: Send + Sync {
    /// `audio`: the recording file's bytes as recorded (WAV); the recogniser decodes it.
    fn transcribe(&self, audio: &[u8]) -> Result<Heard>;
}

/// A transcript and the engine that heard it (the window says where the audio went).
#[derive(Debug, Clone, PartialEq)]
pub struct Heard {
    pub transcript: openai::VerboseTranscription,
    pub kind: EngineKind,
}

/// The one error of a cancelled request, whichever engine ran it.
pub fn cancelled() -> Error {
    Error::new(Code::EngineCancelled, "文章の生成を中止しました。")
}
