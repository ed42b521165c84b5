//! The record store as the window sees it: mirrors of karte-store's types (karte-store links SQLCipher and cannot
//! be compiled to wasm) and the IPC calls of the `records` commands. Field names follow karte-store's serde output;
//! the native tests parse JSON in that shape to keep the two in step.

use crate::ipc;
use crate::model::UiError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Physician,
    Nurse,
    Admin,
}

impl Role {
    pub fn label_ja(self) -> &'static str {
        match self {
            Role::Physician => "医師",
            Role::Nurse => "看護師",
            Role::Admin => "システム管理者",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedIn {
    pub user: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncounterSummary {
    pub id: String,
    pub patient_ref: String,
    pub created_at: String,
    pub latest_version: i64,
    pub signed: bool,
    pub pending_suggestions: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    pub signer: String,
    pub signed_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionView {
    pub version: i64,
    pub kind: String,
    pub author: String,
    pub created_at: String,
    pub text: String,
    pub reason: Option<String>,
    pub signature: Option<Signature>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewView {
    /// `accept` or `reject`.
    pub decision: String,
    pub comment: String,
    pub reviewer: String,
    pub reviewed_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuggestionView {
    pub id: i64,
    pub test: String,
    pub reason: String,
    pub rule: String,
    pub review: Option<ReviewView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncounterView {
    pub id: String,
    pub patient_ref: String,
    pub created_by: String,
    pub created_at: String,
    pub signed: bool,
    pub versions: Vec<VersionView>,
    pub suggestions: Vec<SuggestionView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserInfo {
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    pub locked: bool,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub ts: String,
    pub user: Option<String>,
    pub role: Option<String>,
    pub action: String,
    pub encounter: Option<String>,
    pub version: Option<i64>,
    pub outcome: String,
    pub workstation: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BadEntry {
    pub seq: i64,
    pub problem: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    pub entries: i64,
    pub head_seq: Option<i64>,
    pub first_bad: Option<BadEntry>,
}

/// One queued signed document (karte-store's `OutboxItem`): no clinical text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    pub id: i64,
    pub encounter: String,
    pub version: i64,
    pub bundle_id: String,
    pub replaces: Option<String>,
    /// `pending`, `sent` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub last_code: Option<String>,
    pub last_reason: Option<String>,
    pub http_status: Option<i64>,
    pub created_at: String,
    pub sent_at: Option<String>,
    /// Set on a pending amendment waiting for the earlier version (this item id) to be sent.
    #[serde(default)]
    pub held_by: Option<i64>,
}

impl OutboxItem {
    /// 送信待ち / 送信済み / 送信失敗.
    pub fn label_ja(&self) -> &'static str {
        match self.state.as_str() {
            "sent" => "送信済み",
            "failed" => "送信失敗",
            _ => "送信待ち",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Halt {
    pub code: String,
    pub message: String,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueHealth {
    pub pending: i64,
    pub failed: i64,
    pub sent: i64,
    /// Pending amendments waiting for an earlier version to be sent.
    #[serde(default)]
    pub held: i64,
    pub oldest_pending_at: Option<String>,
    pub last_sent_at: Option<String>,
    pub last_error: Option<String>,
    pub halted: Option<Halt>,
}

/// Queue health plus the background uploader's last problem (settings or credentials missing…).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadOverview {
    pub health: QueueHealth,
    pub worker_error: Option<UiError>,
}

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
    text: &'a str,
    draft: &'a crate::model::DraftOutput,
}

pub async fn login(user: &str, password: &str, totp: &str) -> Result<SignedIn, UiError> {
    ipc::call(
        "login",
        &Login {
            user,
            password,
            totp,
        },
    )
    .await
}

pub async fn logout() -> Result<(), UiError> {
    ipc::call_unit("logout", &NoArgs {}).await
}

pub async fn save_draft(
    patient: &str,
    text: &str,
    draft: &crate::model::DraftOutput,
) -> Result<String, UiError> {
    ipc::call(
        "save_draft",
        &Save {
            patient,
            text,
            draft,
        },
    )
    .await
}

pub async fn encounters() -> Result<Vec<EncounterSummary>, UiError> {
    ipc::call("encounters", &NoArgs {}).await
}

pub async fn encounter(id: &str) -> Result<EncounterView, UiError> {
    ipc::call("encounter", &Id { id }).await
}

pub async fn review(id: &str, suggestion: i64, accept: bool, comment: &str) -> Result<(), UiError> {
    ipc::call_unit(
        "review_suggestion",
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
    ipc::call("sign_encounter", &SignArgs { id, version }).await
}

pub async fn upload_items() -> Result<Vec<OutboxItem>, UiError> {
    ipc::call("upload_items", &NoArgs {}).await
}

pub async fn upload_retry(item: i64) -> Result<OutboxItem, UiError> {
    ipc::call("upload_retry", &Item { item }).await
}

pub async fn upload_overview() -> Result<UploadOverview, UiError> {
    ipc::call("upload_overview", &NoArgs {}).await
}

pub async fn upload_resume() -> Result<(), UiError> {
    ipc::call_unit("upload_resume", &NoArgs {}).await
}

pub async fn users() -> Result<Vec<UserInfo>, UiError> {
    ipc::call("users", &NoArgs {}).await
}

pub async fn audit_log() -> Result<Vec<AuditEntry>, UiError> {
    ipc::call("audit_log", &NoArgs {}).await
}

pub async fn audit_verify() -> Result<AuditReport, UiError> {
    ipc::call("audit_verify", &NoArgs {}).await
}
