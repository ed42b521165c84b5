//! The sign-in form and the role views, rendered natively (`cargo test -p ui --features ssr`) from karte-ipc's types,
//! the ones the Tauri commands send.

use karte_ipc::*;
use leptos::prelude::*;
use ui::shell::{AuditTable, EncounterReview, LoginView, SaveDraft, UsersTable, VerifyResult};

fn render<V: IntoView + 'static>(f: impl FnOnce() -> V) -> String {
    let owner = Owner::new();
    owner.with(|| f().into_view().to_html())
}

fn encounter() -> EncounterView {
    let suggestion = |id: i64, test: &str, review: Option<ReviewView>| SuggestionView {
        id,
        test: test.into(),
        reason: "発熱と咳嗽".into(),
        rule: format!("RESP-00{id}@2026.11.0"),
        review,
    };
    EncounterView {
        id: "E0123456789AB".into(),
        patient_ref: "P-0001".into(),
        clinical_date: "2026-11-23".parse().unwrap(),
        created_by: "dr.sato".into(),
        created_at: "2026-11-24T01:00:00.000Z".into(),
        signed: false,
        dictation: "65歳男性。発熱と咳嗽。".into(),
        draft: None,
        versions: vec![VersionView {
            version: 1,
            kind: VersionKind::Draft,
            author: "dr.sato".into(),
            created_at: "2026-11-24T01:00:00.000Z".into(),
            text: "S（主観的情報）\n発熱と咳嗽。\n".into(),
            document: karte_core::Document::from_text(
                karte_core::document::default_kind(),
                "S（主観的情報）\n発熱と咳嗽。\n",
            )
            .unwrap(),
            reason: None,
            signature: None,
            content_sha256: "00".into(),
        }],
        suggestions: vec![
            suggestion(
                1,
                "血算",
                Some(ReviewView {
                    decision: Decision::Reject,
                    comment: "前日に施行済み".into(),
                    reviewer: "ns.suzuki".into(),
                    reviewed_at: "2026-11-24T01:05:00.000Z".into(),
                }),
            ),
            suggestion(2, "胸部X線", None),
        ],
    }
}

#[test]
fn login_form_asks_for_name_password_and_totp_code() {
    let html = render(|| view! { <LoginView/> });
    for needle in [
        "id=\"login-user\"",
        "id=\"login-password\" type=\"password\"",
        "id=\"login-totp\"",
        "autocomplete=\"one-time-code\"",
        "id=\"login-button\"",
        "確認コード",
    ] {
        assert!(html.contains(needle), "{needle} missing: {html}");
    }
}

/// The save panel asks for the patient and the clinical date (a date field; the browser prefills today).
#[test]
fn save_panel_asks_for_patient_and_clinical_date() {
    let draft =
        karte_core::draft_floor("発熱と咳嗽。", karte_core::document::default_kind()).unwrap();
    let html = render(move || view! { <SaveDraft draft=draft text=Signal::derive(String::new)/> });
    let patient = html.find("id=\"patient-ref\"").expect("patient field");
    let date = html
        .find("id=\"clinical-date\" type=\"date\"")
        .unwrap_or_else(|| panic!("date field: {html}"));
    let save = html.find("id=\"save-button\"").expect("save button");
    assert!(patient < date && date < save, "{html}");
    for needle in [
        "患者ID",
        "<label for=\"clinical-date\" class=\"field-label\">診療日</label>",
    ] {
        assert!(html.contains(needle), "{needle} missing: {html}");
    }
}

#[test]
fn review_shows_each_suggestion_with_its_state_and_both_decisions() {
    let view = encounter();
    let html = render(
        move || view! { <EncounterReview view=view on_reviewed=Callback::new(|_: String| {})/> },
    );
    assert!(
        html.contains("data-suggestion=\"1\" data-decision=\"reject\""),
        "{html}"
    );
    assert!(
        html.contains("却下（ns.suzuki）「前日に施行済み」"),
        "{html}"
    );
    assert!(
        html.contains("data-suggestion=\"2\" data-decision=\"\""),
        "{html}"
    );
    assert!(html.contains("未レビュー"));
    assert!(
        html.contains("診療日 2026-11-23"),
        "the note's day is shown: {html}"
    );
    assert_eq!(html.matches("class=\"accept\"").count(), 2);
    assert_eq!(html.matches("class=\"reject\"").count(), 2);
    assert!(html.contains("発熱と咳嗽。"), "the nurse sees the note");
}

#[test]
fn admin_tables_and_verify_result() {
    let users = vec![UserInfo {
        name: "ns.suzuki".into(),
        role: Role::Nurse,
        disabled: false,
        locked: true,
        created_at: "2026-11-24T01:00:00.000Z".into(),
    }];
    let html = render(move || view! { <UsersTable users=users/> });
    assert!(
        html.contains("data-name=\"ns.suzuki\"")
            && html.contains("看護師")
            && html.contains("ロック中"),
        "{html}"
    );

    let entries = vec![AuditEntry {
        seq: 7,
        ts_ms: 0,
        ts: "1970-01-01T00:00:00.000Z".into(),
        user: Some("ns.suzuki".into()),
        role: Some("nurse".into()),
        action: "review_suggestions".into(),
        encounter: Some("E0123456789AB".into()),
        version: None,
        outcome: "ok".into(),
        workstation: "ws-1".into(),
        detail: "suggestion=1 decision=reject".into(),
        prev_hash: "a".into(),
        hash: "b".into(),
    }];
    let html = render(move || view! { <AuditTable entries=entries/> });
    assert!(
        html.contains("data-seq=\"7\" data-action=\"review_suggestions\" data-outcome=\"ok\""),
        "{html}"
    );

    let intact = AuditReport {
        entries: 12,
        head_seq: Some(12),
        first_bad: None,
    };
    let html = render(move || view! { <VerifyResult report=intact/> });
    assert!(
        html.contains("data-intact=\"true\"") && html.contains("12 件"),
        "{html}"
    );
    let bad = AuditReport {
        entries: 12,
        head_seq: Some(12),
        first_bad: Some(BadEntry {
            seq: 4,
            problem: Problem::HashMismatch,
        }),
    };
    let html = render(move || view! { <VerifyResult report=bad/> });
    assert!(
        html.contains("data-intact=\"false\"")
            && html.contains("data-problem=\"hash_mismatch\"")
            && html.contains("#4（内容がハッシュと一致しません"),
        "{html}"
    );
}
