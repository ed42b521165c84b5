//! Upload state in the window: a badge per signed document (送信待ち / 送信済み / 送信失敗 with the reason, and
//! 再送 on a refused one) and the queue's health for administrators (counts, the uploader's last problem, a halt
//! alert with 送信再開). The queue itself is karte-store's and karte-sync's; these only render and call.

use karte_ipc::{OutboxItem, OutboxState, UploadOverview};
use leptos::prelude::*;

/// What a held-back amendment shows: why it is not being sent.
pub const HELD_REASON: &str = "前の版の送信を待っています";

/// The upload state of one signed version.
#[component]
pub fn UploadBadge(
    item: OutboxItem,
    #[prop(optional)] on_retry: Option<Callback<i64>>,
) -> impl IntoView {
    let failed = item.state == OutboxState::Failed;
    let pending = item.state == OutboxState::Pending;
    let id = item.id;
    let label = item.state.label_ja();
    let held = pending && item.held_by.is_some();
    // A sent document's last failure is history: only a waiting or refused one says why.
    let reason = if held {
        Some(HELD_REASON.to_string())
    } else {
        item.last_reason.clone().filter(|_| failed || pending)
    };
    let code = item.last_code.clone().unwrap_or_default();
    let version = format!("第{}版", item.version);
    view! {
        <span class="upload" data-state=item.state.as_str() data-item=id.to_string() data-held=held.to_string() title=item.bundle_id.clone()>
            <span class="upload-version">{version}</span>
            <span class="upload-label">{label}</span>
            {reason.map(|r| view! { <span class="upload-reason" data-code=code>{r}</span> })}
            {(failed && on_retry.is_some()).then(|| {
                let cb = on_retry.expect("checked");
                view! { <button class="retry-button" type="button" on:click=move |_| cb.run(id)>"再送"</button> }
            })}
        </span>
    }
}

/// How urgent a state is for the record's badge: a failure needs a person, waiting needs patience, sent needs
/// nothing.
fn severity(i: &OutboxItem) -> u8 {
    match i.state {
        OutboxState::Failed => 2,
        OutboxState::Pending => 1,
        OutboxState::Sent => 0,
    }
}

/// The queued version of `encounter` its badge shows: the worst state among its versions (a failed earlier
/// version is never hidden behind a later one that was sent or is waiting), the latest version among equals.
pub fn badge_for<'a>(items: &'a [OutboxItem], encounter: &str) -> Option<&'a OutboxItem> {
    items
        .iter()
        .filter(|i| i.encounter == encounter)
        .max_by_key(|i| (severity(i), i.version))
}

fn worker_problem(e: &karte_core::Error) -> impl IntoView {
    view! {
        <p class="upload-worker-error" data-code=e.code.as_str()>
            {format!("送信処理: {} [{}]", e.message, e.code)}
        </p>
    }
}

/// Queue health for the admin view.
#[component]
pub fn QueueHealthPanel(
    overview: UploadOverview,
    #[prop(optional)] on_resume: Option<Callback<()>>,
) -> impl IntoView {
    let h = overview.health;
    let halted = h.halted.clone();
    let is_halted = halted.is_some().to_string();
    view! {
        <section id="queue-health" class="queue-health" data-halted=is_halted>
            <p class="queue-counts">
                <span data-count="pending">{format!("送信待ち {}", h.pending)}</span>"　"
                <span data-count="sent">{format!("送信済み {}", h.sent)}</span>"　"
                <span data-count="failed">{format!("送信失敗 {}", h.failed)}</span>
            </p>
            {halted.map(|halt| view! {
                <div class="queue-halt alert" data-code=halt.code.clone()>
                    <p>{format!("送信停止中 [{}]: {}", halt.code, halt.message)}</p>
                    {on_resume.map(|cb| view! {
                        <button id="resume-button" type="button" on:click=move |_| cb.run(())>"送信再開"</button>
                    })}
                </div>
            })}
            {h.oldest_pending_at.map(|at| view! { <p class="queue-oldest">{format!("最も古い送信待ち: {at}")}</p> })}
            {h.last_error.map(|c| view! { <p class="queue-retrying" data-code=c.clone()>{format!("自動再送中（{c}）")}</p> })}
            {(h.held > 0).then(|| view! { <p class="queue-held">{format!("{HELD_REASON}: 修正版 {} 件", h.held)}</p> })}
            {h.last_sent_at.map(|at| view! { <p class="queue-last-sent">{format!("最後の送信: {at}")}</p> })}
            {overview.worker_error.as_ref().map(worker_problem)}
        </section>
    }
}
