//! The vocabularies in `assets/lexicon`, compiled in: one canonical name per concept with the spellings found in
//! dictations. Keeping them as data lets clinicians review and extend them without reading Rust.

use serde::Deserialize;
use std::sync::LazyLock;

#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    pub name: String,
    pub synonyms: Vec<String>,
    #[serde(default)]
    pub unit: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Lexicon {
    pub version: String,
    #[serde(rename = "entry")]
    pub entries: Vec<Entry>,
}

impl Lexicon {
    fn parse(name: &str, src: &str) -> Lexicon {
        toml::from_str(src).unwrap_or_else(|e| panic!("assets/lexicon/{name}.toml is invalid: {e}"))
    }
    pub fn contains(&self, name: &str) -> bool {
        self.entries.iter().any(|e| e.name == name)
    }
    /// (spelling, canonical name) pairs, longest spelling first so that 市中肺炎 wins over 肺炎.
    pub fn spellings(&self) -> Vec<(&str, &str)> {
        let mut v: Vec<(&str, &str)> = self
            .entries
            .iter()
            .flat_map(|e| {
                e.synonyms
                    .iter()
                    .map(move |s| (s.as_str(), e.name.as_str()))
                    .chain([(e.name.as_str(), e.name.as_str())])
            })
            .collect();
        v.sort_by(|a, b| {
            b.0.chars()
                .count()
                .cmp(&a.0.chars().count())
                .then(a.0.cmp(b.0))
        });
        v.dedup_by(|a, b| a.0 == b.0);
        v
    }
}

macro_rules! lexicon {
    ($id:ident, $file:literal) => {
        pub static $id: LazyLock<Lexicon> = LazyLock::new(|| {
            Lexicon::parse(
                $file,
                include_str!(concat!("../../../assets/lexicon/", $file, ".toml")),
            )
        });
    };
}

lexicon!(SYMPTOMS, "symptoms");
lexicon!(FINDINGS, "findings");
lexicon!(DIAGNOSES, "diagnoses");
lexicon!(DRUGS, "drugs");
lexicon!(LABS, "labs");
lexicon!(TESTS, "tests");
// Words of the dictation itself (聴取, 聴診, 鎮痛薬): read by speech recognition's correction, not by extraction.
lexicon!(DICTATION, "dictation");

/// Vital signs are few and fixed, so they live in code with their patterns (see `extract`).
pub const VITALS: [&str; 8] = [
    "体温",
    "血圧",
    "脈拍",
    "呼吸数",
    "SpO2",
    "体重",
    "GCS",
    "JCS",
];
pub const DEMOGRAPHICS: [&str; 2] = ["年齢", "性別"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexicons_parse_and_have_unique_names() {
        for lx in [
            &*SYMPTOMS,
            &*FINDINGS,
            &*DIAGNOSES,
            &*DRUGS,
            &*LABS,
            &*TESTS,
        ] {
            assert!(!lx.entries.is_empty());
            let mut names: Vec<&str> = lx.entries.iter().map(|e| e.name.as_str()).collect();
            names.sort();
            let n = names.len();
            names.dedup();
            assert_eq!(n, names.len(), "duplicate canonical names");
        }
    }
}
