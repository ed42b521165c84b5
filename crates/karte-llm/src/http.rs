//! The OpenAI-compatible HTTP client: karte-server (clinic or local worker), or any server that speaks
//! `/v1/chat/completions` with SSE streaming.
//!
//! Timeouts are split because they mean different things on a ward: `connect_timeout` decides how fast failover
//! notices a dead server; `idle_timeout` bounds the wait for the next piece (a stuck server, a cut cable); the
//! total bounds the whole answer. Blocking reqwest keeps the [`ChatEngine`] contract synchronous (see the crate
//! docs); its own runtime thread does the I/O.

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use karte_core::{Code, Error, Result};

use crate::openai::{
    ChatCompletionChunk, ChatCompletionRequest, ErrorEnvelope, Health, ModelList,
    VerboseTranscription,
};
use crate::{
    cancelled, CancelToken, ChatEngine, ChatRequest, ChatResponse, EngineKind, FinishReason,
    GenStats, Piece, Serving,
};

/// TLS for the clinic server. When `pinned_cert_pem` is set it is the ONLY trust anchor (the server's own
/// certificate or the hospital's CA): a certificate from any public CA, or a proxy's, is refused.
#[derive(Clone, Default)]
pub struct TlsSettings {
    pub pinned_cert_pem: Option<Vec<u8>>,
    /// Client certificate and key (PEM) when the server requires mutual TLS.
    pub client_cert_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("pinned", &self.pinned_cert_pem.is_some())
            .field("client_cert", &self.client_cert_pem.is_some())
            .finish()
    }
}

#[derive(Clone)]
pub struct HttpEngineConfig {
    /// Scheme, host and port, without `/v1` (e.g. `https://karte-gpu.example.local:8443`).
    pub base_url: String,
    /// Bearer token. Never logged; `Debug` hides it.
    pub token: Option<String>,
    /// Model id sent in requests; empty = the server's only model.
    pub model: String,
    pub connect_timeout: Duration,
    /// Longest wait for the next byte of a streamed answer (and for the response headers).
    pub idle_timeout: Duration,
    pub total_timeout: Duration,
    pub tls: TlsSettings,
    /// What this endpoint is, for [`GenStats::kind`] and the UI.
    pub kind: EngineKind,
    /// A pooled connection idle this long is dropped rather than reused: shorter than the server's own keep-alive,
    /// so a request is never written into a connection the server is just closing (a spurious failover).
    pub pool_idle_timeout: Duration,
}

impl std::fmt::Debug for HttpEngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpEngineConfig")
            .field("base_url", &self.base_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("total_timeout", &self.total_timeout)
            .field("tls", &self.tls)
            .field("kind", &self.kind)
            .finish()
    }
}

impl HttpEngineConfig {
    pub fn new(base_url: impl Into<String>, token: Option<String>) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            token,
            model: String::new(),
            connect_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(60),
            total_timeout: Duration::from_secs(600),
            tls: TlsSettings::default(),
            kind: EngineKind::Server,
            // karte-server keeps an idle connection 60 s by default.
            pool_idle_timeout: Duration::from_secs(30),
        }
    }
}

/// One connection pool to one server.
pub struct HttpEngine {
    cfg: HttpEngineConfig,
    client: reqwest::blocking::Client,
}

impl std::fmt::Debug for HttpEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpEngine")
            .field("cfg", &self.cfg)
            .finish()
    }
}

/// rustls needs one process-wide crypto provider when reqwest builds its own TLS config; ring is what every Karte
/// crate uses (no aws-lc C build). Installing twice is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn tls_error(what: &str) -> Error {
    Error::new(
        Code::LlmTls,
        format!("院内サーバーとの暗号化通信の設定に誤りがあります（{what}）。管理者に連絡してください。"),
    )
}

fn pem_certs(pem: &[u8], what: &str) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| tls_error(what))?;
    if certs.is_empty() {
        return Err(tls_error(what));
    }
    Ok(certs)
}

/// A rustls config whose only trust anchor is the pinned certificate (plus the client identity, if any).
fn pinned_tls_config(tls: &TlsSettings, pinned: &[u8]) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(pinned, "固定証明書")? {
        roots.add(c).map_err(|_| tls_error("固定証明書"))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|_| tls_error("プロトコル"))?
    .with_root_certificates(roots);
    match (&tls.client_cert_pem, &tls.client_key_pem) {
        (Some(cert), Some(key)) => {
            let certs = pem_certs(cert, "クライアント証明書")?;
            let key = rustls_pemfile::private_key(&mut &key[..])
                .ok()
                .flatten()
                .ok_or_else(|| tls_error("クライアント秘密鍵"))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|_| tls_error("クライアント証明書"))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

impl HttpEngine {
    pub fn new(cfg: HttpEngineConfig) -> Result<Self> {
        install_crypto_provider();
        let mut b = reqwest::blocking::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            // Blocking reqwest applies this to the wait for the headers and to each read of the body: the idle bound.
            // The total bound is checked between events in `chat`.
            .timeout(cfg.idle_timeout)
            .pool_idle_timeout(cfg.pool_idle_timeout)
            // The workstation talks to the clinic server directly; a system proxy would see the traffic.
            .no_proxy();
        if let Some(pinned) = &cfg.tls.pinned_cert_pem {
            b = b.tls_backend_preconfigured(pinned_tls_config(&cfg.tls, pinned)?);
        } else if let (Some(cert), Some(key)) = (&cfg.tls.client_cert_pem, &cfg.tls.client_key_pem)
        {
            let mut pem = cert.clone();
            pem.extend_from_slice(key);
            let id =
                reqwest::Identity::from_pem(&pem).map_err(|_| tls_error("クライアント証明書"))?;
            b = b.identity(id);
        }
        let client = b.build().map_err(|_| tls_error("クライアント"))?;
        Ok(Self { cfg, client })
    }

    pub fn config(&self) -> &HttpEngineConfig {
        &self.cfg
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.base_url)
    }

    fn authed(&self, rb: reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder {
        match &self.cfg.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// `GET /health` with its own short timeout: failover must decide in about a second, not a minute.
    pub fn health(&self, timeout: Duration) -> Result<Health> {
        let resp = self
            .client
            .get(self.url("/health"))
            .timeout(timeout)
            .send()
            .map_err(|e| self.transport_error(&e))?;
        if !resp.status().is_success() && resp.status().as_u16() != 503 {
            return Err(self.status_error(resp));
        }
        resp.json::<Health>().map_err(|_| protocol_error())
    }

    /// `GET /health` answered 200: the liveness test every OpenAI-compatible engine shares (llama-server, vLLM and
    /// TGI answer 200 when ready; llama-server 503 while loading), whatever the body says.
    pub fn probe(&self, timeout: Duration) -> Result<()> {
        let resp = self
            .authed(self.client.get(self.url("/health")))
            .timeout(timeout)
            .send()
            .map_err(|e| self.transport_error(&e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.status_error(resp))
        }
    }

    pub fn models(&self) -> Result<ModelList> {
        let resp = self
            .authed(self.client.get(self.url("/v1/models")))
            .send()
            .map_err(|e| self.transport_error(&e))?;
        if !resp.status().is_success() {
            return Err(self.status_error(resp));
        }
        resp.json::<ModelList>().map_err(|_| protocol_error())
    }

    /// `POST /v1/audio/transcriptions` (OpenAI's multipart form, `verbose_json`): a whole recording in, its
    /// transcript out. Recognition runs slower than the recording on a CPU worker, so the wait is sized by the
    /// recording rather than by `total_timeout` alone: three times its length at the smallest common WAV rate
    /// (8 kHz, 16-bit mono), plus a minute for loading the recogniser.
    pub fn transcribe(&self, audio: &[u8]) -> Result<VerboseTranscription> {
        use reqwest::blocking::multipart::{Form, Part};
        let longest_s = audio.len() as u64 / 16_000;
        let wait = self
            .cfg
            .total_timeout
            .max(Duration::from_secs(60 + 3 * longest_s));
        // The name is a placeholder (the workstation's own must not leave it), but its extension is what
        // OpenAI-compatible servers go by, so it names the format the bytes are in.
        let (name, mime) = audio_file_name(audio);
        let file = Part::bytes(audio.to_vec())
            .file_name(name)
            .mime_str(mime)
            .map_err(|_| protocol_error())?;
        let form = Form::new()
            .text("model", "whisper-1")
            .text("language", "ja")
            .text("response_format", "verbose_json")
            .part("file", file);
        let resp = self
            .authed(self.client.post(self.url("/v1/audio/transcriptions")))
            .multipart(form)
            .timeout(wait)
            .send()
            .map_err(|e| self.send_error(&e))?;
        if !resp.status().is_success() {
            return Err(self.status_error(resp));
        }
        resp.json::<VerboseTranscription>()
            .map_err(|_| protocol_error())
    }

    pub fn wire_request(&self, req: &ChatRequest, stream: bool) -> ChatCompletionRequest {
        ChatCompletionRequest::from_chat(req, &self.cfg.model, stream)
    }

    /// A chat request that could not be sent: logged with what failed underneath (reset, refused, closed early),
    /// for IT. Only here, not for health probes, which fail every few seconds while a server is down. The error
    /// chain names the server's URL and the socket's error, never a request's content.
    fn send_error(&self, e: &reqwest::Error) -> Error {
        let mut cause = String::new();
        let mut src: Option<&dyn std::error::Error> = Some(e);
        while let Some(s) = src {
            cause.push_str(" / ");
            cause.push_str(&s.to_string());
            src = s.source();
        }
        tracing::warn!(server = %self.cfg.base_url, cause = %cause, "request not sent");
        self.transport_error(e)
    }

    fn transport_error(&self, e: &reqwest::Error) -> Error {
        let place = match self.cfg.kind {
            EngineKind::Server => "院内サーバー",
            _ => "この端末の生成プロセス",
        };
        if e.is_timeout() {
            Error::new(
                Code::LlmTimeout,
                format!(
                    "{place}の応答が時間内にありませんでした。しばらくしてから再度お試しください。"
                ),
            )
        } else {
            Error::new(
                Code::LlmUnreachable,
                format!(
                    "{place}に接続できません。ネットワークを確認するか、管理者に連絡してください。"
                ),
            )
        }
    }

    fn status_error(&self, resp: reqwest::blocking::Response) -> Error {
        let status = resp.status().as_u16();
        // Bounded: an error body from a misbehaving proxy must not be read forever.
        let mut body = Vec::new();
        let _ = resp.take(64 * 1024).read_to_end(&mut body);
        error_from_response(status, &body)
    }
}

fn protocol_error() -> Error {
    Error::new(
        Code::LlmProtocol,
        "生成サーバーの応答を解釈できませんでした。管理者に連絡してください。",
    )
}

/// Turns an error response into Karte's `{code, message}`: karte-server's own code and Japanese message when it
/// sent one, otherwise a code chosen from the status.
pub fn error_from_response(status: u16, body: &[u8]) -> Error {
    if let Ok(env) = serde_json::from_slice::<ErrorEnvelope>(body) {
        if let Ok(code) = serde_json::from_value::<Code>(serde_json::Value::String(env.error.code))
        {
            return Error::new(code, env.error.message);
        }
    }
    let (code, msg) = match status {
        401 => (
            Code::ServerUnauthorized,
            "院内サーバーの認証に失敗しました。端末のトークンを管理者に確認してください。",
        ),
        403 => (Code::ServerForbidden, "この操作は許可されていません。"),
        429 => (
            Code::ServerBusy,
            "院内サーバーが混み合っています。しばらくしてから再度お試しください。",
        ),
        503 => (
            Code::ServerNotReady,
            "院内サーバーの準備ができていません。しばらくしてから再度お試しください。",
        ),
        400..=499 => (
            Code::ServerBadRequest,
            "生成サーバーが要求を受け付けませんでした。管理者に連絡してください。",
        ),
        _ => (
            Code::EngineFailed,
            "生成サーバーでエラーが発生しました。もう一度お試しください。",
        ),
    };
    Error::new(code, msg)
}

/// Server-sent events: `data:` lines up to a blank line make one event. Comments and other fields are skipped.
pub struct SseReader<R> {
    inner: R,
    line: String,
}

impl<R: BufRead> SseReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            line: String::new(),
        }
    }

    /// The next event's data, `Ok(None)` at the end of the stream.
    pub fn next_event(&mut self) -> std::io::Result<Option<String>> {
        let mut data: Option<String> = None;
        loop {
            self.line.clear();
            if self.inner.read_line(&mut self.line)? == 0 {
                return Ok(data);
            }
            let l = self.line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                if data.is_some() {
                    return Ok(data);
                }
                continue;
            }
            if let Some(v) = l.strip_prefix("data:") {
                let v = v.strip_prefix(' ').unwrap_or(v);
                match &mut data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(v);
                    }
                    None => data = Some(v.to_string()),
                }
            }
        }
    }
}

impl ChatEngine for HttpEngine {
    fn chat(
        &self,
        req: &ChatRequest,
        cancel: &CancelToken,
        on_token: &mut dyn FnMut(Piece<'_>),
    ) -> Result<ChatResponse> {
        let t0 = Instant::now();
        let body = self.wire_request(req, true);
        let resp = self
            .authed(self.client.post(self.url("/v1/chat/completions")))
            .json(&body)
            .send()
            .map_err(|e| self.send_error(&e))?;
        if !resp.status().is_success() {
            return Err(self.status_error(resp));
        }
        let mut sse = SseReader::new(BufReader::new(resp));
        let mut text = String::new();
        let mut ttft = None;
        let mut finish: Option<FinishReason> = None;
        let mut usage = None;
        let mut model = self.cfg.model.clone();
        let mut done = false;
        loop {
            if cancel.is_cancelled() {
                // Dropping the response closes the connection: the server sees the client go and cancels.
                return Err(cancelled());
            }
            let ev = match sse.next_event() {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(kind = ?e.kind(), "stream read failed");
                    return Err(match e.kind() {
                        std::io::ErrorKind::TimedOut => self.transport_error_timeout(),
                        _ => self.stream_cut(),
                    });
                }
            };
            if t0.elapsed() > self.cfg.total_timeout {
                return Err(self.transport_error_timeout());
            }
            if ev.trim() == "[DONE]" {
                done = true;
                break;
            }
            if let Ok(env) = serde_json::from_str::<ErrorEnvelope>(&ev) {
                return Err(error_from_response(
                    500,
                    &serde_json::to_vec(&env).unwrap_or_default(),
                ));
            }
            let chunk: ChatCompletionChunk =
                serde_json::from_str(&ev).map_err(|_| protocol_error())?;
            if !chunk.model.is_empty() {
                model = chunk.model;
            }
            if let Some(u) = chunk.usage {
                usage = Some(u);
            }
            for c in chunk.choices {
                if let Some(piece) = c.delta.content.filter(|p| !p.is_empty()) {
                    ttft.get_or_insert_with(|| t0.elapsed().as_secs_f64() * 1000.0);
                    on_token(Piece::Text(&piece));
                    text.push_str(&piece);
                }
                if let Some(f) = c.finish_reason {
                    finish = FinishReason::from_openai(&f).or(Some(FinishReason::Stop));
                }
            }
        }
        if cancel.is_cancelled() {
            return Err(cancelled());
        }
        // A stream that ends without [DONE] and a finish reason was cut (server killed, network lost): a partial
        // answer must never pass for a whole one.
        let finish = match (done, finish) {
            (true, Some(FinishReason::Cancelled)) => return Err(cancelled()),
            (true, Some(f)) => f,
            _ => return Err(self.stream_cut()),
        };
        let mut stats = GenStats::new(model, self.cfg.kind);
        if let Some(u) = usage {
            u.apply_to(&mut stats);
        }
        stats.ttft_ms = ttft;
        stats.total_ms = t0.elapsed().as_secs_f64() * 1000.0;
        stats.finish = finish;
        Ok(ChatResponse { text, stats })
    }

    fn serving(&self) -> Serving {
        Serving::new(self.cfg.kind, "設定されたサーバーで生成します")
    }
}

impl HttpEngine {
    fn transport_error_timeout(&self) -> Error {
        Error::new(
            Code::LlmTimeout,
            "生成サーバーの応答が途中で止まりました。もう一度お試しください。",
        )
    }

    fn stream_cut(&self) -> Error {
        Error::new(
            Code::LlmUnreachable,
            "生成サーバーとの接続が途中で切れました。もう一度お試しください。",
        )
    }
}

/// A file name and MIME type for a recording, from its first bytes: WAV, FLAC, MP3 (ID3 tag or frame sync) or
/// MP4/M4A (`ftyp`). Unknown bytes go as WAV, the recogniser's own format, and the server decides.
fn audio_file_name(audio: &[u8]) -> (&'static str, &'static str) {
    match audio {
        [b'f', b'L', b'a', b'C', ..] => ("dictation.flac", "audio/flac"),
        [b'I', b'D', b'3', ..] => ("dictation.mp3", "audio/mpeg"),
        [0xFF, b, ..] if b & 0xE0 == 0xE0 => ("dictation.mp3", "audio/mpeg"),
        [_, _, _, _, b'f', b't', b'y', b'p', ..] => ("dictation.m4a", "audio/mp4"),
        _ => ("dictation.wav", "audio/wav"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed test clip in each format the window opens: the upload names each by its bytes.
    #[test]
    fn recordings_are_uploaded_under_the_name_of_their_format() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/voice");
        for (file, name) in [
            ("d03-jf_alpha.wav", "dictation.wav"),
            ("d03-jf_alpha.flac", "dictation.flac"),
            ("d03-jf_alpha.mp3", "dictation.mp3"),
            ("d03-jf_alpha.m4a", "dictation.m4a"),
        ] {
            let bytes = std::fs::read(dir.join(file)).unwrap();
            assert_eq!(audio_file_name(&bytes).0, name, "{file}");
        }
        assert_eq!(audio_file_name(b"").0, "dictation.wav");
        assert_eq!(audio_file_name(&[0xFF, 0xFB, 0x90, 0x00]).1, "audio/mpeg");
    }

    #[test]
    fn sse_events_are_split_on_blank_lines() {
        let raw = ": comment\n\ndata: {\"a\":1}\n\ndata: x\ndata: y\n\ndata: [DONE]\n\n";
        let mut r = SseReader::new(raw.as_bytes());
        assert_eq!(r.next_event().unwrap().as_deref(), Some("{\"a\":1}"));
        assert_eq!(r.next_event().unwrap().as_deref(), Some("x\ny"));
        assert_eq!(r.next_event().unwrap().as_deref(), Some("[DONE]"));
        assert_eq!(r.next_event().unwrap(), None);
    }

    #[test]
    fn error_bodies_map_to_codes() {
        let cases: &[(u16, &str, Code)] = &[
            (
                401,
                r#"{"error":{"message":"m","type":"authentication_error","code":"server.unauthorized"}}"#,
                Code::ServerUnauthorized,
            ),
            (429, "", Code::ServerBusy),
            (401, "not json", Code::ServerUnauthorized),
            (503, "", Code::ServerNotReady),
            (404, "", Code::ServerBadRequest),
            (502, "", Code::EngineFailed),
            (
                500,
                r#"{"error":{"message":"m","type":"x","code":"engine.failed"}}"#,
                Code::EngineFailed,
            ),
        ];
        for (status, body, code) in cases {
            assert_eq!(
                error_from_response(*status, body.as_bytes()).code,
                *code,
                "{status} {body}"
            );
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let cfg = HttpEngineConfig::new("http://127.0.0.1:1", Some("secret-token-value".into()));
        assert!(!format!("{cfg:?}").contains("secret-token-value"));
    }
}
