//! The record store against real parts: SQLCipher files in temporary directories, keys in the kernel keyring
//! (each test in its own `keyctl session`), real drafts from karte-core's rules.

mod common;

use common::*;
use karte_core::Code;
use karte_store::{permits, Action, Decision, Role, Store, VersionKind};
use std::path::Path;
use std::time::Duration;

fn code_of<T: std::fmt::Debug>(r: karte_core::Result<T>) -> Code {
    r.expect_err("expected an error").code
}

/// Expected matrix, row by row: (action, physician, nurse, admin).
const MATRIX: [(Action, bool, bool, bool); 11] = [
    (Action::Draft, true, false, false),
    (Action::View, true, true, false),
    (Action::ReviewSuggestions, true, true, false),
    (Action::Edit, true, false, false),
    (Action::Sign, true, false, false),
    (Action::Amend, true, false, false),
    (Action::Export, true, false, false),
    (Action::ManageUsers, false, false, true),
    (Action::ReadAuditLog, false, false, true),
    (Action::Backup, false, false, true),
    (Action::Dictate, true, false, false),
];

#[test]
fn permission_matrix_every_role_and_action() {
    if !keyring_session("permission_matrix_every_role_and_action") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::new(dir.path(), config());
    let admin = ward.login_admin();
    let fixture = ward.login_physician();
    let s = &ward.store;
    // A second physician acts in the table, so the fixture physician's session stays separate.
    let p2 = phone(
        &s.add_user(&admin, "dr.ito", Role::Physician, PASSWORD)
            .unwrap(),
    );
    let sessions = [
        (
            Role::Physician,
            s.login("dr.ito", PASSWORD, &p2.code()).unwrap(),
        ),
        (Role::Nurse, ward.login_nurse()),
        (Role::Admin, admin),
    ];
    let pseudo = |t: &str| t.to_string();
    let mut denials = 0;
    for (role, session) in &sessions {
        for (action, phys, nurse, adm) in MATRIX {
            let expected = match role {
                Role::Physician => phys,
                Role::Nurse => nurse,
                Role::Admin => adm,
            };
            assert_eq!(permits(*role, action), expected, "matrix {role} {action:?}");
            // Fresh records for each cell, so one cell's outcome cannot change another's.
            let open = s
                .save_draft(&fixture, "P-0001", None, DICTATION, &draft(DICTATION))
                .unwrap();
            let signed = s
                .save_draft(&fixture, "P-0002", None, DICTATION, &draft(DICTATION))
                .unwrap();
            s.sign(&fixture, &signed, 1).unwrap();
            let result: karte_core::Result<()> = match action {
                Action::Draft => s
                    .save_draft(session, "P-0003", None, DICTATION, &draft(DICTATION))
                    .map(drop),
                Action::View => s.history(session, &open).map(drop),
                Action::ReviewSuggestions => {
                    s.review(session, &open, 1, Decision::Accept, "").map(drop)
                }
                Action::Edit => s.edit(session, &open, "S）追記").map(drop),
                Action::Sign => s.sign(session, &open, 1).map(drop),
                Action::Amend => s
                    .amend(session, &signed, "P）修正後の本文", "誤記訂正")
                    .map(drop),
                Action::Export => s.export_feedback(session, Some(&pseudo)).map(drop),
                Action::ManageUsers => s
                    .add_user(
                        session,
                        &format!("u{}", random_u64() % 1_000_000),
                        Role::Nurse,
                        PASSWORD,
                    )
                    .map(drop),
                Action::ReadAuditLog => s.audit_entries(session).map(drop),
                Action::Backup => s
                    .backup(
                        session,
                        &dir.path().join(format!("backup-{}.db", random_u64())),
                    )
                    .map(drop),
                Action::Dictate => s
                    .draft_with(session, "progress-note", || Ok(draft(DICTATION)))
                    .map(drop),
            };
            match (expected, result) {
                (true, Ok(())) => {}
                (false, Err(e)) if e.code == Code::AuthForbidden => denials += 1,
                (want, got) => panic!("{role} {action:?}: expected allowed={want}, got {got:?}"),
            }
        }
    }
    assert_eq!(
        denials,
        MATRIX
            .iter()
            .map(|r| [r.1, r.2, r.3].iter().filter(|x| !**x).count())
            .sum::<usize>()
    );
    // Every denial is on the audit record, with who tried what.
    let log = s.audit_entries(&sessions[2].1).unwrap();
    let denied: Vec<_> = log.iter().filter(|e| e.outcome == "denied").collect();
    assert_eq!(denied.len(), denials);
    assert!(denied
        .iter()
        .any(|e| e.user.as_deref() == Some("ns.suzuki") && e.action == "sign"));
    assert!(denied
        .iter()
        .any(|e| e.user.as_deref() == Some("admin") && e.action == "view"));
}

/// The window's draft reaches `save_draft` through Tauri, which reads command arguments into a sorted map: the
/// sections arrive alphabetically and must still be stored, and verify, in the kind's order.
#[test]
fn a_draft_whose_sections_arrive_sorted_is_stored_in_the_kinds_order() {
    if !keyring_session("a_draft_whose_sections_arrive_sorted_is_stored_in_the_kinds_order") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::new(dir.path(), config());
    let doc = ward.login_physician();
    let s = &ward.store;
    let d = draft(DICTATION);
    let sorted: serde_json::Value = serde_json::to_value(&d).unwrap();
    let arrived: karte_core::DraftOutput = serde_json::from_value(sorted).unwrap();
    let ids = |d: &karte_core::Document| -> Vec<String> {
        d.sections.parts().iter().map(|p| p.id.clone()).collect()
    };
    assert_ne!(
        ids(&arrived.document()),
        ids(&d.document()),
        "the round trip through a sorted map must reorder, or this test proves nothing"
    );
    let id = s
        .save_draft(&doc, "P-0001", None, DICTATION, &arrived)
        .unwrap();
    let v = s.history(&doc, &id).unwrap();
    assert_eq!(v.versions[0].document, d.document());
    assert_eq!(v.draft.unwrap().sections, d.sections);
    assert_eq!(s.check_integrity().unwrap().altered_versions, []);
}

#[test]
fn review_sign_amend_history() {
    if !keyring_session("review_sign_amend_history") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::new(dir.path(), config());
    let (doc, ns) = (ward.login_physician(), ward.login_nurse());
    let s = &ward.store;
    let d = draft(DICTATION);
    assert!(d.suggestions.len() >= 2, "the sample must give suggestions");
    let id = s.save_draft(&doc, "P-0001", None, DICTATION, &d).unwrap();

    // Nurse reviews: accept one, reject one with a reason; a bare rejection or an unknown number is refused.
    s.review(&ns, &id, 1, Decision::Accept, "").unwrap();
    s.review(&ns, &id, 2, Decision::Reject, "既に外来で施行済み")
        .unwrap();
    assert_eq!(
        code_of(s.review(&ns, &id, 2, Decision::Reject, "  ")),
        Code::InputEmpty
    );
    assert_eq!(
        code_of(s.review(&ns, &id, 99, Decision::Accept, "")),
        Code::RecordSuggestionNotFound
    );
    assert_eq!(code_of(s.sign(&ns, &id, 2)), Code::AuthForbidden);

    // Physician edits, signs; the signed record is locked.
    assert_eq!(
        code_of(s.amend(&doc, &id, "x", "理由")),
        Code::RecordNotSigned
    );
    assert_eq!(
        s.edit(&doc, &id, "S）発熱と咳嗽。\nO）BT 38.6℃。").unwrap(),
        2
    );
    assert_eq!(code_of(s.sign(&doc, &id, 1)), Code::RecordChanged);
    assert_eq!(s.sign(&doc, &id, 2).unwrap(), 2);
    assert_eq!(code_of(s.sign(&doc, &id, 2)), Code::RecordSigned);
    assert_eq!(code_of(s.edit(&doc, &id, "書き換え")), Code::RecordSigned);
    assert_eq!(
        code_of(s.amend(&doc, &id, "本文", " ")),
        Code::RecordReasonRequired
    );
    assert_eq!(
        s.amend(&doc, &id, "S）発熱と咳嗽。\nO）BT 38.4℃。", "体温の誤記")
            .unwrap(),
        3
    );
    assert_eq!(code_of(s.history(&doc, "ENOSUCH")), Code::RecordNotFound);

    let h = s.history(&ns, &id).unwrap();
    assert_eq!(h.patient_ref, "P-0001");
    assert_eq!(h.dictation, DICTATION);
    assert!(h.signed);
    let kinds: Vec<_> = h.versions.iter().map(|v| (v.version, v.kind)).collect();
    assert_eq!(
        kinds,
        [
            (1, VersionKind::Draft),
            (2, VersionKind::Edit),
            (3, VersionKind::Amendment)
        ]
    );
    assert!(h.versions[0].text.contains("38.6℃") && h.versions[0].signature.is_none());
    // Every version keeps its document: the draft's sentences with their spans, an edit's as typed under its
    // headings, and the text is always their rendering.
    for v in &h.versions {
        assert_eq!(v.document.kind, "progress-note");
        assert_eq!(v.text, v.document.render());
    }
    assert!(h.versions[0]
        .document
        .sections
        .iter()
        .all(|(_, s)| !s.spans.is_empty()));
    assert_eq!(
        h.versions[2].document.sections.get("objective")[0].text,
        "BT 38.4℃。"
    );
    assert_eq!(h.versions[1].signature.as_ref().unwrap().signer, "dr.sato");
    assert_eq!(h.versions[2].reason.as_deref(), Some("体温の誤記"));
    assert_eq!(h.versions[2].signature.as_ref().unwrap().signer, "dr.sato");
    assert_eq!(
        h.suggestions[0].review.as_ref().unwrap().decision,
        Decision::Accept
    );
    let r2 = h.suggestions[1].review.as_ref().unwrap();
    assert_eq!(
        (r2.decision, r2.comment.as_str(), r2.reviewer.as_str()),
        (Decision::Reject, "既に外来で施行済み", "ns.suzuki")
    );
    assert!(h.suggestions[2..].iter().all(|g| g.review.is_none()));
    let list = s.encounters(&ns).unwrap();
    assert_eq!(
        (list.len(), list[0].latest_version, list[0].signed),
        (1, 3, true)
    );

    // Versions are immutable even through SQL (triggers), short of dropping the triggers.
    let raw = raw_conn(dir.path(), s.store_id());
    for sql in [
        "UPDATE versions SET note_text = 'x' WHERE version = 2",
        "DELETE FROM versions WHERE version = 3",
        "DELETE FROM signatures",
        "UPDATE audit SET detail = 'x' WHERE seq = 1",
        "INSERT INTO versions (encounter_id, version, kind, author_id, created_at_ms, note_text, content_sha256)
         SELECT id, 9, 'edit', 1, 0, 'x', 'x' FROM encounters",
    ] {
        let err = raw.execute_batch(sql).expect_err(sql).to_string();
        assert!(err.contains("immutable") || err.contains("append-only") || err.contains("amendment"), "{sql}: {err}");
    }
    let report = s.check_integrity().unwrap();
    assert_eq!((report.versions, report.altered_versions.len()), (3, 0));

    // Content edited behind the triggers' back is found by its hash.
    raw.execute_batch(
        "DROP TRIGGER versions_no_update; UPDATE versions SET note_text = note_text || '改' WHERE version = 2;",
    )
    .unwrap();
    assert_eq!(
        s.check_integrity().unwrap().altered_versions,
        vec![(id.clone(), 2)]
    );
    // So is a document changed without its text: the sentence moved from O to A is what would be uploaded.
    raw.execute_batch(
        "UPDATE versions SET document = replace(replace(document, '\"objective\"', '\"x\"'), '\"assessment\"', '\"objective\"')
         WHERE version = 3; UPDATE versions SET document = replace(document, '\"x\"', '\"assessment\"') WHERE version = 3;",
    )
    .unwrap();
    assert_eq!(
        s.check_integrity().unwrap().altered_versions,
        vec![(id.clone(), 2), (id.clone(), 3)]
    );
}

#[test]
fn sign_in_failures_lockout_replay_disable_idle() {
    if !keyring_session("sign_in_failures_lockout_replay_disable_idle") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.idle_timeout = Duration::from_millis(1500);
    let ward = Ward::new(dir.path(), cfg);
    let s = &ward.store;
    let n = &ward.nurse;

    assert_eq!(
        code_of(s.login("ns.suzuki", PASSWORD, "")),
        Code::AuthTotpRequired
    );
    assert_eq!(
        code_of(s.login("nobody", PASSWORD, &n.code())),
        Code::AuthFailed
    );
    assert_eq!(
        code_of(s.login("ns.suzuki", PASSWORD, &n.stale())),
        Code::AuthFailed
    );
    // The same code twice: the second is a replay.
    let code = n.code();
    s.login("ns.suzuki", PASSWORD, &code).unwrap();
    assert_eq!(
        code_of(s.login("ns.suzuki", PASSWORD, &code)),
        Code::AuthTotpReused
    );

    // Five failures in a row lock the account, even against the right password afterwards.
    for i in 1..=5 {
        let got = code_of(s.login("ns.suzuki", "wrong-password", &n.stale()));
        assert_eq!(
            got,
            if i < 5 {
                Code::AuthFailed
            } else {
                Code::AuthLockedOut
            },
            "attempt {i}"
        );
    }
    assert_eq!(
        code_of(s.login("ns.suzuki", PASSWORD, &n.code())),
        Code::AuthLockedOut
    );
    let admin = ward.login_admin();
    assert!(s
        .list_users(&admin)
        .unwrap()
        .iter()
        .any(|u| u.name == "ns.suzuki" && u.locked));
    s.unlock_user(&admin, "ns.suzuki").unwrap();
    let ns = s.login("ns.suzuki", PASSWORD, &n.code()).unwrap();
    assert_eq!(ns.role(), Role::Nurse);

    // Idle timeout: a session used within the limit stays; one left alone expires for good.
    s.encounters(&ns).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    s.encounters(&ns).unwrap();
    std::thread::sleep(Duration::from_millis(1700));
    assert_eq!(code_of(s.encounters(&ns)), Code::AuthSessionExpired);
    assert_eq!(code_of(s.encounters(&ns)), Code::AuthSessionExpired);

    // Disabling ends sign-in and the sessions already open; the last admin stays.
    let admin = ward.login_admin();
    let doc = ward.login_physician();
    s.disable_user(&admin, "dr.sato").unwrap();
    assert_eq!(code_of(s.encounters(&doc)), Code::AuthDisabled);
    assert_eq!(
        code_of(s.login("dr.sato", PASSWORD, &ward.physician.code())),
        Code::AuthDisabled
    );
    assert_eq!(
        code_of(s.disable_user(&admin, "admin")),
        Code::UserLastAdmin
    );
    assert_eq!(
        code_of(s.disable_user(&admin, "nobody")),
        Code::UserNotFound
    );
    assert_eq!(
        code_of(s.add_user(&admin, "ns.suzuki", Role::Nurse, PASSWORD)),
        Code::UserExists
    );
    assert_eq!(
        code_of(s.add_user(&admin, "bad name", Role::Nurse, PASSWORD)),
        Code::UserInvalid
    );
    assert_eq!(
        code_of(s.add_user(&admin, "short", Role::Nurse, "1234567")),
        Code::UserInvalid
    );
    assert_eq!(
        code_of(s.init_admin("second", PASSWORD)),
        Code::StoreAlreadyInitialized
    );

    // Every attempt is on the record, with the reason but never the password or code.
    let log = s.audit_entries(&admin).unwrap();
    let logins: Vec<_> = log
        .iter()
        .filter(|e| e.action == "login")
        .map(|e| (e.outcome.as_str(), e.detail.as_str()))
        .collect();
    for want in [
        ("failed", "reason=unknown_user"),
        ("failed", "reason=totp"),
        ("failed", "reason=totp_reused"),
        ("failed", "reason=password locked=true"),
        ("locked", "reason=locked"),
        ("denied", "reason=disabled"),
        ("ok", ""),
    ] {
        assert!(logins.contains(&want), "{want:?} not in {logins:?}");
    }
    assert!(log
        .iter()
        .any(|e| e.outcome == "expired" && e.user.as_deref() == Some("ns.suzuki")));
    let text = karte_store::audit::to_ndjson(&log);
    assert!(!text.contains(PASSWORD) && !text.contains("wrong-password"));
    assert!(log.iter().all(|e| e.workstation == "ws-test-01"));
}

/// Every clinical field carries this marker; no file in the data directory may contain its bytes.
const MARKER: &str = "KARTE-PLAINTEXT-MARKER-山田太郎";

fn files_containing(dir: &Path, needle: &[u8]) -> (Vec<String>, Vec<String>) {
    let (mut hits, mut scanned) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if bytes.windows(needle.len()).any(|w| w == needle) {
            hits.push(name.clone());
        }
        scanned.push(name);
    }
    scanned.sort();
    (hits, scanned)
}

#[test]
fn no_plaintext_in_any_file_and_wrong_key_refused() {
    if !keyring_session("no_plaintext_in_any_file_and_wrong_key_refused") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::new(dir.path(), config());
    let (doc, ns) = (ward.login_physician(), ward.login_nurse());
    let s = &ward.store;
    let dictation = format!("{MARKER}。{DICTATION}");
    let id = s
        .save_draft(
            &doc,
            &format!("P-{MARKER}"),
            None,
            &dictation,
            &draft(&dictation),
        )
        .unwrap();
    s.review(&ns, &id, 1, Decision::Reject, &format!("{MARKER} 施行済み"))
        .unwrap();
    s.edit(&doc, &id, &format!("S）{MARKER} 編集")).unwrap();
    s.sign(&doc, &id, 2).unwrap();
    s.amend(
        &doc,
        &id,
        &format!("S）{MARKER} 修正"),
        &format!("{MARKER} 理由"),
    )
    .unwrap();
    assert!(s.history(&doc, &id).unwrap().dictation.contains(MARKER));

    // While open (WAL and shared-memory files present) and after closing (checkpointed into the main file).
    let (hits, scanned) = files_containing(dir.path(), MARKER.as_bytes());
    assert!(scanned.contains(&"karte.db-wal".to_string()), "{scanned:?}");
    assert!(hits.is_empty(), "plaintext in {hits:?}");
    let store_id = s.store_id().to_string();
    drop(ward);
    let (hits, scanned) = files_containing(dir.path(), MARKER.as_bytes());
    assert!(scanned.contains(&"karte.db".to_string()), "{scanned:?}");
    assert!(hits.is_empty(), "plaintext in {hits:?}");

    // The scan does find plaintext when there is some: the same schema without a key.
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = karte_store::db::open(&plain_dir.path().join("plain.db"), None).unwrap();
    plain
        .execute("INSERT INTO meta (key, value) VALUES ('m', ?1)", [MARKER])
        .unwrap();
    drop(plain);
    assert_eq!(
        files_containing(plain_dir.path(), MARKER.as_bytes()).0,
        ["plain.db"]
    );

    // Another key in the keyring: refused with a clear code, not a panic and not "empty database".
    let good = raw_key(&store_id);
    set_raw_key(&store_id, &"ab".repeat(32));
    let err = Store::open(dir.path(), config())
        .err()
        .expect("wrong key must fail");
    assert_eq!(err.code, Code::StoreWrongKey);
    assert!(err.message.contains("鍵"), "{}", err.message);
    set_raw_key(&store_id, &good);
    Store::open(dir.path(), config()).unwrap();
}

#[test]
fn newer_schema_is_refused_untouched() {
    if !keyring_session("newer_schema_is_refused_untouched") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), config()).unwrap();
    store.init_admin("admin", PASSWORD).unwrap();
    let id = store.store_id().to_string();
    drop(store);
    let raw = raw_conn(dir.path(), &id);
    raw.execute_batch(&format!(
        "PRAGMA user_version = {}",
        karte_store::db::SCHEMA_VERSION + 1
    ))
    .unwrap();
    drop(raw);
    let db = dir.path().join(karte_store::DB_FILE);
    let before = std::fs::read(&db).unwrap();
    let err = Store::open(dir.path(), config())
        .err()
        .expect("newer schema must be refused");
    assert_eq!(err.code, Code::StoreNewerVersion);
    assert!(
        std::fs::read(&db).unwrap() == before,
        "a refused database was modified"
    );
}

#[test]
fn flipped_bytes_give_clear_errors_never_panics() {
    if !keyring_session("flipped_bytes_give_clear_errors_never_panics") {
        return;
    }
    let pristine = tempfile::tempdir().unwrap();
    let ward = Ward::new(pristine.path(), config());
    let doc = ward.login_physician();
    for i in 0..20 {
        ward.store
            .save_draft(&doc, &format!("P-{i}"), None, DICTATION, &draft(DICTATION))
            .unwrap();
    }
    drop(doc);
    drop(ward); // checkpoints the WAL into the main file
    let db = std::fs::read(pristine.path().join(karte_store::DB_FILE)).unwrap();
    let page = 4096;
    assert!(
        db.len() >= 4 * page && db.len().is_multiple_of(page),
        "{} bytes",
        db.len()
    );
    let mut offsets: Vec<usize> = (0..db.len() / page)
        .map(|p| p * page + 100 + p % 7 * 400)
        .collect();
    offsets.extend([0, 15, 16, 4095, db.len() - 1]);
    for off in offsets {
        let dir = tempfile::tempdir().unwrap();
        for f in ["karte.db", "store-id"] {
            std::fs::copy(pristine.path().join(f), dir.path().join(f)).unwrap();
        }
        let mut bytes = db.clone();
        bytes[off] ^= 0x5a;
        std::fs::write(dir.path().join(karte_store::DB_FILE), &bytes).unwrap();
        let outcome = Store::open(dir.path(), config()).and_then(|s| s.check_integrity());
        let err = outcome.expect_err(&format!("byte {off} flipped, yet the store reads as sound"));
        assert!(
            matches!(err.code, Code::StoreWrongKey | Code::StoreCorrupt),
            "byte {off}: {:?} {}",
            err.code,
            err.message
        );
    }
}

#[test]
fn feedback_export_pseudonymises_and_needs_a_pseudonymiser() {
    if !keyring_session("feedback_export_pseudonymises_and_needs_a_pseudonymiser") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::new(dir.path(), config());
    let (doc, ns) = (ward.login_physician(), ward.login_nurse());
    let s = &ward.store;
    let dictation = format!("山田太郎さん。{DICTATION}");
    let signed = s
        .save_draft(&doc, "P-1", None, &dictation, &draft(&dictation))
        .unwrap();
    let _unsigned = s
        .save_draft(&doc, "P-2", None, DICTATION, &draft(DICTATION))
        .unwrap();
    s.review(&ns, &signed, 1, Decision::Accept, "").unwrap();
    s.review(
        &ns,
        &signed,
        2,
        Decision::Reject,
        "山田太郎さんは前日に施行済み",
    )
    .unwrap();
    s.sign(&doc, &signed, 1).unwrap();
    s.amend(&doc, &signed, "S）山田太郎さん。発熱。", "追記")
        .unwrap();

    // A pseudonymiser for this test only: the product passes karte-guard's.
    let pseudo = |t: &str| t.replace("山田太郎", "〔氏名1〕");
    assert_eq!(
        code_of(s.export_feedback(&doc, None)),
        Code::FeedbackPseudonymiserMissing
    );
    assert_eq!(
        code_of(s.export_feedback(&ns, Some(&pseudo))),
        Code::AuthForbidden
    );
    let out = s.export_feedback(&doc, Some(&pseudo)).unwrap();
    assert_eq!(out.len(), 1, "only signed records are exported");
    let r = &out[0];
    assert!(r.dictation.starts_with("〔氏名1〕さん。"));
    assert_eq!(
        r.final_text,
        "S（主観的情報）\n〔氏名1〕さん。発熱。\nO（客観的情報）\n（なし）\nA（評価）\n（なし）\nP（計画）\n（なし）\n"
    );
    assert!(r.amended);
    assert!(r.draft_text.contains("38.6℃"));
    assert_eq!(r.engine, "rules");
    assert_eq!(r.suggestions[0].decision, Some(Decision::Accept));
    assert_eq!(
        r.suggestions[1].comment.as_deref(),
        Some("〔氏名1〕さんは前日に施行済み")
    );
    let jsonl = karte_store::feedback::to_jsonl(&out);
    assert_eq!(jsonl.lines().count(), 1);
    assert!(!jsonl.contains("山田太郎") && !jsonl.contains("P-1") && !jsonl.contains(&signed));
    assert!(jsonl.contains("\"schema\":\"karte.feedback.v1\""));
}

#[test]
fn audit_log_records_access_without_clinical_text() {
    if !keyring_session("audit_log_records_access_without_clinical_text") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::new(dir.path(), config());
    let (doc, ns) = (ward.login_physician(), ward.login_nurse());
    let s = &ward.store;
    let id = s
        .save_draft(&doc, "P-77", None, DICTATION, &draft(DICTATION))
        .unwrap();
    s.history(&ns, &id).unwrap();
    s.review(&ns, &id, 1, Decision::Reject, "理由コメント")
        .unwrap();
    s.sign(&doc, &id, 1).unwrap();
    s.amend(&doc, &id, "P）修正本文", "修正理由").unwrap();
    // Drafting is audited whether it succeeds or not, and refused to a nurse.
    s.draft_with(&doc, "progress-note", || Ok(draft(DICTATION)))
        .unwrap();
    let cancelled = s.draft_with(&doc, "progress-note", || {
        Err(karte_core::Error::new(Code::EngineCancelled, "中止"))
    });
    assert_eq!(code_of(cancelled), Code::EngineCancelled);
    assert_eq!(
        code_of(s.draft_with(&ns, "progress-note", || Ok(draft(DICTATION)))),
        Code::AuthForbidden
    );
    // A recording heard: the same permission, audited with where and how long, never the words; a nurse's recording
    // is not even heard.
    let heard = karte_ipc::Dictated {
        text: "発熱と咳嗽".into(),
        engine: karte_core::EngineKind::LocalWorker,
        duration_s: 4.0,
        speech_s: 3.2,
        corrections: Vec::new(),
    };
    s.transcribe_with(&doc, || Ok(heard.clone())).unwrap();
    let silent = s.transcribe_with(&doc, || {
        Err(karte_core::Error::new(Code::AudioNoSpeech, "無音"))
    });
    assert_eq!(code_of(silent), Code::AudioNoSpeech);
    let mut nurse_heard = false;
    let refused = s.transcribe_with(&ns, || {
        nurse_heard = true;
        Ok(heard.clone())
    });
    assert_eq!(code_of(refused), Code::AuthForbidden);
    assert!(!nurse_heard);
    let admin = ward.login_admin();
    let report = s.verify_audit(&admin).unwrap();
    assert!(report.intact(), "{report:?}");
    let log = s.audit_entries(&admin).unwrap();
    let find = |action: &str, user: &str| {
        log.iter()
            .find(|e| e.action == action && e.user.as_deref() == Some(user))
            .unwrap_or_else(|| panic!("no {action} by {user}"))
    };
    let view = find("view", "ns.suzuki");
    assert_eq!(
        (
            view.role.as_deref(),
            view.encounter.as_deref(),
            view.version
        ),
        (Some("nurse"), Some(id.as_str()), Some(1))
    );
    assert_eq!(
        find("review_suggestions", "ns.suzuki").detail,
        "suggestion=1 decision=reject"
    );
    assert_eq!(find("sign", "dr.sato").version, Some(1));
    assert_eq!(find("amend", "dr.sato").version, Some(2));
    assert!(find("draft", "dr.sato").detail.starts_with("sha256="));
    assert_eq!(
        find("manage_users", "admin").detail,
        "add user=dr.sato role=physician"
    );
    assert_eq!(find("admin_init", "admin").outcome, "ok");
    let dictated: Vec<(&str, &str)> = log
        .iter()
        .filter(|e| e.action == "dictate")
        .map(|e| (e.outcome.as_str(), e.detail.as_str()))
        .collect();
    assert_eq!(
        dictated,
        [
            ("ok", "kind=progress-note engine=rules"),
            ("engine.cancelled", "kind=progress-note"),
            ("denied", ""),
            ("ok", "audio engine=local_worker speech_s=3.2"),
            ("audio.no_speech", "audio"),
            ("denied", "")
        ]
    );
    for e in &log {
        assert!(!e.ts.is_empty() && e.workstation == "ws-test-01");
    }
    let all = format!(
        "{}{}",
        karte_store::audit::to_ndjson(&log),
        karte_store::audit::to_csv(&log)
    );
    for clinical in [
        "発熱",
        "P-77",
        "理由コメント",
        "修正本文",
        "修正理由",
        "38.6",
    ] {
        assert!(!all.contains(clinical), "audit export contains {clinical}");
    }
    assert_eq!(
        karte_store::audit::to_csv(&log).lines().count(),
        log.len() + 1
    );
}

/// No keyring at all (a Secret Service that is not there): the store refuses to start and says what to install.
#[test]
fn no_keyring_refuses_and_names_what_to_install() {
    if std::env::var_os("KARTE_TEST_NO_KEYRING").is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "no_keyring_refuses_and_names_what_to_install",
                "--exact",
                "--nocapture",
            ])
            .env("KARTE_TEST_NO_KEYRING", "1")
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                "unix:path=/nonexistent/karte-test-bus",
            )
            .env_remove("KARTE_KEYRING")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.keyring = karte_store::KeyringBackend::from_env().unwrap();
    assert_eq!(cfg.keyring, karte_store::KeyringBackend::Native);
    let err = Store::open(dir.path(), cfg)
        .err()
        .expect("no keyring, no store");
    assert_eq!(err.code, Code::StoreKeyringUnavailable);
    assert!(err.message.contains("gnome-keyring"), "{}", err.message);
    assert!(
        !dir.path().join(karte_store::DB_FILE).exists(),
        "no database without a key"
    );
}

/// The Linux default store (Secret Service, here gnome-keyring) holds the key and the audit head: the test re-runs
/// itself in a private D-Bus session with a freshly unlocked keyring under a temporary HOME.
#[test]
fn secret_service_keyring_holds_the_key() {
    if std::env::var_os("KARTE_TEST_SECRET_SERVICE").is_none() {
        let home = tempfile::tempdir().unwrap();
        let script = "printf 'karte-test-keyring' | gnome-keyring-daemon --unlock --components=secrets >/dev/null \
                      && exec \"$0\" secret_service_keyring_holds_the_key --exact --nocapture --test-threads=1";
        let out = std::process::Command::new("dbus-run-session")
            .args(["--", "sh", "-c", script])
            .arg(std::env::current_exe().unwrap())
            .env("KARTE_TEST_SECRET_SERVICE", "1")
            .env("HOME", home.path())
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("XDG_RUNTIME_DIR", home.path())
            .env_remove("KARTE_KEYRING")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .output()
            .expect("dbus-run-session is missing: install dbus and gnome-keyring (cargo xtask setup does)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.keyring = karte_store::KeyringBackend::Native;
    let store = Store::open(dir.path(), cfg.clone()).unwrap();
    let admin = phone(&store.init_admin("admin", PASSWORD).unwrap());
    let id = store.store_id().to_string();
    drop(store);

    let cred = keyring::secret_service::SsCredential::new_with_target(
        None,
        karte_store::vault::KEYRING_SERVICE,
        &karte_store::vault::key_entry_user(&id),
    )
    .unwrap();
    let key = keyring::Entry::new_with_credential(Box::new(cred))
        .get_password()
        .unwrap();
    assert_eq!(key.len(), 64);
    let (hits, _) = files_containing(dir.path(), key.as_bytes());
    assert!(hits.is_empty(), "the key is in {hits:?}");

    let store = Store::open(dir.path(), cfg).unwrap();
    let s = store.login("admin", PASSWORD, &admin.code()).unwrap();
    let report = store.verify_audit(&s).unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.head_seq, Some(report.entries));
}

#[test]
fn the_windows_own_upload_refresh_does_not_keep_a_session_alive() {
    if !keyring_session("the_windows_own_upload_refresh_does_not_keep_a_session_alive") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.idle_timeout = Duration::from_millis(1500);
    let ward = Ward::new(dir.path(), cfg);
    let doctor = ward.login_physician();
    // The window polls the upload states every few seconds while nobody touches it.
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(250));
        ward.store.queue_items(&doctor).unwrap();
        ward.store.queue_health(&doctor).unwrap();
    }
    // 1.75 s without the physician acting (0.5 s after the last refresh): expired despite the refreshes.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        code_of(ward.store.encounters(&doctor)),
        Code::AuthSessionExpired
    );
}
