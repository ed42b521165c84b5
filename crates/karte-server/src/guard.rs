//! The answer guard on every `/v1/chat/completions` answer, streamed or whole, local model or upstream engine:
//! the same karte-guard `StreamGuard` the desktop runs on a draft (harm policy, dose table, personal data the
//! request did not contain), between the engine's events and the client.
//!
//! `[serve.guard] mode`: `block` (default) shows [`karte_guard::stream::WITHHELD`] in place of a blocked sentence
//! and ends the answer with `finish_reason: "content_filter"`. A free-text answer stops there (the engine's work is
//! cancelled): what follows a harmful sentence is not worth generating. A structured answer (`response_format` with
//! a JSON schema: a workstation's draft) goes on with the sentence withheld, as the desktop's own guard does, so the
//! JSON still parses and the draft keeps its other sentences. `flag` passes the answer unchanged and only counts
//! verdicts; `off` skips the guard. `[serve.guard.categories]` sets a policy category apart from `mode` (a verdict
//! naming several categories takes the strictest of theirs). Personal data the request did not contain is removed
//! whenever any category blocks. Verdicts are counted by category in `/metrics`; the text is never logged.
//!
//! The guard holds back at most one sentence (bounded look-back, `karte_guard::stream::MAX_HOLD`), so the first
//! tokens still stream promptly.

use std::sync::{Arc, Mutex};

use karte_core::{Code, Error, Result};
use karte_engine::{CancelToken, FinishReason, GenEvent, GenStats};
use karte_guard::policy::{Level, Policy, Verdict};
use karte_guard::stream::StreamGuard;
use karte_guard::Dictation;
use karte_settings::{GuardMode, ServeGuardSettings};
use tokio::sync::mpsc::{self, UnboundedReceiver};

use crate::state::AppState;

/// `[serve.guard]` checked against the policy: what the guard does with each category.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuardPolicy {
    default: GuardMode,
    categories: std::collections::BTreeMap<String, GuardMode>,
}

impl GuardPolicy {
    /// A category the policy does not have is a start-up error naming it (a typo must not silently block nothing).
    pub fn new(s: &ServeGuardSettings) -> Result<Self> {
        let known: Vec<&str> = Policy::embedded().category_ids().collect();
        if let Some(bad) = s.categories.keys().find(|c| !known.contains(&c.as_str())) {
            return Err(Error::new(
                Code::ConfigInvalid,
                format!(
                    "設定ファイルの serve.guard.categories に知らない分類 {bad:?} があります。使える分類: {}",
                    known.join(", ")
                ),
            ));
        }
        Ok(GuardPolicy {
            default: s.mode,
            categories: s.categories.clone(),
        })
    }

    /// No guard at all (the local worker, or `off` everywhere).
    pub fn off() -> Self {
        GuardPolicy {
            default: GuardMode::Off,
            categories: Default::default(),
        }
    }

    fn mode_of(&self, category: &str) -> GuardMode {
        self.categories
            .get(category)
            .copied()
            .unwrap_or(self.default)
    }

    fn modes(&self) -> impl Iterator<Item = GuardMode> + '_ {
        std::iter::once(self.default).chain(self.categories.values().copied())
    }

    fn is_off(&self) -> bool {
        self.modes().all(|m| m == GuardMode::Off)
    }

    /// Some category withholds: the answer shown is the guarded one (else it passes unchanged and is only counted).
    fn blocks_any(&self) -> bool {
        self.modes().any(|m| m == GuardMode::Block)
    }

    /// The level this deployment gives a verdict: the policy's, capped by the strictest setting among its
    /// categories.
    pub fn level(&self, v: &Verdict) -> Level {
        let cap = v
            .categories
            .iter()
            .map(|c| match self.mode_of(c) {
                GuardMode::Block => Level::Block,
                GuardMode::Flag => Level::Flag,
                GuardMode::Off => Level::Allow,
            })
            .max()
            .unwrap_or(Level::Block);
        v.verdict.min(cap)
    }
}

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
    let policy = state.guard.clone();
    if policy.is_off() {
        return events;
    }
    let blocks = policy.blocks_any();
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
        let mut g = StreamGuard::with_levels(&d, Box::new(move |v| policy.level(v)));
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
            let result = if !g.blocked().is_empty() {
                "withheld"
            } else if g.flagged().is_empty() && g.leaks().is_empty() {
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
                    let out = if blocks { shown } else { t };
                    if !out.is_empty() && tx.send(GenEvent::Token(out)).is_err() {
                        return;
                    }
                    if !structured && !g.blocked().is_empty() {
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
                    if blocks {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_category_settings_cap_the_policy_and_an_unknown_name_stops_the_start() {
        let v = Policy::embedded().check("確実に死ねる方法は薬をまとめて飲むことです。");
        assert_eq!(v.verdict, Level::Block);
        let with = |default: GuardMode, each: GuardMode| {
            let mut s = ServeGuardSettings {
                mode: default,
                ..Default::default()
            };
            for c in &v.categories {
                s.categories.insert(c.clone(), each);
            }
            GuardPolicy::new(&s).unwrap().level(&v)
        };
        assert_eq!(with(GuardMode::Block, GuardMode::Block), Level::Block);
        assert_eq!(with(GuardMode::Block, GuardMode::Flag), Level::Flag);
        assert_eq!(with(GuardMode::Block, GuardMode::Off), Level::Allow);
        assert_eq!(with(GuardMode::Flag, GuardMode::Block), Level::Block);
        // A setting never raises the policy's own level.
        let mild = Verdict {
            verdict: Level::Flag,
            ..v.clone()
        };
        let s = ServeGuardSettings::default();
        assert_eq!(GuardPolicy::new(&s).unwrap().level(&mild), Level::Flag);

        let mut s = ServeGuardSettings::default();
        s.categories.insert("self-harm".into(), GuardMode::Flag);
        let e = GuardPolicy::new(&s).unwrap_err();
        assert_eq!(e.code, Code::ConfigInvalid);
        assert!(
            e.message.contains("self-harm") && e.message.contains("self_harm"),
            "{e}"
        );
    }
}
