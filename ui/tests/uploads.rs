//! The upload badge and the queue-health panel, rendered natively (`cargo test -p ui --features ssr`) from
//! karte-ipc's `OutboxItem` and `UploadOverview`, the ones the Tauri commands send.

use karte_ipc::{Halt, OutboxItem, OutboxState, QueueHealth, UploadOverview};
use leptos::prelude::*;
use ui::uploads::{badge_for, QueueHealthPanel, UploadBadge, HELD_REASON};

fn render<V: IntoView + 'static>(f: impl FnOnce() -> V) -> String {
    let owner = Owner::new();
    owner.with(|| f().into_view().to_html())
}

fn item(
    id: i64,
    version: i64,
    state: OutboxState,
    code: Option<&str>,
    reason: Option<&str>,
) -> OutboxItem {
    OutboxItem {
        id,
        encounter: "E0123456789AB".into(),
        version,
        bundle_id: format!("urn:uuid:00000000-0000-8000-8000-00000000000{id}"),
        replaces: None,
        state,
        attempts: 2,
        next_attempt_at: "2026-11-24T01:00:00.000Z".into(),
        next_attempt_ms: 0,
        last_code: code.map(str::to_string),
        last_reason: reason.map(str::to_string),
        http_status: None,
        created_at: "2026-11-24T01:00:00.000Z".into(),
        sent_at: None,
        held_by: None,
    }
}

#[test]
fn badge_shows_each_state_and_retry_only_when_refused() {
    use OutboxState::*;
    // (state, code, reason, label, reason shown, retry button)
    let table = [
        (Pending, None, None, "送信待ち", false, false),
        (
            Pending,
            Some("sync.unreachable"),
            Some("送信先サーバーに接続できません"),
            "送信待ち",
            true,
            false,
        ),
        (Sent, None, None, "送信済み", false, false),
        (
            Failed,
            Some("sync.rejected"),
            Some("クラウドがこの文書を受け付けませんでした（HTTP 422: Composition.subject）"),
            "送信失敗",
            true,
            true,
        ),
    ];
    for (state, code, reason, label, shows_reason, retry) in table {
        let item = item(3, 1, state, code, reason);
        let html =
            render(move || view! { <UploadBadge item=item on_retry=Callback::new(|_: i64| {})/> });
        assert!(html.contains(label), "{state:?}: {html}");
        assert!(
            html.contains(&format!("data-state=\"{}\"", state.as_str())),
            "{html}"
        );
        assert_eq!(
            html.contains("upload-reason"),
            shows_reason,
            "{state:?}: {html}"
        );
        if let Some(r) = reason.filter(|_| shows_reason) {
            assert!(html.contains(r), "{html}");
        }
        assert_eq!(html.contains("retry-button"), retry, "{state:?}: {html}");
        assert_eq!(html.contains("再送"), retry, "{state:?}: {html}");
    }
}

#[test]
fn the_badge_shows_the_worst_state_of_the_records_versions() {
    use OutboxState::*;
    // (states of v1, v2, v3 in order; the version the badge must show)
    let table: &[(&[OutboxState], i64)] = &[
        (&[Sent, Pending], 2),
        (&[Sent, Sent], 2),
        // A failed earlier version is not hidden behind a later one, sent or waiting.
        (&[Failed, Sent], 1),
        (&[Failed, Pending], 1),
        (&[Sent, Failed, Pending], 2),
        (&[Pending, Pending], 2),
    ];
    for (states, want) in table {
        let items: Vec<OutboxItem> = states
            .iter()
            .enumerate()
            .map(|(i, st)| item(i as i64 + 1, i as i64 + 1, *st, None, None))
            .collect();
        assert_eq!(
            badge_for(&items, "E0123456789AB").unwrap().version,
            *want,
            "{states:?}"
        );
        assert!(badge_for(&items, "E000000000000").is_none());
    }
}

#[test]
fn a_held_amendment_says_it_waits_for_the_earlier_version() {
    use OutboxState::*;
    let mut held = item(2, 2, Pending, None, None);
    held.held_by = Some(1);
    let html = render(move || view! { <UploadBadge item=held/> });
    assert!(html.contains(HELD_REASON), "{html}");
    assert!(html.contains("data-held=\"true\""), "{html}");
    assert!(html.contains("第2版"), "{html}");
    let free = item(3, 1, Pending, None, None);
    let html = render(move || view! { <UploadBadge item=free/> });
    assert!(!html.contains(HELD_REASON), "{html}");
}

#[test]
fn queue_health_shows_counts_halt_and_worker_problem() {
    let health = QueueHealth {
        pending: 4,
        failed: 1,
        sent: 120,
        held: 1,
        oldest_pending_at: Some("2026-11-24T01:00:00.000Z".into()),
        last_sent_at: Some("2026-11-24T00:59:00.000Z".into()),
        last_error: None,
        halted: Some(Halt {
            code: "sync.pin_mismatch".into(),
            message: "送信先サーバーの証明書が登録された公開鍵（ピン）と一致しません。".into(),
            at: "2026-11-24T01:00:01.000Z".into(),
        }),
    };
    let overview = UploadOverview {
        health: health.clone(),
        worker_error: Some(karte_core::Error::new(
            karte_core::Code::SyncClientCertMissing,
            "この端末のクライアント証明書がキーリングにありません。",
        )),
    };
    let html = render(
        move || view! { <QueueHealthPanel overview=overview on_resume=Callback::new(|_: ()| {})/> },
    );
    for want in [
        "送信待ち 4",
        "送信済み 120",
        "送信失敗 1",
        "data-halted=\"true\"",
        "sync.pin_mismatch",
        "送信再開",
        "sync.client_cert_missing",
        "最も古い送信待ち",
        "前の版の送信を待っています: 修正版 1 件",
    ] {
        assert!(html.contains(want), "missing {want}: {html}");
    }
    let calm = UploadOverview {
        health: QueueHealth {
            halted: None,
            ..health
        },
        worker_error: None,
    };
    let html = render(move || view! { <QueueHealthPanel overview=calm/> });
    assert!(
        html.contains("data-halted=\"false\"") && !html.contains("送信再開"),
        "{html}"
    );
}
