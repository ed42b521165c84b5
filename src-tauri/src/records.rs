//! Tauri commands for sign-in and records: glue between IPC and `karte-store`, nothing more. Permissions, locking,
//! idle timeout and the audit trail are the library's; the window only ever holds the signed-in user's name and
//! role, never the session itself.
//!
//! The store opens on first use (not at start-up), so a missing keyring is reported in the window where it can be
//! read, and a fixed keyring works without restarting the app. Every call runs on the blocking pool: sign-in hashes
//! a password (tens of milliseconds) and every call writes an audit entry with an fsync.

use karte_core::{Code, DraftOutput, Error};
use karte_ipc::{
    AuditEntry, AuditReport, ClinicalDate, Decision, DocumentDraft, DocumentRequest,
    EncounterSummary, EncounterView, SignedIn, SignedNote, UserInfo,
};
use karte_store::{Session, Store};
use std::sync::{Arc, Mutex};
use tauri::State;

/// The app's record store and the one signed-in session of this window.
#[derive(Default)]
pub struct Records {
    store: Mutex<Option<Arc<Store>>>,
    session: Mutex<Option<Arc<Session>>>,
}

impl Records {
    /// The store, opened on first use; the uploader task shares it.
    pub fn store_handle(&self) -> Result<Arc<Store>, Error> {
        self.store()
    }

    fn store(&self) -> Result<Arc<Store>, Error> {
        let mut slot = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slot.as_ref() {
            return Ok(Arc::clone(s));
        }
        let s = Arc::new(Store::open_default()?);
        *slot = Some(Arc::clone(&s));
        Ok(s)
    }

    fn session(&self) -> Result<Arc<Session>, Error> {
        self.session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                Error::new(
                    Code::AuthSessionExpired,
                    "サインインしていません。もう一度サインインしてください。",
                )
            })
    }

    /// Runs `f` with the store and the session; a session the library no longer honours is dropped, so the window
    /// returns to the sign-in screen.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&Store, &Session) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let (store, session) = (self.store()?, self.session()?);
        let out = f(&store, &session);
        if let Err(e) = &out {
            if matches!(e.code, Code::AuthSessionExpired | Code::AuthDisabled) {
                *self.session.lock().unwrap_or_else(|p| p.into_inner()) = None;
            }
        }
        out
    }
}

pub async fn blocking<T: Send + 'static>(
    records: &State<'_, Arc<Records>>,
    f: impl FnOnce(&Records) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let records = Arc::clone(records);
    tauri::async_runtime::spawn_blocking(move || f(&records))
        .await
        .map_err(|e| {
            tracing::error!("records task failed: {e}");
            Error::new(
                Code::Internal,
                "記録の処理が異常終了しました。もう一度お試しください。",
            )
        })?
}

#[tauri::command]
pub async fn login(
    records: State<'_, Arc<Records>>,
    user: String,
    password: String,
    totp: String,
) -> Result<SignedIn, Error> {
    blocking(&records, move |r| {
        let session = r.store()?.login(&user, &password, &totp)?;
        let info = SignedIn {
            user: session.user().to_string(),
            role: session.role(),
        };
        *r.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(session));
        Ok(info)
    })
    .await
}

#[tauri::command]
pub fn logout(records: State<'_, Arc<Records>>) {
    *records.session.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

/// `date`: the clinical date from the window's date field (`None`: today). It arrives already a `ClinicalDate`,
/// checked by the window with the same type; the store refuses a future one.
#[tauri::command]
pub async fn save_draft(
    records: State<'_, Arc<Records>>,
    patient: String,
    date: Option<ClinicalDate>,
    text: String,
    draft: DraftOutput,
) -> Result<String, Error> {
    blocking(&records, move |r| {
        r.with(|st, s| st.save_draft(s, &patient, date, &text, &draft))
    })
    .await
}

/// The patient's signed notes, listed before a document is drafted from them.
#[tauri::command]
pub async fn patient_notes(
    records: State<'_, Arc<Records>>,
    patient: String,
) -> Result<Vec<SignedNote>, Error> {
    blocking(&records, move |r| {
        r.with(|st, s| st.patient_notes(s, &patient))
    })
    .await
}

/// A 退院時サマリー or 診療情報提供書 from the patient's signed notes: the store checks, reads and composes, the
/// drafter phrases (unless `no_llm`), its progress sent to the window as a note's is.
#[tauri::command]
pub async fn draft_document(
    app: tauri::AppHandle,
    drafter: State<'_, Arc<karte_api::Drafter>>,
    records: State<'_, Arc<Records>>,
    request: DocumentRequest,
    no_llm: bool,
) -> Result<DocumentDraft, Error> {
    let drafter = Arc::clone(&drafter);
    blocking(&records, move |r| {
        let opts = karte_api::DraftOptions {
            no_llm,
            kind: Some(request.kind.clone()),
        };
        let mut progress = crate::commands::progress_to_window(app);
        r.with(|st, s| drafter.document(st.draft_document(s, &request)?, &opts, &mut progress))
    })
    .await
}

/// Keeps a document made from notes as an unsigned record of the patient, dated `date` (the draft's range end).
#[tauri::command]
pub async fn save_document(
    records: State<'_, Arc<Records>>,
    patient: String,
    date: ClinicalDate,
    draft: DraftOutput,
) -> Result<String, Error> {
    blocking(&records, move |r| {
        r.with(|st, s| st.save_document(s, &patient, date, &draft))
    })
    .await
}

#[tauri::command]
pub async fn encounters(records: State<'_, Arc<Records>>) -> Result<Vec<EncounterSummary>, Error> {
    blocking(&records, |r| r.with(|st, s| st.encounters(s))).await
}

#[tauri::command]
pub async fn encounter(
    records: State<'_, Arc<Records>>,
    id: String,
) -> Result<EncounterView, Error> {
    blocking(&records, move |r| r.with(|st, s| st.history(s, &id))).await
}

#[tauri::command]
pub async fn review_suggestion(
    records: State<'_, Arc<Records>>,
    id: String,
    suggestion: i64,
    accept: bool,
    comment: String,
) -> Result<(), Error> {
    let decision = if accept {
        Decision::Accept
    } else {
        Decision::Reject
    };
    blocking(&records, move |r| {
        r.with(|st, s| st.review(s, &id, suggestion, decision, &comment))
    })
    .await
}

/// Signs `version` (the one the window shows: a newer one refuses with `record.changed`) and nudges the uploader,
/// since signing queued the document.
#[tauri::command]
pub async fn sign_encounter(
    records: State<'_, Arc<Records>>,
    uploads: State<'_, Arc<crate::uploads::Uploads>>,
    id: String,
    version: i64,
) -> Result<i64, Error> {
    let out = blocking(&records, move |r| r.with(|st, s| st.sign(s, &id, version))).await;
    uploads.nudge.notify_one();
    out
}

#[tauri::command]
pub async fn users(records: State<'_, Arc<Records>>) -> Result<Vec<UserInfo>, Error> {
    blocking(&records, |r| r.with(|st, s| st.list_users(s))).await
}

#[tauri::command]
pub async fn audit_log(records: State<'_, Arc<Records>>) -> Result<Vec<AuditEntry>, Error> {
    blocking(&records, |r| r.with(|st, s| st.audit_entries(s))).await
}

#[tauri::command]
pub async fn audit_verify(records: State<'_, Arc<Records>>) -> Result<AuditReport, Error> {
    blocking(&records, |r| r.with(|st, s| st.verify_audit(s))).await
}
