use crate::highlight::segments;
use crate::model::Span;
use leptos::prelude::*;

/// Read-only mirror of the dictation with the evidence of the hovered or pinned item in `<mark>`.
#[component]
pub fn SourceView(
    #[prop(into)] text: Signal<String>,
    #[prop(into)] spans: Signal<Vec<Span>>,
) -> impl IntoView {
    view! {
        <div id="source-view" class="source-view" aria-label="口述（根拠の表示）">
            {move || {
                let text = text.get();
                if text.is_empty() {
                    return view! { <span class="placeholder">"下書きを作成すると、文ごとの根拠がここに表示されます。"</span> }.into_any();
                }
                segments(&text, &spans.get())
                    .into_iter()
                    .map(|s| if s.marked { view! { <mark>{s.text}</mark> }.into_any() } else { s.text.into_any() })
                    .collect_view()
                    .into_any()
            }}
        </div>
    }
}
