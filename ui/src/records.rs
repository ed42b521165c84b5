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

#[derive(Serialize)]
struct NoArgs {}

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

pub async fn sign(id: &str) -> Result<i64, UiError> {
    ipc::call("sign_encounter", &Id { id }).await
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
