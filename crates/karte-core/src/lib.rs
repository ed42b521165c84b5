//! Karte's domain and the deterministic floor of the drafting pipeline: normalise, split, extract, classify, draft
//! with spans, ground-check, suggest tests. Pure functions, no I/O, so every stage is testable from tables.

pub mod classify;
pub mod clause;
pub mod clinical_date;
pub mod compose;
pub mod document;
pub mod error;
pub mod extract;
pub mod grounding;
pub mod lexicon;
pub mod ngram;
pub mod normalize;
pub mod phrase;
pub mod pipeline;
pub mod quality;
pub mod rules;
pub mod script;
pub mod stats;
pub mod types;
pub mod wareki;

pub use clinical_date::ClinicalDate;
pub use document::{Document, DocumentKind, Role, Sections};
pub use error::{Code, Error, Result};
pub use pipeline::{
    analyze, draft_floor, read_bounded, validate, MAX_INPUT_BYTES, MAX_INPUT_CHARS,
};
pub use stats::{EngineKind, FinishReason, GenStats};
pub use types::*;
