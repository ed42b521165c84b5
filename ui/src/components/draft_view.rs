use super::{spans_attr, Highlight, SuggestionList};
use crate::model::{DraftOutput, Flag, Sentence};
use leptos::prelude::*;

/// The text of a flag badge: the message, then the offending text when there is one (⚠ 口述にない数値: 39.2).
pub fn flag_label(flag: &Flag) -> String {
    match &flag.detail {
        Some(d) if !d.is_empty() => format!("⚠ {}: {}", flag.message, d),
        _ => format!("⚠ {}", flag.message),
    }
}

/// The draft: the document kind's sections in its order and, beside them, the suggested tests.
#[component]
pub fn DraftView(draft: DraftOutput, highlight: Highlight) -> impl IntoView {
    let DraftOutput {
        kind,
        sections,
        suggestions,
        flags,
        engine,
        ..
    } = draft;
    let fallback = engine.fallback_reason.clone();
    // Withheld model text gets a notice of its own, above everything: the physician must know the draft is not
    // everything the model wrote.
    let (blocked, flags): (Vec<Flag>, Vec<Flag>) =
        flags.into_iter().partition(|f| f.code == "blocked");
    let blocked = blocked.into_iter().next();
    view! {
        <div class="draft-grid">
            <div class="draft" id="draft">
                {fallback.map(|r| view! { <p class="note fallback">"モデルの出力は使わず、ルールによる下書きを表示しています（" {r} "）"</p> })}
                {blocked.map(|f| view! {
                    <p class="notice blocked" role="alert" data-code="blocked">"🛡 " {f.message}</p>
                })}
                {(!flags.is_empty()).then(|| view! {
                    <ul class="draft-flags">
                        {flags.into_iter().map(|f| view! { <li class="flag" data-code=f.code.clone()>{flag_label(&f)}</li> }).collect_view()}
                    </ul>
                })}
                {sections
                    .parts()
                    .iter()
                    .map(|p| {
                        let heading = karte_core::document::kind(&kind)
                            .map_or(p.id.clone(), |k| k.heading(&p.id).to_string());
                        view! { <SectionView id=p.id.clone() heading=heading sentences=p.sentences.clone() highlight=highlight/> }
                    })
                    .collect_view()}
            </div>
            <SuggestionList suggestions=suggestions highlight=highlight/>
        </div>
    }
}

#[component]
fn SectionView(
    id: String,
    heading: String,
    sentences: Vec<Sentence>,
    highlight: Highlight,
) -> impl IntoView {
    let empty = sentences.is_empty();
    view! {
        <section id=format!("section-{id}") class="soap-section">
            <h2>{heading}</h2>
            {empty.then(|| view! { <p class="empty">"（該当なし）"</p> })}
            <ul>
                {problem_runs(sentences).into_iter().map(|(problem, s)| view! {
                    {problem.map(|p| {
                        let attr = p.clone();
                        view! { <li class="problem" data-problem=attr>{p}</li> }
                    })}
                    <SentenceItem sentence=s highlight=highlight/>
                }).collect_view()}
            </ul>
        </section>
    }
}

/// Each sentence with the problem heading (「#1 市中肺炎」) to show before it: where its problem differs from the
/// sentence before, as the signed text renders it, so a problem-oriented note keeps its grouping on screen.
fn problem_runs(sentences: Vec<Sentence>) -> Vec<(Option<String>, Sentence)> {
    let mut last: Option<String> = None;
    sentences
        .into_iter()
        .map(|s| {
            let heading = s.problem.clone().filter(|p| last.as_ref() != Some(p));
            last = s.problem.clone();
            (heading, s)
        })
        .collect()
}

/// One sentence of the draft. Hover (or keyboard focus) shows its evidence in the source view; click pins it.
#[component]
pub fn SentenceItem(sentence: Sentence, highlight: Highlight) -> impl IntoView {
    let Sentence {
        text, spans, flags, ..
    } = sentence;
    let ungrounded = spans.is_empty();
    let (hover_spans, focus_spans, pin_spans, pinned_spans) =
        (spans.clone(), spans.clone(), spans.clone(), spans.clone());
    view! {
        <li
            class="sentence"
            class:ungrounded=ungrounded
            class:pinned=move || highlight.is_pinned(&pinned_spans)
            tabindex="0"
            data-spans=spans_attr(&spans)
            on:mouseenter=move |_| highlight.hover(hover_spans.clone())
            on:mouseleave=move |_| highlight.leave()
            on:focus=move |_| highlight.hover(focus_spans.clone())
            on:blur=move |_| highlight.leave()
            on:click=move |_| highlight.toggle_pin(pin_spans.clone())
        >
            <span class="text">{text}</span>
            {flags
                .into_iter()
                .map(|f| view! { <span class="flag" data-code=f.code.clone()>{flag_label(&f)}</span> })
                .collect_view()}
        </li>
    }
}
