//! What the store hands out about encounters: versions, signatures, suggestion reviews. Plain data for the CLI,
//! the desktop app and the feedback export to render.

use karte_core::{Document, DraftOutput};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionKind {
    /// The first version: the dictation and its draft.
    Draft,
    /// A change before signing.
    Edit,
    /// A change after signing, with a reason; signed by its author as it is made.
    Amendment,
}

impl VersionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionKind::Draft => "draft",
            VersionKind::Edit => "edit",
            VersionKind::Amendment => "amendment",
        }
    }
    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "edit" => VersionKind::Edit,
            "amendment" => VersionKind::Amendment,
            _ => VersionKind::Draft,
        }
    }
    pub fn label_ja(self) -> &'static str {
        match self {
            VersionKind::Draft => "下書き",
            VersionKind::Edit => "編集",
            VersionKind::Amendment => "署名後の修正",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Accept,
    Reject,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Accept => "accept",
            Decision::Reject => "reject",
        }
    }
    pub(crate) fn parse(s: &str) -> Self {
        if s == "accept" {
            Decision::Accept
        } else {
            Decision::Reject
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    pub signer: String,
    pub signed_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionView {
    pub version: i64,
    pub kind: VersionKind,
    pub author: String,
    pub created_at: String,
    /// The note as text: always the rendering of `document` (`Document::render`), which is what the content hash
    /// covers.
    pub text: String,
    /// The document kind and its sections, sentence by sentence (a draft's with spans and flags).
    pub document: Document,
    /// Why the signed note was amended (amendments only).
    pub reason: Option<String>,
    pub signature: Option<Signature>,
    pub content_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewView {
    pub decision: Decision,
    pub comment: String,
    pub reviewer: String,
    pub reviewed_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuggestionView {
    /// 1-based position in the draft's suggestion list: what `karte review --suggestion` takes.
    pub id: i64,
    pub test: String,
    pub reason: String,
    pub rule: String,
    /// The latest review, if any (earlier ones stay in the database and the audit log).
    pub review: Option<ReviewView>,
}

/// An encounter with its whole history, oldest version first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncounterView {
    pub id: String,
    pub patient_ref: String,
    pub created_by: String,
    pub created_at: String,
    /// Signed when the latest version carries a signature.
    pub signed: bool,
    pub dictation: String,
    pub draft: Option<DraftOutput>,
    pub versions: Vec<VersionView>,
    pub suggestions: Vec<SuggestionView>,
}

impl EncounterView {
    pub fn latest(&self) -> &VersionView {
        self.versions.last().expect("an encounter has a version")
    }
}

/// One line of a list of encounters (no clinical text beyond the patient reference).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncounterSummary {
    pub id: String,
    pub patient_ref: String,
    pub created_at: String,
    pub latest_version: i64,
    pub signed: bool,
    pub pending_suggestions: i64,
}

/// sha256 over a version's clinical content, length-prefixed so that moving text between fields changes it. Kept
/// with the version and in the audit entry of the write, so an edit of the text through SQL is detectable.
pub(crate) fn content_hash(
    note: &str,
    dictation: Option<&str>,
    draft_json: Option<&str>,
    reason: Option<&str>,
) -> String {
    let mut h = Sha256::new();
    for part in [Some(note), dictation, draft_json, reason] {
        match part {
            Some(p) => {
                h.update((p.len() as u64).to_be_bytes());
                h.update(p.as_bytes());
            }
            None => h.update(u64::MAX.to_be_bytes()),
        }
    }
    hex::encode(h.finalize())
}

/// Schema 3's data step: every version gets its document, recovered from its text and draft (all records before
/// schema 3 are progress notes), then `versions` is immutable again.
pub(crate) fn migrate_documents(c: &rusqlite::Connection) -> karte_core::Result<()> {
    use crate::db::db_err;
    let kind = karte_core::document::default_kind();
    let rows: Vec<(String, i64, String, Option<String>)> = {
        let mut st = c
            .prepare("SELECT encounter_id, version, note_text, draft_json FROM versions WHERE document IS NULL")
            .map_err(db_err)?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(db_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db_err)?
    };
    for (enc, v, note, json) in rows {
        let doc = karte_core::document::recover(kind, &note, json.as_deref());
        let doc = serde_json::to_string(&doc).map_err(|_| {
            karte_core::Error::new(karte_core::Code::Internal, "記録の移行に失敗しました。")
        })?;
        c.execute(
            "UPDATE versions SET document = ?1 WHERE encounter_id = ?2 AND version = ?3",
            rusqlite::params![doc, enc, v],
        )
        .map_err(db_err)?;
    }
    c.execute_batch(
        "CREATE TRIGGER versions_no_update BEFORE UPDATE ON versions
         BEGIN SELECT RAISE(ABORT, 'versions are immutable'); END;",
    )
    .map_err(db_err)
}
