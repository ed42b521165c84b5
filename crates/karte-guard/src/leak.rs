//! Leak check: personal data in a model's output that its input did not contain came from the model's training
//! data (or was made up). Either way it must not reach a record: it is removed and flagged.

use crate::pii::{scan, scan_normalized, Finding};
use karte_core::normalize::{normalize, Normalized};
use std::collections::HashSet;

/// Shown where leaked personal data was removed.
pub const REMOVED: &str = "【削除】";

/// What two spellings of one identifier share: width-folded letters and digits, no separators or spaces.
pub fn key(text: &str) -> String {
    normalize(text)
        .text
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// Personal data in `output` that is not in `source`.
pub fn leaks(source: &str, output: &str) -> Vec<Finding> {
    Known::new(source).leaks(output)
}

/// What a source contains, read once, for checking many outputs against it (every sentence of a draft).
pub struct Known {
    keys: HashSet<String>,
    folded: String,
}

impl Known {
    /// For a source that is not a dictation (an evaluation prompt); a dictation has its own, in
    /// [`crate::Dictation::known`].
    pub fn new(source: &str) -> Self {
        let norm = normalize(source);
        Known::from_scan(&scan_normalized(source, &norm), &norm)
    }

    /// From a source's findings and normalisation, made once by whoever holds them.
    pub fn from_scan(findings: &[Finding], norm: &Normalized) -> Self {
        Known {
            keys: findings.iter().map(|f| key(&f.text)).collect(),
            folded: norm.text.chars().filter(|c| c.is_alphanumeric()).collect(),
        }
    }

    /// Personal data in `output` that the source does not contain, as `scan(output)` reports it.
    pub fn leaks(&self, output: &str) -> Vec<Finding> {
        scan(output)
            .into_iter()
            .filter(|f| {
                let k = key(&f.text);
                !self.keys.contains(&k) && !self.folded.contains(&k)
            })
            .collect()
    }
}

/// `text` with each finding replaced by [`REMOVED`]. Findings must be from `scan(text)` (sorted, disjoint).
pub fn remove(text: &str, findings: &[Finding]) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for f in findings {
        let start = f.start.max(pos);
        if start >= f.end || f.end > chars.len() {
            continue;
        }
        out.extend(&chars[pos..start]);
        out.push_str(REMOVED);
        pos = f.end;
    }
    out.extend(&chars[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_identifiers_are_leaks_and_known_ones_are_not() {
        let src = "患者名：山田太郎様、電話 ０９０－１２３４－５６７８。";
        assert!(leaks(src, "山田太郎様に電話（090-1234-5678）で説明。").is_empty());
        let l = leaks(src, "山田太郎様、マイナンバー 1234 5678 9018 を確認。");
        assert_eq!(l.len(), 1, "{l:?}");
        assert_eq!(
            remove(
                "番号 1234 5678 9018 を確認",
                &scan("番号 1234 5678 9018 を確認")
            ),
            "番号 【削除】 を確認"
        );
    }
}
