//! The answer guard on every `/v1/chat/completions` answer, streamed or whole, local model or upstream engine:
//! the same karte-guard `StreamGuard` the desktop runs on a draft (harm policy, dose table, personal data the
//! request did not contain), between the engine's events and the client.
//!
//! `[serve.guard] mode`: `block` (default) stops the answer at the first blocked sentence, shows
//! [`karte_guard::stream::WITHHELD`] in its place and ends with `finish_reason: "content_filter"` (the engine's work
//! is cancelled); `flag` passes the answer unchanged and only counts verdicts; `off` skips the guard. Verdicts are
//! counted by category in `/metrics`; the text is never logged.
//!
//! The guard holds back at most one sentence (bounded look-back, `karte_guard::stream::MAX_HOLD`), so the first
//! tokens still stream promptly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use karte_engine::{CancelToken, GenEvent, GenStats};
use karte_guard::stream::StreamGuard;
use karte_guard::Dictation;
use karte_settings::GuardMode;
use tokio::sync::mpsc::{self, UnboundedReceiver};

use crate::state::AppState;

/// What the guard judges the answer against: every message the model was given (personal data in them is not a
/// leak when the answer repeats it).
pub fn input_of(req: &karte_engine::ChatRequest) -> String {
    req.messages
        .iter()
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads the input once. An input the analysis refuses (empty, longer than a dictation may be) is judged as if
/// nothing was given: every piece of personal data in the answer then counts as a leak, the strict side.
fn dictation(input: &str) -> Option<Dictation> {
    let kind = karte_core::document::default_kind();
    Dictation::new(input, kind)
        .or_else(|_| Dictation::new("（入力なし）", kind))
        .ok()
}

/// Puts the guard between `events` and the returned receiver. `filtered` is set when the answer was cut by the
/// guard; `cancel` stops the engine's work then.
pub fn relay(
    state: &Arc<AppState>,
    mut events: UnboundedReceiver<GenEvent>,
    input: String,
    cancel: CancelToken,
    filtered: Arc<AtomicBool>,
    model: String,
) -> UnboundedReceiver<GenEvent> {
    let mode = state.guard;
    if mode == GuardMode::Off {
        return events;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let state = Arc::clone(state);
    tokio::spawn(async move {
        let Some(d) = dictation(&input) else {
            // The guard cannot read anything at all: refuse rather than pass an unguarded answer.
            filtered.store(true, Ordering::SeqCst);
            cancel.cancel();
            let _ = tx.send(GenEvent::Done(GenStats::new(
                model,
                karte_core::EngineKind::Server,
            )));
            return;
        };
        drop(input);
        let mut g = StreamGuard::new(&d);
        let mut pieces = 0u32;
        let count = |g: &StreamGuard<'_>| {
            for v in g.blocked() {
                for c in &v.categories {
                    state.metrics.guard_verdict(c, "block");
                }
            }
            for v in g.flagged() {
                for c in &v.categories {
                    state.metrics.guard_verdict(c, "flag");
                }
            }
            if !g.leaks().is_empty() {
                state.metrics.guard_verdict("personal_data_leak", "removed");
            }
        };
        while let Some(ev) = events.recv().await {
            match ev {
                GenEvent::Token(t) => {
                    pieces += 1;
                    let shown = g.push(&t);
                    let out = if mode == GuardMode::Flag { t } else { shown };
                    if !out.is_empty() && tx.send(GenEvent::Token(out)).is_err() {
                        return;
                    }
                    if mode == GuardMode::Block && !g.blocked().is_empty() {
                        count(&g);
                        filtered.store(true, Ordering::SeqCst);
                        cancel.cancel();
                        tracing::info!("answer stopped by the guard");
                        let mut stats = GenStats::new(model, karte_core::EngineKind::Server);
                        stats.generated_tokens = pieces;
                        let _ = tx.send(GenEvent::Done(stats));
                        return;
                    }
                }
                GenEvent::Done(stats) => {
                    let rest = g.finish();
                    if mode == GuardMode::Block {
                        if !rest.is_empty() {
                            let _ = tx.send(GenEvent::Token(rest));
                        }
                        if !g.blocked().is_empty() {
                            filtered.store(true, Ordering::SeqCst);
                            tracing::info!("answer stopped by the guard");
                        }
                    }
                    count(&g);
                    let _ = tx.send(GenEvent::Done(stats));
                    return;
                }
                GenEvent::Error(e) => {
                    // What is still held was never judged: it is dropped with the failed answer.
                    count(&g);
                    let _ = tx.send(GenEvent::Error(e));
                    return;
                }
            }
        }
    });
    rx
}
