//! Chat completions over karte-engine: validation, per-request limits, admission to the bounded queue, the bridge
//! from the engine's thread to async, and the OpenAI response shapes (whole and streamed).
//!
//! Cancellation is by ownership: a [`Generation`] owns the cancel token and the receiving end. When the HTTP client
//! goes away axum drops the response stream, the `Generation` with it, and its `Drop` cancels the engine's work;
//! nothing has to notice the disconnect explicitly.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use karte_core::{Code, Error};
use karte_engine::{CancelToken, ChatRequest, EventSink, FinishReason, GenEvent, GenStats};
use karte_llm::openai::{
    AssistantMessage, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Choice,
    ChunkChoice, Delta, Usage,
};
use tokio::sync::mpsc;

use crate::error::{bad_request, busy, ApiError};
use crate::state::AppState;
use crate::tokens::{Caller, Charge};

/// Sampling fields read only to be checked: `temperature` as a wide float (so that `1e308` is refused, not
/// turned into infinity), `top_p` (accepted in range; the engine's sampler uses its own), `n` (one answer only).
#[derive(Debug, Default, serde::Deserialize)]
pub struct Sampling {
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub n: Option<u64>,
}

/// Chat-template markers and a default system prompt some templates add, per request and per message: the
/// estimate errs on the long side so that what passes here also passes the engine's own check.
const TEMPLATE_TOKENS: usize = 64;
pub const TOKENS_PER_MESSAGE: usize = 8;

/// The prompt's size in the model's own tokens (plus the template's), counted on a blocking thread.
pub async fn count_prompt_tokens(
    engine: Arc<karte_engine::Engine>,
    messages: Vec<karte_engine::ChatMessage>,
) -> Result<usize, ApiError> {
    tokio::task::spawn_blocking(move || {
        let mut n = TEMPLATE_TOKENS;
        for m in &messages {
            n += engine.tokenize_count(&m.content)? + TOKENS_PER_MESSAGE;
        }
        Ok::<_, Error>(n)
    })
    .await
    .map_err(|_| {
        ApiError::from(Error::new(
            Code::EngineFailed,
            "入力のトークン数を数えられませんでした。管理者に連絡してください。",
        ))
    })?
    .map_err(ApiError::from)
}

/// A request accepted by the queue and submitted to the engine.
pub struct Generation {
    pub id: String,
    pub model: String,
    pub created: u64,
    events: mpsc::UnboundedReceiver<GenEvent>,
    cancel: CancelToken,
    state: Arc<AppState>,
    admitted: Instant,
    first_token: Option<Instant>,
    finished: bool,
    /// The worst-case cost charged to a rate-limited token, settled to the real cost when the answer ends.
    charge: Option<Charge>,
    /// Who asked (token id and name), for the audit entry written when the answer ends.
    caller: Option<(String, String)>,
    /// Guard categories that withheld or flagged a sentence, filled by the answer guard.
    verdicts: Arc<Mutex<Vec<String>>>,
}

/// What a finished generation reports: the engine's stats (with the answer guard's `content_filter`), which the
/// answer's usage and finish reason carry.
pub struct Finished {
    pub stats: GenStats,
}

/// How an answer ended, for the audit entry.
enum Ending<'a> {
    Answered(&'a GenStats),
    Failed(Code),
    Cancelled,
}

pub enum Step {
    Token(String),
    Done(Finished),
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Checks the request and turns it into the engine's, with the server's limits applied.
pub fn to_engine_request(
    req: &ChatCompletionRequest,
    sampling: &Sampling,
    limits: &crate::state::Limits,
) -> Result<ChatRequest, ApiError> {
    if let Some(t) = sampling.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(bad_request("temperature は 0 以上 2 以下にしてください"));
        }
    }
    if let Some(p) = sampling.top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(bad_request("top_p は 0 より大きく 1 以下にしてください"));
        }
    }
    if sampling.n.is_some_and(|n| n != 1) {
        return Err(bad_request("n は 1 だけに対応しています"));
    }
    if req.messages.is_empty() {
        return Err(bad_request("messages が空です"));
    }
    if let Some(m) = req
        .messages
        .iter()
        .find(|m| !matches!(m.role.as_str(), "system" | "user" | "assistant"))
    {
        // The role names are the client's, not clinical text: safe to echo.
        return Err(bad_request(&format!(
            "role {:?} は使えません",
            m.role.chars().take(16).collect::<String>()
        )));
    }
    let mut g = req.to_chat();
    if g.max_tokens == 0 {
        return Err(bad_request("max_tokens は 1 以上にしてください"));
    }
    g.max_tokens = g.max_tokens.min(limits.max_tokens);
    // The engine stops the request at this bound (FinishReason::TimeLimit): the client gets the text so far with
    // finish_reason "length".
    g.max_time = Some(limits.request_timeout);
    g.temperature = g.temperature.clamp(0.0, 2.0);
    if let Some(schema) = &g.json_schema {
        crate::schema::check(schema, limits)?;
    }
    Ok(g)
}

impl Generation {
    /// Submits the request to the engine, whose bounded queue answers `engine.busy` when full: that becomes 429
    /// with Retry-After before any stream is opened.
    pub fn start(state: &Arc<AppState>, req: ChatRequest) -> Result<Generation, ApiError> {
        let input = crate::guard::input_of(&req);
        if let Some(pool) = &state.upstream {
            return Self::start_upstream(state, Arc::clone(pool), req, input);
        }
        let engine = state.engine().ok_or_else(crate::error::not_ready)?;
        let cancel = CancelToken::new();
        // The engine delivers straight into the async channel: no thread between a token and the stream. If the
        // async side is gone, the send fails and the engine frees the sequence.
        let (tx, events) = mpsc::unbounded_channel();
        let sink = EventSink::new(move |ev| tx.send(ev).is_ok());
        match engine.try_submit_to(req, cancel.clone(), sink) {
            Ok(()) => {}
            Err(e) if e.code == Code::EngineBusy => return Err(busy(state.retry_after_s())),
            Err(e) => return Err(e.into()),
        }
        Ok(Self::admitted(
            state,
            events,
            cancel,
            engine.info().name.clone(),
            input,
        ))
    }

    /// Upstream mode: the pool (karte-llm's `UpstreamPool`, the same `ChatEngine` contract as every engine) runs
    /// on a blocking thread and feeds the same channel the local engine would. Requests beyond `max_queue` in
    /// flight get 429 here; each upstream queues what it accepts.
    fn start_upstream(
        state: &Arc<AppState>,
        pool: Arc<karte_llm::upstream::UpstreamPool>,
        req: ChatRequest,
        input: crate::guard::Input,
    ) -> Result<Generation, ApiError> {
        use karte_llm::ChatEngine;
        if !pool.any_healthy() {
            return Err(karte_llm::upstream::unavailable().into());
        }
        let open = state.metrics.open_requests.load(Ordering::SeqCst) as usize;
        if open >= state.limits.max_queue.max(1) {
            return Err(busy(state.retry_after_s()));
        }
        let model = pool
            .models()
            .into_iter()
            .next()
            .unwrap_or_else(|| state.model_name.clone());
        let cancel = CancelToken::new();
        let (tx, events) = mpsc::unbounded_channel();
        let c = cancel.clone();
        tokio::task::spawn_blocking(move || {
            let tokens = tx.clone();
            let r = pool.chat(&req, &c, &mut |p| {
                if let karte_llm::Piece::Text(t) = p {
                    // The client (or the guard) is gone: stop the upstream's work too.
                    if tokens.send(GenEvent::Token(t.to_string())).is_err() {
                        c.cancel();
                    }
                }
            });
            let _ = tx.send(match r {
                Ok(resp) => GenEvent::Done(resp.stats),
                Err(e) => GenEvent::Error(e),
            });
        });
        Ok(Self::admitted(state, events, cancel, model, input))
    }

    /// A request the engine (or the upstream pool) has taken: counted open, its events behind the answer guard.
    fn admitted(
        state: &Arc<AppState>,
        events: mpsc::UnboundedReceiver<GenEvent>,
        cancel: CancelToken,
        model: String,
        input: crate::guard::Input,
    ) -> Generation {
        state.metrics.open_requests.fetch_add(1, Ordering::SeqCst);
        let verdicts = Arc::new(Mutex::new(Vec::new()));
        let events = crate::guard::relay(
            state,
            events,
            input,
            cancel.clone(),
            model.clone(),
            Arc::clone(&verdicts),
        );
        let mut idb = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut idb);
        Generation {
            id: format!("chatcmpl-{}", hex::encode(idb)),
            model,
            created: now_unix(),
            events,
            cancel,
            state: Arc::clone(state),
            admitted: Instant::now(),
            first_token: None,
            finished: false,
            charge: None,
            caller: None,
            verdicts,
        }
    }

    pub fn with_charge(mut self, charge: Option<Charge>) -> Self {
        self.charge = charge;
        self
    }

    pub fn with_caller(mut self, caller: &Caller) -> Self {
        self.caller = Some((caller.id.clone(), caller.name.clone()));
        self
    }

    /// The next piece of text, or the end. An engine error ends the generation with that error.
    pub async fn next(&mut self) -> Result<Step, Error> {
        let ev = self.events.recv().await;
        match ev {
            Some(GenEvent::Token(t)) => {
                if self.first_token.is_none() {
                    self.first_token = Some(Instant::now());
                    self.state
                        .metrics
                        .first_token(self.admitted.elapsed().as_secs_f64());
                }
                Ok(Step::Token(t))
            }
            Some(GenEvent::Done(stats)) => {
                if stats.finish == FinishReason::Cancelled {
                    self.end(Ending::Cancelled);
                    return Err(karte_llm::cancelled());
                }
                let gen_s = self.first_token.map_or(0.0, |t| t.elapsed().as_secs_f64());
                if let Some(c) = self.charge.take() {
                    let unit = self.state.limits.rate_limit_unit_tokens.max(1);
                    let spent = (stats.prompt_tokens + stats.generated_tokens) / unit;
                    self.state.tokens.settle(c, spent);
                }
                self.state
                    .metrics
                    .finished(stats.prompt_tokens, stats.generated_tokens, gen_s);
                self.end(Ending::Answered(&stats));
                Ok(Step::Done(Finished { stats }))
            }
            Some(GenEvent::Error(e)) => {
                self.end(Ending::Failed(e.code));
                Err(e)
            }
            None => {
                let e = Error::new(
                    Code::EngineFailed,
                    "文章生成エンジンが停止しています。管理者に連絡してください。",
                );
                self.end(Ending::Failed(e.code));
                Err(e)
            }
        }
    }

    fn end(&mut self, how: Ending<'_>) {
        if self.finished {
            return;
        }
        self.finished = true;
        if let Some((caller, caller_name)) = self.caller.take() {
            let (finish, error, prompt_tokens, generated_tokens) = match how {
                Ending::Answered(s) => (
                    s.finish.as_openai(),
                    None,
                    s.prompt_tokens,
                    s.generated_tokens,
                ),
                Ending::Failed(code) => ("error", Some(code.as_str().to_string()), 0, 0),
                Ending::Cancelled => ("cancelled", None, 0, 0),
            };
            let mut guard =
                std::mem::take(&mut *self.verdicts.lock().unwrap_or_else(|p| p.into_inner()));
            guard.sort();
            guard.dedup();
            self.state.audit(crate::audit::Event::Chat {
                request: self.id.clone(),
                caller,
                caller_name,
                model: self.model.clone(),
                prompt_tokens,
                generated_tokens,
                finish: finish.to_string(),
                error,
                guard,
            });
        }
        self.state
            .metrics
            .open_requests
            .fetch_sub(1, Ordering::SeqCst);
        tracing::info!(
            id = %self.id,
            elapsed_ms = self.admitted.elapsed().as_millis() as u64,
            "generation ended"
        );
    }

    pub fn usage(f: &Finished) -> Usage {
        Usage::from(&f.stats)
    }

    /// OpenAI's name for why the answer ended (a time limit reads as `length`, with the text so far).
    pub fn finish_reason(f: &Finished) -> &'static str {
        f.stats.finish.as_openai()
    }

    pub fn chunk(&self, delta: Delta, finish: Option<&str>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish.map(str::to_string),
            }],
            usage: None,
        }
    }

    pub fn usage_chunk(&self, usage: Usage) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: Vec::new(),
            usage: Some(usage),
        }
    }

    /// Runs to the end and builds the non-streamed answer.
    pub async fn collect(mut self) -> Result<ChatCompletion, Error> {
        let mut text = String::new();
        loop {
            match self.next().await? {
                Step::Token(t) => text.push_str(&t),
                Step::Done(f) => {
                    return Ok(ChatCompletion {
                        id: self.id.clone(),
                        object: "chat.completion".into(),
                        created: self.created,
                        model: self.model.clone(),
                        choices: vec![Choice {
                            index: 0,
                            message: AssistantMessage {
                                role: "assistant".into(),
                                content: Some(text),
                            },
                            finish_reason: Some(Self::finish_reason(&f).to_string()),
                        }],
                        usage: Some(Self::usage(&f)),
                    })
                }
            }
        }
    }
}

impl Drop for Generation {
    /// The client went away (or the handler ended early): stop the engine's work and free the queue slot.
    fn drop(&mut self) {
        if !self.finished {
            self.cancel.cancel();
            tracing::info!(id = %self.id, "client gone: generation cancelled");
            self.end(Ending::Cancelled);
        }
    }
}
