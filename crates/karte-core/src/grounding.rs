//! Is a draft sentence supported by the dictation? Numbers, their units, drug names and laterality (左/右) are
//! checked against the source after normalisation, because a changed number (a dose, a potassium), a mg that became
//! g, or a right that became left are the most dangerous things a model can write.

use crate::extract::Found;
use crate::normalize::normalize;
use crate::script;
use crate::types::{FactKind, Flag};
use regex::Regex;
use std::collections::BTreeSet;
use std::sync::LazyLock;

static NUMBER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[0-9]+(?:,[0-9]{3})*(?:\.[0-9]+)?").unwrap());

/// A number with the unit written right after it (500mg, 38.6℃, 2L/分).
static NUMBER_UNIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"([0-9]+(?:,[0-9]{3})*(?:\.[0-9]+)?)\s*(mg/kg|mg|μg|mcg|g|kg|mL|ml|L/分|L|mEq/L|mEq|mmol/L|mmHg|単位|IU|U|%|℃|mm|cm|錠|カプセル|包|A|V|回/分|/分)")
        .unwrap()
});

fn unit_pairs(normalised: &str) -> BTreeSet<(String, String)> {
    NUMBER_UNIT
        .captures_iter(normalised)
        .map(|c| (canonical_number(&c[1]), canonical_unit(&c[2])))
        .collect()
}

fn canonical_unit(u: &str) -> String {
    match u {
        "ml" => "mL".into(),
        "mcg" => "μg".into(),
        _ => u.to_string(),
    }
}

/// 左, 右 and 両側 (両 alone is both sides) as written in a text.
fn sides(normalised: &str) -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    for (i, c) in normalised.char_indices() {
        match c {
            '右' => {
                out.insert("右");
            }
            '左' => {
                out.insert("左");
            }
            // 両側, 両下肢; not 両親 or 両方.
            '両' if !normalised[i + c.len_utf8()..].starts_with(['親', '方', '者']) => {
                out.insert("両側");
            }
            _ => {}
        }
    }
    out
}

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
    units: BTreeSet<(String, String)>,
    drugs: BTreeSet<String>,
    sides: BTreeSet<&'static str>,
    /// (finding, laterality) pairs of the dictation: 右下肺野の湿性ラ音 is not 左.
    lateral: BTreeSet<(String, String)>,
    /// Characters of the dictation outside Japanese text's repertoire: a name or a drug the physician wrote in
    /// another script is the physician's, not a slip of the model.
    script: BTreeSet<char>,
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
        Grounding {
            numbers,
            units: unit_pairs(normalised_source),
            drugs,
            sides: sides(normalised_source),
            lateral: lateral_pairs(found),
            script: script::foreign(normalised_source).into_iter().collect(),
        }
    }

    /// What several sources support together: a sentence citing two notes may take a number from either.
    pub fn union<'a>(parts: impl IntoIterator<Item = &'a Grounding>) -> Grounding {
        let mut g = Grounding::default();
        for p in parts {
            g.numbers.extend(p.numbers.iter().cloned());
            g.units.extend(p.units.iter().cloned());
            g.drugs.extend(p.drugs.iter().cloned());
            g.sides.extend(p.sides.iter().copied());
            g.lateral.extend(p.lateral.iter().cloned());
            g.script.extend(p.script.iter().copied());
        }
        g
    }

    /// The characters of a sentence that Japanese text does not use and the dictation does not have either, in
    /// order. The sentence is normalised as the dictation was, so a full-width or compatibility form of a
    /// character the dictation has is not counted.
    pub fn foreign_script(&self, sentence: &str) -> Vec<char> {
        script::foreign(&normalize(sentence).text)
            .into_iter()
            .filter(|c| !self.script.contains(c))
            .collect()
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
        for (n, u) in unit_pairs(&norm.text) {
            let other = self
                .units
                .iter()
                .find(|(sn, _)| *sn == n)
                .map(|(_, su)| su.clone());
            if self.numbers.contains(&n) && !self.units.contains(&(n.clone(), u.clone())) {
                if let Some(src) = other {
                    flags.push(Flag::new(
                        "ungrounded_unit",
                        format!("口述と単位が違います: {n}{u}（口述では {n}{src}）"),
                        Some(format!("{n}{u}")),
                    ));
                }
            }
        }
        for side in sides(&norm.text) {
            if !self.sides.contains(side) && seen.insert(side.to_string()) {
                flags.push(Flag::new(
                    "ungrounded_laterality",
                    format!("口述にない左右の記載: {side}"),
                    Some(side.to_string()),
                ));
            }
        }
        let found = crate::extract::extract_sentence(&norm);
        for (name, side) in lateral_pairs(&found) {
            let known_elsewhere = self.lateral.iter().any(|(n, _)| *n == name);
            if known_elsewhere
                && !self.lateral.contains(&(name.clone(), side.clone()))
                && seen.insert(format!("{name}:{side}"))
            {
                flags.push(Flag::new(
                    "ungrounded_laterality",
                    format!("口述と左右が違います: {side}の{name}"),
                    Some(format!("{side}{name}")),
                ));
            }
        }
        for f in found {
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

fn lateral_pairs(found: &[Found]) -> BTreeSet<(String, String)> {
    found
        .iter()
        .filter_map(|f| {
            f.fact
                .attrs
                .get("laterality")
                .map(|l| (f.fact.name.clone(), l.clone()))
        })
        .collect()
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

    #[test]
    fn units_and_laterality_are_checked() {
        let src = "右下肺野で湿性ラ音を聴取。アセトアミノフェン500mg頓用。BT 38.6℃。";
        let a = crate::pipeline::analyze(src, crate::document::default_kind()).unwrap();
        let g = a.grounding();
        let codes = |s: &str| g.check(s).into_iter().map(|f| f.code).collect::<Vec<_>>();
        // (draft sentence, flag codes)
        let table: &[(&str, &[&str])] = &[
            ("右下肺野で湿性ラ音を聴取する。", &[]),
            ("アセトアミノフェン500mgを頓用で使用する。", &[]),
            (
                "アセトアミノフェン500gを頓用で使用する。",
                &["ungrounded_unit"],
            ),
            ("左下肺野で湿性ラ音を聴取する。", &["ungrounded_laterality"]),
            ("両親に説明した。", &[]),
            ("体温38.6℃。", &[]),
        ];
        for (s, want) in table {
            let got = codes(s);
            for w in *want {
                assert!(got.iter().any(|c| c == w), "{s}: {got:?}");
            }
            if want.is_empty() {
                assert!(got.is_empty(), "{s}: {got:?}");
            }
        }
    }
}
