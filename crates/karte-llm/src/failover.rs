//! Failover between the clinic server and the local engine, and pseudonymisation on the way out.
//!
//! The rule is simple so that a nurse can predict it: the clinic server when it is configured and answers its
//! health check, this workstation otherwise. The decision is cached briefly (a dead server is probed again after
//! `recheck_down`, a healthy one after `recheck_up`), so a ward with the network cut does not wait for a connect
//! timeout on every draft, and traffic goes back to the server soon after it returns. A request the server fails
//! midway (killed, network cut, timeout, overloaded) is answered by the local engine at once, with
//! [`Piece::Reset`] so the caller drops the partial text: no user action needed.
//!
//! Everything sent to the server passes through `karte_guard::pseudonymise` first (names, phone numbers, IDs become
//! 【氏名1】-style placeholders) and comes back through `karte_guard::restore`; the mapping never leaves this process.
//! The local engine gets the original text: it never leaves the workstation.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use karte_core::{Code, Error, Result};
use karte_guard::{Finding, Mapping};

use crate::http::HttpEngine;
use crate::{
    CancelToken, ChatEngine, ChatMessage, ChatRequest, ChatResponse, EngineKind, Heard, Piece,
    Serving, Transcriber,
};

#[derive(Debug, Clone)]
pub struct FailoverConfig {
    pub health_timeout: Duration,
    pub recheck_up: Duration,
    pub recheck_down: Duration,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        Self {
            health_timeout: Duration::from_millis(1500),
            recheck_up: Duration::from_secs(30),
            recheck_down: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone)]
struct Decision {
    use_server: bool,
    reason: String,
    at: Instant,
}

pub struct Failover {
    server: Option<HttpEngine>,
    local: Arc<dyn ChatEngine>,
    /// Speech on this workstation (the worker), when there is one to hear it.
    local_voice: Option<Arc<dyn Transcriber>>,
    /// `[server] send_audio`: whether recordings may go to the server at all.
    send_audio: bool,
    cfg: FailoverConfig,
    last: Mutex<Option<Decision>>,
}

const REASON_NO_SERVER: &str = "院内サーバーは設定されていません";
const REASON_SERVER_OK: &str = "院内サーバーに接続しています";

impl Failover {
    /// `server`: the clinic server from the settings file, if any; `local`: the supervised worker (or, in tests and
    /// the CLI, an in-process engine).
    pub fn new(
        server: Option<HttpEngine>,
        local: Arc<dyn ChatEngine>,
        cfg: FailoverConfig,
    ) -> Self {
        Self {
            server,
            local,
            local_voice: None,
            send_audio: true,
            cfg,
            last: Mutex::new(None),
        }
    }

    /// Speech too: `local` hears what the server does not (or may not: `send_audio` false keeps every recording on
    /// this workstation, since a voice cannot be pseudonymised the way text is).
    pub fn with_voice(mut self, local: Arc<dyn Transcriber>, send_audio: bool) -> Self {
        self.local_voice = Some(local);
        self.send_audio = send_audio;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Decision>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Probes the server now, whatever the cache says (the UI's "再接続" button, and tests).
    pub fn recheck(&self) -> Serving {
        *self.lock() = None;
        self.serving()
    }

    fn decide(&self) -> Decision {
        let Some(server) = &self.server else {
            return Decision {
                use_server: false,
                reason: REASON_NO_SERVER.into(),
                at: Instant::now(),
            };
        };
        if let Some(d) = self.lock().as_ref() {
            let ttl = if d.use_server {
                self.cfg.recheck_up
            } else {
                self.cfg.recheck_down
            };
            if d.at.elapsed() < ttl {
                return d.clone();
            }
        }
        let d = match server.health(self.cfg.health_timeout) {
            Ok(h) if h.ready => Decision {
                use_server: true,
                reason: REASON_SERVER_OK.into(),
                at: Instant::now(),
            },
            Ok(_) => down("院内サーバーはモデルを準備中です"),
            Err(e) => down(&reason_for(&e)),
        };
        if d.use_server != self.lock().as_ref().is_some_and(|o| o.use_server) {
            tracing::info!(use_server = d.use_server, "engine choice changed");
        }
        *self.lock() = Some(d.clone());
        d
    }

    fn mark_down(&self, e: &Error) {
        *self.lock() = Some(down(&reason_for(e)));
    }

    fn local_chat(
        &self,
        req: &ChatRequest,
        cancel: &CancelToken,
        on_token: &mut dyn FnMut(Piece<'_>),
    ) -> Result<ChatResponse> {
        self.local.chat(req, cancel, on_token)
    }
}

fn down(reason: &str) -> Decision {
    Decision {
        use_server: false,
        reason: format!("{reason}。この端末で生成します"),
        at: Instant::now(),
    }
}

fn reason_for(e: &Error) -> String {
    match e.code {
        Code::LlmTimeout => "院内サーバーの応答がありません（時間切れ）".into(),
        Code::LlmUnreachable => "院内サーバーに接続できません".into(),
        Code::LlmTls => "院内サーバーの証明書が一致しません".into(),
        Code::ServerUnauthorized => "院内サーバーの認証に失敗しました".into(),
        Code::ServerBusy | Code::ServerRateLimited => "院内サーバーが混み合っています".into(),
        Code::ServerNotReady => "院内サーバーはモデルを準備中です".into(),
        _ => "院内サーバーでエラーが発生しました".into(),
    }
}

/// Messages with personal data replaced, and the one mapping that restores the answer.
///
/// All messages are pseudonymised as one document so a name gets the same placeholder in every message (the
/// model sees one consistent 【氏名1】). Each message is scanned on its own, so no finding spans two messages.
pub fn pseudonymise_messages(messages: &[ChatMessage]) -> (Vec<ChatMessage>, Mapping) {
    const SEP: char = '\u{1E}';
    let mut joined = String::new();
    let mut findings: Vec<Finding> = Vec::new();
    let mut offset = 0usize;
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            joined.push(SEP);
            offset += 1;
        }
        // A separator inside a message would split it wrongly on the way back; it has no business in clinical text.
        let content: String = m.content.chars().filter(|c| *c != SEP).collect();
        for mut f in karte_guard::scan(&content) {
            f.start += offset;
            f.end += offset;
            findings.push(f);
        }
        offset += content.chars().count();
        joined.push_str(&content);
    }
    let p = karte_guard::pseudo::pseudonymise_findings(&joined, findings);
    let out = messages
        .iter()
        .zip(p.text.split(SEP))
        .map(|(m, t)| ChatMessage::new(m.role.clone(), t))
        .collect();
    (out, p.mapping)
}

/// Restores placeholders in a stream: text is released up to any 【 that may still be the start of a placeholder,
/// so a placeholder split across two pieces is restored whole.
pub struct StreamRestorer<'m> {
    mapping: &'m Mapping,
    held: String,
}

/// Longest placeholder: 【, up to 12 characters, 】 (karte-guard's pattern).
const MAX_PLACEHOLDER_CHARS: usize = 14;

impl<'m> StreamRestorer<'m> {
    pub fn new(mapping: &'m Mapping) -> Self {
        Self {
            mapping,
            held: String::new(),
        }
    }

    pub fn push(&mut self, piece: &str) -> String {
        self.held.push_str(piece);
        let cut = match self.held.rfind('【') {
            Some(i)
                if !self.held[i..].contains('】')
                    && self.held[i..].chars().count() < MAX_PLACEHOLDER_CHARS =>
            {
                i
            }
            _ => self.held.len(),
        };
        let ready: String = self.held.drain(..cut).collect();
        karte_guard::restore(&ready, self.mapping)
    }

    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.held);
        karte_guard::restore(&rest, self.mapping)
    }
}

impl ChatEngine for Failover {
    fn chat(
        &self,
        req: &ChatRequest,
        cancel: &CancelToken,
        on_token: &mut dyn FnMut(Piece<'_>),
    ) -> Result<ChatResponse> {
        let decision = self.decide();
        let server = match (&self.server, decision.use_server) {
            (Some(s), true) => s,
            _ => return self.local_chat(req, cancel, on_token),
        };
        let (messages, mapping) = pseudonymise_messages(&req.messages);
        let mut sent = req.clone();
        sent.messages = messages;
        let mut restorer = StreamRestorer::new(&mapping);
        let mut streamed = false;
        let result = server.chat(&sent, cancel, &mut |p| match p {
            Piece::Text(t) => {
                let out = restorer.push(t);
                if !out.is_empty() {
                    streamed = true;
                    on_token(Piece::Text(&out));
                }
            }
            Piece::Reset => on_token(Piece::Reset),
        });
        match result {
            Ok(mut r) => {
                let tail = restorer.finish();
                if !tail.is_empty() {
                    on_token(Piece::Text(&tail));
                }
                r.text = karte_guard::restore(&r.text, &mapping);
                Ok(r)
            }
            Err(e) if e.code == Code::EngineCancelled => Err(e),
            Err(e) => {
                tracing::warn!(code = %e.code, streamed, "clinic server failed; answering locally");
                self.mark_down(&e);
                if streamed {
                    on_token(Piece::Reset);
                }
                self.local_chat(req, cancel, on_token)
            }
        }
    }

    fn prepare(&self) -> Result<()> {
        // The local engine is the safety net: ready before the server fails, not after.
        self.local.prepare()
    }

    fn ready(&self) -> bool {
        let on_server = self.lock().as_ref().is_some_and(|d| d.use_server);
        on_server || self.local.ready()
    }

    fn serving(&self) -> Serving {
        let d = self.decide();
        if d.use_server {
            Serving::new(EngineKind::Server, d.reason)
        } else {
            let mut s = self.local.serving();
            s.reason = d.reason;
            s
        }
    }
}

impl Transcriber for Failover {
    /// The server when it is up and audio may go there, this workstation otherwise or when the server fails the
    /// request: the recording is sent again from the caller's bytes, so nothing is lost on the way.
    fn transcribe(&self, audio: &[u8]) -> Result<Heard> {
        let Some(local) = &self.local_voice else {
            return Err(no_voice());
        };
        if self.send_audio {
            if let (Some(server), true) = (&self.server, self.decide().use_server) {
                match server.transcribe(audio) {
                    Ok(transcript) => {
                        return Ok(Heard {
                            transcript,
                            kind: EngineKind::Server,
                        })
                    }
                    // Bad audio is bad on this workstation too: say so rather than try again.
                    Err(e) if e.code == Code::AudioUnsupported => return Err(e),
                    Err(e) => {
                        tracing::warn!(code = %e.code, "clinic server failed a transcription; hearing it locally");
                        self.mark_down(&e);
                    }
                }
            }
        }
        local.transcribe(audio)
    }
}

fn no_voice() -> Error {
    Error::new(
        Code::WorkerStartFailed,
        "この端末では音声入力を使えません（文章生成プロセスがありません）。管理者に再インストールを依頼してください。",
    )
}

/// For callers that need to know an error came from neither engine being usable.
pub fn no_engine() -> Error {
    Error::new(
        Code::LlmUnreachable,
        "院内サーバーにもこの端末のモデルにも接続できません。アプリを再起動してください。",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_share_one_mapping_and_restore_exactly() {
        let msgs = vec![
            ChatMessage::system("以下の口述を要約してください。"),
            ChatMessage::user("患者 山田太郎 様、電話 090-1234-5678。山田太郎 様は発熱あり。"),
            ChatMessage::user("山田太郎 様の家族より連絡。"),
        ];
        let (out, map) = pseudonymise_messages(&msgs);
        assert_eq!(out.len(), 3);
        for m in &out {
            assert!(!m.content.contains("山田"), "{}", m.content);
            assert!(!m.content.contains("090-1234-5678"));
        }
        for (a, b) in msgs.iter().zip(&out) {
            assert_eq!(karte_guard::restore(&b.content, &map), a.content);
        }
    }

    #[test]
    fn placeholders_split_across_pieces_are_restored_whole() {
        let msgs = vec![ChatMessage::user(
            "山田太郎 様より電話 090-1234-5678 あり。",
        )];
        let (out, map) = pseudonymise_messages(&msgs);
        let pseudo = &out[0].content;
        let original = &msgs[0].content;
        // Every split of the pseudonymised text into two pieces gives back the original.
        let chars: Vec<char> = pseudo.chars().collect();
        for cut in 0..=chars.len() {
            let a: String = chars[..cut].iter().collect();
            let b: String = chars[cut..].iter().collect();
            let mut r = StreamRestorer::new(&map);
            let mut got = r.push(&a);
            got.push_str(&r.push(&b));
            got.push_str(&r.finish());
            assert_eq!(&got, original, "cut at {cut}");
        }
    }
}
