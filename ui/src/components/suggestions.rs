use super::{spans_attr, Highlight};
use crate::model::Suggestion;
use leptos::prelude::*;

/// Suggested tests (検査提案), each with the rule that fired so a nurse can check it against the rule base.
#[component]
pub fn SuggestionList(suggestions: Vec<Suggestion>, highlight: Highlight) -> impl IntoView {
    let empty = suggestions.is_empty();
    view! {
        <section id="suggestions" class="suggestions">
            <h2>"検査提案"</h2>
            {empty.then(|| view! { <p class="empty">"提案はありません"</p> })}
            <ul>
                {suggestions.into_iter().map(|s| view! { <SuggestionItem suggestion=s highlight=highlight/> }).collect_view()}
            </ul>
        </section>
    }
}

#[component]
fn SuggestionItem(suggestion: Suggestion, highlight: Highlight) -> impl IntoView {
    let Suggestion {
        test,
        reason,
        rule,
        reference,
        spans,
    } = suggestion;
    let (hover_spans, pin_spans, pinned_spans) = (spans.clone(), spans.clone(), spans.clone());
    view! {
        <li
            class="suggestion"
            class:pinned=move || highlight.is_pinned(&pinned_spans)
            tabindex="0"
            data-spans=spans_attr(&spans)
            on:mouseenter=move |_| highlight.hover(hover_spans.clone())
            on:mouseleave=move |_| highlight.leave()
            on:click=move |_| highlight.toggle_pin(pin_spans.clone())
        >
            <div class="suggestion-test">{test}</div>
            <div class="suggestion-reason">{reason}</div>
            <div class="suggestion-rule">
                <code class="rule-id">{rule}</code>
                <span class="reference">{reference}</span>
            </div>
        </li>
    }
}
