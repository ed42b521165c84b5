//! The router. Handlers only authenticate, call the library ([`crate::chat`], [`crate::tokens`], [`AppState`]) and
//! shape the answer.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use karte_llm::openai::{ChatCompletionRequest, Delta, Health, ModelCard, ModelList};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::chat::{to_engine_request, Generation, Sampling, Step};
use crate::error::{bad_request, envelope, forbidden, too_large, unauthorized, ApiError};
use crate::state::AppState;
use crate::tokens::{Caller, NewToken, Role, TokenInfo};
use crate::voice::{TranscriptionAnswer, TranscriptionRequest, AUDIO_BODY_LIMIT};

pub fn router(state: Arc<AppState>) -> Router {
    let mut r = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat_completions))
        .route(
            "/v1/audio/transcriptions",
            post(transcriptions).layer(axum::extract::DefaultBodyLimit::max(AUDIO_BODY_LIMIT)),
        );
    if !state.local {
        r = r
            .route("/admin/tokens", get(list_tokens).post(create_token))
            .route("/admin/tokens/{id}", patch(update_token))
            .route("/admin/tokens/{id}/revoke", post(revoke_token))
            .route("/admin/load", get(load))
            .route("/admin/log-level", get(get_log_level).put(set_log_level));
    }
    r.layer(middleware::from_fn_with_state(
        Arc::clone(&state),
        read_body,
    ))
    .layer(middleware::from_fn_with_state(Arc::clone(&state), count))
    .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
    .with_state(state)
}

/// Requests are small (a dictation is at most 20,000 characters); anything far beyond is refused. Audio is the
/// one exception ([`AUDIO_BODY_LIMIT`], on its own route).
pub const BODY_LIMIT: usize = 1024 * 1024;

fn body_limit(path: &str) -> usize {
    if path == "/v1/audio/transcriptions" {
        AUDIO_BODY_LIMIT
    } else {
        BODY_LIMIT
    }
}

/// Reads the whole body before any handler runs: at most the route's limit (`body_limit`: [`BODY_LIMIT`], or
/// [`AUDIO_BODY_LIMIT`] for a recording; 413 `input.too_large` beyond, without
/// reading the rest), within the read timeout (a body trickled in slower is refused and its connection freed).
async fn read_body(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    use futures_util::StreamExt;
    let (parts, body) = req.into_parts();
    let limit = body_limit(parts.uri.path());
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return fail(&state, too_large(limit)).into_response();
    }
    enum Failed {
        TooLarge,
        Broken,
    }
    let read = async {
        let mut buf = Vec::new();
        let mut chunks = body.into_data_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|_| Failed::Broken)?;
            if buf.len() + chunk.len() > limit {
                return Err(Failed::TooLarge);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    };
    let bytes = match tokio::time::timeout(state.limits.read_timeout, read).await {
        Ok(Ok(b)) => b,
        Ok(Err(Failed::TooLarge)) => return fail(&state, too_large(limit)).into_response(),
        Ok(Err(Failed::Broken)) => {
            return fail(&state, bad_request("本文を最後まで受け取れませんでした")).into_response()
        }
        Err(_) => {
            return fail(
                &state,
                bad_request(&format!(
                    "本文が {} 秒以内に届きませんでした",
                    state.limits.read_timeout.as_secs()
                )),
            )
            .into_response()
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Parses a JSON body; an error names the field (`messages[0].content`) and what is wrong with it, never a value
/// from the body (it could be clinical text).
fn parse_json<T: DeserializeOwned>(state: &AppState, body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let parsed = parsed.map_err(|e| {
        let path = safe_path(&e.path().to_string());
        json_error(e.inner(), path)
    });
    let value = parsed.and_then(|v| {
        de.end()
            .map(|()| v)
            .map_err(|e| json_error(&e, String::new()))
    });
    value.map_err(|e| fail(state, e))
}

fn json_error(e: &serde_json::Error, path: String) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => bad_request("JSON が途中で終わっています"),
        Category::Syntax | Category::Io => bad_request("JSON として読めません"),
        Category::Data => {
            // serde's "missing field `name`": the name is one of our own field names, safe to repeat.
            let text = e.to_string();
            let missing = text
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next())
                .filter(|f| f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            match missing {
                Some(field) if path.is_empty() => bad_request(&format!("{field} がありません")),
                Some(field) => bad_request(&format!("{path}.{field} がありません")),
                None if path.is_empty() => bad_request("JSON の内容が正しくありません"),
                None => bad_request(&format!("{path} の値または型が正しくありません")),
            }
        }
    }
}

/// A field path as serde_path_to_error prints it, reduced to characters our own field names and indices use, so
/// that no key a client made up (which could be anything) reaches a message.
fn safe_path(p: &str) -> String {
    if p == "." {
        return String::new();
    }
    let ok = p
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'));
    if ok && p.len() <= 80 {
        p.to_string()
    } else {
        "（項目名省略）".to_string()
    }
}

/// Counts every request by route and status, and logs it with sizes and timings only.
async fn count(
    State(state): State<Arc<AppState>>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let t = Instant::now();
    let endpoint = matched.map_or_else(|| "other".to_string(), |m| m.as_str().to_string());
    let method = req.method().clone();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    state.metrics.request(&endpoint, status);
    tracing::info!(
        %method,
        endpoint,
        status,
        ms = t.elapsed().as_millis() as u64,
        "request"
    );
    resp
}

/// The token of `Authorization: Bearer TOKEN`; the scheme name is case-insensitive (RFC 7235 §2.1), so `bearer`
/// and `BEARER` are the same.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// 401 for a missing, unknown or revoked token (alike: the client learns nothing about which); 429 over the
/// token's rate limit.
fn authenticate(state: &AppState, headers: &HeaderMap, need: Role) -> Result<Caller, ApiError> {
    let caller = bearer(headers)
        .and_then(|t| state.tokens.authenticate(t))
        .ok_or_else(|| fail(state, unauthorized()))?;
    if need == Role::Admin && caller.role != Role::Admin {
        return Err(fail(state, forbidden()));
    }
    if let Err(wait) = state.tokens.check_rate(&caller) {
        return Err(fail(state, crate::error::rate_limited(wait)));
    }
    Ok(caller)
}

fn fail(state: &AppState, e: ApiError) -> ApiError {
    state.metrics.error(e.error.code.as_str());
    e
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let (status, ready) = state.status();
    let body = Json(Health {
        status: status.into(),
        ready,
        model: Some(state.model_name.clone()),
        accelerator: state.engine().map(|e| e.info().accelerator.clone()),
        upstreams: state.upstream.as_ref().map_or_else(Vec::new, |pool| {
            pool.upstreams()
                .iter()
                .map(|u| karte_llm::openai::UpstreamHealth {
                    url: u.name.clone(),
                    state: u.state().into(),
                    in_flight: u.in_flight(),
                    models: u.models(),
                })
                .collect()
        }),
    });
    if ready {
        body.into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut text = state
        .metrics
        .render(state.status().1, state.engine_load().as_ref());
    if let Some(pool) = &state.upstream {
        text.push_str(&crate::metrics::render_upstreams(pool));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn models(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<ModelList>, ApiError> {
    authenticate(&state, &headers, Role::Client)?;
    let ids = match &state.upstream {
        Some(pool) => pool.models(),
        None => vec![state.model_name.clone()],
    };
    Ok(Json(ModelList {
        object: "list".into(),
        data: ids
            .into_iter()
            .map(|id| ModelCard {
                id,
                object: "model".into(),
                created: 0,
                owned_by: "karte".into(),
            })
            .collect(),
    }))
}

/// OpenAI's transcription endpoint: a multipart form (`file`, `model`, `language`, `prompt`, `response_format`;
/// other OpenAI fields such as `temperature` are accepted and ignored).
async fn transcriptions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    use axum::extract::FromRequest;
    let caller = authenticate(&state, &headers, Role::Client)?;
    let form = axum::extract::Multipart::from_request(request, &())
        .await
        .map_err(|_| {
            fail(
                &state,
                bad_request("multipart/form-data（file フィールドに音声）で送ってください"),
            )
        })?;
    let req = read_transcription_form(form)
        .await
        .map_err(|e| fail(&state, e))?;
    let mut idb = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut idb);
    let id = format!("transcription-{}", hex::encode(idb));
    let result = state.voice.transcribe(req).await;
    let (audio_ms, speech_ms, segments) = result.as_ref().map_or((0, 0, 0), |(_, t)| {
        (
            (t.duration_s * 1000.0) as u64,
            (t.speech_s * 1000.0) as u64,
            t.segments.len() as u32,
        )
    });
    tracing::info!(id, caller = %caller.id, audio_ms, speech_ms, segments, "transcription finished");
    state.audit(crate::audit::Event::Transcription {
        request: id,
        caller: caller.id.clone(),
        caller_name: caller.name.clone(),
        model: karte_voice::MODEL.into(),
        audio_ms,
        speech_ms,
        segments,
        error: result.as_ref().err().map(|e| e.code.as_str().to_string()),
    });
    match result.map_err(|e| fail(&state, e.into()))?.0 {
        TranscriptionAnswer::Json(t) => Ok(Json(t).into_response()),
        TranscriptionAnswer::Verbose(v) => Ok(Json(v).into_response()),
        TranscriptionAnswer::Text(text) => {
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
        }
    }
}

async fn read_transcription_form(
    mut form: axum::extract::Multipart,
) -> Result<TranscriptionRequest, ApiError> {
    let broken = |_| bad_request("multipart の本文を読めません");
    let mut req = TranscriptionRequest::default();
    while let Some(field) = form.next_field().await.map_err(broken)? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" => req.file = Some(field.bytes().await.map_err(broken)?.to_vec()),
            "model" => req.model = Some(field.text().await.map_err(broken)?),
            "language" => req.language = Some(field.text().await.map_err(broken)?),
            "prompt" => req.prompt = Some(field.text().await.map_err(broken)?),
            "response_format" => req.response_format = Some(field.text().await.map_err(broken)?),
            _ => {}
        }
    }
    Ok(req)
}

async fn chat_completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state, &headers, Role::Client)?;
    let req: ChatCompletionRequest = parse_json(&state, &body)?;
    let sampling: Sampling = parse_json(&state, &body)?;
    drop(body);
    let engine_req =
        to_engine_request(&req, &sampling, &state.limits).map_err(|e| fail(&state, e))?;
    if let Some(schema) = engine_req.json_schema.clone() {
        // Compiled here, off the engine's thread: a schema the grammar converter refuses is the client's error.
        crate::schema::check_grammar(schema)
            .await
            .map_err(|e| fail(&state, e))?;
    }
    let max_tokens = engine_req.max_tokens as usize;
    let prompt_tokens = if state.upstream.is_some() {
        // The upstream counts in its own vocabulary and refuses a prompt too long for its context itself (400,
        // passed on). Here a character is charged as a token: Japanese text is rarely fewer characters than tokens,
        // and the charge is settled to the upstream's own count when the answer ends.
        req.messages
            .iter()
            .map(|m| m.content.chars().count() + crate::chat::TOKENS_PER_MESSAGE)
            .sum::<usize>()
    } else {
        let engine = state
            .engine()
            .ok_or_else(|| fail(&state, crate::error::not_ready()))?;
        // The prompt must fit before it is queued: the engine would refuse it only after its turn, as a failure.
        let prompt_tokens = crate::chat::count_prompt_tokens(engine, req.messages.clone())
            .await
            .map_err(|e| fail(&state, e))?;
        if prompt_tokens + max_tokens > state.context_tokens {
            return Err(fail(
                &state,
                crate::error::prompt_too_long(prompt_tokens, max_tokens, state.context_tokens),
            ));
        }
        prompt_tokens
    };
    // The request's cost counts against the token's limit, not only its number (README: rate limits).
    let unit = state.limits.rate_limit_unit_tokens.max(1) as usize;
    let charge = state
        .tokens
        .charge(&caller, ((prompt_tokens + max_tokens) / unit) as u32)
        .map_err(|wait| fail(&state, crate::error::rate_limited(wait)))?;
    let gen = match Generation::start(&state, engine_req) {
        Ok(g) => g.with_charge(charge).with_caller(&caller),
        Err(e) => {
            if let Some(c) = charge {
                state.tokens.settle(c, 0);
            }
            return Err(fail(&state, e));
        }
    };
    tracing::info!(
        id = %gen.id,
        caller = %caller.id,
        messages = req.messages.len(),
        chars = req.messages.iter().map(|m| m.content.chars().count()).sum::<usize>(),
        prompt_tokens,
        stream = req.stream,
        schema = req.response_format.is_some(),
        "chat admitted"
    );
    if !req.stream {
        return match gen.collect().await {
            Ok(c) => Ok(Json(c).into_response()),
            Err(e) => Err(fail(&state, e.into())),
        };
    }
    let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
    Ok(Sse::new(sse_stream(state, gen, include_usage))
        .keep_alive(KeepAlive::default())
        .into_response())
}

enum Phase {
    Role,
    Body,
    Usage(karte_llm::openai::Usage),
    Done,
    End,
}

/// The SSE body: a role chunk, content chunks, the finish chunk, the usage chunk when asked, `[DONE]`. An error
/// midway is sent as OpenAI's error object and the stream ends without `[DONE]`.
fn sse_stream(
    state: Arc<AppState>,
    gen: Generation,
    include_usage: bool,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(
        (gen, Phase::Role, state),
        move |(mut gen, phase, state)| async move {
            let json = |v: &dyn erased::Ser| Event::default().data(v.to_json());
            match phase {
                Phase::Role => {
                    let c = gen.chunk(
                        Delta {
                            role: Some("assistant".into()),
                            content: Some(String::new()),
                        },
                        None,
                    );
                    Some((Ok(json(&c)), (gen, Phase::Body, state)))
                }
                Phase::Body => match gen.next().await {
                    Ok(Step::Token(t)) => {
                        let c = gen.chunk(
                            Delta {
                                role: None,
                                content: Some(t),
                            },
                            None,
                        );
                        Some((Ok(json(&c)), (gen, Phase::Body, state)))
                    }
                    Ok(Step::Done(f)) => {
                        let c = gen.chunk(Delta::default(), Some(Generation::finish_reason(&f)));
                        let next = if include_usage {
                            Phase::Usage(Generation::usage(&f))
                        } else {
                            Phase::Done
                        };
                        Some((Ok(json(&c)), (gen, next, state)))
                    }
                    Err(e) => {
                        state.metrics.error(e.code.as_str());
                        Some((Ok(json(&envelope(&e))), (gen, Phase::End, state)))
                    }
                },
                Phase::Usage(u) => {
                    let c = gen.usage_chunk(u);
                    Some((Ok(json(&c)), (gen, Phase::Done, state)))
                }
                Phase::Done => Some((
                    Ok(Event::default().data("[DONE]")),
                    (gen, Phase::End, state),
                )),
                Phase::End => None,
            }
        },
    )
}

/// Serialising several chunk types through one closure.
mod erased {
    pub trait Ser {
        fn to_json(&self) -> String;
    }
    impl<T: serde::Serialize> Ser for T {
        fn to_json(&self) -> String {
            serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
        }
    }
}

// ---- management API (admin token) -----------------------------------------------------------------------------

async fn list_tokens(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    authenticate(&state, &headers, Role::Admin)?;
    Ok(Json(state.tokens.list()))
}

#[derive(serde::Serialize)]
struct Created {
    #[serde(flatten)]
    info: TokenInfo,
    /// Shown once; the server keeps only its hash.
    token: String,
}

async fn create_token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let admin = authenticate(&state, &headers, Role::Admin)?;
    let new: NewToken = parse_json(&state, &body)?;
    let (info, token) = state
        .tokens
        .create(&new)
        .map_err(|e| fail(&state, e.into()))?;
    tracing::info!(admin = %admin.id, token_id = %info.id, role = ?info.role, "token created");
    admin_act(&state, &admin, "token_created", Some(&info.id));
    Ok((StatusCode::CREATED, Json(Created { info, token })))
}

async fn revoke_token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    let admin = authenticate(&state, &headers, Role::Admin)?;
    let info = state
        .tokens
        .revoke(&id)
        .map_err(|e| fail(&state, e.into()))?;
    tracing::info!(admin = %admin.id, token_id = %info.id, "token revoked");
    admin_act(&state, &admin, "token_revoked", Some(&info.id));
    Ok(Json(info))
}

#[derive(Deserialize)]
struct TokenPatch {
    #[serde(default)]
    role: Option<Role>,
    /// `null` removes the limit; absent leaves it.
    #[serde(default, with = "double_option")]
    rate_limit_per_min: Option<Option<u32>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
        Option::<u32>::deserialize(d).map(Some)
    }
}

async fn update_token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<TokenInfo>, ApiError> {
    let admin = authenticate(&state, &headers, Role::Admin)?;
    let p: TokenPatch = parse_json(&state, &body)?;
    let info = state
        .tokens
        .set_limits(&id, p.role, p.rate_limit_per_min)
        .map_err(|e| fail(&state, e.into()))?;
    tracing::info!(admin = %admin.id, token_id = %info.id, "token updated");
    admin_act(&state, &admin, "token_updated", Some(&info.id));
    Ok(Json(info))
}

fn admin_act(state: &AppState, admin: &Caller, action: &str, target: Option<&str>) {
    state.audit(crate::audit::Event::Admin {
        admin: admin.id.clone(),
        action: action.to_string(),
        target: target.map(str::to_string),
    });
}

async fn load(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<crate::state::Load>, ApiError> {
    authenticate(&state, &headers, Role::Admin)?;
    Ok(Json(state.load()))
}

#[derive(Deserialize, serde::Serialize)]
struct LogLevel {
    level: String,
}

async fn get_log_level(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<LogLevel>, ApiError> {
    authenticate(&state, &headers, Role::Admin)?;
    let level = state
        .log_level
        .read()
        .map(|l| l.clone())
        .unwrap_or_default();
    Ok(Json(LogLevel { level }))
}

async fn set_log_level(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<LogLevel>, ApiError> {
    let admin = authenticate(&state, &headers, Role::Admin)?;
    let l: LogLevel = parse_json(&state, &body)?;
    let allowed = ["error", "warn", "info", "debug", "trace"];
    if !allowed.contains(&l.level.as_str()) {
        return Err(fail(
            &state,
            bad_request("level は error, warn, info, debug, trace のいずれかです"),
        ));
    }
    if let Some(reload) = &state.log_reload {
        reload(&l.level).map_err(|_| fail(&state, bad_request("ログレベルを変更できません")))?;
    }
    if let Ok(mut cur) = state.log_level.write() {
        cur.clone_from(&l.level);
    }
    tracing::warn!(admin = %admin.id, level = %l.level, "log level changed");
    admin_act(&state, &admin, &format!("log_level_{}", l.level), None);
    Ok(Json(l))
}
