//! What the store hands out about encounters: versions, signatures, suggestion reviews.

pub use karte_core::ClinicalDate;
use karte_core::{Document, DraftOutput};
use serde::{Deserialize, Serialize};

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
    /// 採用 / 却下: what the review list shows.
    pub fn label_ja(self) -> &'static str {
        match self {
            Decision::Accept => "採用",
            Decision::Reject => "却下",
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
    /// The day the note describes (診療日), fixed when the encounter was saved.
    pub clinical_date: ClinicalDate,
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
    /// The day the note describes (診療日): lists are ordered by it, then by when the note was saved.
    pub clinical_date: ClinicalDate,
    /// The document kind (`progress-note`, `discharge-summary`…): a list shows which record is which document.
    pub kind: String,
    pub created_at: String,
    pub latest_version: i64,
    pub signed: bool,
    pub pending_suggestions: i64,
}

/// A source for a document built from a patient's notes (discharge summary, referral letter): the latest signed
/// version of one encounter (an amendment replaces what it amends), with the encounter's clinical date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedNote {
    pub encounter: String,
    pub version: i64,
    pub clinical_date: ClinicalDate,
    /// The signed version's document kind and sections.
    pub document: Document,
    /// The text as signed: the document's rendering (for versions edited before schema 3, the text in the
    /// physician's own layout, which is what the content hash covers). Character spans point into this text.
    pub text: String,
}

impl SignedNote {
    /// The note as a document's source, cited as `<encounter>@<version>`: the one mapping the store's floor draft
    /// and the model's phrasing both read, so their citations agree.
    pub fn source(&self) -> karte_core::compose::SourceNote {
        karte_core::compose::SourceNote {
            id: format!("{}@{}", self.encounter, self.version),
            date: self.clinical_date.to_string(),
            document: self.document.clone(),
            text: self.text.clone(),
        }
    }
}

/// A document made from a patient's signed notes (退院時サマリー, 診療情報提供書), as the window and
/// `karte document draft` ask for it: the kind, the patient, what the physician typed (by the kind's input names),
/// and the range of days to read where the kind has no date inputs of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentRequest {
    pub kind: String,
    pub patient: String,
    #[serde(default)]
    pub inputs: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub from: Option<ClinicalDate>,
    #[serde(default)]
    pub to: Option<ClinicalDate>,
}

/// The floor draft of a [`DocumentRequest`], the signed notes its sentences cite (so the window can show a
/// sentence's source), and the day it is dated when saved (the range's end: 退院日).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentDraft {
    pub draft: DraftOutput,
    pub notes: Vec<SignedNote>,
    pub date: ClinicalDate,
}
