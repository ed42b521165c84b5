use crate::model::UiError;
use leptos::prelude::*;

/// The error alert. `data-code` carries the stable code for tests and support; the text is the backend's Japanese
/// message plus a hint chosen by code.
#[component]
pub fn ErrorBox(#[prop(into)] error: Signal<Option<UiError>>) -> impl IntoView {
    move || {
        error.get().map(|e| {
            let hint = e.hint();
            view! {
                <div id="error" class="error" role="alert" data-code=e.code.clone()>
                    <strong class="error-title">"エラー"</strong>
                    <p class="error-message">{e.message.clone()}</p>
                    {hint.map(|h| view! { <p class="error-hint">{h}</p> })}
                </div>
            }
        })
    }
}
