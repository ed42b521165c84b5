//! Errors as HTTP: OpenAI's envelope (`{"error": {message, type, code}}`) with Karte's stable code in `code`, so
//! both the `openai` client libraries and Karte's own client (karte-llm) understand them.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use karte_core::{Code, Error};
use karte_llm::openai::{ErrorBody, ErrorEnvelope};

#[derive(Debug)]
pub struct ApiError {
    pub error: Error,
    /// Seconds for `Retry-After` (429 and 503 only).
    pub retry_after: Option<u64>,
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error::new(code, message).into()
    }

    pub fn retry_after(mut self, s: u64) -> Self {
        self.retry_after = Some(s);
        self
    }
}

/// Status and OpenAI error class for a code. The class matters: the `openai` package raises
/// `AuthenticationError` on 401, `RateLimitError` on 429, which is what scripts catch.
pub fn status_of(code: Code) -> (StatusCode, &'static str) {
    match code {
        Code::ServerUnauthorized => (StatusCode::UNAUTHORIZED, "authentication_error"),
        Code::ServerForbidden => (StatusCode::FORBIDDEN, "permission_error"),
        Code::ServerBusy | Code::ServerRateLimited => {
            (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error")
        }
        Code::ServerNotReady | Code::UpstreamUnavailable => {
            (StatusCode::SERVICE_UNAVAILABLE, "server_error")
        }
        Code::UpstreamInterrupted => (StatusCode::BAD_GATEWAY, "server_error"),
        Code::ServerTokenNotFound => (StatusCode::NOT_FOUND, "invalid_request_error"),
        Code::ServerLastAdmin | Code::ServerTokenRevoked => {
            (StatusCode::CONFLICT, "invalid_request_error")
        }
        Code::InputTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error"),
        Code::ServerBadRequest
        | Code::ServerPromptTooLong
        | Code::ServerSchemaTooComplex
        | Code::InputEmpty
        | Code::ConfigInvalid
        | Code::ModelUnknown
        | Code::AudioUnsupported
        | Code::EngineBadOutput => (StatusCode::BAD_REQUEST, "invalid_request_error"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
    }
}

pub fn envelope(e: &Error) -> ErrorEnvelope {
    ErrorEnvelope {
        error: ErrorBody {
            message: e.message.clone(),
            kind: status_of(e.code).1.to_string(),
            code: e.code.as_str().to_string(),
        },
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = status_of(self.error.code);
        let mut resp = (status, axum::Json(envelope(&self.error))).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

pub fn unauthorized() -> ApiError {
    ApiError::new(
        Code::ServerUnauthorized,
        "認証に失敗しました。端末のトークンが正しいか、失効していないかを管理者に確認してください。",
    )
}

pub fn forbidden() -> ApiError {
    ApiError::new(
        Code::ServerForbidden,
        "この操作には管理者のトークンが必要です。",
    )
}

pub fn bad_request(what: &str) -> ApiError {
    ApiError::new(
        Code::ServerBadRequest,
        format!("要求の形式が正しくありません（{what}）。"),
    )
}

pub fn not_ready() -> ApiError {
    ApiError::new(
        Code::ServerNotReady,
        "モデルを読み込み中です。しばらくしてから再度お試しください。",
    )
    .retry_after(2)
}

pub fn busy(retry_after: u64) -> ApiError {
    ApiError::new(
        Code::ServerBusy,
        "院内サーバーが混み合っています。しばらくしてから再度お試しください。",
    )
    .retry_after(retry_after)
}

pub fn too_large(limit_bytes: usize) -> ApiError {
    ApiError::new(
        Code::InputTooLarge,
        format!(
            "要求が大きすぎます（上限 {} KiB）。入力を分けて送ってください。",
            limit_bytes / 1024
        ),
    )
}

pub fn prompt_too_long(prompt_tokens: usize, max_tokens: usize, context_tokens: usize) -> ApiError {
    ApiError::new(
        Code::ServerPromptTooLong,
        format!(
            "入力が長すぎます（入力 約 {prompt_tokens} トークン＋出力上限 {max_tokens} トークンが、\
             モデルの上限 {context_tokens} トークンを超えています）。入力を短く分けるか max_tokens を減らしてください。"
        ),
    )
}

pub fn rate_limited(wait_s: u64) -> ApiError {
    ApiError::new(
        Code::ServerRateLimited,
        "この端末の利用量（回数またはトークン数）の上限に達しました。しばらくしてから再度お試しください。",
    )
    .retry_after(wait_s)
}
