//! Reversible pseudonymisation: personal data becomes placeholders such as 【氏名1】 before text leaves the
//! workstation, and comes back from the mapping, which never leaves it.
//!
//! Restoring must give back the original text exactly, for any input, even one that already contains something
//! that looks like a placeholder. Two rules make that hold: a placeholder never reuses a string that occurs in the
//! original text, and every placeholder is delimited by 【】 with no bracket inside, so an occurrence in the
//! pseudonymised text is either wholly one we inserted or wholly the user's own.

use crate::pii::{scan, Finding, PiiKind};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// Placeholder → original text, for one document. Holds personal data: keep it on the workstation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    pub entries: Vec<MapEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapEntry {
    pub placeholder: String,
    pub kind: PiiKind,
    pub original: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pseudonymised {
    pub text: String,
    pub mapping: Mapping,
    pub findings: Vec<Finding>,
}

/// Replace every finding of [`scan`] with a placeholder; the same original text gets the same placeholder.
pub fn pseudonymise(text: &str) -> Pseudonymised {
    let findings = scan(text);
    pseudonymise_findings(text, findings)
}

pub fn pseudonymise_findings(text: &str, findings: Vec<Finding>) -> Pseudonymised {
    let mut mapping = Mapping::default();
    let mut by_original: BTreeMap<(PiiKind, String), String> = BTreeMap::new();
    let mut next: BTreeMap<PiiKind, usize> = BTreeMap::new();
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for f in &findings {
        // Findings are disjoint in normalised text, but a character that NFKC expands (℡ → TEL) can belong to
        // two of them in the original: replace what is left rather than skip it.
        let start = f.start.max(pos);
        if start >= f.end || f.end > chars.len() {
            continue;
        }
        out.extend(&chars[pos..start]);
        let original: String = chars[start..f.end].iter().collect();
        let key = (f.kind, original.clone());
        let ph = by_original.entry(key).or_insert_with(|| {
            let n = next.entry(f.kind).or_insert(0);
            let ph = loop {
                *n += 1;
                let ph = format!("【{}{}】", f.kind.label_ja(), n);
                if !text.contains(&ph) {
                    break ph;
                }
            };
            mapping.entries.push(MapEntry {
                placeholder: ph.clone(),
                kind: f.kind,
                original: original.clone(),
            });
            ph
        });
        out.push_str(ph);
        pos = f.end;
    }
    out.extend(&chars[pos..]);
    Pseudonymised {
        text: out,
        mapping,
        findings,
    }
}

static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"【[^【】]{1,12}】").unwrap());

/// Put the originals back. Placeholders the mapping does not know (a model may invent 【氏名9】) stay as they are.
pub fn restore(text: &str, mapping: &Mapping) -> String {
    let table: BTreeMap<&str, &str> = mapping
        .entries
        .iter()
        .map(|e| (e.placeholder.as_str(), e.original.as_str()))
        .collect();
    PLACEHOLDER
        .replace_all(text, |c: &regex::Captures| {
            let m = &c[0];
            table.get(m).copied().unwrap_or(m).to_string()
        })
        .into_owned()
}

/// Placeholders present in a model's answer that the mapping does not know: the model made them up.
pub fn unknown_placeholders(text: &str, mapping: &Mapping) -> Vec<String> {
    PLACEHOLDER
        .find_iter(text)
        .map(|m| m.as_str())
        .filter(|p| {
            PiiKind::ALL
                .iter()
                .any(|k| p.starts_with(&format!("【{}", k.label_ja())))
                && !mapping.entries.iter().any(|e| e.placeholder == *p)
        })
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistent_placeholders_and_exact_restore() {
        let src =
            "患者名：山田太郎様。電話 090-1234-5678。山田太郎様の妻より電話あり（090-1234-5678）。";
        let p = pseudonymise(src);
        assert!(!p.text.contains("山田"), "{}", p.text);
        assert_eq!(p.text.matches("【氏名1】").count(), 2, "{}", p.text);
        assert_eq!(p.text.matches("【電話1】").count(), 2, "{}", p.text);
        assert_eq!(restore(&p.text, &p.mapping), src);
    }

    #[test]
    fn user_text_that_looks_like_a_placeholder_survives() {
        let src = "【氏名1】と書かれた紙。患者名：佐藤花子様。";
        let p = pseudonymise(src);
        assert!(p.text.contains("【氏名2】"), "{}", p.text);
        assert_eq!(restore(&p.text, &p.mapping), src);
    }
}
