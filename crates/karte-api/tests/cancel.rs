//! 中止 (`Drafter::cancel`) with a real model in this process (the small test model: nothing here waits on its
//! wording). A press that comes before the model has begun answering, while it loads or between two parts of a
//! document, stops the draft; it used to find no request to stop, and the draft ran on for minutes. A stopped draft
//! leaves nothing behind: the next one runs to its end.

// The shared loader of the admissions: this test needs the stays, not their sources.
#[allow(dead_code)]
mod common;

use common::admissions;
use karte_api::{DraftOptions, Drafter, Progress};
use karte_core::Code;
use karte_engine::LazyEngine;
use std::sync::Arc;

#[test]
fn a_cancel_before_the_answer_starts_stops_the_document_and_the_next_draft_still_runs() {
    let drafter = Drafter::new(
        Arc::new(LazyEngine::from_manifest(Some("smollm2-135m".into()))),
        None,
    );
    // The longest stay: several parts, so the press lands where the old code had no request.
    let stay = admissions::all()
        .into_iter()
        .max_by_key(|s| s.chars)
        .expect("the admissions are missing");
    let opts = DraftOptions {
        no_llm: false,
        kind: Some(stay.draft.draft.kind.clone()),
    };
    let mut stages = Vec::new();
    let mut tokens = 0u32;
    let e = drafter
        .document(stay.draft.clone(), &opts, &mut |p| match p {
            // The press, from the window, as the first part is announced: before its request exists.
            Progress::Stage { stage, message } => {
                if stage == "generate" {
                    drafter.cancel();
                }
                stages.push(message);
            }
            Progress::Token { tokens: n, .. } => tokens = n,
            Progress::Reset { .. } => {}
        })
        .expect_err("the document was drafted to its end after 中止");
    assert_eq!(e.code, Code::EngineCancelled, "{}", e.message);
    assert_eq!(tokens, 0, "the model generated after 中止");
    let generating = stages.iter().filter(|m| m.contains("生成")).count();
    assert_eq!(generating, 1, "parts started after 中止: {stages:?}");

    // The next draft is not stopped by the earlier press: the model answers it (whether the small model's answer
    // is usable is not this test's business).
    let mut generated = 0u32;
    let note = drafter
        .draft(
            "3日前から咳嗽。BT 37.8℃。急性気管支炎。",
            &DraftOptions::default(),
            &mut |p| {
                if let Progress::Token { tokens, .. } = p {
                    generated = tokens;
                }
            },
        )
        .unwrap_or_else(|e| panic!("[{}] {}", e.code, e.message));
    assert_eq!(note.engine.kind, "local");
    assert!(generated > 0, "no token generated: {:?}", note.engine);
}
