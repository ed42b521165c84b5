//! karte-core's synthetic admissions (`crates/karte-core/tests/data/admissions`) as the store would hand them to the
//! drafter: each note signed as version 1, and the rules' floor draft. Shared by `tests/documents_model.rs` and
//! `benches/documents.rs`, so the bench measures what the test checks.

use karte_core::compose::{compose, SourceNote};
use karte_core::document::{default_kind, kind, Document};
use karte_core::ClinicalDate;
use karte_ipc::{DocumentDraft, SignedNote};
use std::collections::BTreeMap;

#[derive(serde::Deserialize)]
struct Case {
    kind: String,
    inputs: BTreeMap<String, String>,
    notes: Vec<NoteCase>,
}

#[derive(serde::Deserialize)]
struct NoteCase {
    date: String,
    text: String,
}

/// One admission: its file name, its typed inputs, the notes' characters and the floor with the notes it cites.
pub struct Stay {
    pub name: String,
    pub inputs: BTreeMap<String, String>,
    pub chars: usize,
    pub draft: DocumentDraft,
}

impl Stay {
    /// The signed notes as sources (what a sentence cites).
    pub fn sources(&self) -> Vec<SourceNote> {
        self.draft.notes.iter().map(SignedNote::source).collect()
    }
}

fn dir() -> String {
    format!(
        "{}/../karte-core/tests/data/admissions",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The admission in `<name>.toml`.
pub fn stay(name: &str) -> Stay {
    let text = std::fs::read_to_string(format!("{}/{name}.toml", dir())).unwrap();
    // The expectations of the rules' test are not read here.
    let v: toml::Value = toml::from_str(&text).unwrap();
    let case: Case = v.try_into().unwrap_or_else(|e| panic!("{name}: {e}"));
    let notes: Vec<SignedNote> = case
        .notes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let document = Document::from_text(default_kind(), &n.text).unwrap();
            SignedNote {
                encounter: format!("E{:04}", i + 1),
                version: 1,
                clinical_date: ClinicalDate::parse(&n.date).unwrap(),
                text: document.render(),
                document,
            }
        })
        .collect();
    let sources: Vec<SourceNote> = notes.iter().map(SignedNote::source).collect();
    let draft = compose(kind(&case.kind).unwrap(), &sources, &case.inputs).unwrap();
    Stay {
        name: name.to_string(),
        chars: case.notes.iter().map(|n| n.text.chars().count()).sum(),
        inputs: case.inputs,
        draft: DocumentDraft {
            draft,
            notes,
            date: ClinicalDate::parse("2026-12-01").unwrap(),
        },
    }
}

/// Every admission, by file name.
pub fn all() -> Vec<Stay> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.iter().map(|n| stay(n)).collect()
}
