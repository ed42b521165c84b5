//! The versioned rule base of test suggestions (assets/rules/suggestions.toml) and its evaluation over facts.

use crate::types::{Fact, FactKind, Flag, Span, Suggestion};
use serde::Deserialize;
use std::sync::LazyLock;

/// The draft flag a contraindicated order in the physician's plan raises.
pub const CONTRAINDICATION_FLAG: &str = "contraindication";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ge,
    Le,
    Gt,
    Lt,
    Eq,
}

/// One condition: `KIND:NAME` or `KIND:NAME OP VALUE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cond {
    /// The condition's kind as written (symptom, exam, lab, vital, diagnosis, history, drug, test, demographic).
    pub kind: String,
    pub name: String,
    pub op: Option<(Op, String)>,
}

impl Cond {
    pub fn parse(s: &str) -> Result<Cond, String> {
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("「{s}」: KIND:NAME の形ではありません"))?;
        if ![
            "symptom",
            "exam",
            "lab",
            "vital",
            "diagnosis",
            "history",
            "drug",
            "test",
            "demographic",
        ]
        .contains(&kind)
        {
            return Err(format!("「{s}」: 未知の種類 {kind}"));
        }
        for (tok, op) in [
            (">=", Op::Ge),
            ("<=", Op::Le),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("=", Op::Eq),
        ] {
            if let Some((name, value)) = rest.split_once(tok) {
                if op != Op::Eq && value.trim().parse::<f64>().is_err() {
                    return Err(format!("「{s}」: 比較値が数値ではありません"));
                }
                return Ok(Cond {
                    kind: kind.into(),
                    name: name.trim().into(),
                    op: Some((op, value.trim().into())),
                });
            }
        }
        Ok(Cond {
            kind: kind.into(),
            name: rest.trim().into(),
            op: None,
        })
    }

    fn kinds(&self) -> &'static [FactKind] {
        match self.kind.as_str() {
            "symptom" => &[FactKind::Symptom],
            "exam" => &[FactKind::Exam],
            "lab" => &[FactKind::Lab],
            "vital" => &[FactKind::Vital],
            "diagnosis" => &[FactKind::Diagnosis],
            "history" => &[FactKind::History],
            "drug" => &[FactKind::Drug],
            "test" => &[FactKind::Test, FactKind::Lab],
            _ => &[FactKind::Demographic],
        }
    }

    /// The facts that satisfy this condition (none if it does not hold).
    pub fn matches<'a>(&self, facts: &'a [Fact]) -> Vec<&'a Fact> {
        facts
            .iter()
            .filter(|f| !f.negated && self.kinds().contains(&f.kind) && f.name == self.name)
            .filter(|f| match &self.op {
                None => true,
                Some((Op::Eq, v)) => match (f.number(), v.parse::<f64>()) {
                    (Some(a), Ok(b)) => a == b,
                    _ => f.value.as_deref() == Some(v.as_str()),
                },
                Some((op, v)) => {
                    let (Some(a), Ok(b)) = (f.number(), v.parse::<f64>()) else {
                        return false;
                    };
                    match op {
                        Op::Ge => a >= b,
                        Op::Le => a <= b,
                        Op::Gt => a > b,
                        Op::Lt => a < b,
                        Op::Eq => unreachable!(),
                    }
                }
            })
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
struct RawRule {
    id: String,
    category: String,
    #[serde(default)]
    all: Vec<String>,
    #[serde(default)]
    any: Vec<String>,
    #[serde(default)]
    none: Vec<String>,
    tests: Vec<String>,
    reason: String,
    reference: String,
    example: String,
    #[serde(default)]
    counter_example: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContra {
    id: String,
    tests: Vec<String>,
    mentions: Vec<String>,
    any: Vec<String>,
    #[serde(default)]
    unless: Vec<String>,
    #[serde(default)]
    unless_text: Vec<String>,
    #[serde(default)]
    notes: Vec<String>,
    reason: String,
    reference: String,
    example: String,
    #[serde(default)]
    counter_example: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawBase {
    version: String,
    rule: Vec<RawRule>,
    #[serde(default)]
    contraindication: Vec<RawContra>,
}

/// A context in which tests must not be done as usual (contrast with an allergy or eGFR < 30, lumbar puncture
/// before head imaging with impaired consciousness or focal signs, MRI with a pacemaker not known to be
/// MRI-conditional). Its tests are never suggested while it holds; a plan that names one is warned about.
#[derive(Debug, Clone)]
pub struct Contraindication {
    pub id: String,
    /// Canonical test names it withholds from suggestions.
    pub tests: Vec<String>,
    /// How a plan names those tests (「造影」「腰椎穿刺」「MRI」); ASCII words match as whole words.
    pub mentions: Vec<String>,
    /// It holds when any of these facts is present…
    pub any: Vec<Cond>,
    /// …and none of these (a head CT already named lifts the lumbar-puncture rule)…
    pub unless: Vec<Cond>,
    /// …and the dictation does not say this (「MRI対応」).
    pub unless_text: Vec<String>,
    /// Text that shows the physician weighed it (「前投薬」「腎臓内科と相談」): the plan is not warned about, but the
    /// test is still not suggested.
    pub notes: Vec<String>,
    pub reason: String,
    pub reference: String,
    pub example: String,
    pub counter_example: Option<String>,
}

/// Does `text` contain `w`, as a whole word when `w` is ASCII (「LP」 is not inside 「ALP」)?
pub fn mentions(text: &str, w: &str) -> bool {
    text.match_indices(w).any(|(i, _)| {
        if !w.is_ascii() {
            return true;
        }
        let before = text[..i].chars().next_back();
        let after = text[i + w.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphabetic())
    })
}

impl Contraindication {
    /// The facts that make it hold in this dictation, or `None`.
    pub fn holds<'a>(&self, facts: &'a [Fact], text: &str) -> Option<Vec<&'a Fact>> {
        let m: Vec<&Fact> = self.any.iter().flat_map(|c| c.matches(facts)).collect();
        if m.is_empty()
            || self.unless.iter().any(|c| !c.matches(facts).is_empty())
            || self.unless_text.iter().any(|t| text.contains(t.as_str()))
        {
            return None;
        }
        Some(m)
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub category: String,
    pub all: Vec<Cond>,
    pub any: Vec<Cond>,
    pub none: Vec<Cond>,
    pub tests: Vec<String>,
    pub reason: String,
    pub reference: String,
    pub example: String,
    pub counter_example: Option<String>,
}

impl Rule {
    /// The spans of the facts that make this rule fire, or `None` if it does not.
    pub fn fire(&self, facts: &[Fact]) -> Option<Vec<Span>> {
        let mut spans = Vec::new();
        for c in &self.all {
            let m = c.matches(facts);
            if m.is_empty() {
                return None;
            }
            spans.extend(m.iter().map(|f| f.span));
        }
        if !self.any.is_empty() {
            let m: Vec<&Fact> = self.any.iter().flat_map(|c| c.matches(facts)).collect();
            if m.is_empty() {
                return None;
            }
            spans.extend(m.iter().map(|f| f.span));
        }
        if self.none.iter().any(|c| !c.matches(facts).is_empty()) {
            return None;
        }
        spans.sort();
        spans.dedup();
        Some(spans)
    }
}

#[derive(Debug, Clone)]
pub struct RuleBase {
    pub version: String,
    pub rules: Vec<Rule>,
    pub contraindications: Vec<Contraindication>,
}

impl RuleBase {
    pub fn parse(src: &str) -> Result<RuleBase, String> {
        let raw: RawBase = toml::from_str(src).map_err(|e| e.to_string())?;
        let conds = |v: &[String]| {
            v.iter()
                .map(|s| Cond::parse(s))
                .collect::<Result<Vec<_>, _>>()
        };
        let rules = raw
            .rule
            .into_iter()
            .map(|r| {
                Ok(Rule {
                    all: conds(&r.all).map_err(|e| format!("{}: {e}", r.id))?,
                    any: conds(&r.any).map_err(|e| format!("{}: {e}", r.id))?,
                    none: conds(&r.none).map_err(|e| format!("{}: {e}", r.id))?,
                    id: r.id,
                    category: r.category,
                    tests: r.tests,
                    reason: r.reason,
                    reference: r.reference,
                    example: r.example,
                    counter_example: r.counter_example,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let contraindications = raw
            .contraindication
            .into_iter()
            .map(|c| {
                Ok(Contraindication {
                    any: conds(&c.any).map_err(|e| format!("{}: {e}", c.id))?,
                    unless: conds(&c.unless).map_err(|e| format!("{}: {e}", c.id))?,
                    id: c.id,
                    tests: c.tests,
                    mentions: c.mentions,
                    unless_text: c.unless_text,
                    notes: c.notes,
                    reason: c.reason,
                    reference: c.reference,
                    example: c.example,
                    counter_example: c.counter_example,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(RuleBase {
            version: raw.version,
            rules,
            contraindications,
        })
    }

    /// The rule base compiled into the binary: what a signed note was checked against must be reproducible.
    pub fn embedded() -> &'static RuleBase {
        static RB: LazyLock<RuleBase> = LazyLock::new(|| {
            RuleBase::parse(include_str!("../../../assets/rules/suggestions.toml"))
                .unwrap_or_else(|e| panic!("assets/rules/suggestions.toml is invalid: {e}"))
        });
        &RB
    }

    /// Ids of the rules that fire on `facts`, in rule-base order.
    pub fn fired(&self, facts: &[Fact]) -> Vec<&str> {
        self.rules
            .iter()
            .filter(|r| r.fire(facts).is_some())
            .map(|r| r.id.as_str())
            .collect()
    }

    /// One suggestion per test, from the first rule that proposes it; tests the dictation already names are skipped.
    /// Without the dictation's text no contraindication that depends on it can be lifted, so this is
    /// [`RuleBase::review`] over an empty text and no plan.
    pub fn suggest(&self, facts: &[Fact]) -> Vec<Suggestion> {
        self.review(facts, "", &[]).0
    }

    /// Suggestions, and warnings for contraindicated orders: a test that a contraindication holding in this
    /// dictation withholds is never suggested, and each planned clause (`plan`) that names such a test raises a
    /// `contraindication` flag unless the dictation records that the physician weighed it (the rule's `notes`).
    pub fn review(
        &self,
        facts: &[Fact],
        text: &str,
        plan: &[&str],
    ) -> (Vec<Suggestion>, Vec<Flag>) {
        let named = |t: &str| {
            facts.iter().any(|f| {
                !f.negated && matches!(f.kind, FactKind::Test | FactKind::Lab) && f.name == t
            })
        };
        let holding: Vec<&Contraindication> = self
            .contraindications
            .iter()
            .filter(|c| c.holds(facts, text).is_some())
            .collect();
        let withheld = |t: &str| holding.iter().any(|c| c.tests.iter().any(|x| x == t));
        let mut out: Vec<Suggestion> = Vec::new();
        for r in &self.rules {
            let Some(spans) = r.fire(facts) else { continue };
            for t in &r.tests {
                if named(t) || withheld(t) || out.iter().any(|s| &s.test == t) {
                    continue;
                }
                out.push(Suggestion {
                    test: t.clone(),
                    reason: r.reason.clone(),
                    rule: format!("{}@{}", r.id, self.version),
                    reference: r.reference.clone(),
                    spans: spans.clone(),
                });
            }
        }
        let mut flags = Vec::new();
        for c in holding {
            let planned = plan
                .iter()
                .any(|p| c.mentions.iter().any(|m| mentions(p, m)));
            let weighed = c.notes.iter().any(|n| text.contains(n.as_str()));
            if planned && !weighed {
                flags.push(Flag::new(
                    CONTRAINDICATION_FLAG,
                    c.reason.clone(),
                    Some(format!(
                        "{}@{}: {}（{}）",
                        c.id,
                        self.version,
                        c.tests.join("・"),
                        c.reference
                    )),
                ));
            }
        }
        (out, flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse() {
        let c = Cond::parse("vital:体温>=38.0").unwrap();
        assert_eq!(
            (c.kind.as_str(), c.name.as_str(), c.op.clone()),
            ("vital", "体温", Some((Op::Ge, "38.0".into())))
        );
        assert_eq!(
            Cond::parse("demographic:性別=女性").unwrap().op,
            Some((Op::Eq, "女性".into()))
        );
        assert!(Cond::parse("blood:Hb<8").is_err());
        assert!(Cond::parse("lab:Hb<low").is_err());
        assert!(Cond::parse("nocolon").is_err());
    }
}
