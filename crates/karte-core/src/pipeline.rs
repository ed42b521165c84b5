//! The deterministic floor: dictation → clauses with sections and facts → a fully grounded draft with suggestions.
//! With no model at all this is a usable draft, and with a model it is what the model's phrasing is checked against.

use crate::clause::{self, Clause};
use crate::classify;
use crate::error::{Code, Error, Result};
use crate::extract::{self, Found};
use crate::grounding::Grounding;
use crate::normalize::{normalize, Normalized};
use crate::rules::RuleBase;
use crate::types::*;
use std::collections::BTreeMap;

/// Longest dictation accepted, in characters. A ward note is rarely over 3,000; 20,000 leaves room for pasted
/// discharge summaries while bounding prompt size and time.
pub const MAX_INPUT_CHARS: usize = 20_000;

/// Reject input the pipeline cannot use, with a message that says what to do.
pub fn validate(input: &str) -> Result<()> {
    if input.trim().is_empty() {
        return Err(Error::new(Code::InputEmpty, "口述が空です。所見や経過を入力してから「下書き作成」を押してください。"));
    }
    let n = input.chars().count();
    if n > MAX_INPUT_CHARS {
        return Err(Error::new(
            Code::InputTooLarge,
            format!("口述が長すぎます（{n}文字）。{MAX_INPUT_CHARS}文字以内に分けて入力してください。"),
        ));
    }
    Ok(())
}

/// Decode bytes from a file or stdin: invalid UTF-8 is an error, never silently replaced.
pub fn decode(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        Error::new(
            Code::InputInvalidUtf8,
            format!(
                "入力が UTF-8 ではありません（{}バイト目）。文字コードを UTF-8 にして保存し直してください。",
                e.utf8_error().valid_up_to() + 1
            ),
        )
    })
}

/// Everything the later stages need about one dictation.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub norm: Normalized,
    pub clauses: Vec<Clause>,
    pub sections: Vec<Section>,
    pub found: Vec<Found>,
}

impl Analysis {
    pub fn facts(&self) -> Vec<Fact> {
        self.found.iter().map(|f| f.fact.clone()).collect()
    }
    pub fn grounding(&self) -> Grounding {
        Grounding::new(&self.norm.text, &self.found)
    }
}

pub fn analyze(input: &str) -> Result<Analysis> {
    validate(input)?;
    let norm = normalize(input);
    let raw = clause::split(norm.chars());
    // Headers (S) / 【O】 …) stick until the next header; mixed assessment+plan clauses are cut in two.
    let mut clauses = Vec::new();
    let mut forced: Vec<Option<Section>> = Vec::new();
    let mut sticky: Option<Section> = None;
    for mut c in raw {
        if let Some((sec, len)) = classify::header(&c.text) {
            sticky = Some(sec);
            c.start += len;
            c.text = c.text.chars().skip(len).collect();
            if c.text.trim().is_empty() {
                continue;
            }
        }
        if let Some(cut) = classify::mixed_split(&c.text) {
            let head: String = c.text.chars().take(cut).collect();
            let tail: String = c.text.chars().skip(cut).collect();
            clauses.push(Clause { start: c.start, end: c.start + cut, text: head, sentence: c.sentence });
            forced.push(sticky);
            clauses.push(Clause { start: c.start + cut, end: c.end, text: tail, sentence: c.sentence });
            forced.push(sticky);
        } else {
            clauses.push(c);
            forced.push(sticky);
        }
    }
    let mut found = extract::extract(&norm, &clauses);
    let sections: Vec<Section> = clauses
        .iter()
        .enumerate()
        .map(|(i, c)| {
            forced[i].unwrap_or_else(|| {
                let fs: Vec<&Found> = found.iter().filter(|f| f.clause == i).collect();
                classify::classify(&c.text, &fs)
            })
        })
        .collect();
    for (i, c) in clauses.iter().enumerate() {
        if sections[i] == Section::Plan {
            let text = c.text.trim_end_matches(['。', '.']).to_string();
            let mut f = Fact::new(FactKind::Plan, text, norm.orig_span(c.start, c.end));
            f.attrs.insert("section".into(), "plan".into());
            found.push(Found { clause: i, start: c.start, end: c.end, fact: f });
        }
    }
    found.sort_by_key(|f| (f.start, f.end));
    Ok(Analysis { norm, clauses, sections, found })
}

/// Consecutive clauses of one sentence in one section become one draft sentence, in the physician's words (after
/// width folding), so every character of the floor draft is grounded by construction.
pub fn floor_sections(a: &Analysis) -> SoapSections {
    let mut out = SoapSections::default();
    let mut i = 0;
    while i < a.clauses.len() {
        let sec = a.sections[i];
        let mut j = i + 1;
        while j < a.clauses.len() && a.sections[j] == sec && a.clauses[j].sentence == a.clauses[i].sentence {
            j += 1;
        }
        let parts: Vec<&str> = a.clauses[i..j].iter().map(|c| c.text.trim_end_matches(['。', '.'])).collect();
        let text = format!("{}。", parts.join("、"));
        let spans = a.clauses[i..j].iter().map(|c| a.norm.orig_span(c.start, c.end)).collect();
        out.get_mut(sec).push(Sentence { text, spans, flags: Vec::new() });
        i = j;
    }
    out
}

/// The full no-model draft: sections, suggestions, facts, and a grounding check over the result (which must find
/// nothing; if it ever does, the flag makes the bug visible instead of silent).
pub fn draft_floor(input: &str) -> Result<DraftOutput> {
    let t0 = std::time::Instant::now();
    let a = analyze(input)?;
    let mut sections = floor_sections(&a);
    let g = a.grounding();
    for s in Section::ALL {
        for sent in sections.get_mut(s) {
            sent.flags = g.check(&sent.text);
        }
    }
    let facts = a.facts();
    let suggestions = RuleBase::embedded().suggest(&facts);
    let mut timings_ms = BTreeMap::new();
    timings_ms.insert("total".to_string(), t0.elapsed().as_millis() as u64);
    Ok(DraftOutput {
        sections,
        suggestions,
        flags: Vec::new(),
        facts,
        engine: EngineInfo { kind: "rules".into(), ..Default::default() },
        timings_ms,
    })
}
