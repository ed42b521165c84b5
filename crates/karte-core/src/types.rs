//! Domain types shared by the pipeline, the engine glue, the CLI and the UI.
//!
//! Offsets are always character (Unicode scalar) offsets into the *original* input, never byte offsets and never
//! offsets into normalised text: the UI highlights the physician's own words, and the JSON contract says so.

use crate::document::{Document, Sections, DEFAULT_KIND};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Half-open character range `[start, end)` into the original input. Serialised as `[start, end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(from = "[usize; 2]", into = "[usize; 2]")]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        debug_assert!(start <= end);
        Self { start, end }
    }
    pub fn len(&self) -> usize {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
    pub fn contains(&self, other: Span) -> bool {
        self.start <= other.start && other.end <= self.end
    }
    /// The covered part of `text` (which must be the original input).
    pub fn slice<'a>(&self, text: &'a str) -> &'a str {
        let mut it = text
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(text.len()));
        let b0 = it.nth(self.start).unwrap_or(text.len());
        let b1 = if self.end == self.start {
            b0
        } else {
            it.nth(self.end - self.start - 1).unwrap_or(text.len())
        };
        &text[b0..b1]
    }
}

impl From<[usize; 2]> for Span {
    fn from(a: [usize; 2]) -> Self {
        Span {
            start: a[0],
            end: a[1],
        }
    }
}
impl From<Span> for [usize; 2] {
    fn from(s: Span) -> Self {
        [s.start, s.end]
    }
}

/// What kind of clinical fact was extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactKind {
    /// Age and sex, e.g. 65歳男性.
    Demographic,
    Vital,
    Lab,
    Symptom,
    Exam,
    Drug,
    Diagnosis,
    /// A past illness (既往歴).
    History,
    /// A test or imaging named in the dictation, done or planned (so it is not suggested again).
    Test,
    /// A planned action: the text of a clause in the P section.
    Plan,
    /// A calendar date (西暦 or 和暦), value in ISO 8601.
    Date,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Certainty {
    Suspected,
    Confirmed,
}

/// One clinical fact, grounded in a span of the dictation.
///
/// `name` is canonical (体温, SpO2, CRP, 発熱, セフトリアキソン, 市中肺炎) so that rules and tests match on it whatever
/// synonym or width the physician used; `value` keeps the number as written after width folding (no rounding), so
/// that grounding compares like with like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    pub kind: FactKind,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Further qualifiers: onset (3日前から), route (点滴静注), frequency (1日1回), laterality (右), site (下肺野).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, String>,
    /// 「咳嗽なし」: the finding is explicitly absent. Rules never fire on negated facts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certainty: Option<Certainty>,
    pub span: Span,
}

impl Fact {
    pub fn new(kind: FactKind, name: impl Into<String>, span: Span) -> Self {
        Fact {
            kind,
            name: name.into(),
            value: None,
            unit: None,
            attrs: BTreeMap::new(),
            negated: false,
            certainty: None,
            span,
        }
    }
    /// The numeric value, when there is one: for BP the systolic, for JCS II-10 the 10, for GCS E2V3M5 the total.
    pub fn number(&self) -> Option<f64> {
        let v = self.value.as_deref()?.trim();
        if let Some(rest) = v.strip_prefix('E') {
            // GCS components: E<n>V<n|T>M<n>; an intubated V (T) scores 1.
            let digits: Vec<f64> = rest
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == 'T')
                .map(|c| c.to_digit(10).map_or(1.0, f64::from))
                .collect();
            return (digits.len() == 3).then(|| digits.iter().sum());
        }
        if v.starts_with('I') {
            return v.rsplit('-').next()?.parse().ok();
        }
        // 「160/90」, or spoken 「160の90」.
        v.split(['/', 'の']).next()?.trim().parse().ok()
    }
}

/// A flag raised on a sentence or on the whole draft. `code` is stable; `message` is Japanese and free of personal
/// data beyond what the sentence itself already shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    pub code: String,
    pub message: String,
    /// The offending text, e.g. the number that the dictation does not contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Flag {
    pub fn new(code: &str, message: impl Into<String>, detail: Option<String>) -> Self {
        Flag {
            code: code.to_string(),
            message: message.into(),
            detail,
        }
    }
}

/// One sentence of the draft with the dictation spans it rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sentence {
    pub text: String,
    pub spans: Vec<Span>,
    #[serde(default)]
    pub flags: Vec<Flag>,
    /// Who wrote the words. The guard removes a harmful sentence only when the model wrote it, and a model that
    /// copies the physician's sentence word for word must not inherit that protection, so this is recorded where
    /// the sentence is made rather than found later by comparing texts.
    #[serde(default)]
    pub origin: Origin,
    /// The problem (「#1 市中肺炎」) the physician wrote this sentence under, in a problem-oriented note: the grouping
    /// a physician reads the note by. Absent (and left out of JSON) otherwise, so other drafts keep their shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// A document made from signed notes (退院時サマリー, 診療情報提供書): the note versions and the spans of
    /// their signed text (or what the physician typed) that the sentence rests on. Empty for a dictated note, whose
    /// `spans` point into its dictation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceRef>,
}

/// Where a sentence of a document made from notes comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceRef {
    /// `<encounter>@<version>` of a signed note, or `input:<name>` for a field the physician typed.
    pub version: String,
    /// Character range in that version's signed text (or in the typed value).
    pub span: Span,
}

/// Who wrote a draft sentence's words.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The physician's dictation (after width folding): the floor draft, and items the model did not rephrase.
    /// The default, because records stored before the field existed hold mostly floor sentences, and treating a
    /// sentence as the physician's only ever flags it instead of removing it.
    #[default]
    Dictation,
    /// Phrased by the model.
    Model,
}

/// A suggested test (検査提案).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    pub test: String,
    pub reason: String,
    /// `rule-id@rulebase-version`, so a reviewer can find exactly which rule fired.
    pub rule: String,
    /// Guideline or textbook the rule rests on.
    pub reference: String,
    /// The dictation spans of the facts that made the rule fire.
    pub spans: Vec<Span>,
}

/// Which engine produced the draft (shown in the window and in JSON output). Serialised with the token counts and
/// rates at its top level as well (`prompt_tokens`, `generated_tokens`, `prompt_tokens_per_s`, `tokens_per_s`, as
/// `karte draft --format json` has always given them; derived from `stats`, ignored when read back).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct EngineInfo {
    /// `rules` for the deterministic floor, `local` for a model on this workstation, `remote` for a server's.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The generation's numbers as its engine reported them, when a model ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<crate::GenStats>,
    /// Why the model's phrasing was not used, when it was not (the floor draft was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
}

impl Serialize for EngineInfo {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("kind", &self.kind)?;
        if let Some(model) = &self.model {
            m.serialize_entry("model", model)?;
        }
        if let Some(st) = &self.stats {
            m.serialize_entry("prompt_tokens", &st.prompt_tokens)?;
            m.serialize_entry("generated_tokens", &st.generated_tokens)?;
            if let Some(r) = st.prompt_tokens_per_s() {
                m.serialize_entry("prompt_tokens_per_s", &r)?;
            }
            if let Some(r) = st.tokens_per_s() {
                m.serialize_entry("tokens_per_s", &r)?;
            }
            m.serialize_entry("stats", st)?;
        }
        if let Some(r) = &self.fallback_reason {
            m.serialize_entry("fallback_reason", r)?;
        }
        m.end()
    }
}

/// The complete result of `karte draft`, the Tauri `draft` command and (later) the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DraftOutput {
    /// The document kind (`assets/documents/<kind>.toml`); drafts stored before kinds existed are progress notes.
    #[serde(default = "default_kind_id")]
    pub kind: String,
    pub sections: Sections,
    /// The typed inputs of a kind drafted from notes; see [`crate::Document::inputs`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    pub suggestions: Vec<Suggestion>,
    pub flags: Vec<Flag>,
    pub facts: Vec<Fact>,
    pub engine: EngineInfo,
    pub timings_ms: BTreeMap<String, u64>,
}

fn default_kind_id() -> String {
    DEFAULT_KIND.to_string()
}

impl DraftOutput {
    /// The draft as a document: what a version stores and a signature uploads.
    pub fn document(&self) -> Document {
        Document {
            kind: self.kind.clone(),
            sections: self.sections.clone(),
            inputs: self.inputs.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EngineKind, GenStats};

    #[test]
    fn a_sentence_without_a_problem_keeps_its_json_shape() {
        let mut s = Sentence {
            text: "発熱あり。".into(),
            spans: vec![Span::new(0, 4)],
            flags: vec![],
            origin: Origin::Dictation,
            problem: None,
            sources: Vec::new(),
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"text": "発熱あり。", "spans": [[0, 4]], "flags": [], "origin": "dictation"})
        );
        s.problem = Some("#1 市中肺炎".into());
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["problem"], "#1 市中肺炎");
        let back: Sentence = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn engine_json_keeps_its_top_level_numbers_beside_the_full_stats() {
        let mut st = GenStats::new("qwen2.5-coder-0.5b", EngineKind::LocalWorker);
        st.prompt_tokens = 400;
        st.generated_tokens = 201;
        st.prompt_ms = Some(2000.0);
        st.generate_ms = Some(10_000.0);
        st.total_ms = 12_500.0;
        let info = EngineInfo {
            kind: "local".into(),
            model: Some(st.model.clone()),
            stats: Some(st),
            fallback_reason: None,
        };
        let v = serde_json::to_value(&info).unwrap();
        assert_eq!(v["kind"], "local");
        assert_eq!(v["prompt_tokens"], 400);
        assert_eq!(v["generated_tokens"], 201);
        assert_eq!(v["prompt_tokens_per_s"], 200.0);
        assert_eq!(v["tokens_per_s"], 20.1);
        assert_eq!(v["stats"]["total_ms"], 12_500.0);
        let back: EngineInfo = serde_json::from_value(v).unwrap();
        assert_eq!(back, info);
        let rules = serde_json::to_value(EngineInfo {
            kind: "rules".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(rules, serde_json::json!({"kind": "rules"}));
    }
}
