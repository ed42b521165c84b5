//! The answer guard on every `/v1/chat/completions` answer, streamed or whole, local model or upstream engine:
//! the same karte-guard `StreamGuard` the desktop runs on a draft (harm policy, dose table, personal data the
//! request did not contain), between the engine's events and the client.
//!
//! `[serve.guard] mode`: `block` (default) shows [`karte_guard::stream::WITHHELD`] in place of a blocked sentence
//! and ends the answer with `finish_reason: "content_filter"`. A free-text answer stops there (the engine's work is
//! cancelled): what follows a harmful sentence is not worth generating. A structured answer (`response_format` with
//! a JSON schema: a workstation's draft) goes on with the sentence withheld, as the desktop's own guard does, so the
//! JSON still parses and the draft keeps its other sentences. `flag` passes the answer unchanged and only counts
//! verdicts; `off` skips the guard. Verdicts are counted by category in `/metrics`; the text is never logged.
//!
//! The guard holds back at most one sentence (bounded look-back, `karte_guard::stream::MAX_HOLD`), so the first
//! tokens still stream promptly.

use std::sync::{Arc, Mutex};

use karte_engine::{CancelToken, FinishReason, GenEvent, GenStats};
use karte_guard::stream::StreamGuard;
use karte_guard::Dictation;
use karte_settings::GuardMode;
use tokio::sync::mpsc::{self, UnboundedReceiver};

use crate::state::AppState;

/// What the guard reads from a request before the request goes to the engine.
pub struct Input {
    /// Every message the model was given: personal data in them is not a leak when the answer repeats it.
    text: String,
    /// The answer must parse as JSON (`response_format` with a schema): a blocked sentence is withheld, not cut.
    structured: bool,
}

pub fn input_of(req: &karte_engine::ChatRequest) -> Input {
    Input {
        text: req
            .messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        structured: req.json_schema.is_some(),
    }
}

/// Puts the guard between `events` and the returned receiver. An answer the guard withheld from ends with
/// [`FinishReason::ContentFilter`]; `cancel` stops the engine's work when a free-text answer is cut.
pub fn relay(
    state: &Arc<AppState>,
    mut events: UnboundedReceiver<GenEvent>,
    input: Input,
    cancel: CancelToken,
    model: String,
    verdicts: Arc<Mutex<Vec<String>>>,
) -> UnboundedReceiver<GenEvent> {
    let mode = state.guard;
    if mode == GuardMode::Off {
        return events;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let state = Arc::clone(state);
    // Reading the prompt and judging sentences is CPU work: on a blocking thread, never on the async workers
    // that serve every other connection.
    tokio::task::spawn_blocking(move || {
        // Personal data in the prompt is not a leak when the answer repeats it; an empty prompt makes every
        // piece of personal data in the answer a leak, the strict side.
        let d = Dictation::of_prompt(&input.text, karte_core::document::default_kind());
        let structured = input.structured;
        drop(input);
        let mut g = StreamGuard::new(&d);
        let mut pieces = 0u32;
        // Verdicts by category; with `ended`, also the answer's result (a failed answer has none).
        let count = |g: &StreamGuard<'_>, ended: bool| {
            let mut seen = verdicts.lock().unwrap_or_else(|p| p.into_inner());
            for (action, list) in [("block", g.blocked()), ("flag", g.flagged())] {
                for v in list {
                    for c in &v.categories {
                        state.metrics.guard_verdict(c, action);
                        seen.push(c.to_string());
                    }
                }
            }
            if !g.leaks().is_empty() {
                state.metrics.guard_verdict("personal_data_leak", "removed");
                seen.push("personal_data_leak".into());
            }
            if !ended {
                return;
            }
            let result = if mode == GuardMode::Block && !g.blocked().is_empty() {
                "withheld"
            } else if g.blocked().is_empty() && g.flagged().is_empty() && g.leaks().is_empty() {
                "passed"
            } else {
                "flagged"
            };
            state.metrics.guarded_answer(result);
        };
        while let Some(ev) = events.blocking_recv() {
            match ev {
                GenEvent::Token(t) => {
                    pieces += 1;
                    let shown = g.push(&t);
                    let out = if mode == GuardMode::Flag { t } else { shown };
                    if !out.is_empty() && tx.send(GenEvent::Token(out)).is_err() {
                        return;
                    }
                    if mode == GuardMode::Block && !structured && !g.blocked().is_empty() {
                        count(&g, true);
                        cancel.cancel();
                        tracing::info!("answer stopped by the guard");
                        let mut stats = GenStats::new(model, karte_core::EngineKind::Server);
                        stats.generated_tokens = pieces;
                        stats.finish = FinishReason::ContentFilter;
                        let _ = tx.send(GenEvent::Done(stats));
                        return;
                    }
                }
                GenEvent::Done(mut stats) => {
                    let rest = g.finish();
                    if mode == GuardMode::Block {
                        if !rest.is_empty() {
                            let _ = tx.send(GenEvent::Token(rest));
                        }
                        if !g.blocked().is_empty() {
                            stats.finish = FinishReason::ContentFilter;
                            tracing::info!("sentences withheld by the guard");
                        }
                    }
                    count(&g, true);
                    let _ = tx.send(GenEvent::Done(stats));
                    return;
                }
                GenEvent::Error(e) => {
                    // What is still held was never judged: it is dropped with the failed answer.
                    count(&g, false);
                    let _ = tx.send(GenEvent::Error(e));
                    return;
                }
            }
        }
    });
    rx
}
