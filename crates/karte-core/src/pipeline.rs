//! The deterministic floor: dictation → clauses with sections and facts → a fully grounded draft with suggestions.
//! With no model at all this is a usable draft, and with a model it is what the model's phrasing is checked against.

use crate::classify;
use crate::clause::{self, Clause};
use crate::document::{DocumentKind, Role, Sections};
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
        return Err(Error::new(
            Code::InputEmpty,
            "口述が空です。所見や経過を入力してから「下書き作成」を押してください。",
        ));
    }
    let n = input.chars().count();
    if n > MAX_INPUT_CHARS {
        return Err(Error::new(
            Code::InputTooLarge,
            format!(
                "口述が長すぎます（{n}文字）。{MAX_INPUT_CHARS}文字以内に分けて入力してください。"
            ),
        ));
    }
    Ok(())
}

/// The most bytes any reader takes before answering `input.too_large`: [`MAX_INPUT_CHARS`] characters of up to 4
/// bytes each, plus a byte-order mark. Reading stops here, so an endless pipe or a device costs bounded memory.
pub const MAX_INPUT_BYTES: u64 = MAX_INPUT_CHARS as u64 * 4 + 3;

/// Reads at most [`MAX_INPUT_BYTES`] (and one more, to tell whether there was more) from a file, a pipe or stdin.
pub fn read_bounded(reader: impl std::io::Read) -> std::io::Result<Result<Vec<u8>>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    reader.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Ok(Err(Error::new(
            Code::InputTooLarge,
            format!(
                "入力が大きすぎます（{MAX_INPUT_BYTES}バイトを超えています）。{MAX_INPUT_CHARS}文字以内に分けて入力してください。"
            ),
        )));
    }
    Ok(Ok(bytes))
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

/// Where a clause goes: what kind of statement it is, and the section of the document that takes it (an explicit
/// header can put a clause in a section whatever its role).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub role: Role,
    pub section: usize,
}

/// Everything the later stages need about one dictation, drafted as one document kind.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub kind: &'static DocumentKind,
    pub norm: Normalized,
    pub clauses: Vec<Clause>,
    /// One per clause; `section` indexes `kind.sections`.
    pub places: Vec<Place>,
    pub found: Vec<Found>,
    /// One per clause: the clause that is the heading of the problem it was written under (「#1 肺炎」), in a
    /// problem-oriented note. A heading is its own problem; it labels its sentences instead of being one.
    pub problem: Vec<Option<usize>>,
}

impl Analysis {
    /// The heading text of clause `i`'s problem.
    pub fn problem_of(&self, i: usize) -> Option<String> {
        self.problem[i].map(|h| self.clauses[h].text.trim().to_string())
    }
    pub fn is_heading(&self, i: usize) -> bool {
        self.problem[i] == Some(i)
    }
    pub fn facts(&self) -> Vec<Fact> {
        self.found.iter().map(|f| f.fact.clone()).collect()
    }
    pub fn grounding(&self) -> Grounding {
        Grounding::new(&self.norm.text, &self.found)
    }
}

pub fn analyze(input: &str, kind: &'static DocumentKind) -> Result<Analysis> {
    if kind.sources != crate::document::SourceKind::Dictation {
        return Err(Error::new(
            Code::DocumentInvalid,
            format!(
                "「{}」は口述からではなく、署名済みの記録から作成します（karte document draft）。",
                kind.title
            ),
        ));
    }
    validate(input)?;
    let norm = normalize(input);
    let wide = |i: usize| norm.wide_space(i);
    let header = |t: &str| kind.header(t).is_some() || kind.line_header(t).is_some();
    let raw = clause::split_with(
        norm.chars(),
        &clause::Hints {
            wide: Some(&wide),
            header: Some(&header),
        },
    );
    // Headers (S) / 【O】 …) stick until the next header or problem; mixed assessment+plan clauses are cut in two.
    let mut clauses = Vec::new();
    let mut forced: Vec<Option<usize>> = Vec::new();
    let mut problem: Vec<Option<usize>> = Vec::new();
    let mut sticky: Option<usize> = None;
    // A line label (「PE:」「ECG:」) places the rest of its sentence only: (section, sentence).
    let mut labelled: Option<(usize, usize)> = None;
    let mut current_problem: Option<usize> = None;
    for mut c in raw {
        if is_problem_heading(&c.text) && kind.header(&c.text).is_none() {
            sticky = None;
            labelled = None;
            current_problem = Some(clauses.len());
            clauses.push(c);
            forced.push(Some(kind.section_for(Role::Assessed)));
            problem.push(current_problem);
            continue;
        }
        if let Some((sec, len)) = kind.header(&c.text) {
            sticky = Some(sec);
            labelled = None;
            c.start += len;
            c.text = c.text.chars().skip(len).collect();
            if c.text.trim().is_empty() {
                continue;
            }
        } else if let Some((sec, len)) = kind.line_header(&c.text) {
            labelled = Some((sec, c.sentence));
            c.start += len;
            c.text = c.text.chars().skip(len).collect();
            if c.text.trim().is_empty() {
                continue;
            }
        }
        let here = match labelled {
            Some((sec, l)) if c.sentence == l => Some(sec),
            _ => sticky,
        };
        if let Some(cut) = classify::mixed_split(&c.text) {
            let head: String = c.text.chars().take(cut).collect();
            let tail: String = c.text.chars().skip(cut).collect();
            clauses.push(Clause {
                start: c.start,
                end: c.start + cut,
                text: head,
                sentence: c.sentence,
            });
            forced.push(here);
            problem.push(current_problem);
            clauses.push(Clause {
                start: c.start + cut,
                end: c.end,
                text: tail,
                sentence: c.sentence,
            });
            forced.push(here);
            problem.push(current_problem);
        } else {
            clauses.push(c);
            forced.push(here);
            problem.push(current_problem);
        }
    }
    let mut found = extract::extract(&norm, &clauses);
    let by_clause = extract::indices_by_clause(clauses.len(), &found);
    // A header decides the section; the role still comes from the clause (a plan under 「S)」 is still a plan to the
    // rules), except that a header's own first role is what the section stands for.
    let mut places: Vec<Place> = clauses
        .iter()
        .enumerate()
        .map(|(i, c)| match forced[i] {
            Some(section) => Place {
                role: kind.sections[section]
                    .roles
                    .first()
                    .copied()
                    .unwrap_or_else(|| {
                        let fs: Vec<&Found> = by_clause[i].iter().map(|&fi| &found[fi]).collect();
                        classify::classify(&c.text, &fs)
                    }),
                section,
            },
            None => {
                let fs: Vec<&Found> = by_clause[i].iter().map(|&fi| &found[fi]).collect();
                let role = classify::classify(&c.text, &fs);
                Place {
                    role,
                    section: kind.section_for(role),
                }
            }
        })
        .collect();
    inherit_from_sentence(kind, &clauses, &forced, &mut places, &mut found);
    for (i, c) in clauses.iter().enumerate() {
        if places[i].role == Role::Planned {
            let text = c.text.trim_end_matches(['。', '.']).to_string();
            let mut f = Fact::new(FactKind::Plan, text, norm.orig_span(c.start, c.end));
            f.attrs.insert("section".into(), "plan".into());
            found.push(Found {
                clause: i,
                start: c.start,
                end: c.end,
                fact: f,
            });
        }
    }
    found.sort_by_key(|f| (f.start, f.end));
    Ok(Analysis {
        kind,
        norm,
        clauses,
        places,
        found,
        problem,
    })
}

/// 「#1 市中肺炎」「＃２　２型糖尿病」: the heading of a problem in a problem-oriented note.
fn is_problem_heading(text: &str) -> bool {
    text.strip_prefix('#')
        .is_some_and(|r| r.trim_start().starts_with(|c: char| c.is_ascii_digit()))
}

/// Japanese puts the predicate last: in 「胸部X線、血液培養2セットを施行予定」 or 「造影CTで評価し、輸液を開始する」 the
/// first clause is planned too. A dependent clause (a bare list item of drugs, tests or diagnoses, or a continuative
/// form) takes the section of the next clause of its sentence, or of the previous one at the end of a sentence; a
/// diagnosis listed next to a history cue (「既往に脳梗塞、認知症」) becomes history too.
fn inherit_from_sentence(
    kind: &DocumentKind,
    clauses: &[Clause],
    forced: &[Option<usize>],
    sections: &mut [Place],
    found: &mut [Found],
) {
    let neutral = |k: FactKind| {
        matches!(
            k,
            FactKind::Drug
                | FactKind::Test
                | FactKind::Diagnosis
                | FactKind::History
                | FactKind::Date
        )
    };
    // The kinds of fact in each clause, gathered once for the three tests below.
    let mut kinds: Vec<Vec<FactKind>> = vec![Vec::new(); clauses.len()];
    for f in found.iter() {
        kinds[f.clause].push(f.fact.kind);
    }
    // A bare list item follows its predicate whatever it is; a continuative clause only joins a plan
    // (「評価し、開始する」), since 「排便が停止し、腹部膨満あり」 mixes a complaint with a finding.
    let free = |i: usize| forced[i].is_none();
    let bare: Vec<bool> = (0..clauses.len())
        .map(|i| {
            free(i)
                && !kinds[i].is_empty()
                && kinds[i].iter().all(|&k| neutral(k))
                && !classify::has_cue(&clauses[i].text)
        })
        .collect();
    let connective: Vec<bool> = (0..clauses.len())
        .map(|i| {
            free(i)
                && kinds[i].iter().all(|&k| neutral(k))
                && classify::is_connective(&clauses[i].text)
        })
        .collect();
    // A clause with neither facts nor cues (「細菌多数」) continues the list before it and is no context for others.
    let empty: Vec<bool> = (0..clauses.len())
        .map(|i| free(i) && kinds[i].is_empty() && !classify::has_cue(&clauses[i].text))
        .collect();
    let dependent: Vec<bool> = (0..clauses.len())
        .map(|i| bare[i] || connective[i] || empty[i])
        .collect();
    // Every per-clause question below is answered from these lists, gathered once: scanning all facts (or all
    // earlier clauses of the sentence) for each clause made a pasted log of thousands of findings quadratic.
    let by_clause = crate::extract::indices_by_clause(clauses.len(), found);
    let mut has_history: Vec<bool> = kinds
        .iter()
        .map(|k| k.contains(&FactKind::History))
        .collect();
    let historic = |i: usize, has_history: &[bool]| {
        has_history[i]
            || crate::extract::HISTORY_CUES
                .iter()
                .any(|c| clauses[i].text.contains(c))
    };
    // Diagnoses of clause `i` read as history; true when there was one.
    let to_history = |i: usize, found: &mut [Found]| {
        let mut any = false;
        for &fi in &by_clause[i] {
            let f = &mut found[fi].fact;
            if f.kind == FactKind::Diagnosis {
                f.kind = FactKind::History;
                f.certainty = None;
                any = true;
            }
        }
        any
    };
    // The nearest earlier clause of the same sentence that is not dependent, for each clause.
    let mut prev_independent: Vec<Option<usize>> = vec![None; clauses.len()];
    for i in 1..clauses.len() {
        if clauses[i - 1].sentence == clauses[i].sentence {
            prev_independent[i] = if dependent[i - 1] {
                prev_independent[i - 1]
            } else {
                Some(i - 1)
            };
        }
    }
    let mut context: Vec<Option<usize>> = vec![None; clauses.len()];
    for i in (0..clauses.len()).rev() {
        if !(bare[i] || connective[i]) {
            continue;
        }
        let same = |j: usize| clauses[j].sentence == clauses[i].sentence;
        let next = if i + 1 < clauses.len() && same(i + 1) {
            if dependent[i + 1] {
                context[i + 1]
            } else {
                Some(i + 1)
            }
        } else {
            None
        };
        let next = next.filter(|&c| bare[i] || sections[c].role == Role::Planned);
        context[i] = next.or_else(|| if bare[i] { prev_independent[i] } else { None });
    }
    // 「来院時、意識清明、BT 38.6℃」: a time qualifier that opens a sentence belongs to what follows it.
    let time_qualifier = |t: &str| {
        t.chars().count() <= 8
            && ["時", "後", "時点", "現在", "本日", "今朝"]
                .iter()
                .any(|e| t.trim_end().ends_with(e))
    };
    for i in (0..clauses.len().saturating_sub(1)).rev() {
        let opens = i == 0 || clauses[i - 1].sentence != clauses[i].sentence;
        let next_same = clauses[i + 1].sentence == clauses[i].sentence;
        if empty[i] && opens && next_same && time_qualifier(&clauses[i].text) {
            sections[i] = sections[i + 1];
        }
    }
    // 「既往に高血圧症、2型糖尿病があり」: 既往 opens a list that runs to the end of its sentence.
    let mut opened = false;
    for i in 1..clauses.len() {
        // 既往 in an earlier clause of this sentence.
        opened = clauses[i - 1].sentence == clauses[i].sentence
            && (opened || clauses[i - 1].text.contains("既往"));
        if opened
            && sections[i].role == Role::Assessed
            && !classify::has_assess_cue(&clauses[i].text)
        {
            has_history[i] |= to_history(i, found);
            sections[i] = Place {
                role: Role::Reported,
                section: kind.section_for(Role::Reported),
            };
        }
    }
    for i in 0..clauses.len() {
        // A sentence of bare items only (「尿沈渣で白血球多数、細菌多数」) reads as one list: follow its first item.
        if context[i].is_none()
            && (bare[i] || empty[i])
            && i > 0
            && clauses[i - 1].sentence == clauses[i].sentence
        {
            sections[i] = sections[i - 1];
        }
        if let Some(c) = context[i] {
            sections[i] = sections[c];
            if historic(c, &has_history) {
                has_history[i] |= to_history(i, found);
            }
        }
    }
}

/// Consecutive clauses of one sentence in one section become one draft sentence, in the physician's words (after
/// width folding), so every character of the floor draft is grounded by construction.
pub fn floor_sections(a: &Analysis) -> Sections {
    let mut out = Sections::empty(a.kind);
    let mut i = 0;
    while i < a.clauses.len() {
        if a.is_heading(i) {
            i += 1;
            continue;
        }
        let sec = a.places[i].section;
        let mut j = i + 1;
        while j < a.clauses.len()
            && a.places[j].section == sec
            && a.clauses[j].sentence == a.clauses[i].sentence
            && a.problem[j] == a.problem[i]
            && !a.is_heading(j)
        {
            j += 1;
        }
        let parts: Vec<&str> = a.clauses[i..j]
            .iter()
            .map(|c| c.text.trim_end_matches(['。', '.']))
            .collect();
        let text = format!("{}。", parts.join("、"));
        let spans = a.clauses[i..j]
            .iter()
            .map(|c| a.norm.orig_span(c.start, c.end))
            .collect();
        out.at_mut(sec).push(Sentence {
            text,
            spans,
            flags: Vec::new(),
            origin: Origin::Dictation,
            sources: Vec::new(),
            problem: a.problem_of(i),
        });
        i = j;
    }
    out
}

/// The last stages, shared by every way of drafting: re-check every sentence against the dictation (floor
/// sentences too: the check is the invariant, not the way they were made) and suggest tests from the rule base.
pub fn finish(
    a: &Analysis,
    mut sections: Sections,
    engine: EngineInfo,
    flags: Vec<Flag>,
    mut timings_ms: BTreeMap<String, u64>,
) -> DraftOutput {
    let t = std::time::Instant::now();
    let g = a.grounding();
    for sent in sections.iter_mut() {
        let mut fl = g.check(&sent.text);
        for f in std::mem::take(&mut sent.flags) {
            if !fl.contains(&f) {
                fl.push(f);
            }
        }
        sent.flags = fl;
    }
    let facts = a.facts();
    let plan: Vec<&str> = a
        .clauses
        .iter()
        .zip(&a.places)
        .filter(|(_, p)| p.role == Role::Planned)
        .map(|(c, _)| c.text.as_str())
        .collect();
    let (suggestions, warnings) = RuleBase::embedded().review(&facts, &a.norm.text, &plan);
    let mut flags = flags;
    flags.extend(warnings);
    timings_ms.insert("verify".to_string(), t.elapsed().as_millis() as u64);
    DraftOutput {
        kind: a.kind.id.clone(),
        sections,
        inputs: Default::default(),
        suggestions,
        flags,
        facts,
        engine,
        timings_ms,
    }
}

/// The full no-model draft: the floor, finished.
pub fn draft_floor(input: &str, kind: &'static DocumentKind) -> Result<DraftOutput> {
    let a = analyze(input, kind)?;
    let sections = floor_sections(&a);
    Ok(finish(
        &a,
        sections,
        EngineInfo {
            kind: "rules".into(),
            ..Default::default()
        },
        Vec::new(),
        BTreeMap::new(),
    ))
}
