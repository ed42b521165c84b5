//! The model's part of drafting, kept pure: what to ask (prompt + JSON schema) and how to take the answer back
//! (citations → spans, grounding flags, nothing from the floor lost). The engine that runs the model is elsewhere.

use crate::grounding::Grounding;
use crate::types::{Flag, Section, Sentence, SoapSections, Span};
use serde::Deserialize;
use serde_json::json;

pub const SYSTEM_PROMPT: &str = include_str!("../../../assets/prompts/draft_system.txt");

/// A numbered source item: one floor sentence with its section and spans.
#[derive(Debug, Clone)]
pub struct Item {
    pub section: Section,
    pub text: String,
    pub spans: Vec<Span>,
}

pub struct Prompt {
    pub system: String,
    pub user: String,
    pub schema: serde_json::Value,
    pub items: Vec<Item>,
}

/// The schema the engine's grammar enforces, so the answer always parses.
pub fn schema() -> serde_json::Value {
    let sentences = json!({
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "text": {"type": "string"},
                "facts": {"type": "array", "items": {"type": "integer"}}
            },
            "required": ["text", "facts"]
        }
    });
    json!({
        "type": "object",
        "properties": {
            "subjective": sentences, "objective": sentences, "assessment": sentences, "plan": sentences
        },
        "required": ["subjective", "objective", "assessment", "plan"]
    })
}

/// The dictation goes in only as numbered data between <source> tags; the instructions are all in the system prompt,
/// so text inside the dictation that reads like an instruction stays data.
pub fn build(floor: &SoapSections) -> Prompt {
    let items: Vec<Item> = floor
        .iter()
        .map(|(section, s)| Item {
            section,
            text: s.text.clone(),
            spans: s.spans.clone(),
        })
        .collect();
    let mut user = String::from("<source>\n");
    for (i, it) in items.iter().enumerate() {
        let tag = match it.section {
            Section::Subjective => "S",
            Section::Objective => "O",
            Section::Assessment => "A",
            Section::Plan => "P",
        };
        // Angle brackets inside the data must not be able to close the delimiter.
        let text = it.text.replace('<', "＜").replace('>', "＞");
        user.push_str(&format!("[{}] {tag}: {text}\n", i + 1));
    }
    user.push_str(
        "</source>\n上の項目だけを使って、SOAP の各セクションの文を JSON で書いてください。",
    );
    Prompt {
        system: SYSTEM_PROMPT.to_string(),
        user,
        schema: schema(),
        items,
    }
}

#[derive(Deserialize)]
struct ModelSentence {
    text: String,
    #[serde(default)]
    facts: Vec<i64>,
}

#[derive(Deserialize)]
struct ModelDraft {
    #[serde(default)]
    subjective: Vec<ModelSentence>,
    #[serde(default)]
    objective: Vec<ModelSentence>,
    #[serde(default)]
    assessment: Vec<ModelSentence>,
    #[serde(default)]
    plan: Vec<ModelSentence>,
}

/// Turn the model's JSON into sections. Each sentence gets the spans of the items it cites and the grounding flags
/// of its text; an item the model never cited is kept in the physician's words, so the model can rephrase but
/// never drop a fact.
pub fn merge(prompt: &Prompt, model_json: &str, g: &Grounding) -> Result<SoapSections, String> {
    let d: ModelDraft =
        serde_json::from_str(model_json).map_err(|e| format!("JSON を解釈できません: {e}"))?;
    let mut out = SoapSections::default();
    let mut cited = vec![false; prompt.items.len()];
    for (sec, list) in [
        (Section::Subjective, d.subjective),
        (Section::Objective, d.objective),
        (Section::Assessment, d.assessment),
        (Section::Plan, d.plan),
    ] {
        for ms in list {
            let text = ms.text.trim().to_string();
            if text.is_empty() {
                continue;
            }
            let mut spans = Vec::new();
            for id in ms.facts {
                if id >= 1 && (id as usize) <= prompt.items.len() {
                    let k = id as usize - 1;
                    cited[k] = true;
                    spans.extend(prompt.items[k].spans.iter().copied());
                }
            }
            spans.sort();
            spans.dedup();
            let mut flags = g.check(&text);
            if spans.is_empty() {
                flags.push(Flag::new(
                    "no_source",
                    "根拠となる口述箇所が示されていません。内容を確認してください。",
                    None,
                ));
            }
            out.get_mut(sec).push(Sentence { text, spans, flags });
        }
    }
    for (k, it) in prompt.items.iter().enumerate() {
        if !cited[k] {
            out.get_mut(it.section).push(Sentence {
                text: it.text.clone(),
                spans: it.spans.clone(),
                flags: g.check(&it.text),
            });
        }
    }
    Ok(out)
}
