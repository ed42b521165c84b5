//! The engine behind karte-llm's [`ChatEngine`] contract, so that drafting, evaluation and the CLI drive a model in
//! this process exactly as they drive the worker or the clinic server.
//!
//! Used where a crash of llama.cpp taking the process down is acceptable (CLI runs, evaluation, tests) and inside
//! karte-server itself. The desktop app never links this crate: it drafts through the supervised worker.

use std::sync::{Arc, Mutex};

use karte_llm::{cancelled, ChatEngine, ChatResponse, EngineKind, Piece, Serving};

use crate::{CancelToken, ChatRequest, Engine, EngineConfig, FinishReason, GenEvent, Result};

impl ChatEngine for Engine {
    /// A cancelled run is an error (`engine.cancelled`): a partial draft must not be mistaken for a finished one.
    fn chat(
        &self,
        req: &ChatRequest,
        cancel: &CancelToken,
        on_token: &mut dyn FnMut(Piece<'_>),
    ) -> Result<ChatResponse> {
        let mut text = String::new();
        for ev in self.submit(req.clone(), cancel.clone()) {
            match ev {
                GenEvent::Token(piece) => {
                    on_token(Piece::Text(&piece));
                    text.push_str(&piece);
                }
                GenEvent::Done(stats) if stats.finish == FinishReason::Cancelled => {
                    return Err(cancelled())
                }
                GenEvent::Done(stats) => return Ok(ChatResponse { text, stats }),
                GenEvent::Error(e) => return Err(e),
            }
        }
        Err(crate::stopped_error())
    }

    fn serving(&self) -> Serving {
        Serving::new(EngineKind::InProcess, "この端末のモデルで生成します")
    }

    fn count_tokens(&self, text: &str) -> Option<usize> {
        self.tokenize_count(text).ok()
    }
}

type Loader = dyn Fn() -> Result<Engine> + Send + Sync;

/// A model in this process that is loaded on first use, then kept: a one-shot command that may never need the
/// model (`karte draft --no-llm`, a settings problem found first) does not pay seconds and gigabytes for it.
pub struct LazyEngine {
    load: Box<Loader>,
    slot: Mutex<Option<Arc<Engine>>>,
}

impl std::fmt::Debug for LazyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyEngine")
            .field("loaded", &self.ready())
            .finish_non_exhaustive()
    }
}

impl LazyEngine {
    pub fn new(load: impl Fn() -> Result<Engine> + Send + Sync + 'static) -> Self {
        Self {
            load: Box::new(load),
            slot: Mutex::new(None),
        }
    }

    /// `model`: a manifest name or a path to a GGUF file; `None` means the manifest's default model. It is resolved
    /// and verified (size, sha256) when it is loaded, so a missing or damaged file is that load's error.
    pub fn from_manifest(model: Option<String>) -> Self {
        Self::new(move || {
            let m = karte_models::resolve(model.as_deref())?;
            karte_models::verify(&m)?;
            Engine::load(EngineConfig::new(&m.path, &m.name))
        })
    }

    /// The loaded engine, loading it now if needed. Concurrent callers wait for the one load.
    pub fn engine(&self) -> Result<Arc<Engine>> {
        let mut slot = self.slot.lock().map_err(|_| crate::stopped_error())?;
        if let Some(e) = slot.as_ref() {
            return Ok(Arc::clone(e));
        }
        let e = Arc::new((self.load)()?);
        *slot = Some(Arc::clone(&e));
        Ok(e)
    }
}

impl ChatEngine for LazyEngine {
    fn chat(
        &self,
        req: &ChatRequest,
        cancel: &CancelToken,
        on_token: &mut dyn FnMut(Piece<'_>),
    ) -> Result<ChatResponse> {
        self.engine()?.chat(req, cancel, on_token)
    }

    fn serving(&self) -> Serving {
        Serving::new(EngineKind::InProcess, "この端末のモデルで生成します")
    }

    /// Loads the model if it is not loaded yet: drafting counts the prompt before it asks, after telling the user
    /// that the model is loading (see `ready`), so the load belongs here. A failed load answers `None`, and the
    /// request that follows reports the load's error.
    fn count_tokens(&self, text: &str) -> Option<usize> {
        self.engine().ok()?.count_tokens(text)
    }

    fn prepare(&self) -> Result<()> {
        self.engine().map(drop)
    }

    fn ready(&self) -> bool {
        // A load in progress holds the lock: that is "not ready", and a status call must not wait for it.
        self.slot.try_lock().is_ok_and(|s| s.is_some())
    }
}
