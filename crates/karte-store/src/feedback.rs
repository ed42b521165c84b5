//! Reviewed records as preference data for improving the rules and fine-tuning the model.
//!
//! One record per signed encounter: the (pseudonymised) dictation is the prompt, the draft is what the system
//! proposed, the signed text is what the physician accepted; suggestion reviews say which test suggestions a
//! nurse or physician took and why not. Every free-text field goes through the caller's pseudonymiser (karte-guard in
//! the product); spans and extracted facts are left out because they point into the original, un-pseudonymised
//! text. No ids, names or patient references are exported.

use crate::records::{Decision, EncounterView};
use serde::{Deserialize, Serialize};

/// The `schema` value of every line, so that consumers can tell formats apart.
pub const FEEDBACK_SCHEMA: &str = "karte.feedback.v1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRecord {
    pub schema: String,
    /// The document kind (`progress-note`).
    pub kind: String,
    pub dictation: String,
    pub draft: FeedbackDraft,
    /// The draft as note text (section headings and sentences): the "rejected" side of a preference pair.
    pub draft_text: String,
    /// The latest signed version: the "chosen" side.
    pub final_text: String,
    /// Whether the signed text went through an amendment after first signing.
    pub amended: bool,
    /// `rules` or `local`: which engine drafted it.
    pub engine: String,
    pub suggestions: Vec<FeedbackSuggestion>,
}

/// The draft's sentences by section id (the document kind's sections).
pub type FeedbackDraft = std::collections::BTreeMap<String, Vec<String>>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackSuggestion {
    pub test: String,
    pub reason: String,
    /// `rule-id@rulebase-version`.
    pub rule: String,
    /// `None`: nobody reviewed it.
    pub decision: Option<Decision>,
    pub comment: Option<String>,
}

/// `None` for a record without a signed version or without a draft.
pub(crate) fn record(v: &EncounterView, p: &dyn Fn(&str) -> String) -> Option<FeedbackRecord> {
    let draft = v.draft.as_ref()?;
    let signed = v.versions.iter().rev().find(|x| x.signature.is_some())?;
    Some(FeedbackRecord {
        schema: FEEDBACK_SCHEMA.to_string(),
        kind: draft.kind.clone(),
        dictation: p(&v.dictation),
        draft: draft
            .sections
            .parts()
            .iter()
            .map(|part| {
                (
                    part.id.clone(),
                    part.sentences.iter().map(|s| p(&s.text)).collect(),
                )
            })
            .collect(),
        draft_text: p(&draft.document().render()),
        final_text: p(&signed.text),
        amended: v
            .versions
            .iter()
            .any(|x| x.kind == crate::VersionKind::Amendment),
        engine: draft.engine.kind.clone(),
        suggestions: v
            .suggestions
            .iter()
            .map(|g| FeedbackSuggestion {
                test: g.test.clone(),
                reason: g.reason.clone(),
                rule: g.rule.clone(),
                decision: g.review.as_ref().map(|r| r.decision),
                comment: g.review.as_ref().map(|r| p(&r.comment)),
            })
            .collect(),
    })
}

/// One JSON object per line.
pub fn to_jsonl(records: &[FeedbackRecord]) -> String {
    let mut s = String::new();
    for r in records {
        s.push_str(&serde_json::to_string(r).expect("feedback record serialises"));
        s.push('\n');
    }
    s
}
