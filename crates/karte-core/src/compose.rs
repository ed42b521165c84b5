//! Documents made from a patient's signed notes (退院時サマリー, 診療情報提供書): the floor draft.
//!
//! The promise is the progress note's: nothing in the draft that the sources lack. Here the floor is built by
//! picking whole sentences of the signed notes into the kind's sections (the kind file's `from` rules), so every
//! sentence is a physician's signed words and cites the note version and the span of the signed text it came from;
//! what the physician typed for this document (入院日, 紹介目的) is a source too. A model may later phrase and
//! condense these sentences; the sources and the grounding check made here are what it is held to.

use crate::clinical_date::ClinicalDate;
use crate::document::{
    kind as kind_of, Document, DocumentKind, Pick, Role, Sections, SourceKind, Which,
};
use crate::error::{Code, Error, Result};
use crate::extract::extract_sentence;
use crate::grounding::Grounding;
use crate::normalize::normalize;
use crate::types::{DraftOutput, EngineInfo, FactKind, Flag, Origin, Sentence, SourceRef, Span};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// One signed note: the latest signed version of an encounter.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceNote {
    /// `<encounter>@<version>`: what a sentence cites.
    pub id: String,
    /// The day the note describes, `YYYY-MM-DD`.
    pub date: String,
    pub document: Document,
    /// The text as signed, which spans point into: the document's rendering, except for a version written before
    /// documents were structured, whose text keeps the physician's own layout.
    pub text: String,
}

impl SourceNote {
    /// A note whose signed text is its document's rendering.
    pub fn rendered(id: String, date: String, document: Document) -> SourceNote {
        let text = document.render();
        SourceNote {
            id,
            date,
            document,
            text,
        }
    }

    /// Each sentence's span in the signed text, per section. A text in the physician's own layout is searched
    /// sentence by sentence, in order; a sentence not found there (never expected) gets an empty span at the
    /// end, which the window shows as no span rather than a wrong one.
    fn spans(&self) -> Vec<Vec<Span>> {
        let (rendered, spans) = self.document.render_with_spans();
        if rendered == self.text {
            return spans;
        }
        let chars: Vec<char> = self.text.chars().collect();
        let total = chars.len();
        let mut from = 0usize;
        self.document
            .sections
            .parts()
            .iter()
            .map(|p| {
                p.sentences
                    .iter()
                    .map(|sent| {
                        let needle: Vec<char> = sent.text.chars().collect();
                        let found = (from..(total + 1).saturating_sub(needle.len())).find(|&i| {
                            !needle.is_empty() && chars[i..i + needle.len()] == needle[..]
                        });
                        match found {
                            Some(i) => {
                                from = i + needle.len();
                                Span::new(i, from)
                            }
                            None => Span::new(total, total),
                        }
                    })
                    .collect()
            })
            .collect()
    }
}

/// The source id of a typed input.
pub fn input_source(name: &str) -> String {
    format!("input:{name}")
}

/// One sentence of a source note, with what the picks ask about it.
struct Line<'a> {
    note: usize,
    role: Option<Role>,
    text: &'a str,
    span: Span,
    facts: BTreeSet<FactKind>,
}

/// The floor draft of `kind` from `notes` (any order; read in date order) and the typed `inputs` (by the kind's
/// input names). Errors: a kind that is not drafted from notes, no notes, a required input missing.
pub fn compose(
    kind: &'static DocumentKind,
    notes: &[SourceNote],
    inputs: &BTreeMap<String, String>,
) -> Result<DraftOutput> {
    let t = Instant::now();
    check_inputs(kind, inputs)?;
    if notes.is_empty() {
        return Err(Error::new(
            Code::DocumentNoSources,
            format!(
                "{}の元になる署名済みの記録がありません。期間と患者を確かめてください。",
                kind.title
            ),
        ));
    }

    let mut notes: Vec<&SourceNote> = notes.iter().collect();
    notes.sort_by(|a, b| (&a.date, &a.id).cmp(&(&b.date, &b.id)));
    let spans: Vec<Vec<Vec<Span>>> = notes.iter().map(|n| n.spans()).collect();
    let mut lines = Vec::new();
    for (ni, note) in notes.iter().enumerate() {
        let source_kind = kind_of(&note.document.kind).ok();
        for (part, spans) in note.document.sections.parts().iter().zip(&spans[ni]) {
            // A note's section stands for one role (the progress note's S/O/A/P); a section of another kind, none.
            let role = source_kind
                .and_then(|k| k.position(&part.id))
                .and_then(|i| source_kind?.sections[i].roles.first().copied());
            for (sent, span) in part.sentences.iter().zip(spans) {
                let facts = extract_sentence(&normalize(&sent.text))
                    .into_iter()
                    .map(|f| f.fact.kind)
                    .collect();
                lines.push(Line {
                    note: ni,
                    role,
                    text: &sent.text,
                    span: *span,
                    facts,
                });
            }
        }
    }
    let grounding = groundings(notes.iter().copied(), inputs);

    // Specific picks choose first, in file order; then the generic ones. A line goes to one section unless a
    // shared pick takes it again.
    let mut order: Vec<(usize, usize)> = Vec::new();
    for specific in [true, false] {
        for (si, s) in kind.sections.iter().enumerate() {
            for (pi, p) in s.from.iter().enumerate() {
                if p.is_specific() == specific {
                    order.push((si, pi));
                }
            }
        }
    }
    let mut taken = vec![false; lines.len()];
    let mut picked: Vec<Vec<Vec<Sentence>>> = kind
        .sections
        .iter()
        .map(|s| vec![Vec::new(); s.from.len()])
        .collect();
    for (si, pi) in order {
        let p = &kind.sections[si].from[pi];
        let out = &mut picked[si][pi];
        if let Some(name) = &p.input {
            if let Some(v) = inputs.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
                let template = p.template.as_deref().unwrap_or("{}");
                out.push(sentence(
                    template.replacen("{}", v, 1),
                    SourceRef {
                        version: input_source(name),
                        span: Span::new(0, v.chars().count()),
                    },
                ));
            }
            continue;
        }
        let chosen = chosen_notes(p.notes.unwrap_or(Which::All), notes.len());
        for ni in chosen {
            let mut matched = 0usize;
            for (li, l) in lines.iter().enumerate() {
                if l.note != ni || (taken[li] && !p.shared) || !matches(p, l) {
                    continue;
                }
                matched += 1;
                if matched <= p.skip || p.take.is_some_and(|n| matched > p.skip + n) {
                    continue;
                }
                if !p.shared {
                    taken[li] = true;
                }
                let text = if p.dated {
                    format!("{} {}", date_label(&notes[ni].date), l.text)
                } else {
                    l.text.to_string()
                };
                out.push(sentence(
                    text,
                    SourceRef {
                        version: notes[ni].id.clone(),
                        span: l.span,
                    },
                ));
            }
        }
    }

    let mut sections = Sections::empty(kind);
    let mut flags = Vec::new();
    for (si, spec) in kind.sections.iter().enumerate() {
        let sents = sections.at_mut(si);
        for s in picked[si].iter_mut().flat_map(std::mem::take) {
            sents.push(s);
        }
        for s in sents.iter_mut() {
            s.flags = check(&grounding, s);
        }
        if spec.required && sents.is_empty() {
            flags.push(Flag::new(
                "section_empty",
                format!(
                    "「{}」に当たる文が署名済みの記録にありません。署名の前に書き加えてください。",
                    spec.heading
                ),
                Some(spec.id.clone()),
            ));
        }
    }
    let mut timings_ms = BTreeMap::new();
    timings_ms.insert("compose".to_string(), t.elapsed().as_millis() as u64);
    Ok(DraftOutput {
        kind: kind.id.clone(),
        sections,
        // Trimmed and without the empty optional ones, as the sentences quote them.
        inputs: inputs
            .iter()
            .map(|(n, v)| (n.clone(), v.trim().to_string()))
            .filter(|(_, v)| !v.is_empty())
            .collect(),
        suggestions: Vec::new(),
        flags,
        facts: Vec::new(),
        engine: EngineInfo {
            kind: "rules".into(),
            ..Default::default()
        },
        timings_ms,
    })
}

/// What a caller checks before reading any note: the kind is made from notes, every required input is there, and
/// no input the kind does not have was given.
pub fn check_inputs(kind: &DocumentKind, inputs: &BTreeMap<String, String>) -> Result<()> {
    if kind.sources != SourceKind::Notes {
        return Err(Error::new(
            Code::DocumentInvalid,
            format!("「{}」は口述から作成する文書です。", kind.title),
        ));
    }
    for spec in &kind.inputs {
        let given = inputs.get(&spec.name).is_some_and(|v| !v.trim().is_empty());
        if spec.required && !given {
            return Err(Error::new(
                Code::InputEmpty,
                format!("{}を入力してください。", spec.label),
            ));
        }
    }
    for spec in kind.inputs.iter().filter(|s| s.date) {
        if let Some(v) = inputs.get(&spec.name).filter(|v| !v.trim().is_empty()) {
            ClinicalDate::parse(v)
                .map_err(|e| Error::new(e.code, format!("{}: {}", spec.label, e.message)))?;
        }
    }
    if let Some(name) = inputs
        .keys()
        .find(|n| !kind.inputs.iter().any(|i| &i.name == *n))
    {
        return Err(Error::new(
            Code::DocumentInvalid,
            format!(
                "{}に「{}」という入力項目はありません。",
                kind.title,
                name.chars().take(40).collect::<String>()
            ),
        ));
    }
    Ok(())
}

/// The days whose signed notes a document reads: the kind's date inputs where it has them (入院日–退院日), else
/// `from`–`to` as asked, defaulting to every note up to `today`. A reversed range, or one ending after today, is
/// `input.date_invalid`: a typing error, refused before any note is read.
pub fn notes_range(
    kind: &DocumentKind,
    inputs: &BTreeMap<String, String>,
    from: Option<ClinicalDate>,
    to: Option<ClinicalDate>,
    today: ClinicalDate,
) -> Result<(ClinicalDate, ClinicalDate)> {
    let input = |name: &str| {
        inputs
            .get(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| ClinicalDate::parse(v))
            .transpose()
    };
    let (from, to) = match &kind.range {
        Some(r) => (input(&r.from)?.or(from), input(&r.to)?.or(to)),
        None => (from, to),
    };
    let (from, to) = ClinicalDate::range(
        from.unwrap_or(ClinicalDate::from_ymd(1900, 1, 1)?),
        to.unwrap_or(today),
    )?;
    to.not_after(today)?;
    Ok((from, to))
}

/// The dates the window offers first for a kind drafted from notes, given the clinical dates of the patient's
/// signed notes (any order): the latest episode, a run of notes no two of which lie more than the kind's
/// `episode_gap_days` apart, so that a patient admitted twice gets the last stay rather than both. `None` without
/// notes. Only a suggestion: the physician sees the notes and may change either date.
pub fn prefill_range(
    kind: &DocumentKind,
    dates: &[ClinicalDate],
) -> Option<(ClinicalDate, ClinicalDate)> {
    let mut dates = dates.to_vec();
    dates.sort_unstable();
    dates.dedup();
    let last = *dates.last()?;
    let first = match kind.episode_gap_days {
        None => dates[0],
        Some(gap) => dates
            .windows(2)
            .rev()
            .take_while(|w| w[1].days_since(w[0]) <= i32::from(gap))
            .last()
            .map_or(last, |w| w[0]),
    };
    Some((first, last))
}

/// What each source supports, by the id a sentence cites it by: a note's signed text with its date (a dated
/// sentence shows it), a typed value as typed. The floor's check and the model's merge judge against the same map.
pub fn groundings<'a>(
    notes: impl IntoIterator<Item = &'a SourceNote>,
    inputs: &BTreeMap<String, String>,
) -> BTreeMap<String, Grounding> {
    let mut grounding: BTreeMap<String, Grounding> = notes
        .into_iter()
        .map(|n| {
            (
                n.id.clone(),
                grounding_of(&format!("{}\n{}", n.date, n.text)),
            )
        })
        .collect();
    for (name, value) in inputs {
        grounding.insert(input_source(name), grounding_of(value));
    }
    grounding
}

fn grounding_of(text: &str) -> Grounding {
    let norm = normalize(text);
    let found = extract_sentence(&norm);
    Grounding::new(&norm.text, &found)
}

/// Every number, unit, drug and side of the sentence that none of its cited sources has.
pub fn check(grounding: &BTreeMap<String, Grounding>, s: &Sentence) -> Vec<Flag> {
    let cited: Vec<&Grounding> = s
        .sources
        .iter()
        .filter_map(|r| grounding.get(&r.version))
        .collect();
    if cited.is_empty() {
        return vec![Flag::new(
            "no_source",
            "この文の元になる記録がありません。",
            None,
        )];
    }
    Grounding::union(cited).check(&s.text)
}

fn sentence(text: String, source: SourceRef) -> Sentence {
    Sentence {
        text,
        spans: Vec::new(),
        flags: Vec::new(),
        // Every floor sentence is the physician's own signed or typed words.
        origin: Origin::Dictation,
        problem: None,
        sources: vec![source],
    }
}

fn matches(p: &Pick, l: &Line) -> bool {
    (p.roles.is_empty() || l.role.is_some_and(|r| p.roles.contains(&r)))
        && (p.facts.is_empty() || p.facts.iter().any(|f| l.facts.contains(f)))
        && !p.without_facts.iter().any(|f| l.facts.contains(f))
        && (p.words.is_empty() || p.words.iter().any(|w| l.text.contains(w.as_str())))
}

fn chosen_notes(which: Which, n: usize) -> Vec<usize> {
    match which {
        Which::First => vec![0],
        Which::Last => vec![n - 1],
        Which::Middle if n > 2 => (1..n - 1).collect(),
        Which::Middle => Vec::new(),
        Which::All => (0..n).collect(),
    }
}

/// `2026-11-03` → `11/3`: short, and its numbers are the note date's.
fn date_label(date: &str) -> String {
    let mut it = date.split('-').skip(1).map(|p| p.trim_start_matches('0'));
    match (it.next(), it.next()) {
        (Some(m), Some(d)) if !m.is_empty() && !d.is_empty() => format!("{m}/{d}"),
        _ => date.to_string(),
    }
}

/// A document made from notes as `karte document draft --format json` prints it: the sections as a list, each with
/// its JP-CLINS Japanese title, because a reader of these documents (and of their JSON) goes by title, in order.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct View {
    pub kind: String,
    pub sections: Vec<SectionView>,
    pub flags: Vec<Flag>,
    pub engine: EngineInfo,
    pub timings_ms: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SectionView {
    pub id: String,
    pub title: String,
    pub sentences: Vec<Sentence>,
}

impl View {
    pub fn of(d: &DraftOutput) -> View {
        let k = kind_of(&d.kind).ok();
        View {
            kind: d.kind.clone(),
            sections: d
                .sections
                .parts()
                .iter()
                .map(|p| SectionView {
                    id: p.id.clone(),
                    title: k.map_or(p.id.clone(), |k| k.heading(&p.id).to_string()),
                    sentences: p.sentences.clone(),
                })
                .collect(),
            flags: d.flags.clone(),
            engine: d.engine.clone(),
            timings_ms: d.timings_ms.clone(),
        }
    }
}
