//! The documents workspace (退院時サマリー, 診療情報提供書), rendered natively from karte-core's kinds and a real
//! composed draft: the form asks for what the kind file says, and every sentence can be clicked for its source.

use karte_core::compose::{compose, SourceNote};
use karte_core::document::{default_kind, kind};
use karte_ipc::{ClinicalDate, DocumentDraft, SignedNote};
use leptos::prelude::*;
use std::collections::BTreeMap;
use ui::documents::{DocumentResult, DocumentsView};

fn render<V: IntoView + 'static>(f: impl FnOnce() -> V) -> String {
    let owner = Owner::new();
    owner.with(|| f().into_view().to_html())
}

#[test]
fn the_form_offers_the_note_kinds_and_the_first_kinds_fields() {
    let html = render(|| view! { <DocumentsView/> });
    for needle in [
        ">退院時サマリー</option>",
        ">診療情報提供書</option>",
        "id=\"doc-patient\"",
        // The discharge summary's own dates bound the notes: date fields, and no separate range.
        "id=\"doc-input-admitted\" type=\"date\"",
        "id=\"doc-input-discharged\" type=\"date\"",
        "id=\"doc-draft-button\"",
        // The model phrases unless the physician asks for the notes' own sentences.
        "id=\"doc-no-llm\"",
    ] {
        assert!(html.contains(needle), "{needle} missing: {html}");
    }
    assert!(!html.contains("id=\"doc-from\""), "{html}");
    // Nothing drafted yet: no document, no save button.
    assert!(!html.contains("document-draft") && !html.contains("doc-save-button"));
}

#[test]
fn every_section_is_listed_and_each_sentence_carries_its_sources() {
    let notes: Vec<(&str, &str)> = vec![
        (
            "2026-11-02",
            "S）発熱と咳嗽。\nA）市中肺炎。\nP）抗菌薬で入院加療とする。",
        ),
        ("2026-11-07", "A）市中肺炎は軽快。\nP）退院とする。"),
    ];
    let k = kind("discharge-summary").unwrap();
    let sources: Vec<SourceNote> = notes
        .iter()
        .enumerate()
        .map(|(i, (date, text))| {
            let d = karte_core::draft_floor(text, default_kind())
                .unwrap()
                .document();
            SourceNote::rendered(format!("E{i}@1"), date.to_string(), d)
        })
        .collect();
    let inputs: BTreeMap<String, String> =
        [("admitted", "2026-11-02"), ("discharged", "2026-11-07")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
    let mut draft = compose(k, &sources, &inputs).unwrap();
    // One sentence as the model would leave it: its own words, flagged by the check against its notes.
    let worded = draft
        .sections
        .at_mut(k.position("discharge_diagnosis").unwrap());
    worded[0].origin = karte_core::Origin::Model;
    worded[0].text = "市中肺炎は軽快し、3日後に退院。".into();
    worded[0].flags.push(karte_core::Flag::new(
        "ungrounded_number",
        "記録にない数値が含まれています。",
        Some("3".into()),
    ));
    let signed: Vec<SignedNote> = sources
        .iter()
        .map(|n| SignedNote {
            encounter: n.id.split('@').next().unwrap().to_string(),
            version: 1,
            clinical_date: ClinicalDate::parse(&n.date).unwrap(),
            document: n.document.clone(),
            text: n.text.clone(),
        })
        .collect();
    let d = DocumentDraft {
        draft,
        notes: signed,
        date: ClinicalDate::parse("2026-11-07").unwrap(),
    };
    let html = render(move || view! { <DocumentResult draft=d/> });
    for s in &k.sections {
        assert!(
            html.contains(&format!("data-section=\"{}\"", s.id)),
            "{} missing: {html}",
            s.id
        );
    }
    assert!(html.contains("市中肺炎は軽快"), "{html}");
    // Who wrote the words is on each sentence, and a flag shows beside the sentence it concerns.
    assert_eq!(html.matches("data-origin=\"model\"").count(), 1, "{html}");
    let model_li = &html[html.find("data-origin=\"model\"").unwrap()..];
    let model_li = &model_li[..model_li.find("</li>").unwrap()];
    assert!(
        model_li.contains("data-code=\"ungrounded_number\""),
        "{model_li}"
    );
    let sentences = html.matches("class=\"doc-sentence\"").count();
    assert!(sentences > 5, "{html}");
    assert_eq!(
        html.matches("data-sources=\"1\"").count(),
        sentences,
        "a sentence without its source: {html}"
    );
    assert!(html.contains("文をクリックすると"), "{html}");
}
