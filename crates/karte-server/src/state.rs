//! What every handler shares: the engine (once loaded), tokens, limits, metrics, the log-level switch.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use karte_core::Error;
use karte_engine::{Engine, EngineConfig};
use serde::Serialize;

use crate::metrics::Metrics;
use crate::tokens::TokenStore;

#[derive(Debug, Clone)]
pub struct Limits {
    /// Requests waiting for a free sequence beyond which new ones get 429 (the engine's bounded queue).
    pub max_queue: usize,
    /// Requests decoded together (continuous batching in one llama context).
    pub parallel: u32,
    /// Upper bound on any request's `max_tokens`.
    pub max_tokens: u32,
    /// Upper bound on one request's wall time; the answer then ends with `finish_reason: "length"`.
    pub request_timeout: Duration,
    /// Largest `response_format` JSON schema, in bytes (serialised).
    pub max_schema_bytes: usize,
    /// Most `enum` values + `anyOf`/`oneOf` branches + `type` alternatives in one schema.
    pub max_schema_alternatives: usize,
    /// Tokens (prompt + answer) that count as one more request against a token's `rate_limit_per_min`.
    pub rate_limit_unit_tokens: u32,
    /// A request's body must arrive within this once its head is in (the connection's header-read timeout).
    pub read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_queue: 64,
            parallel: 4,
            max_tokens: 2048,
            request_timeout: Duration::from_secs(120),
            max_schema_bytes: 16 * 1024,
            max_schema_alternatives: 256,
            rate_limit_unit_tokens: 1024,
            read_timeout: Duration::from_secs(10),
        }
    }
}

pub enum EngineSlot {
    Loading,
    Ready(Arc<Engine>),
    Failed(Error),
}

/// Changes the log filter at run time (`PUT /admin/log-level`).
pub type LogReload = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

pub struct AppState {
    slot: RwLock<EngineSlot>,
    /// Upstream mode: OpenAI-compatible engines answer instead of a model loaded here (then `slot` stays
    /// `Loading` and is never used).
    pub upstream: Option<Arc<karte_llm::upstream::UpstreamPool>>,
    /// What the answer guard does with each policy category, in both modes (`[serve.guard]`).
    pub guard: crate::guard::GuardPolicy,
    pub model_name: String,
    pub tokens: TokenStore,
    pub metrics: Metrics,
    pub limits: Limits,
    pub log_reload: Option<LogReload>,
    pub log_level: RwLock<String>,
    /// The local worker has no management API (its one token is the parent's).
    pub local: bool,
    /// KV cells of the engine's context: a request whose prompt + `max_tokens` exceeds them is refused with 400
    /// before it reaches the engine.
    pub context_tokens: usize,
    /// The audit trail (`<data_dir>/audit.jsonl`; none for the local worker).
    pub audit: crate::audit::Audit,
    /// Upstream mode: fingerprints of the credentials loaded for the upstreams, for the audit trail.
    pub upstream_credentials: Option<String>,
    /// Speech to text (`/v1/audio/transcriptions`), loaded on first use.
    pub voice: crate::voice::Voice,
}

#[derive(Debug, Clone, Serialize)]
pub struct Load {
    pub ready: bool,
    pub model: String,
    /// Waiting in the engine's queue.
    pub queue_depth: usize,
    /// Being decoded now.
    pub in_flight: usize,
    /// HTTP chat requests not yet answered in full.
    pub open_requests: u64,
    pub max_queue: usize,
    pub max_parallel: usize,
    pub requests_total: u64,
    pub tokens_per_s: f64,
}

impl AppState {
    pub fn new(model_name: String, tokens: TokenStore, limits: Limits, local: bool) -> Self {
        Self {
            slot: RwLock::new(EngineSlot::Loading),
            upstream: None,
            guard: crate::guard::GuardPolicy::off(),
            model_name,
            tokens,
            metrics: Metrics::default(),
            limits,
            log_reload: None,
            log_level: RwLock::new("info".into()),
            local,
            context_tokens: EngineConfig::DEFAULT_N_CTX as usize,
            audit: crate::audit::Audit::none(),
            upstream_credentials: None,
            voice: crate::voice::Voice::default(),
        }
    }

    /// Records an audit event. A failed write is logged (without the event) and counted, never fatal: a full disk
    /// must not stop the ward's drafting.
    pub fn audit(&self, event: crate::audit::Event) {
        if let Err(e) = self.audit.record(event) {
            self.metrics.error(e.code.as_str());
            tracing::error!(code = %e.code, "audit entry not written");
        }
    }

    pub fn engine(&self) -> Option<Arc<Engine>> {
        match &*self.slot.read().unwrap_or_else(|p| p.into_inner()) {
            EngineSlot::Ready(e) => Some(Arc::clone(e)),
            _ => None,
        }
    }

    pub fn status(&self) -> (&'static str, bool) {
        if let Some(pool) = &self.upstream {
            // Ready while any upstream is in rotation: that is when a request can be answered.
            return if pool.any_healthy() {
                ("ok", true)
            } else {
                ("unavailable", false)
            };
        }
        match &*self.slot.read().unwrap_or_else(|p| p.into_inner()) {
            EngineSlot::Loading => ("loading", false),
            EngineSlot::Ready(_) => ("ok", true),
            EngineSlot::Failed(_) => ("failed", false),
        }
    }

    pub fn set_engine(&self, slot: EngineSlot) {
        *self.slot.write().unwrap_or_else(|p| p.into_inner()) = slot;
    }

    /// Loads the model on a blocking thread; `/health` says `loading` meanwhile, so a supervisor can wait for it.
    pub fn load_in_background(self: &Arc<Self>, cfg: EngineConfig) {
        let me = Arc::clone(self);
        std::thread::spawn(move || {
            let t = std::time::Instant::now();
            match Engine::load(cfg) {
                Ok(e) => {
                    tracing::info!(load_ms = t.elapsed().as_millis() as u64, "model ready");
                    me.set_engine(EngineSlot::Ready(Arc::new(e)));
                }
                Err(e) => {
                    tracing::error!(code = %e.code, "model load failed");
                    me.set_engine(EngineSlot::Failed(e));
                }
            }
        });
    }

    /// The engine's load counters, once the model is loaded.
    pub fn engine_load(&self) -> Option<karte_engine::LoadInfo> {
        self.engine().map(|e| e.load_info())
    }

    pub fn load(&self) -> Load {
        use std::sync::atomic::Ordering;
        let mut l = self.engine_load().unwrap_or_default();
        if let Some(pool) = &self.upstream {
            l.active = pool.upstreams().iter().map(|u| u.in_flight()).sum();
        }
        Load {
            ready: self.status().1,
            model: self.model_name.clone(),
            queue_depth: l.queued,
            in_flight: l.active,
            open_requests: self.metrics.open_requests.load(Ordering::Relaxed),
            max_queue: l.max_queue,
            max_parallel: l.max_parallel,
            requests_total: self.metrics.requests_total(),
            tokens_per_s: self.metrics.last_tokens_per_s(),
        }
    }

    /// Seconds a turned-away client should wait: a rough share of the queue ahead at the last known speed.
    pub fn retry_after_s(&self) -> u64 {
        let l = self.load();
        let tps = if l.tokens_per_s > 0.0 {
            l.tokens_per_s
        } else {
            20.0
        };
        // Assume ~256 tokens per queued answer, served max_parallel at a time; clamp to what a person would accept.
        let waves = l.queue_depth as f64 / l.max_parallel.max(1) as f64;
        ((waves * 256.0 / tps) as u64).clamp(1, 30)
    }
}
