//! The upgrade from schema 1 (before the upload outbox) to schema 2: a real schema-1 SQLCipher file, written by
//! this test with the shipped schema-1 DDL and its key in the (kernel) keyring the way Karte 1 left it, is opened by
//! the current code. Every version signed before the upgrade must be queued for upload, in signing order, exactly
//! once; nothing unsigned is queued.

mod common;

use common::*;
use karte_store::outbox::Next;
use karte_store::vault::{key_entry_user, write_secret};
use karte_store::{iso8601, KeyringBackend, Store, DB_FILE, STORE_ID_FILE};
use rusqlite::{params, Connection};
use std::path::Path;

/// The DDL Karte shipped as schema 1 (never edited after shipping: see db.rs).
const SCHEMA_V1: &str = include_str!("../src/schema_v1.sql");

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).unwrap();
    hex::encode(b)
}

/// One synthetic version of a schema-1 ward: (encounter, version, kind, text, reason, signed at (ms offset)).
type V1Version = (
    &'static str,
    i64,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<i64>,
);

const T0: i64 = 1_780_000_000_000;

/// A small ward as Karte 1 stored it. E-PNEU-0001 was signed after E-UTI-0002's first signature; E-UTI-0002 was
/// then amended; E-DKA-0003 was never signed.
const VERSIONS: &[V1Version] = &[
    (
        "E-PNEU-0001",
        1,
        "draft",
        "S）3日前から発熱と咳嗽。\nO）BT 38.6℃、SpO2 93%。\nA）市中肺炎疑い。\nP）胸部X線。",
        None,
        Some(2_000),
    ),
    (
        "E-UTI-0002",
        1,
        "draft",
        "S）排尿時痛と頻尿。\nO）BT 37.9℃。",
        None,
        None,
    ),
    (
        "E-UTI-0002",
        2,
        "edit",
        "S）排尿時痛と頻尿。\nO）BT 37.9℃。尿混濁あり。\nA）膀胱炎疑い。\nP）尿培養。",
        None,
        Some(1_000),
    ),
    (
        "E-UTI-0002",
        3,
        "amendment",
        "S）排尿時痛と頻尿。\nO）BT 37.4℃。尿混濁あり。\nA）膀胱炎疑い。\nP）尿培養。",
        Some("体温の誤記"),
        Some(3_000),
    ),
    (
        "E-DKA-0003",
        1,
        "draft",
        "S）口渇と多尿、嘔吐。\nO）血糖 486mg/dL。",
        None,
        None,
    ),
];

/// Writes `dir` as Karte 1 left it: store id, key in the keyring, and a schema-1 SQLCipher database.
fn write_schema1_ward(dir: &Path) {
    let store_id = random_hex(16);
    std::fs::write(dir.join(STORE_ID_FILE), &store_id).unwrap();
    let key = random_hex(32);
    write_secret(
        KeyringBackend::KernelKeyutils,
        &key_entry_user(&store_id),
        &key,
    )
    .unwrap();
    let c = Connection::open(dir.join(DB_FILE)).unwrap();
    c.execute_batch(&format!("PRAGMA key = \"x'{key}'\";"))
        .unwrap();
    c.execute_batch(SCHEMA_V1).unwrap();
    c.execute_batch("PRAGMA foreign_keys = ON; PRAGMA user_version = 1;")
        .unwrap();
    c.execute(
        "INSERT INTO users (name, role, password_hash, totp_secret, created_at_ms)
         VALUES ('dr.tanaka', 'physician', 'x', x'00', ?1)",
        [T0],
    )
    .unwrap();
    for (i, patient) in ["P-0001", "P-0002", "P-0003"].iter().enumerate() {
        let id = ["E-PNEU-0001", "E-UTI-0002", "E-DKA-0003"][i];
        c.execute(
            "INSERT INTO encounters (id, patient_ref, created_by, created_at_ms) VALUES (?1, ?2, 1, ?3)",
            params![id, patient, T0],
        )
        .unwrap();
    }
    for (enc, v, kind, text, reason, signed) in VERSIONS {
        c.execute(
            "INSERT INTO versions (encounter_id, version, kind, author_id, created_at_ms, note_text, reason,
                                   content_sha256)
             VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7)",
            params![enc, v, kind, T0 + v, text, reason, random_hex(32)],
        )
        .unwrap();
        if let Some(at) = signed {
            c.execute(
                "INSERT INTO signatures (encounter_id, version, signer_id, signed_at_ms) VALUES (?1, ?2, 1, ?3)",
                params![enc, v, T0 + at],
            )
            .unwrap();
        }
    }
    let tables: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'outbox'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "the fixture must be a schema-1 database");
}

#[test]
fn documents_signed_before_the_outbox_are_queued_by_the_upgrade() {
    if !keyring_session("documents_signed_before_the_outbox_are_queued_by_the_upgrade") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_schema1_ward(dir.path());

    let store = Store::open(dir.path(), config()).unwrap();
    let h = store.outbox_health().unwrap();
    assert_eq!(
        (h.pending, h.sent, h.failed),
        (3, 0, 0),
        "every signed version, and only those, is queued: {h:?}"
    );
    // The oldest waiting document is the first signed, dated by its signature.
    assert_eq!(h.oldest_pending_at, Some(iso8601(T0 + 1_000)));
    // The amendment waits behind the version it replaces.
    assert_eq!(h.held, 1);

    // Drain the queue as the uploader does: signing order, each the signed text, the amendment replacing the
    // document of the version it amends.
    let want: &[(&str, i64)] = &[("E-UTI-0002", 2), ("E-PNEU-0001", 1), ("E-UTI-0002", 3)];
    let mut ids = Vec::new();
    let mut uti_v2_bundle = None;
    for (enc, v) in want {
        let doc = match store.outbox_next(i64::MAX).unwrap() {
            Next::Due(d) => d,
            other => panic!("expected {enc} v{v}, got {other:?}"),
        };
        assert_eq!((doc.item.encounter.as_str(), doc.item.version), (*enc, *v));
        let text = VERSIONS
            .iter()
            .find(|x| x.0 == *enc && x.1 == *v)
            .unwrap()
            .3;
        assert_eq!(doc.text, text);
        assert!(doc.item.bundle_id.starts_with("urn:uuid:"));
        assert_eq!(&doc.item.bundle_id[9 + 14..9 + 15], "4", "UUID v4");
        if *v == 2 {
            uti_v2_bundle = Some(doc.item.bundle_id.clone());
            assert_eq!(doc.item.replaces, None);
        }
        if *v == 3 {
            assert_eq!(doc.item.replaces, uti_v2_bundle);
            assert_eq!(doc.reason.as_deref(), Some("体温の誤記"));
        }
        ids.push(doc.item.bundle_id.clone());
        store.outbox_mark_sent(doc.item.id, 201).unwrap();
    }
    assert_eq!(store.outbox_next(i64::MAX).unwrap(), Next::Empty);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "identifiers must be distinct");
    drop(store);

    // Opening again migrates nothing twice: still three documents, all sent.
    let store = Store::open(dir.path(), config()).unwrap();
    let h = store.outbox_health().unwrap();
    assert_eq!((h.pending, h.sent, h.failed, h.held), (0, 3, 0, 0));
}
