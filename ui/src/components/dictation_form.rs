use leptos::ev::KeyboardEvent;
use leptos::prelude::*;

/// Shown in the empty textarea: an example of the expected style, not real patient data.
pub const PLACEHOLDER: &str = "65歳男性。3日前から発熱と咳嗽…（例：BT 38.6℃、SpO2 93%。右下肺野で湿性ラ音。市中肺炎を疑う。）";

#[component]
pub fn DictationForm(
    text: RwSignal<String>,
    no_llm: RwSignal<bool>,
    #[prop(into)] busy: Signal<bool>,
    on_submit: Callback<()>,
) -> impl IntoView {
    // Ctrl+Enter drafts without leaving the keyboard, as in most ward systems' text fields.
    let on_key = move |ev: KeyboardEvent| {
        if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) && !busy.get_untracked() {
            ev.prevent_default();
            on_submit.run(());
        }
    };
    view! {
        <form class="dictation-form" on:submit=move |ev| {
            ev.prevent_default();
            if !busy.get_untracked() {
                on_submit.run(());
            }
        }>
            <label for="dictation" class="field-label">"口述"</label>
            <textarea
                id="dictation"
                rows="9"
                placeholder=PLACEHOLDER
                prop:value=move || text.get()
                on:input=move |ev| text.set(event_target_value(&ev))
                on:keydown=on_key
            ></textarea>
            <div class="form-row">
                <label class="checkbox">
                    <input
                        type="checkbox"
                        id="no-llm"
                        prop:checked=move || no_llm.get()
                        on:change=move |ev| no_llm.set(event_target_checked(&ev))
                    />
                    "モデルを使わない（ルールのみ）"
                </label>
                <button id="draft-button" type="submit" disabled=move || busy.get()>
                    {move || if busy.get() { "作成中…" } else { "下書き作成" }}
                </button>
            </div>
        </form>
    }
}
