use crate::model::{EngineInfo, EngineStatus};
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
        } else if let Some(tps) = info.tokens_per_s {
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
