//! The JSON of every payload, written out by hand. The same JSON is the CLI's `--json` output and the values in the
//! e2e tests, so a change to a field name or an enum spelling must fail here, not in a ward.

use karte_ipc::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

/// `value` serialises to `wire`, and its JSON text parses back to `value`. (Text, not `wire`: a `Value` sorts
/// object keys, and a document's sections are an object kept in the kind's order.)
fn pinned<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: T, wire: Value) {
    assert_eq!(serde_json::to_value(&value).unwrap(), wire);
    let text = serde_json::to_string(&value).unwrap();
    assert_eq!(serde_json::from_str::<T>(&text).unwrap(), value);
}

#[test]
fn enums_cross_as_their_snake_case_names() {
    for r in Role::ALL {
        pinned(r, json!(r.as_str()));
        assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
    }
    assert_eq!(
        "doctor".parse::<Role>().unwrap_err().code,
        karte_core::Code::UserInvalid
    );
    for k in [
        VersionKind::Draft,
        VersionKind::Edit,
        VersionKind::Amendment,
    ] {
        pinned(k, json!(k.as_str()));
    }
    for d in [Decision::Accept, Decision::Reject] {
        pinned(d, json!(d.as_str()));
    }
    for s in [OutboxState::Pending, OutboxState::Sent, OutboxState::Failed] {
        pinned(s, json!(s.as_str()));
    }
    for p in [
        Problem::HashMismatch,
        Problem::BrokenLink,
        Problem::Missing,
        Problem::HeadMismatch,
        Problem::HeadMissing,
    ] {
        pinned(p.clone(), json!(p.as_str()));
    }
}

#[test]
fn sign_in_and_accounts() {
    pinned(
        SignedIn {
            user: "dr.sato".into(),
            role: Role::Physician,
        },
        json!({"user": "dr.sato", "role": "physician"}),
    );
    pinned(
        UserInfo {
            name: "ns.suzuki".into(),
            role: Role::Nurse,
            disabled: false,
            locked: true,
            created_at: "2026-11-24T01:00:00.000Z".into(),
        },
        json!({"name": "ns.suzuki", "role": "nurse", "disabled": false, "locked": true,
               "created_at": "2026-11-24T01:00:00.000Z"}),
    );
}

#[test]
fn encounters_versions_and_reviews() {
    pinned(
        EncounterSummary {
            id: "E0123456789AB".into(),
            patient_ref: "P-0001".into(),
            clinical_date: "2026-11-23".parse().unwrap(),
            kind: "discharge-summary".into(),
            created_at: "2026-11-24T01:00:00.000Z".into(),
            latest_version: 2,
            signed: true,
            pending_suggestions: 1,
        },
        json!({"id": "E0123456789AB", "patient_ref": "P-0001", "clinical_date": "2026-11-23",
               "kind": "discharge-summary", "created_at": "2026-11-24T01:00:00.000Z",
               "latest_version": 2, "signed": true, "pending_suggestions": 1}),
    );
    let text = "S（主観的情報）\n発熱と咳嗽。\n";
    let document =
        karte_core::Document::from_text(karte_core::document::default_kind(), text).unwrap();
    let document_json = serde_json::to_value(&document).unwrap();
    let view = EncounterView {
        id: "E0123456789AB".into(),
        patient_ref: "P-0001".into(),
        clinical_date: "2026-11-23".parse().unwrap(),
        created_by: "dr.sato".into(),
        created_at: "2026-11-24T01:00:00.000Z".into(),
        signed: true,
        dictation: "発熱と咳嗽。".into(),
        draft: None,
        versions: vec![VersionView {
            version: 1,
            kind: VersionKind::Amendment,
            author: "dr.sato".into(),
            created_at: "2026-11-24T01:00:00.000Z".into(),
            text: text.into(),
            document,
            reason: Some("誤記".into()),
            signature: Some(Signature {
                signer: "dr.sato".into(),
                signed_at: "2026-11-24T01:02:00.000Z".into(),
            }),
            content_sha256: "00".into(),
        }],
        suggestions: vec![SuggestionView {
            id: 1,
            test: "血算".into(),
            reason: "発熱".into(),
            rule: "RESP-001@2026.11.0".into(),
            review: Some(ReviewView {
                decision: Decision::Reject,
                comment: "前日に施行済み".into(),
                reviewer: "ns.suzuki".into(),
                reviewed_at: "2026-11-24T01:05:00.000Z".into(),
            }),
        }],
    };
    assert_eq!(view.latest().version, 1);
    pinned(
        view,
        json!({
            "id": "E0123456789AB", "patient_ref": "P-0001", "clinical_date": "2026-11-23", "created_by": "dr.sato",
            "created_at": "2026-11-24T01:00:00.000Z", "signed": true, "dictation": "発熱と咳嗽。", "draft": null,
            "versions": [{
                "version": 1, "kind": "amendment", "author": "dr.sato", "created_at": "2026-11-24T01:00:00.000Z",
                "text": text, "document": document_json, "reason": "誤記",
                "signature": {"signer": "dr.sato", "signed_at": "2026-11-24T01:02:00.000Z"},
                "content_sha256": "00"
            }],
            "suggestions": [{
                "id": 1, "test": "血算", "reason": "発熱", "rule": "RESP-001@2026.11.0",
                "review": {"decision": "reject", "comment": "前日に施行済み", "reviewer": "ns.suzuki",
                           "reviewed_at": "2026-11-24T01:05:00.000Z"}
            }]
        }),
    );
}

#[test]
fn a_signed_note_carries_its_clinical_date_as_text() {
    let text = "S（主観的情報）\n発熱と咳嗽。\n";
    let document =
        karte_core::Document::from_text(karte_core::document::default_kind(), text).unwrap();
    let document_json = serde_json::to_value(&document).unwrap();
    pinned(
        SignedNote {
            encounter: "E0123456789AB".into(),
            version: 2,
            clinical_date: "2026-11-30".parse().unwrap(),
            document,
            text: text.into(),
        },
        json!({"encounter": "E0123456789AB", "version": 2, "clinical_date": "2026-11-30",
               "document": document_json, "text": text}),
    );
    // A day the calendar lacks does not cross the boundary.
    let bad = json!({"id": "E1", "patient_ref": "P", "clinical_date": "2026-02-30", "created_at": "x",
                     "latest_version": 1, "signed": false, "pending_suggestions": 0});
    assert!(serde_json::from_value::<EncounterSummary>(bad).is_err());
}

#[test]
fn a_document_request_names_the_kind_the_patient_and_the_typed_fields() {
    pinned(
        DocumentRequest {
            kind: "referral".into(),
            patient: "P-0042".into(),
            inputs: [
                ("purpose", "精査のお願い"),
                ("to_facility", "みなと市立病院"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            from: None,
            to: Some("2026-11-30".parse().unwrap()),
        },
        json!({"kind": "referral", "patient": "P-0042",
               "inputs": {"purpose": "精査のお願い", "to_facility": "みなと市立病院"},
               "from": null, "to": "2026-11-30"}),
    );
    // The window may leave out what it does not use.
    let minimal: DocumentRequest =
        serde_json::from_value(json!({"kind": "discharge-summary", "patient": "P-1"})).unwrap();
    assert!(minimal.inputs.is_empty() && minimal.from.is_none() && minimal.to.is_none());
}

#[test]
fn audit_entries_and_verification() {
    pinned(
        AuditEntry {
            seq: 7,
            ts_ms: 1,
            ts: "1970-01-01T00:00:00.001Z".into(),
            user: Some("ns.suzuki".into()),
            role: Some("nurse".into()),
            action: "review_suggestions".into(),
            encounter: None,
            version: None,
            outcome: "ok".into(),
            workstation: "ws-1".into(),
            detail: "suggestion=1 decision=reject".into(),
            prev_hash: "a".into(),
            hash: "b".into(),
        },
        json!({"seq": 7, "ts_ms": 1, "ts": "1970-01-01T00:00:00.001Z", "user": "ns.suzuki", "role": "nurse",
               "action": "review_suggestions", "encounter": null, "version": null, "outcome": "ok",
               "workstation": "ws-1", "detail": "suggestion=1 decision=reject", "prev_hash": "a", "hash": "b"}),
    );
    let bad = AuditReport {
        entries: 12,
        head_seq: Some(12),
        first_bad: Some(BadEntry {
            seq: 4,
            problem: Problem::HashMismatch,
        }),
    };
    assert!(!bad.intact());
    pinned(
        bad,
        json!({"entries": 12, "head_seq": 12, "first_bad": {"seq": 4, "problem": "hash_mismatch"}}),
    );
}

#[test]
fn upload_queue() {
    let item = OutboxItem {
        id: 3,
        encounter: "E0123456789AB".into(),
        version: 2,
        bundle_id: "urn:uuid:00000000-0000-8000-8000-000000000003".into(),
        replaces: Some("urn:uuid:00000000-0000-8000-8000-000000000001".into()),
        state: OutboxState::Failed,
        attempts: 2,
        next_attempt_at: "2026-11-24T01:00:00.000Z".into(),
        next_attempt_ms: 5,
        last_code: Some("sync.rejected".into()),
        last_reason: Some("HTTP 422".into()),
        http_status: Some(422),
        created_at: "2026-11-24T00:00:00.000Z".into(),
        sent_at: None,
        held_by: None,
    };
    let wire = json!({
        "id": 3, "encounter": "E0123456789AB", "version": 2,
        "bundle_id": "urn:uuid:00000000-0000-8000-8000-000000000003",
        "replaces": "urn:uuid:00000000-0000-8000-8000-000000000001", "state": "failed", "attempts": 2,
        "next_attempt_at": "2026-11-24T01:00:00.000Z", "next_attempt_ms": 5, "last_code": "sync.rejected",
        "last_reason": "HTTP 422", "http_status": 422, "created_at": "2026-11-24T00:00:00.000Z", "sent_at": null,
        "held_by": null
    });
    pinned(item.clone(), wire.clone());
    // Rows written before amendments were held back have no `held_by`.
    let mut old = wire;
    old.as_object_mut().unwrap().remove("held_by");
    assert_eq!(serde_json::from_value::<OutboxItem>(old).unwrap(), item);

    let health = QueueHealth {
        pending: 4,
        failed: 1,
        sent: 120,
        held: 1,
        oldest_pending_at: Some("2026-11-24T01:00:00.000Z".into()),
        last_sent_at: None,
        last_error: Some("sync.unreachable".into()),
        halted: Some(Halt {
            code: "sync.pin_mismatch".into(),
            message: "ピンが一致しません".into(),
            at: "2026-11-24T01:00:01.000Z".into(),
        }),
    };
    let health_json = json!({
        "pending": 4, "failed": 1, "sent": 120, "held": 1, "oldest_pending_at": "2026-11-24T01:00:00.000Z",
        "last_sent_at": null, "last_error": "sync.unreachable",
        "halted": {"code": "sync.pin_mismatch", "message": "ピンが一致しません", "at": "2026-11-24T01:00:01.000Z"}
    });
    pinned(health.clone(), health_json.clone());
    pinned(
        UploadOverview {
            health,
            worker_error: Some(karte_core::Error::new(
                karte_core::Code::SyncClientCertMissing,
                "証明書がありません",
            )),
        },
        json!({"health": health_json,
               "worker_error": {"code": "sync.client_cert_missing", "message": "証明書がありません"}}),
    );
}

#[test]
fn dictation_audio_recordings_and_hearing() {
    pinned(
        karte_ipc::Dictated {
            text: "聴診上ラ音あり".into(),
            engine: karte_core::EngineKind::Server,
            duration_s: 3.9,
            speech_s: 3.2,
            corrections: vec![karte_ipc::TranscriptionCorrection {
                from: "調身".into(),
                to: "聴診".into(),
                at: 0,
            }],
        },
        json!({"text": "聴診上ラ音あり", "engine": "server", "duration_s": 3.9, "speech_s": 3.2,
               "corrections": [{"from": "調身", "to": "聴診", "at": 0}]}),
    );
    // No corrections: the field is left out, as before it existed.
    let plain: karte_ipc::Dictated = serde_json::from_value(
        json!({"text": "発熱", "engine": "local_worker", "duration_s": 1.0, "speech_s": 0.8}),
    )
    .unwrap();
    assert!(plain.corrections.is_empty());
    pinned(
        karte_ipc::Recording {
            id: "3f2a".into(),
            started_at: "2026-12-07T05:30:12.000Z".into(),
            seconds: 25.5,
            open: true,
        },
        json!({"id": "3f2a", "started_at": "2026-12-07T05:30:12.000Z", "seconds": 25.5, "open": true}),
    );
    pinned(
        karte_ipc::HearingProgress {
            heard_s: 29.6,
            total_s: 612.0,
            text: "発熱".into(),
        },
        json!({"heard_s": 29.6, "total_s": 612.0, "text": "発熱"}),
    );
}
