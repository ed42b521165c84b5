//! The data that crosses the IPC boundary, as the window sees it.
//!
//! Every type is the backend's own (karte-core for drafts, karte-ipc for progress and status), so a change of the
//! contract breaks this crate's build instead of silently blanking a section.

use serde::{Deserialize, Serialize};

pub use karte_core::{DraftOutput, EngineInfo, EngineKind, Flag, Sentence, Span, Suggestion};
pub use karte_ipc::{Dictated, EngineStatus, HearingProgress, Progress, Serving};

/// An error as the window shows it: `karte_core::Error` on the wire, but with the code kept as a string so that a
/// code added to the backend later still displays its message instead of failing to parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UiError {
    pub code: String,
    pub message: String,
}

impl From<karte_core::Error> for UiError {
    fn from(e: karte_core::Error) -> Self {
        UiError {
            code: e.code.as_str().to_string(),
            message: e.message,
        }
    }
}

impl UiError {
    /// Errors that arise in the window itself (IPC missing, unparsable reply); they use codes of their own so that
    /// they are never mistaken for a backend verdict about the dictation.
    pub fn ui(code: &str, message: impl Into<String>) -> Self {
        UiError {
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// What the physician can do about it. Matched on `code` only: messages are for humans and may be reworded.
    pub fn hint(&self) -> Option<&'static str> {
        match self.code.as_str() {
            "input.too_large" => Some("口述を分けて、1回分ずつ下書きしてください。"),
            c if c.starts_with("model.") => {
                Some("「モデルを使わない（ルールのみ）」にチェックを入れると、モデルなしで下書きできます。")
            }
            "engine.failed" | "engine.bad_output" | "worker.crashed" | "llm.unreachable" => {
                Some("もう一度お試しください。続く場合は「モデルを使わない（ルールのみ）」で下書きできます。")
            }
            "config.invalid" | "worker.start_failed" => {
                Some("「モデルを使わない（ルールのみ）」にチェックを入れると、モデルなしで下書きできます。")
            }
            "ui.ipc" => Some("Karte デスクトップアプリの中で開いてください。"),
            "audio.no_speech" | "audio.unrecognised" | "audio.unsupported" => {
                Some("口述欄に直接入力して下書きすることもできます。")
            }
            _ => None,
        }
    }
}

/// What the progress panel shows while a draft is being made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProgressState {
    /// Stage messages in the order they arrived; the last one is the current stage.
    pub stages: Vec<String>,
    /// Model output streamed so far.
    pub streamed: String,
    pub tokens: u32,
}

impl ProgressState {
    pub fn apply(&mut self, p: Progress) {
        match p {
            Progress::Stage { message, .. } => self.stages.push(message),
            Progress::Token { text, tokens } => {
                self.streamed.push_str(&text);
                self.tokens = tokens;
            }
            Progress::Reset { message } => {
                self.streamed.clear();
                self.tokens = 0;
                self.stages.push(message);
            }
        }
    }

    /// The tail of the streamed text: the panel shows where the model is, and a long stream would otherwise make
    /// every token re-render an ever larger text node.
    pub fn streamed_tail(&self, max_chars: usize) -> &str {
        let n = self.streamed.chars().count();
        if n <= max_chars {
            return &self.streamed;
        }
        let skip = n - max_chars;
        let byte = self
            .streamed
            .char_indices()
            .nth(skip)
            .map_or(self.streamed.len(), |(i, _)| i);
        &self.streamed[byte..]
    }
}
