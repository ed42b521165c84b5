//! Is a draft sentence supported by the dictation? Numbers and drug names are checked against the source after
//! normalisation, because a changed number (a dose, a potassium) is the most dangerous thing a model can write.

use crate::extract::Found;
use crate::normalize::normalize;
use crate::types::{FactKind, Flag};
use regex::Regex;
use std::collections::BTreeSet;
use std::sync::LazyLock;

static NUMBER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[0-9]+(?:,[0-9]{3})*(?:\.[0-9]+)?").unwrap());

/// Canonical numeric tokens of `text` (normalised first): 038.60 → 38.6, 12,300 → 12300.
pub fn numbers(text: &str) -> Vec<String> {
    let n = normalize(text);
    NUMBER
        .find_iter(&n.text)
        .map(|m| canonical_number(m.as_str()))
        .collect()
}

pub fn canonical_number(s: &str) -> String {
    let s = s.replace(',', "");
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i.to_string(), f.trim_end_matches('0').to_string()),
        None => (s.clone(), String::new()),
    };
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    }
}

/// What the dictation supports: its numbers (plus the 西暦 form of its 和暦 dates) and its drugs.
#[derive(Debug, Clone, Default)]
pub struct Grounding {
    numbers: BTreeSet<String>,
    drugs: BTreeSet<String>,
}

impl Grounding {
    pub fn new(normalised_source: &str, found: &[Found]) -> Self {
        let mut numbers: BTreeSet<String> = NUMBER
            .find_iter(normalised_source)
            .map(|m| canonical_number(m.as_str()))
            .collect();
        for f in found.iter().filter(|f| f.fact.kind == FactKind::Date) {
            if let Some(v) = &f.fact.value {
                numbers.extend(v.split('-').map(canonical_number));
            }
        }
        let drugs = found
            .iter()
            .filter(|f| f.fact.kind == FactKind::Drug)
            .map(|f| f.fact.name.clone())
            .collect();
        Grounding { numbers, drugs }
    }

    /// Flags for one draft sentence: every number and drug it has that the source lacks.
    pub fn check(&self, sentence: &str) -> Vec<Flag> {
        let mut flags = Vec::new();
        let mut seen = BTreeSet::new();
        for n in numbers(sentence) {
            if !self.numbers.contains(&n) && seen.insert(n.clone()) {
                flags.push(Flag::new(
                    "ungrounded_number",
                    format!("口述にない数値: {n}"),
                    Some(n),
                ));
            }
        }
        let norm = normalize(sentence);
        let clause = crate::clause::Clause {
            start: 0,
            end: norm.len(),
            text: norm.text.clone(),
            sentence: 0,
        };
        for f in crate::extract::extract(&norm, std::slice::from_ref(&clause)) {
            if f.fact.kind == FactKind::Drug
                && !self.drugs.contains(&f.fact.name)
                && seen.insert(f.fact.name.clone())
            {
                flags.push(Flag::new(
                    "ungrounded_drug",
                    format!("口述にない薬剤: {}", f.fact.name),
                    Some(f.fact.name),
                ));
            }
        }
        flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_numbers() {
        for (i, o) in [
            ("038.60", "38.6"),
            ("12,300", "12300"),
            ("0.50", "0.5"),
            ("7.0", "7"),
            ("0", "0"),
        ] {
            assert_eq!(canonical_number(i), o);
        }
        assert_eq!(numbers("ＢＴ３８．６℃、BP 120/80"), ["38.6", "120", "80"]);
    }
}
