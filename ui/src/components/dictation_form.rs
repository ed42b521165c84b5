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
    /// A recording was chosen with 音声ファイルを開く; the caller has it heard and puts the text in the box.
    on_audio: Callback<web_sys::File>,
) -> impl IntoView {
    let on_file = move |ev: leptos::ev::Event| {
        let Some(input) = ev
            .target()
            .and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlInputElement>(t).ok())
        else {
            return;
        };
        if let Some(file) = input.files().and_then(|f| f.get(0)) {
            on_audio.run(file);
        }
        // Cleared, so that choosing the same file again (after editing the box away) is a change again.
        input.set_value("");
    };
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
                // A label around the input: the button look, and the native file chooser on click. The input itself is
                // only visually hidden (not display:none), so keyboard users and WebDriver can still reach it.
                <label class="audio-open" class:disabled=move || busy.get()>
                    "音声ファイルを開く"
                    <input
                        type="file"
                        id="audio-file"
                        class="visually-hidden"
                        accept=".wav,.flac,.mp3,.m4a,audio/wav,audio/x-wav,audio/flac,audio/mpeg,audio/mp4,audio/x-m4a"
                        disabled=move || busy.get()
                        on:change=on_file
                    />
                </label>
                <button id="draft-button" type="submit" disabled=move || busy.get()>
                    {move || if busy.get() { "作成中…" } else { "下書き作成" }}
                </button>
            </div>
        </form>
    }
}
