//! The upgrade to schema 3 (every version keeps its document kind and structured sections). The ward in
//! `tests/data/schema2-ward` was written by the previous release's `karte` binary (schema 2; see its README): three
//! encounters with a suggestion review, two signatures, an amendment and an edit typed with short headings, and 25
//! audit entries. Opened by the current code, every version, signature, review, outbox row and audit entry must be
//! intact, every version must have its document, and the content hashes and the audit chain must still verify.

mod common;

use common::{config, keyring_session, Phone};
use karte_store::outbox::Next;
use karte_store::vault::{head_entry_user, key_entry_user, write_secret};
use karte_store::{Decision, KeyringBackend, Store, VersionKind, DB_FILE, STORE_ID_FILE};
use std::collections::HashMap;
use std::path::Path;

/// The password every user of the fixture ward was given.
const PASSWORD: &str = "ward-pass-2026";

fn fixture_dir() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/schema2-ward"
    ))
}

/// `name=value` lines: the key, the audit head, the encounter ids and the users' TOTP secrets.
fn fixture_values() -> HashMap<String, String> {
    std::fs::read_to_string(fixture_dir().join("keyring.txt"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A copy of the schema-2 ward in `dir`, its key and audit head in this test's keyring.
fn install(dir: &Path) -> HashMap<String, String> {
    for f in [DB_FILE, STORE_ID_FILE] {
        std::fs::copy(fixture_dir().join(f), dir.join(f)).unwrap();
    }
    let store_id = std::fs::read_to_string(dir.join(STORE_ID_FILE)).unwrap();
    let store_id = store_id.trim();
    let v = fixture_values();
    let b = KeyringBackend::KernelKeyutils;
    write_secret(b, &key_entry_user(store_id), &v["db-key"]).unwrap();
    write_secret(b, &head_entry_user(store_id), &v["audit-head"]).unwrap();
    v
}

fn schema_version(dir: &Path, store_id: &str) -> i64 {
    common::raw_conn(dir, store_id)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_schema2_ward_opens_with_every_record_intact_and_structured() {
    if !keyring_session("a_schema2_ward_opens_with_every_record_intact_and_structured") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let v = install(dir.path());
    let ids: Vec<&str> = v["ids"].split(',').collect();
    let login = |user: &str| {
        let phone = Phone::from_base32(&v[&format!("totp-{user}")]);
        store_login(dir.path(), user, &phone)
    };
    let (store, doc) = login("dr.sato");
    assert_eq!(schema_version(dir.path(), store.store_id()), 3);

    // Every version's hash, and its new document against its text and draft.
    let r = store.check_integrity().unwrap();
    assert_eq!((r.versions, r.altered_versions.len()), (5, 0), "{r:?}");

    // E1: drafted, a suggestion accepted, signed, amended with a reason.
    let h = store.history(&doc, ids[0]).unwrap();
    let kinds: Vec<_> = h.versions.iter().map(|x| x.kind).collect();
    assert_eq!(kinds, [VersionKind::Draft, VersionKind::Amendment]);
    assert!(h.versions.iter().all(|x| x.signature.is_some()));
    assert_eq!(h.versions[1].reason.as_deref(), Some("体温の誤記"));
    let draft = h.draft.as_ref().expect("the draft JSON is kept");
    assert_eq!(draft.kind, "progress-note");
    // The draft version's document is the draft's own sections, spans included.
    assert_eq!(h.versions[0].document, draft.document());
    assert!(h.versions[0]
        .document
        .sections
        .iter()
        .all(|(_, s)| !s.spans.is_empty()));
    assert_eq!(
        h.versions[1].document.sections.get("objective")[0].text,
        "BT 38.4℃、SpO2 93%。"
    );
    let review = h.suggestions[0].review.as_ref().unwrap();
    assert_eq!(
        (review.decision, review.reviewer.as_str()),
        (Decision::Accept, "ns.suzuki")
    );
    // The text signed before the upgrade is the text still shown.
    for x in &h.versions {
        assert_eq!(x.text, x.document.render());
    }

    // E2: an edit typed with short headings 「S）」: its sections recovered once, its text left as it was signed.
    let h = store.history(&doc, ids[1]).unwrap();
    let edit = &h.versions[1];
    assert_eq!(edit.kind, VersionKind::Edit);
    assert!(edit.text.starts_with("S）排尿時痛と頻尿。\nO）"));
    let sec = |id: &str| -> Vec<&str> {
        edit.document
            .sections
            .get(id)
            .iter()
            .map(|s| s.text.as_str())
            .collect()
    };
    assert_eq!(sec("subjective"), ["排尿時痛と頻尿。"]);
    assert_eq!(sec("objective"), ["BT 37.9℃。尿混濁あり。"]);
    assert_eq!(sec("assessment"), ["膀胱炎疑い。"]);
    assert_eq!(sec("plan"), ["尿培養。"]);
    assert!(edit.signature.is_some());

    // E3: a draft never signed; it can still be edited, as a progress note.
    let h = store.history(&doc, ids[2]).unwrap();
    assert_eq!((h.versions.len(), h.signed), (1, false));
    assert_eq!(
        store
            .edit(&doc, ids[2], "S）口渇と多尿。\nP）補液。")
            .unwrap(),
        2
    );

    // The outbox rows written at schema 2 are all there, in signing order, each with its document.
    let health = store.outbox_health().unwrap();
    assert_eq!((health.pending, health.sent, health.failed), (3, 0, 0));
    let mut order = Vec::new();
    while let Next::Due(d) = store.outbox_next(i64::MAX).unwrap() {
        // What the FHIR Composition is built from (the text may be a pre-schema-3 edit in its own words).
        assert!(!d.document.sections.is_empty());
        order.push((d.item.encounter.clone(), d.item.version));
        store.outbox_mark_sent(d.item.id, 201).unwrap();
    }
    assert_eq!(
        order,
        [
            (ids[0].to_string(), 1),
            (ids[0].to_string(), 2),
            (ids[1].to_string(), 2)
        ]
    );
    drop(store);

    // The audit chain written by the previous release still verifies, and goes on.
    let (store, admin) = login("admin");
    let report = store.verify_audit(&admin).unwrap();
    assert!(report.intact(), "{report:?}");
    assert!(store.audit_entries(&admin).unwrap().len() > 25);
    // Nothing is migrated twice.
    assert_eq!(schema_version(dir.path(), store.store_id()), 3);
    assert_eq!(store.check_integrity().unwrap().altered_versions, []);
}

fn store_login(dir: &Path, user: &str, phone: &Phone) -> (Store, karte_store::Session) {
    let store = Store::open(dir, config()).unwrap();
    let s = store.login(user, PASSWORD, &phone.code()).unwrap();
    (store, s)
}
