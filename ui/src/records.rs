//! The IPC calls of the `records` and `uploads` commands. What they return is karte-ipc's, the same types that
//! karte-store and the desktop app use, so the window cannot drift from them.

use crate::ipc;
use crate::model::UiError;
use karte_ipc::command;
use karte_ipc::{
    AuditEntry, AuditReport, ClinicalDate, DocumentDraft, DocumentRequest, EncounterSummary,
    EncounterView, OutboxItem, SignedIn, SignedNote, UploadOverview, UserInfo,
};
use serde::Serialize;

#[derive(Serialize)]
struct NoArgs {}

#[derive(Serialize)]
struct SignArgs<'a> {
    id: &'a str,
    version: i64,
}

#[derive(Serialize)]
struct Item {
    item: i64,
}

#[derive(Serialize)]
struct Login<'a> {
    user: &'a str,
    password: &'a str,
    totp: &'a str,
}

#[derive(Serialize)]
struct Id<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct Review<'a> {
    id: &'a str,
    suggestion: i64,
    accept: bool,
    comment: &'a str,
}

#[derive(Serialize)]
struct Save<'a> {
    patient: &'a str,
    date: Option<ClinicalDate>,
    text: &'a str,
    draft: &'a crate::model::DraftOutput,
}

pub async fn login(user: &str, password: &str, totp: &str) -> Result<SignedIn, UiError> {
    ipc::call(
        command::LOGIN,
        &Login {
            user,
            password,
            totp,
        },
    )
    .await
}

pub async fn logout() -> Result<(), UiError> {
    ipc::call_unit(command::LOGOUT, &NoArgs {}).await
}

/// `date`: the clinical date (`None`: today, by the workstation's clock in the backend).
pub async fn save_draft(
    patient: &str,
    date: Option<ClinicalDate>,
    text: &str,
    draft: &crate::model::DraftOutput,
) -> Result<String, UiError> {
    ipc::call(
        command::SAVE_DRAFT,
        &Save {
            patient,
            date,
            text,
            draft,
        },
    )
    .await
}

/// Tauri 2 expects command arguments in camelCase (`noLlm`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DraftDocument<'a> {
    request: &'a DocumentRequest,
    no_llm: bool,
}

#[derive(Serialize)]
struct SaveDocument<'a> {
    patient: &'a str,
    date: ClinicalDate,
    draft: &'a crate::model::DraftOutput,
}

#[derive(Serialize)]
struct PatientArgs<'a> {
    patient: &'a str,
}

/// The patient's signed notes, which a document would be drafted from.
pub async fn patient_notes(patient: &str) -> Result<Vec<SignedNote>, UiError> {
    ipc::call(command::PATIENT_NOTES, &PatientArgs { patient }).await
}

pub async fn draft_document(
    request: &DocumentRequest,
    no_llm: bool,
) -> Result<DocumentDraft, UiError> {
    ipc::call(command::DRAFT_DOCUMENT, &DraftDocument { request, no_llm }).await
}

/// Keeps the document as an unsigned record of `patient`, dated `date` (the draft's range end).
pub async fn save_document(
    patient: &str,
    date: ClinicalDate,
    draft: &crate::model::DraftOutput,
) -> Result<String, UiError> {
    ipc::call(
        command::SAVE_DOCUMENT,
        &SaveDocument {
            patient,
            date,
            draft,
        },
    )
    .await
}

pub async fn encounters() -> Result<Vec<EncounterSummary>, UiError> {
    ipc::call(command::ENCOUNTERS, &NoArgs {}).await
}

pub async fn encounter(id: &str) -> Result<EncounterView, UiError> {
    ipc::call(command::ENCOUNTER, &Id { id }).await
}

pub async fn review(id: &str, suggestion: i64, accept: bool, comment: &str) -> Result<(), UiError> {
    ipc::call_unit(
        command::REVIEW_SUGGESTION,
        &Review {
            id,
            suggestion,
            accept,
            comment,
        },
    )
    .await
}

/// Signs `version`, the one on screen; a newer version refuses it (`record.changed`).
pub async fn sign(id: &str, version: i64) -> Result<i64, UiError> {
    ipc::call(command::SIGN_ENCOUNTER, &SignArgs { id, version }).await
}

pub async fn upload_items() -> Result<Vec<OutboxItem>, UiError> {
    ipc::call(command::UPLOAD_ITEMS, &NoArgs {}).await
}

pub async fn upload_retry(item: i64) -> Result<OutboxItem, UiError> {
    ipc::call(command::UPLOAD_RETRY, &Item { item }).await
}

pub async fn upload_overview() -> Result<UploadOverview, UiError> {
    ipc::call(command::UPLOAD_OVERVIEW, &NoArgs {}).await
}

pub async fn upload_resume() -> Result<(), UiError> {
    ipc::call_unit(command::UPLOAD_RESUME, &NoArgs {}).await
}

pub async fn users() -> Result<Vec<UserInfo>, UiError> {
    ipc::call(command::USERS, &NoArgs {}).await
}

pub async fn audit_log() -> Result<Vec<AuditEntry>, UiError> {
    ipc::call(command::AUDIT_LOG, &NoArgs {}).await
}

pub async fn audit_verify() -> Result<AuditReport, UiError> {
    ipc::call(command::AUDIT_VERIFY, &NoArgs {}).await
}
