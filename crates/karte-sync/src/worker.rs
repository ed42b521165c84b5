//! The uploader: drains the outbox oldest first, with exponential backoff and jitter, resuming wherever the last
//! process stopped (the state is in the database, nothing in memory matters). Store calls run on tokio's blocking
//! pool, so a desktop's async runtime (and its UI) never waits on SQLCipher or the network.
//!
//! Exactly once: a document is marked sent only after the server answered 200/201. A crash between the server
//! storing it and the mark means one more attempt with the same Bundle.identifier, which the server answers
//! "already have it" (conditional create / idempotency key) — the store's row then becomes sent.

use crate::fhir::{self, Bundle, PatientRef};
use crate::settings::{self, SyncSettings};
use crate::transport::{Credentials, SendOutcome, Transport, PSEUDONYM_KEY_ENTRY};
use karte_core::{Code, Error, Result};
use karte_store::outbox::Next;
use karte_store::vault::{read_secret, KeyringBackend};
use karte_store::{SignedDocument, Store};
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use zeroize::Zeroizing;

/// What the uploader knows about the patient-identity policy.
#[derive(Clone)]
pub struct PatientPolicy {
    pub identifying: bool,
    pub facility_code: Option<String>,
    pub facility_name: Option<String>,
    pub pseudonym_key: Zeroizing<Vec<u8>>,
}

/// The shortest pseudonym key accepted: 128 bits, so that pseudonyms cannot be reversed by trying every patient id
/// under every guessable key.
pub const MIN_PSEUDONYM_KEY_BYTES: usize = 16;

fn pseudonym_key_missing(why: &str) -> Error {
    Error::new(
        Code::SyncPseudonymKeyMissing,
        format!(
            "患者の仮名化鍵{why}。送信待ちの記録は端末に保存されています（送信もエクスポートもしていません）。\
             システム管理者に、病院共通の仮名化鍵（16バイト以上、16進）の登録（karte queue pseudonym-key）を依頼してください。"
        ),
    )
}

/// The hospital's pseudonym key from the keyring, checked. Never created here: a key made up by one workstation
/// would give its patients pseudonyms no other workstation (nor the platform) can match, silently.
pub fn read_pseudonym_key(backend: KeyringBackend) -> Result<Zeroizing<Vec<u8>>> {
    let hex_key = read_secret(backend, PSEUDONYM_KEY_ENTRY)?
        .ok_or_else(|| pseudonym_key_missing("がこの端末のキーリングに登録されていません"))?;
    let key =
        Zeroizing::new(hex::decode(hex_key.trim()).map_err(|_| {
            pseudonym_key_missing("の形式が正しくありません（16進ではありません）")
        })?);
    if key.len() < MIN_PSEUDONYM_KEY_BYTES {
        return Err(pseudonym_key_missing("が短すぎます"));
    }
    Ok(key)
}

impl PatientPolicy {
    /// From the settings and the keyring's pseudonym key, which IT installs (`karte queue pseudonym-key` or
    /// `queue credentials --pseudonym-key-env`): `sync.pseudonym_key_missing` without it. Where the hospital's policy
    /// sends identifying data the key is not used, and not required.
    pub fn load(settings: &SyncSettings, backend: KeyringBackend) -> Result<PatientPolicy> {
        let identifying = settings.include_identifying_data;
        let pseudonym_key = if identifying {
            read_pseudonym_key(backend).unwrap_or_default()
        } else {
            read_pseudonym_key(backend)?
        };
        Ok(PatientPolicy {
            identifying,
            facility_code: settings.facility_code.clone(),
            facility_name: settings.facility_name.clone(),
            pseudonym_key,
        })
    }

    /// The policy the settings file's `[sync]` sets, or the default (pseudonymous) when there is no `[sync]` yet:
    /// what `karte export fhir` shows is what would be sent. Needs the pseudonym key like the uploader does.
    pub fn for_settings_file(path: &Path, backend: KeyringBackend) -> Result<PatientPolicy> {
        match settings::load(path) {
            Ok(s) => PatientPolicy::load(&s, backend),
            Err(e) if e.code == Code::SyncNotConfigured => Ok(PatientPolicy {
                identifying: false,
                facility_code: None,
                facility_name: None,
                pseudonym_key: read_pseudonym_key(backend)?,
            }),
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
        let facility = fhir::Facility {
            code: self.facility_code.clone(),
            name: self.facility_name.clone(),
        };
        fhir::bundle(doc, &self.patient_ref(&doc.patient_ref), &facility)
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

    /// Settings from the settings file at `settings_path` (its `[sync]`), secrets from `backend`, both read now.
    pub fn open(
        store: Arc<Store>,
        settings_path: &Path,
        backend: KeyringBackend,
    ) -> Result<Uploader> {
        let settings = settings::load(settings_path)?;
        let creds = Credentials::from_keyring(backend)?;
        let policy = PatientPolicy::load(&settings, backend)?;
        Uploader::new(store, &settings, &creds, policy)
    }

    /// [`Uploader::open`] on this machine's settings file: what the CLI and the desktop use.
    pub fn from_store(store: Arc<Store>, backend: KeyringBackend) -> Result<Uploader> {
        Uploader::open(store, &settings::Settings::default_path(), backend)
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
        let outcome = self.transport.send(&doc.item.bundle_id, &bundle).await;
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
}

/// Builds an uploader from the current settings and credentials (called again on every reload).
pub type Build = Arc<dyn Fn() -> Result<Uploader> + Send + Sync>;

/// The background uploader of a running app: flushes, sleeps until the head of the queue is due, a nudge (a new
/// signature, a 再送) or the poll period, and starts over. It builds its [`Uploader`] itself, from the settings file
/// and the keyring as they are *then*: after [`Background::reload`] (送信再開), and whenever the queue is halted or
/// the uploader could not be built, the next cycle reads them again. So IT fixing the endpoint or the pin in the
/// settings file, or installing a new certificate, takes effect without restarting the app.
pub struct Background {
    nudge: Arc<Notify>,
    reload: AtomicBool,
    problem: Mutex<Option<Error>>,
}

impl Default for Background {
    fn default() -> Self {
        Background {
            nudge: Arc::new(Notify::new()),
            reload: AtomicBool::new(false),
            problem: Mutex::new(None),
        }
    }
}

impl Background {
    /// Wakes the worker now (a document was signed or put back in the queue).
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }

    /// The handle [`Background::nudge`] notifies, for callers that keep their own.
    pub fn nudger(&self) -> Arc<Notify> {
        Arc::clone(&self.nudge)
    }

    /// After 送信再開 (or any fix by IT): the next cycle, which starts now, rebuilds the transport from the current
    /// settings file and keyring before sending.
    pub fn reload(&self) {
        self.reload.store(true, Ordering::SeqCst);
        self.nudge.notify_one();
    }

    /// Why the last cycle could not send (settings or credentials missing, the queue halted…); `None` when fine.
    pub fn problem(&self) -> Option<Error> {
        self.problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_problem(&self, e: Option<Error>) {
        *self.problem.lock().unwrap_or_else(|p| p.into_inner()) = e;
    }

    /// Runs until `shutdown` turns true (or its sender is gone). `build` runs on the blocking pool.
    pub async fn run(&self, build: Build, mut shutdown: watch::Receiver<bool>, poll: Duration) {
        let mut uploader: Option<Uploader> = None;
        loop {
            if *shutdown.borrow() {
                return;
            }
            if self.reload.swap(false, Ordering::SeqCst) {
                uploader = None;
            }
            if uploader.is_none() {
                let b = Arc::clone(&build);
                match tokio::task::spawn_blocking(move || b()).await {
                    Ok(Ok(u)) => uploader = Some(u),
                    Ok(Err(e)) => {
                        tracing::info!(code = %e.code, "uploader not started");
                        self.set_problem(Some(e));
                    }
                    Err(_) => tracing::error!("uploader set-up task failed"),
                }
            }
            let mut wait = poll;
            if let Some(up) = &uploader {
                match up.flush().await {
                    Ok(report) => {
                        self.set_problem(None);
                        if let Some((_, at)) = report.retry {
                            wait = Duration::from_millis((at - now_ms()).max(0) as u64).min(poll);
                        }
                    }
                    Err(e) => {
                        // Halted (now or before), or the store failed: whatever fixes it may be a setting or a
                        // credential, so the next cycle starts from a fresh build.
                        self.set_problem(Some(e));
                        uploader = None;
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.nudge.notified() => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
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
            "証明書や送信先などの問題（{cause}）で送信を停止中です。記録は端末に保存されています。\
             システム管理者が原因を確認した後、karte queue resume（または管理画面の「送信再開」）で再開してください。"
        ),
    )
}
