//! The uploader: drains the outbox oldest first, with exponential backoff and jitter, resuming wherever the last
//! process stopped (the state is in the database, nothing in memory matters). Store calls run on tokio's blocking
//! pool, so a desktop's async runtime (and its UI) never waits on SQLCipher or the network.
//!
//! Exactly once: a document is marked sent only after the server answered 200/201. A crash between the server
//! storing it and the mark means one more attempt with the same Bundle.identifier, which the server answers
//! "already have it" (conditional create / idempotency key) — the store's row then becomes sent.

use crate::fhir::{self, Bundle, PatientRef};
use crate::settings::SyncSettings;
use crate::transport::{Credentials, SendOutcome, Transport, PSEUDONYM_KEY_ENTRY};
use karte_core::{Code, Error, Result};
use karte_store::outbox::Next;
use karte_store::vault::{read_secret, write_secret, KeyringBackend};
use karte_store::{SignedDocument, Store};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use zeroize::Zeroizing;

/// What the uploader knows about the patient-identity policy.
#[derive(Clone)]
pub struct PatientPolicy {
    pub identifying: bool,
    pub facility_code: Option<String>,
    pub pseudonym_key: Zeroizing<Vec<u8>>,
}

impl PatientPolicy {
    /// From the settings and the keyring's pseudonym key, created (random, 256 bits) on first use. Workstations
    /// that must agree on pseudonyms get the same key installed by IT (`karte queue credentials`).
    pub fn load(settings: &SyncSettings, backend: KeyringBackend) -> Result<PatientPolicy> {
        let key = match read_secret(backend, PSEUDONYM_KEY_ENTRY)? {
            Some(hex_key) => hex::decode(hex_key.trim()).map_err(|_| {
                Error::new(
                    Code::ConfigInvalid,
                    "キーリングの仮名化鍵の形式が正しくありません。システム管理者に連絡してください。",
                )
            })?,
            None => {
                let mut k = vec![0u8; 32];
                getrandom::fill(&mut k)
                    .map_err(|_| Error::new(Code::Internal, "乱数を取得できません。"))?;
                write_secret(backend, PSEUDONYM_KEY_ENTRY, &hex::encode(&k))?;
                k
            }
        };
        Ok(PatientPolicy {
            identifying: settings.include_identifying_data,
            facility_code: settings.facility_code.clone(),
            pseudonym_key: Zeroizing::new(key),
        })
    }

    /// The policy `sync.toml` sets, or the default (pseudonymous) when there is no such file yet: what
    /// `karte export fhir` shows is what would be sent.
    pub fn for_data_dir(
        data_dir: &std::path::Path,
        backend: KeyringBackend,
    ) -> Result<PatientPolicy> {
        match SyncSettings::load(data_dir) {
            Ok(s) => PatientPolicy::load(&s, backend),
            Err(e) if e.code == Code::SyncNotConfigured => {
                let default = SyncSettings::parse(
                    "endpoint = \"https://not-configured.invalid\"\nspki_sha256 = [\"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\"]",
                )
                .map_err(|_| Error::new(Code::Internal, "既定の送信設定を作れません。"))?;
                PatientPolicy::load(&default, backend)
            }
            Err(e) => Err(e),
        }
    }

    pub fn patient_ref(&self, patient: &str) -> PatientRef {
        if self.identifying {
            PatientRef::Identified {
                id: patient.trim().to_string(),
                facility_code: self.facility_code.clone(),
            }
        } else {
            PatientRef::Pseudonym(fhir::pseudonym(&self.pseudonym_key, patient))
        }
    }

    pub fn bundle(&self, doc: &SignedDocument) -> Bundle {
        fhir::bundle(doc, &self.patient_ref(&doc.patient_ref))
    }
}

/// What one [`Uploader::flush`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FlushReport {
    pub sent: usize,
    pub refused: usize,
    /// The head of the queue failed transiently: its code and when it is tried again (ms since the epoch).
    pub retry: Option<(Code, i64)>,
}

/// What one [`Uploader::step`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// Nothing pending.
    Idle,
    Sent,
    Refused,
    /// The head failed transiently (now or before): it is retried at this time (ms since the epoch).
    Wait(Code, i64),
}

pub struct Uploader {
    store: Arc<Store>,
    transport: Transport,
    policy: PatientPolicy,
    base_ms: u64,
    max_ms: u64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Exponential backoff with "equal jitter": half the capped delay fixed, half random, so many workstations that
/// lost the same server do not come back in lock step.
pub fn backoff_ms(attempts: i64, base_ms: u64, max_ms: u64) -> u64 {
    let exp = base_ms.saturating_mul(1u64 << attempts.clamp(0, 30));
    let capped = exp.min(max_ms).max(1);
    let mut r = [0u8; 8];
    let _ = getrandom::fill(&mut r);
    capped / 2 + u64::from_le_bytes(r) % (capped / 2 + 1)
}

async fn blocking<T: Send + 'static>(
    store: &Arc<Store>,
    f: impl FnOnce(&Store) -> Result<T> + Send + 'static,
) -> Result<T> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|_| Error::new(Code::Internal, "送信処理が異常終了しました。"))?
}

impl Uploader {
    pub fn new(
        store: Arc<Store>,
        settings: &SyncSettings,
        creds: &Credentials,
        policy: PatientPolicy,
    ) -> Result<Uploader> {
        Ok(Uploader {
            transport: Transport::new(settings, creds)?,
            store,
            policy,
            base_ms: settings.retry_base_ms,
            max_ms: settings.retry_max_ms,
        })
    }

    /// Settings from the store's data directory, secrets from `backend`: what the CLI and the desktop use.
    pub fn from_store(store: Arc<Store>, backend: KeyringBackend) -> Result<Uploader> {
        let settings = SyncSettings::load(store.data_dir())?;
        let creds = Credentials::from_keyring(backend)?;
        let policy = PatientPolicy::load(&settings, backend)?;
        Uploader::new(store, &settings, &creds, policy)
    }

    pub fn policy(&self) -> &PatientPolicy {
        &self.policy
    }

    /// Sends due documents in order until the queue is empty or its head must wait. A halted queue (or a halt
    /// raised now) is an error naming the cause; nothing further is sent.
    pub async fn flush(&self) -> Result<FlushReport> {
        let mut report = FlushReport::default();
        loop {
            match self.step().await? {
                Step::Idle => return Ok(report),
                Step::Sent => report.sent += 1,
                Step::Refused => report.refused += 1,
                Step::Wait(code, at) => {
                    report.retry = Some((code, at));
                    return Ok(report);
                }
            }
        }
    }

    /// At most one attempt: the head of the queue if it is due.
    pub async fn step(&self) -> Result<Step> {
        let now = now_ms();
        let doc = match blocking(&self.store, move |s| s.outbox_next(now)).await? {
            Next::Empty => return Ok(Step::Idle),
            Next::Wait(at) => {
                let health = blocking(&self.store, |s| s.outbox_health()).await?;
                let code = health
                    .last_error
                    .as_deref()
                    .and_then(code_of)
                    .unwrap_or(Code::SyncUnreachable);
                return Ok(Step::Wait(code, at));
            }
            Next::Halted(h) => return Err(halted(&h.code)),
            Next::Due(doc) => doc,
        };
        let bundle = self.policy.bundle(&doc);
        let id = doc.item.id;
        let attempts = doc.item.attempts;
        let outcome = self
            .transport
            .send(&doc.item.bundle_id, fhir::to_json(&bundle))
            .await;
        tracing::info!(
            item = id,
            attempts,
            outcome = outcome_name(&outcome),
            "upload attempt"
        );
        match outcome {
            SendOutcome::Stored(status) => {
                blocking(&self.store, move |s| s.outbox_mark_sent(id, status)).await?;
                Ok(Step::Sent)
            }
            SendOutcome::Refused(e, status) => {
                blocking(&self.store, move |s| {
                    s.outbox_mark_failed(id, e.code, &e.message, status)
                })
                .await?;
                Ok(Step::Refused)
            }
            SendOutcome::Retry(e, status) => {
                let next = now_ms() + backoff_ms(attempts, self.base_ms, self.max_ms) as i64;
                let code = e.code;
                blocking(&self.store, move |s| {
                    s.outbox_mark_retry(id, e.code, &e.message, status, next)
                })
                .await?;
                Ok(Step::Wait(code, next))
            }
            SendOutcome::Halt(e) => {
                let (code, msg) = (e.code, e.message.clone());
                blocking(&self.store, move |s| s.outbox_halt(code, &msg)).await?;
                Err(e)
            }
        }
    }

    /// The background worker: flushes, then sleeps until the head is due, `nudge` fires (a new signature, a
    /// 再送), or `poll` passes; stops when `shutdown` turns true. Each flush's outcome goes to `on_outcome` (the
    /// desktop shows the last error); errors are waited out, and a halted queue sleeps until nudged.
    pub async fn run(
        &self,
        nudge: Arc<Notify>,
        mut shutdown: watch::Receiver<bool>,
        poll: Duration,
        on_outcome: impl Fn(std::result::Result<&FlushReport, &Error>),
    ) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let outcome = self.flush().await;
            on_outcome(outcome.as_ref());
            let wait = match outcome {
                Ok(FlushReport {
                    retry: Some((_, at)),
                    ..
                }) => Duration::from_millis((at - now_ms()).max(0) as u64).min(poll),
                Ok(_) | Err(_) => poll,
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = nudge.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

fn outcome_name(o: &SendOutcome) -> &'static str {
    match o {
        SendOutcome::Stored(_) => "stored",
        SendOutcome::Retry(..) => "retry",
        SendOutcome::Refused(..) => "refused",
        SendOutcome::Halt(_) => "halt",
    }
}

/// A stored code string back to the enum (the store keeps codes as text).
pub fn code_of(s: &str) -> Option<Code> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}

/// The error a halted queue gives: `sync.halted`, naming the cause's code, with the cause's advice.
pub fn halted(cause: &str) -> Error {
    Error::new(
        Code::SyncHalted,
        format!(
            "証明書などの問題（{cause}）で送信を停止中です。記録は端末に保存されています。\
             システム管理者が原因を確認した後、karte queue resume（または管理画面の「送信再開」）で再開してください。"
        ),
    )
}
