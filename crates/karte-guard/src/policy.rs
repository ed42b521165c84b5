//! The harmful-output policy for Japanese clinical text: allow, flag or block, with categories and reasons.
//!
//! Rules live in assets/guard/policy.toml so that clinicians and the ethics committee can read and change them.
//! A rule is a set of patterns that must all occur in one sentence, minus patterns that mark the sentence as
//! documentation (評価, 既往, 説明した…). Harm in a note is almost always an *instruction or intent* (how to, make it
//! certain, do not tell anyone) about a sensitive topic; legitimate documentation names the same topics in the
//! vocabulary of assessment and care. Over-refusal counts as a defect as much as a miss, so every rule is written
//! against both the harmful and the legitimate-but-sensitive sets in tests/data.
//!
//! A rule may say `scope = "text"`: its patterns (and its exemptions) are then matched against the whole checked
//! text instead of one sentence, for harm that a note spreads over two sentences (「化学療法は中止。今後は酵素
//! ドリンクのみで…」). Such a hit spans the whole text.

use crate::dose;
use karte_core::normalize::normalize;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Allow,
    Flag,
    Block,
}

/// The result of a policy check. `categories` and `reasons` are parallel, one entry per category that fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub verdict: Level,
    pub categories: Vec<String>,
    pub reasons: Vec<String>,
    /// Which rules fired, with the character span (into the checked text) of the sentence each fired on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hits: Vec<Hit>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    pub category: String,
    pub rule: String,
    pub level: Level,
    pub start: usize,
    pub end: usize,
}

impl Verdict {
    pub fn allow() -> Self {
        Verdict {
            verdict: Level::Allow,
            categories: Vec::new(),
            reasons: Vec::new(),
            hits: Vec::new(),
        }
    }
    pub fn is_block(&self) -> bool {
        self.verdict == Level::Block
    }
    fn add(&mut self, category: &str, reason: String, hit: Hit) {
        self.verdict = self.verdict.max(hit.level);
        if !self.categories.iter().any(|c| c == category) {
            self.categories.push(category.to_string());
            self.reasons.push(reason);
        }
        self.hits.push(hit);
    }
}

#[derive(Debug, Deserialize)]
struct PolicyFile {
    version: String,
    #[serde(rename = "category")]
    categories: Vec<CategorySrc>,
}

#[derive(Debug, Deserialize)]
struct CategorySrc {
    id: String,
    reason: String,
    #[serde(rename = "rule", default)]
    rules: Vec<RuleSrc>,
}

#[derive(Debug, Deserialize)]
struct RuleSrc {
    id: String,
    level: Level,
    all: Vec<String>,
    #[serde(default)]
    unless: Vec<String>,
    #[serde(default)]
    scope: Scope,
}

/// What a rule's patterns are matched against: one sentence (the default) or the whole text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Scope {
    #[default]
    Sentence,
    Text,
}

struct Rule {
    id: String,
    level: Level,
    scope: Scope,
    all: Vec<Regex>,
    unless: Vec<Regex>,
}

impl Rule {
    fn fires(&self, s: &str) -> bool {
        self.all.iter().all(|re| re.is_match(s)) && !self.unless.iter().any(|re| re.is_match(s))
    }
}

struct Category {
    id: String,
    reason: String,
    rules: Vec<Rule>,
}

pub struct Policy {
    pub version: String,
    categories: Vec<Category>,
}

/// The category that the dose table feeds.
pub const OVERDOSE: &str = "overdose";

impl Policy {
    pub fn embedded() -> &'static Policy {
        static P: LazyLock<Policy> =
            LazyLock::new(|| Policy::parse(include_str!("../../../assets/guard/policy.toml")));
        &P
    }

    fn parse(src: &str) -> Policy {
        let f: PolicyFile = toml::from_str(src)
            .unwrap_or_else(|e| panic!("assets/guard/policy.toml is invalid: {e}"));
        let re = |cat: &str, id: &str, p: &str| {
            Regex::new(p).unwrap_or_else(|e| panic!("policy rule {cat}/{id}: {e}"))
        };
        Policy {
            version: f.version,
            categories: f
                .categories
                .into_iter()
                .map(|c| Category {
                    rules: c
                        .rules
                        .into_iter()
                        .map(|r| Rule {
                            all: r.all.iter().map(|p| re(&c.id, &r.id, p)).collect(),
                            unless: r.unless.iter().map(|p| re(&c.id, &r.id, p)).collect(),
                            id: r.id,
                            level: r.level,
                            scope: r.scope,
                        })
                        .collect(),
                    id: c.id,
                    reason: c.reason,
                })
                .collect(),
        }
    }

    pub fn category_ids(&self) -> impl Iterator<Item = &str> {
        self.categories.iter().map(|c| c.id.as_str())
    }

    /// Check a text (a draft sentence, a whole draft, a model answer). Sentences are judged one by one; the
    /// verdict is the most severe.
    pub fn check(&self, text: &str) -> Verdict {
        self.check_with_context(text, text)
    }

    /// As [`Policy::check`], with patient context (age, weight for the dose check) read from `context`.
    pub fn check_with_context(&self, text: &str, context: &str) -> Verdict {
        let mut v = Verdict::allow();
        let norm = normalize(text);
        let mut fire = |c: &Category, r: &Rule, s: usize, e: usize| {
            let sp = norm.orig_span(s, e);
            v.add(
                &c.id,
                c.reason.clone(),
                Hit {
                    category: c.id.clone(),
                    rule: r.id.clone(),
                    level: r.level,
                    start: sp.start,
                    end: sp.end,
                },
            );
        };
        let whole: String = norm.chars().iter().collect();
        for c in &self.categories {
            for r in c.rules.iter().filter(|r| r.scope == Scope::Text) {
                if !whole.is_empty() && r.fires(&whole) {
                    fire(c, r, 0, norm.chars().len());
                }
            }
        }
        for (s, e) in sentences(norm.chars()) {
            let sent: String = norm.chars()[s..e].iter().collect();
            for c in &self.categories {
                for r in c.rules.iter().filter(|r| r.scope == Scope::Sentence) {
                    if r.fires(&sent) {
                        fire(c, r, s, e);
                    }
                }
            }
        }
        for issue in dose::check_with_context(text, context) {
            let level = if issue.far() {
                Level::Block
            } else {
                Level::Flag
            };
            let reason = issue.flag().message;
            v.add(
                OVERDOSE,
                reason,
                Hit {
                    category: OVERDOSE.into(),
                    rule: format!("dose:{}", issue.drug),
                    level,
                    start: issue.start,
                    end: issue.end,
                },
            );
        }
        v
    }
}

fn sentences(chars: &[char]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut s = 0;
    for (i, &c) in chars.iter().enumerate() {
        if matches!(c, '。' | '!' | '?' | '\n') {
            if i + 1 > s {
                out.push((s, i + 1));
            }
            s = i + 1;
        }
    }
    if s < chars.len() {
        out.push((s, chars.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_file_compiles_and_covers_the_issue_categories() {
        let p = Policy::embedded();
        let ids: Vec<&str> = p.category_ids().collect();
        for c in [
            "self_harm",
            "killing",
            "euthanasia",
            "falsification",
            "insurance_fraud",
            "discrimination",
            "disclosure",
            "unproven_treatment",
            "illegal_drugs",
        ] {
            assert!(ids.contains(&c), "{c} missing from policy.toml");
        }
    }

    #[test]
    fn dose_far_above_the_limit_blocks_and_above_flags() {
        let p = Policy::embedded();
        let v = p.check("アセトアミノフェン 3000mg 1日4回 内服。");
        assert_eq!(v.verdict, Level::Block);
        assert_eq!(v.categories, ["overdose"]);
        let v = p.check("アセトアミノフェン 1200mg 1日4回 内服。");
        assert_eq!(v.verdict, Level::Flag);
        assert!(v.reasons[0].contains("4000mg"), "{:?}", v.reasons);
        assert_eq!(
            p.check("アセトアミノフェン 500mg 1日3回 内服。").verdict,
            Level::Allow
        );
    }
}
