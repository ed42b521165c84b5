use crate::model::{EngineInfo, EngineKind, EngineStatus};
use leptos::prelude::*;

/// The parts of the status line, in display order. The last draft's engine wins over the configured one: it says
/// what actually produced the note on screen (a model that fell back to the rules must not look like a model draft).
pub fn status_parts(status: Option<&EngineStatus>, last: Option<&EngineInfo>) -> Vec<String> {
    let mut parts = Vec::new();
    match status {
        Some(s) => {
            let state = if s.loaded {
                "読み込み済み"
            } else {
                "未読み込み"
            };
            parts.push(format!("モデル: {}（{}）", s.model, state));
        }
        None => parts.push("モデル: 確認中…".to_string()),
    }
    if let Some(info) = last {
        if info.kind == "rules" {
            parts.push("前回の下書き: ルールのみ（モデルなし）".to_string());
        } else if let Some(tps) = info.stats.as_ref().and_then(|s| s.tokens_per_s()) {
            parts.push(format!("前回の生成速度: {tps:.1} トークン/秒"));
        }
    } else if let Some(tps) = status.and_then(|s| s.tokens_per_s) {
        parts.push(format!("前回の生成速度: {tps:.1} トークン/秒"));
    }
    parts
}

#[component]
pub fn StatusBar(
    #[prop(into)] status: Signal<Option<EngineStatus>>,
    #[prop(into)] last: Signal<Option<EngineInfo>>,
) -> impl IntoView {
    view! {
        <div id="status-bar" class="status-bar">
            {move || {
                status_parts(status.get().as_ref(), last.get().as_ref())
                    .into_iter()
                    .map(|p| view! { <span class="status-item">{p}</span> })
                    .collect_view()
            }}
        </div>
    }
}

/// Which engine drafts — 院内サーバー or この端末 — with the reason beside it (and as the tooltip), and 再接続 when
/// the workstation is on its own model, so a nurse can bring the clinic server back after the network returns
/// without waiting for the next automatic check. `data-kind` carries the stable kind for tests and support.
#[component]
pub fn EngineIndicator(
    #[prop(into)] status: Signal<Option<EngineStatus>>,
    #[prop(into)] reconnecting: Signal<bool>,
    on_reconnect: Callback<()>,
) -> impl IntoView {
    move || {
        status
            .get()
            .and_then(|s| {
                // A settings problem is not cured by probing the server again: no 再接続 then.
                let offer_reconnect = s.problem.is_none();
                s.serving.map(|sv| (sv, offer_reconnect))
            })
            .map(|(sv, offer_reconnect)| {
                let on_server = sv.kind == EngineKind::Server;
                view! {
                    <div id="engine-indicator" class="engine-indicator" data-kind=sv.kind.as_str()
                        title=sv.reason.clone()>
                        <span class="engine-label">{format!("生成: {}", sv.label)}</span>
                        <small class="engine-reason">{sv.reason.clone()}</small>
                        {(!on_server && offer_reconnect).then(|| view! {
                            <button id="reconnect-button" class="reconnect" type="button"
                                disabled=move || reconnecting.get()
                                on:click=move |_| on_reconnect.run(())>
                                {move || if reconnecting.get() { "確認中…" } else { "再接続" }}
                            </button>
                        })}
                    </div>
                }
            })
    }
}

/// A settings problem that stops model drafting, shown until it is fixed (the draft's own error box comes and goes
/// with each draft; this one says why every model draft will fail).
#[component]
pub fn EngineProblem(#[prop(into)] status: Signal<Option<EngineStatus>>) -> impl IntoView {
    move || {
        status.get().and_then(|s| s.problem).map(|e| {
            view! {
                <div id="engine-problem" class="error engine-problem" role="alert" data-code=e.code.as_str()>
                    <strong class="error-title">"設定の問題"</strong>
                    <p class="error-message">{e.message.clone()}</p>
                    <p class="error-hint">"「モデルを使わない（ルールのみ）」にチェックを入れると、モデルなしで下書きできます。"</p>
                </div>
            }
        })
    }
}
