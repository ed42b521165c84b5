//! Several OpenAI-compatible engines (llama-server, vLLM, TGI) behind one [`ChatEngine`]: what karte-server's
//! upstream mode serves from, so that everything in front of the engine (ward tokens, limits, the answer guard,
//! metrics) is the same code whichever engine answers.
//!
//! - A request goes to the healthy upstream with the fewest requests in flight.
//! - An upstream that fails before any piece of the answer was passed on is taken out of rotation and the request
//!   is sent to the next one; once a piece has been passed on, a retry would show the beginning twice, so the
//!   caller gets [`Code::UpstreamInterrupted`] instead (never a silent cut: [`HttpEngine`] already refuses a
//!   stream that ends without `[DONE]`).
//! - [`UpstreamPool::probe_all`] (karte-server runs it every few seconds) brings an upstream back into rotation
//!   when its `/health` answers 200 again, and refreshes the models it serves.
//!
//! Each upstream reuses [`HttpEngine`]: one client, one set of timeouts and TLS rules for every HTTP engine.
//! Labels in metrics and logs are the upstream's URL (no credentials go in a URL here: tokens are separate).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use karte_core::{Code, Error, Result};

use crate::http::{HttpEngine, HttpEngineConfig, TlsSettings};
use crate::{CancelToken, ChatEngine, ChatRequest, ChatResponse, EngineKind, Piece, Serving};

/// Timeouts and credentials of every upstream; timeout defaults as in karte-settings' `[serve.upstream]`.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    /// Bound on one whole answer (karte-server passes its `request_timeout`).
    pub total_timeout: Duration,
    pub probe_timeout: Duration,
    /// The CA to trust instead of the public roots and the client certificate (karte-server reads both from the
    /// keyring).
    pub tls: TlsSettings,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(60),
            total_timeout: Duration::from_secs(120),
            probe_timeout: Duration::from_secs(2),
            tls: TlsSettings::default(),
        }
    }
}

/// Checks an upstream URL as given in `setting` (`--upstream` or `serve.upstreams`) and returns its base (no
/// trailing `/`, no `/v1`): an error names the setting, since the URL itself may be what is wrong.
pub fn parse_url(url: &str, setting: &str) -> Result<String> {
    let bad = || {
        Error::new(
            Code::UpstreamInvalid,
            format!(
                "{setting} の URL が正しくありません（例: http://10.0.0.5:8000）。http:// または https:// で始まり、ホスト名とポートだけを書いてください。"
            ),
        )
    };
    let u = url.trim().trim_end_matches('/');
    let u = u.strip_suffix("/v1").unwrap_or(u);
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
        .ok_or_else(bad)?;
    // host[:port] only: a path, query or user info would be silently ignored or leak a credential into logs.
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err(bad());
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, Some(p)),
        _ => (rest, None),
    };
    if host.is_empty() || port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
        return Err(bad());
    }
    Ok(u.to_string())
}

/// Counters of one upstream, read by karte-server's `/metrics` (labelled with [`Upstream::name`]).
#[derive(Debug, Default)]
pub struct UpstreamStats {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub generated_tokens: AtomicU64,
    /// Milliseconds from sending to the first piece, summed over answered requests (with `answered`: a mean).
    pub ttft_ms_sum: AtomicU64,
    pub answered: AtomicU64,
    /// Milliseconds of whole answers, summed.
    pub total_ms_sum: AtomicU64,
}

/// One engine behind the pool.
pub struct Upstream {
    /// The base URL: the label in metrics, `/health` and logs.
    pub name: String,
    engine: HttpEngine,
    healthy: AtomicBool,
    /// Whether it has been probed at all (before the first probe it is neither up nor down).
    probed: AtomicBool,
    in_flight: AtomicUsize,
    models: RwLock<Vec<String>>,
    pub stats: UpstreamStats,
}

impl Upstream {
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
    /// `up`, `down`, or `unknown` before the first probe.
    pub fn state(&self) -> &'static str {
        if self.healthy() {
            "up"
        } else if self.probed.load(Ordering::SeqCst) {
            "down"
        } else {
            "unknown"
        }
    }
    pub fn models(&self) -> Vec<String> {
        self.models.read().map(|m| m.clone()).unwrap_or_default()
    }

    fn set_healthy(&self, up: bool, why: &str) {
        self.probed.store(true, Ordering::SeqCst);
        let was = self.healthy.swap(up, Ordering::SeqCst);
        if was != up {
            if up {
                tracing::info!(upstream = %self.name, "upstream back in rotation");
            } else {
                tracing::warn!(upstream = %self.name, why, "upstream taken out of rotation");
            }
        }
    }
}

/// Counts a request in flight on an upstream for as long as it lives.
struct InFlight<'a>(&'a Upstream);

impl<'a> InFlight<'a> {
    fn new(u: &'a Upstream) -> Self {
        u.in_flight.fetch_add(1, Ordering::SeqCst);
        u.stats.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(u)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct UpstreamPool {
    upstreams: Vec<Arc<Upstream>>,
    probe_timeout: Duration,
}

/// Errors the request itself caused: another upstream would refuse it the same way, so it is not retried and the
/// upstream stays in rotation.
fn is_request_error(code: Code) -> bool {
    matches!(
        code,
        Code::ServerBadRequest
            | Code::ServerPromptTooLong
            | Code::ServerSchemaTooComplex
            | Code::InputEmpty
            | Code::InputTooLarge
            | Code::EngineCancelled
    )
}

pub fn unavailable() -> Error {
    Error::new(
        Code::UpstreamUnavailable,
        "文章生成サーバーがすべて応答していません。しばらくしてから再度お試しください。続く場合は管理者に連絡してください。",
    )
}

pub fn interrupted() -> Error {
    Error::new(
        Code::UpstreamInterrupted,
        "文章生成サーバーの応答が途中で途切れました。表示された文章は不完全です。もう一度お試しください。",
    )
}

impl UpstreamPool {
    /// `urls`: already checked with [`parse_url`]; `token`: the bearer token every upstream expects, if any.
    pub fn new(urls: &[String], token: Option<String>, cfg: &UpstreamConfig) -> Result<Self> {
        let mut upstreams = Vec::with_capacity(urls.len());
        for url in urls {
            let mut hc = HttpEngineConfig::new(url.clone(), token.clone());
            hc.connect_timeout = cfg.connect_timeout;
            hc.idle_timeout = cfg.idle_timeout;
            hc.total_timeout = cfg.total_timeout;
            hc.tls = cfg.tls.clone();
            // llama.cpp's server (cpp-httplib) and vLLM's (uvicorn) close a connection idle for 5 s: reusing one
            // that old races their close, fails before the first token and would take a working engine out of
            // rotation (seen in `cargo xtask bench-serve --karte gateway` at 16 clients).
            hc.pool_idle_timeout = Duration::from_secs(2);
            hc.kind = EngineKind::Server;
            upstreams.push(Arc::new(Upstream {
                name: url.clone(),
                engine: HttpEngine::new(hc)?,
                healthy: AtomicBool::new(false),
                probed: AtomicBool::new(false),
                in_flight: AtomicUsize::new(0),
                models: RwLock::new(Vec::new()),
                stats: UpstreamStats::default(),
            }));
        }
        if upstreams.is_empty() {
            return Err(Error::new(
                Code::UpstreamInvalid,
                "上流サーバー（--upstream / serve.upstreams）が指定されていません。",
            ));
        }
        Ok(Self {
            upstreams,
            probe_timeout: cfg.probe_timeout,
        })
    }

    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    pub fn any_healthy(&self) -> bool {
        self.upstreams.iter().any(|u| u.healthy())
    }

    /// Probes every upstream's `/health` (200 = up; llama-server answers 503 while loading) and, when up, reads
    /// `/v1/models`. Blocking: run it off the async runtime.
    pub fn probe_all(&self) {
        for u in &self.upstreams {
            match u.engine.probe(self.probe_timeout) {
                Ok(()) => {
                    if let Ok(list) = u.engine.models() {
                        if let Ok(mut m) = u.models.write() {
                            *m = list.data.into_iter().map(|c| c.id).collect();
                        }
                    }
                    u.set_healthy(true, "probe");
                }
                Err(e) => u.set_healthy(false, e.code.as_str()),
            }
        }
    }

    /// What the upstreams serve, each model once, in upstream order.
    pub fn models(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for u in &self.upstreams {
            for m in u.models() {
                if !out.contains(&m) {
                    out.push(m);
                }
            }
        }
        out
    }

    /// The healthy upstream with the fewest requests in flight that this request has not tried yet.
    fn pick(&self, tried: &[usize]) -> Option<usize> {
        self.upstreams
            .iter()
            .enumerate()
            .filter(|(i, u)| u.healthy() && !tried.contains(i))
            .min_by_key(|(_, u)| u.in_flight())
            .map(|(i, _)| i)
    }
}

impl ChatEngine for UpstreamPool {
    fn chat(
        &self,
        req: &ChatRequest,
        cancel: &CancelToken,
        on_token: &mut dyn FnMut(Piece<'_>),
    ) -> Result<ChatResponse> {
        let mut tried = Vec::new();
        // Upstreams given a second try after a broken connection.
        let mut again = Vec::new();
        while let Some(i) = self.pick(&tried) {
            tried.push(i);
            let u = &self.upstreams[i];
            let _in_flight = InFlight::new(u);
            let mut passed_on = false;
            let result = u.engine.chat(req, cancel, &mut |p| {
                if matches!(p, Piece::Text(_)) {
                    passed_on = true;
                }
                on_token(p);
            });
            match result {
                Ok(resp) => {
                    let s = &u.stats;
                    s.answered.fetch_add(1, Ordering::Relaxed);
                    s.generated_tokens
                        .fetch_add(u64::from(resp.stats.generated_tokens), Ordering::Relaxed);
                    s.ttft_ms_sum
                        .fetch_add(resp.stats.ttft_ms.unwrap_or(0.0) as u64, Ordering::Relaxed);
                    s.total_ms_sum
                        .fetch_add(resp.stats.total_ms as u64, Ordering::Relaxed);
                    return Ok(resp);
                }
                Err(e) if cancel.is_cancelled() || e.code == Code::EngineCancelled => {
                    return Err(crate::cancelled())
                }
                Err(e) if is_request_error(e.code) => {
                    u.stats.errors.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
                // A pooled connection the engine closed as the request went out ("connection closed before
                // message completed": llama.cpp's server ends keep-alive connections on its own schedule) says
                // nothing about the engine: once per upstream, the request goes again on a fresh connection. Nothing
                // reached the client, so nothing can be answered twice.
                Err(e) if e.code == Code::LlmUnreachable && !passed_on && !again.contains(&i) => {
                    again.push(i);
                    tried.pop();
                    tracing::info!(upstream = %u.name, "connection broken before the answer: sent again");
                }
                Err(e) => {
                    u.stats.errors.fetch_add(1, Ordering::Relaxed);
                    u.set_healthy(false, e.code.as_str());
                    if passed_on {
                        return Err(interrupted());
                    }
                    tracing::info!(upstream = %u.name, code = %e.code, "request retried on another upstream");
                }
            }
        }
        Err(unavailable())
    }

    fn serving(&self) -> Serving {
        Serving::new(EngineKind::Server, "上流の生成サーバーで生成します")
    }

    fn ready(&self) -> bool {
        self.any_healthy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls_are_checked_and_the_error_names_the_setting() {
        assert_eq!(
            parse_url("http://127.0.0.1:8000/", "--upstream").unwrap(),
            "http://127.0.0.1:8000"
        );
        assert_eq!(
            parse_url("https://gpu.example.local/v1", "x").unwrap(),
            "https://gpu.example.local"
        );
        assert_eq!(
            parse_url("http://[::1]:9000", "x").unwrap(),
            "http://[::1]:9000"
        );
        for bad in [
            "127.0.0.1:8000",
            "ftp://h:1",
            "http://",
            "http://h:0",
            "http://h:99999",
            "http://user:pw@h:1",
            "http://h:1/some/path",
            "http://h:x",
        ] {
            let e = parse_url(bad, "serve.upstreams").unwrap_err();
            assert_eq!(e.code, Code::UpstreamInvalid, "{bad}");
            assert!(e.message.contains("serve.upstreams"), "{bad}");
        }
    }

    #[test]
    fn nothing_healthy_means_unavailable_without_a_request() {
        let pool = UpstreamPool::new(
            &["http://127.0.0.1:9".to_string()],
            None,
            &UpstreamConfig::default(),
        )
        .unwrap();
        let e = pool
            .chat(
                &ChatRequest::new(vec![crate::ChatMessage::user("x")]),
                &CancelToken::new(),
                &mut |_| {},
            )
            .unwrap_err();
        assert_eq!(e.code, Code::UpstreamUnavailable);
        assert_eq!(pool.upstreams()[0].stats.requests.load(Ordering::SeqCst), 0);
    }
}
