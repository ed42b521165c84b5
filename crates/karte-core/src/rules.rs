//! The versioned rule base of test suggestions (assets/rules/suggestions.toml) and its evaluation over facts.

use crate::types::{Fact, FactKind, Span, Suggestion};
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

#[derive(Debug, Deserialize)]
struct RawBase {
    version: String,
    rule: Vec<RawRule>,
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
        Ok(RuleBase {
            version: raw.version,
            rules,
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
    pub fn suggest(&self, facts: &[Fact]) -> Vec<Suggestion> {
        let named = |t: &str| {
            facts.iter().any(|f| {
                !f.negated && matches!(f.kind, FactKind::Test | FactKind::Lab) && f.name == t
            })
        };
        let mut out: Vec<Suggestion> = Vec::new();
        for r in &self.rules {
            let Some(spans) = r.fire(facts) else { continue };
            for t in &r.tests {
                if named(t) || out.iter().any(|s| &s.test == t) {
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
        out
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
