//! Data-driven test of the deterministic floor over the synthetic dictation corpus (tests/data/dictations.toml):
//! extracted facts (with negation), facts that must not be extracted, and the SOAP section of the draft sentences.
//! Every failing case is reported at once (id, what was expected, what was produced), then the test fails.
//!
//! Set KARTE_CASE=<id> to run one case only.

use karte_core::{draft_floor, normalize::normalize, DraftOutput, Fact, FactKind};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    id: String,
    text: String,
    #[serde(default)]
    facts: Vec<String>,
    #[serde(default)]
    absent: Vec<String>,
    #[serde(default)]
    s: Vec<String>,
    #[serde(default)]
    o: Vec<String>,
    #[serde(default)]
    a: Vec<String>,
    #[serde(default)]
    p: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    case: Vec<Case>,
}

fn corpus() -> Corpus {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/dictations.toml");
    let src = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    toml::from_str(&src).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An expected fact: `[!]KIND:NAME[=VALUE]`.
#[derive(Debug)]
struct Want {
    negated: bool,
    kind: String,
    name: String,
    value: Option<String>,
}

fn parse_want(s: &str) -> Want {
    let (negated, rest) = match s.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (kind, rest) = rest
        .split_once(':')
        .unwrap_or_else(|| panic!("fact {s:?} is not KIND:NAME"));
    let (mut name, mut value) = match rest.split_once('=') {
        Some((n, v)) => (n.to_string(), Some(v.to_string())),
        None => (rest.to_string(), None),
    };
    // "date:2024-04-01" is accepted as shorthand for "date:日付=2024-04-01".
    if kind == "date" && value.is_none() && name != "日付" {
        value = Some(name);
        name = "日付".to_string();
    }
    Want {
        negated,
        kind: kind.to_string(),
        name,
        value,
    }
}

/// The kind as the corpus writes it (the serde name of FactKind: symptom, exam, test, …).
fn kind_str(k: FactKind) -> String {
    serde_json::to_value(k)
        .unwrap()
        .as_str()
        .unwrap_or("?")
        .to_string()
}

fn same(f: &Fact, w: &Want) -> bool {
    kind_str(f.kind) == w.kind
        && f.name == w.name
        && w.value
            .as_ref()
            .is_none_or(|v| f.value.as_deref() == Some(v.as_str()))
}

fn show(f: &Fact) -> String {
    let neg = if f.negated { "!" } else { "" };
    match &f.value {
        Some(v) => format!("{neg}{}:{}={v}", kind_str(f.kind), f.name),
        None => format!("{neg}{}:{}", kind_str(f.kind), f.name),
    }
}

fn section_text(out: &DraftOutput, s: &str) -> String {
    out.sections
        .get(s)
        .iter()
        .map(|x| x.text.as_str())
        .collect::<Vec<_>>()
        .join("")
}

/// Folded the way the pipeline folds, so that an expectation may be written either way.
fn fold(s: &str) -> String {
    normalize(s).text
}

fn check(case: &Case) -> Vec<String> {
    let mut problems = Vec::new();
    let out = match draft_floor(&case.text, karte_core::document::default_kind()) {
        Ok(o) => o,
        Err(e) => return vec![format!("draft_floor failed: {e:?}")],
    };
    let facts: Vec<&Fact> = out
        .facts
        .iter()
        .filter(|f| f.kind != FactKind::Plan)
        .collect();
    for w in case.facts.iter().map(|s| (s, parse_want(s))) {
        let (raw, w) = w;
        let hit = facts.iter().any(|f| same(f, &w) && f.negated == w.negated);
        if !hit {
            let near: Vec<String> = facts
                .iter()
                .filter(|f| {
                    f.name == w.name
                        || (kind_str(f.kind) == w.kind && w.value.is_some() && f.value == w.value)
                })
                .map(|f| show(f))
                .collect();
            let near = if near.is_empty() {
                "nothing of that name".to_string()
            } else {
                near.join(", ")
            };
            problems.push(format!("missing fact {raw} (got: {near})"));
        }
    }
    for raw in &case.absent {
        let w = parse_want(raw);
        let hits: Vec<String> = facts
            .iter()
            .filter(|f| same(f, &w))
            .map(|f| show(f))
            .collect();
        if !hits.is_empty() {
            problems.push(format!(
                "fact {raw} must not be extracted (got: {})",
                hits.join(", ")
            ));
        }
    }
    for (sec, want) in [
        ("subjective", &case.s),
        ("objective", &case.o),
        ("assessment", &case.a),
        ("plan", &case.p),
    ] {
        let text = section_text(&out, sec);
        for sub in want {
            if !text.contains(&fold(sub)) {
                let elsewhere: Vec<&str> = out
                    .sections
                    .parts()
                    .iter()
                    .map(|p| p.id.as_str())
                    .filter(|&o| o != sec && section_text(&out, o).contains(&fold(sub)))
                    .collect();
                let where_ = if elsewhere.is_empty() {
                    "nowhere".to_string()
                } else {
                    elsewhere.join("/")
                };
                problems.push(format!(
                    "{sec} should contain {sub:?} (found in {where_}; {sec} is {text:?})"
                ));
            }
        }
    }
    problems
}

#[test]
fn corpus_is_well_formed() {
    let c = corpus();
    assert!(c.case.len() >= 90, "only {} cases", c.case.len());
    let mut ids = std::collections::BTreeSet::new();
    let kinds = [
        "demographic",
        "vital",
        "lab",
        "symptom",
        "exam",
        "drug",
        "diagnosis",
        "history",
        "test",
        "date",
    ];
    let mut bad = Vec::new();
    for case in &c.case {
        if !ids.insert(case.id.as_str()) {
            bad.push(format!("{}: duplicate id", case.id));
        }
        if case.text.trim().is_empty() {
            bad.push(format!("{}: empty text", case.id));
        }
        for raw in case.facts.iter().chain(&case.absent) {
            let w = parse_want(raw);
            if !kinds.contains(&w.kind.as_str()) {
                bad.push(format!("{}: unknown kind in {raw:?}", case.id));
            }
        }
        if case.facts.is_empty() && case.absent.is_empty() {
            bad.push(format!("{}: expects nothing", case.id));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn every_dictation_yields_its_facts_and_sections() {
    let only = std::env::var("KARTE_CASE").ok();
    let c = corpus();
    let mut failed = Vec::new();
    let mut n = 0;
    for case in c
        .case
        .iter()
        .filter(|c| only.as_ref().is_none_or(|o| &c.id == o))
    {
        n += 1;
        let problems = check(case);
        if !problems.is_empty() {
            failed.push(format!(
                "[{}] {}\n    {}",
                case.id,
                case.text,
                problems.join("\n    ")
            ));
        }
    }
    if !failed.is_empty() {
        panic!(
            "{} of {n} dictation cases fail:\n\n{}\n",
            failed.len(),
            failed.join("\n\n")
        );
    }
}

/// The sample dictations in assets/samples (CLI demo, benchmarks, end-to-end tests): each is one realistic dictation
/// of 250–400 characters that drafts into all four sections with suggestions and no grounding flags.
#[test]
fn sample_dictations_draft_fully() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/samples");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    names.sort();
    assert!(names.len() >= 5, "only {} samples in {dir}", names.len());
    let mut bad = Vec::new();
    for p in &names {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let n = text.trim().chars().count();
        if !(250..=400).contains(&n) {
            bad.push(format!("{name}: {n} characters, want 250–400"));
        }
        let out = match draft_floor(&text, karte_core::document::default_kind()) {
            Ok(o) => o,
            Err(e) => {
                bad.push(format!("{name}: draft_floor failed: {e:?}"));
                continue;
            }
        };
        for p in out.sections.parts() {
            if p.sentences.is_empty() {
                bad.push(format!("{name}: empty {} section", p.id));
            }
        }
        if out.suggestions.is_empty() {
            bad.push(format!("{name}: no test suggestions"));
        }
        for (s, sent) in out.sections.iter() {
            if !sent.flags.is_empty() {
                bad.push(format!(
                    "{name}: {} sentence {:?} flagged: {:?}",
                    out.sections.parts()[s].id,
                    sent.text,
                    sent.flags
                ));
            }
        }
        for f in out
            .facts
            .iter()
            .filter(|f| f.kind == FactKind::Demographic && f.name == "年齢")
        {
            if out
                .facts
                .iter()
                .filter(|g| {
                    g.kind == FactKind::Demographic && g.name == "年齢" && g.value != f.value
                })
                .count()
                > 0
            {
                bad.push(format!("{name}: more than one age extracted"));
                break;
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
