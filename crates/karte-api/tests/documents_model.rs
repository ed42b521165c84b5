//! Documents made from signed notes and phrased by a real model (the manifest's default model, in this process),
//! over the four shortest synthetic admissions of karte-core's tests (`crates/karte-core/tests/data/admissions`;
//! every admission's floor is karte-core's `tests/compose.rs`, the long stays are `benches/documents.rs`'s).
//! Not the small test model: SmolLM2 spends about four tokens on a kanji and never closes a document's JSON within
//! its budget (every part fell back, 2026-12-07), so it would test the fallback only; the default model words about
//! nine sentences of a one-note referral in ~30 s here. Whatever the model writes: every sentence cites notes of its own stay (or a typed
//! field), a number a sentence has that its cited sources lack is flagged, and no sentence of the rules' draft is
//! lost: each is still in its section, in the physician's words or carried whole by a model sentence that cites it.

mod common;

use common::admissions;
use karte_api::{DraftOptions, Drafter};
use karte_core::grounding::numbers;
use karte_core::{Origin, Sentence};
use karte_engine::LazyEngine;
use std::sync::Arc;

fn has_flag(s: &Sentence, codes: &[&str]) -> bool {
    s.flags.iter().any(|f| codes.contains(&f.code.as_str()))
}

#[test]
fn every_admission_phrased_by_the_model_keeps_its_sources_and_flags_what_they_lack() {
    let drafter = Drafter::new(Arc::new(LazyEngine::from_manifest(None)), None);
    let mut cases = admissions::all();
    assert!(cases.len() >= 8, "the admissions are missing");
    cases.sort_by_key(|c| c.chars);
    cases.truncate(4);
    let (mut by_model, mut fallbacks) = (0usize, 0usize);
    for case in &cases {
        let name = &case.name;
        let t = std::time::Instant::now();
        let sources = case.sources();
        let floor = case.draft.draft.clone();
        let d = case.draft.clone();
        let k = karte_core::document::kind(&floor.kind).unwrap();
        let opts = DraftOptions {
            no_llm: false,
            kind: Some(k.id.clone()),
        };
        let mut shown = String::new();
        let out = drafter
            .document(d, &opts, &mut |p| {
                if let karte_api::Progress::Token { text, .. } = p {
                    shown.push_str(&text);
                }
            })
            .unwrap_or_else(|e| panic!("{name}: [{}] {}", e.code, e.message))
            .draft;
        assert_eq!(out.engine.kind, "local", "{name}");
        assert!(out.timings_ms.contains_key("generate"), "{name}");
        if let Some(f) = out.flags.iter().find(|f| f.code == "model_fallback") {
            eprintln!("{name}: fell back: {:?}", f.detail);
            fallbacks += 1;
        }
        let text_of = |version: &str| -> String {
            match version.strip_prefix("input:") {
                Some(input) => case.inputs[input].clone(),
                None => {
                    let s = sources
                        .iter()
                        .find(|s| s.id == version)
                        .unwrap_or_else(|| panic!("{name}: {version} is not a note of this stay"));
                    format!("{}\n{}", s.date, s.text)
                }
            }
        };
        for (sec, s) in out.sections.iter() {
            if s.origin == Origin::Model {
                by_model += 1;
            }
            if s.sources.is_empty() {
                assert!(
                    has_flag(s, &["no_source"]),
                    "{name}: uncited, unflagged: {s:?}"
                );
                continue;
            }
            let cited: String = s.sources.iter().map(|r| text_of(&r.version)).collect();
            let have = numbers(&cited);
            let stray: Vec<String> = numbers(&s.text)
                .into_iter()
                .filter(|n| !have.contains(n))
                .collect();
            assert!(
                stray.is_empty() || has_flag(s, &["ungrounded_number", "misattributed"]),
                "{name}: {stray:?} not in the cited notes and not flagged, section {sec}: {}",
                s.text
            );
        }
        eprintln!("{name}: {:.0} s", t.elapsed().as_secs_f64());
        if out.sections.iter().any(|(_, s)| s.origin == Origin::Model) {
            assert!(
                !shown.trim().is_empty(),
                "{name}: the answer never streamed"
            );
        }
        // Nothing of the rules' draft is lost: each of its sentences is in its section as written, or a model
        // sentence of that section cites its source and carries all its numbers.
        for (sec, f) in floor.sections.iter() {
            let kept = out.sections.parts()[sec].sentences.iter().any(|s| {
                s.text == f.text
                    || (s.origin == Origin::Model
                        && f.sources.iter().all(|r| s.sources.contains(r))
                        && numbers(&f.text)
                            .iter()
                            .all(|n| numbers(&s.text).contains(n)))
            });
            assert!(kept, "{name}: lost from section {sec}: {}", f.text);
        }
    }
    eprintln!(
        "{} admissions, {by_model} sentences worded by the model, {fallbacks} drafts fell back to the notes' words",
        cases.len()
    );
    assert!(by_model > 0, "the model wrote nothing in any admission");
}
