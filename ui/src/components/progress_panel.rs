use crate::model::ProgressState;
use leptos::prelude::*;

/// How much of the model's stream stays on screen: enough to see it move, small enough to stay cheap per token.
const STREAM_TAIL_CHARS: usize = 400;

/// Shown while a draft is running, so the physician sees the app is working (model loading alone can take tens of
/// seconds on a ward PC).
#[component]
pub fn ProgressPanel(
    #[prop(into)] busy: Signal<bool>,
    #[prop(into)] progress: Signal<ProgressState>,
    on_cancel: Callback<()>,
) -> impl IntoView {
    view! {
        <Show when=move || busy.get()>
            <div id="progress" class="progress" role="status" aria-live="polite">
                <progress class="spinner"></progress>
                <div class="progress-line">
                    <span class="stage">
                        {move || progress.with(|p| p.stages.last().cloned().unwrap_or_else(|| "準備中…".to_string()))}
                    </span>
                    <span class="tokens">
                        {move || progress.with(|p| if p.tokens > 0 { format!("{} トークン生成", p.tokens) } else { String::new() })}
                    </span>
                </div>
                <button id="cancel-button" type="button" class="secondary" on:click=move |_| on_cancel.run(())>
                    "中止"
                </button>
                <pre class="stream">{move || progress.with(|p| p.streamed_tail(STREAM_TAIL_CHARS).to_string())}</pre>
            </div>
        </Show>
    }
}
