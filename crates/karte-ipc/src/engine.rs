//! What the window learns about drafting and the engine: progress while a draft is made, and the status bar.

use karte_core::{EngineKind, Error};
use serde::{Deserialize, Serialize};

/// Progress reported while drafting, in order: stages, then (with a model) tokens as they stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Progress {
    /// A pipeline stage started. `stage` is stable (`extract`, `load_model`, `generate`, `verify`);
    /// `message` is Japanese for the status line.
    Stage { stage: String, message: String },
    /// The model produced more text. `text` is the piece just generated; `tokens` the count so far.
    Token { text: String, tokens: u32 },
    /// The answer starts over (the local worker was restarted, or the other engine took over): discard the text
    /// streamed so far. `message` is Japanese for the status line.
    Reset { message: String },
}

/// Status of the engine for the window's status bar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineStatus {
    /// Manifest name or file name of the configured model.
    pub model: String,
    pub loaded: bool,
    /// Throughput of the last draft, when there was one.
    #[serde(default)]
    pub tokens_per_s: Option<f64>,
    /// Which engine serves the next draft and why (院内サーバー / この端末), when there is a choice: a model in
    /// this process has none to show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<Serving>,
    /// Why model drafting cannot work at all (an unusable settings file), with its code, to show until fixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<Error>,
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
