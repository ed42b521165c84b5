//! The upgrades to schema 3 (every version keeps its document kind and structured sections) and schema 4 (every
//! encounter keeps its clinical date). The ward in `tests/data/schema2-ward` was written by an earlier release's
//! `karte` binary (schema 2; see its README): three encounters with a suggestion review, two signatures, an
//! amendment and an edit typed with short headings, and 25 audit entries. The ward in `tests/data/schema3-ward` was
//! written by the release before clinical dates (schema 3), its clock set to 00:30 JST. Opened by the current code,
//! every version, signature, review, outbox row and audit entry must be intact, every version must have its
//! document, every encounter the local calendar day of its creation, and the content hashes and the audit chain
//! must still verify.
//!
//! Each test runs in its own process with the time zone it names (`TZ`), as the workstation's would be.

mod common;

use common::{config, keyring_session_with_env, Phone};
use karte_core::ClinicalDate;
use karte_store::outbox::Next;
use karte_store::vault::{head_entry_user, key_entry_user, write_secret};
use karte_store::{Decision, KeyringBackend, Store, VersionKind, DB_FILE, STORE_ID_FILE};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The password every user of the fixture ward was given.
const PASSWORD: &str = "ward-pass-2026";

const SCHEMA2: &str = "schema2-ward";
const SCHEMA3: &str = "schema3-ward";
const JST: i32 = 9 * 3600;

fn fixture_dir(ward: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(ward)
}

/// `name=value` lines: the key, the audit head, the encounter ids and the users' TOTP secrets.
fn fixture_values(ward: &str) -> HashMap<String, String> {
    std::fs::read_to_string(fixture_dir(ward).join("keyring.txt"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A copy of a fixture ward in `dir`, its key and audit head in this test's keyring.
fn install(dir: &Path, ward: &str) -> HashMap<String, String> {
    for f in [DB_FILE, STORE_ID_FILE] {
        std::fs::copy(fixture_dir(ward).join(f), dir.join(f)).unwrap();
    }
    let store_id = std::fs::read_to_string(dir.join(STORE_ID_FILE)).unwrap();
    let store_id = store_id.trim();
    let v = fixture_values(ward);
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

/// `(encounter id, created_at_ms, clinical_date)` of every encounter, read past the store.
fn encounter_dates(dir: &Path, store_id: &str) -> Vec<(String, i64, String)> {
    let c = common::raw_conn(dir, store_id);
    let mut st = c
        .prepare("SELECT id, created_at_ms, clinical_date FROM encounters ORDER BY id")
        .unwrap();
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

#[test]
fn a_schema2_ward_opens_with_every_record_intact_and_structured() {
    if !keyring_session_with_env(
        "a_schema2_ward_opens_with_every_record_intact_and_structured",
        &[("TZ", "Asia/Tokyo")],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let v = install(dir.path(), SCHEMA2);
    let ids: Vec<&str> = v["ids"].split(',').collect();
    let login = |user: &str| {
        let phone = Phone::from_base32(&v[&format!("totp-{user}")]);
        store_login(dir.path(), user, &phone)
    };
    let (store, doc) = login("dr.sato");
    assert_eq!(
        schema_version(dir.path(), store.store_id()),
        karte_store::db::SCHEMA_VERSION
    );
    // Each encounter is dated the JST day of its creation (computed here with an explicit offset).
    let dates = encounter_dates(dir.path(), store.store_id());
    assert_eq!(dates.len(), 3);
    for (id, created_at_ms, day) in &dates {
        assert_eq!(
            *day,
            ClinicalDate::from_unix_ms(*created_at_ms, JST).to_string()
        );
        assert_eq!(
            store.history(&doc, id).unwrap().clinical_date.to_string(),
            *day
        );
    }

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
    assert_eq!(
        schema_version(dir.path(), store.store_id()),
        karte_store::db::SCHEMA_VERSION
    );
    assert_eq!(encounter_dates(dir.path(), store.store_id()), dates);
    assert_eq!(store.check_integrity().unwrap().altered_versions, []);
}

fn store_login(dir: &Path, user: &str, phone: &Phone) -> (Store, karte_store::Session) {
    let store = Store::open(dir, config()).unwrap();
    let s = store.login(user, PASSWORD, &phone.code()).unwrap();
    (store, s)
}

/// The schema-3 ward, every note saved between 00:30 and 00:40 JST on 2026-12-01 (15:30–15:40 UTC on 2026-11-30),
/// opened on a workstation in `zone`: every encounter gets `day`, the calendar day of its creation on that
/// workstation's clock, and everything else comes through as it was.
fn schema3_ward_opens_in(zone: &str, day: &str) {
    let dir = tempfile::tempdir().unwrap();
    let v = install(dir.path(), SCHEMA3);
    let ids: Vec<&str> = v["ids"].split(',').collect();
    let login = |user: &str| {
        let phone = Phone::from_base32(&v[&format!("totp-{user}")]);
        store_login(dir.path(), user, &phone)
    };
    let (store, doc) = login("dr.sato");
    assert_eq!(
        schema_version(dir.path(), store.store_id()),
        karte_store::db::SCHEMA_VERSION
    );
    let day: ClinicalDate = day.parse().unwrap();
    for id in &ids {
        let h = store.history(&doc, id).unwrap();
        assert!(
            h.created_at.starts_with("2026-11-30T15:"),
            "{zone}: {}",
            h.created_at
        );
        assert_eq!(h.clinical_date, day, "{zone}");
    }
    let r = store.check_integrity().unwrap();
    assert_eq!((r.versions, r.altered_versions.len()), (5, 0), "{r:?}");

    // E1 signed; E2 signed and amended; E3 an unsigned draft; E4 another patient's, reviewed and signed.
    let kinds = |id: &str| -> Vec<(VersionKind, bool)> {
        let h = store.history(&doc, id).unwrap();
        h.versions
            .iter()
            .map(|x| (x.kind, x.signature.is_some()))
            .collect()
    };
    assert_eq!(kinds(ids[0]), [(VersionKind::Draft, true)]);
    assert_eq!(
        kinds(ids[1]),
        [(VersionKind::Draft, true), (VersionKind::Amendment, true)]
    );
    assert_eq!(kinds(ids[2]), [(VersionKind::Draft, false)]);
    assert_eq!(kinds(ids[3]), [(VersionKind::Draft, true)]);
    let h = store.history(&doc, ids[1]).unwrap();
    assert_eq!(h.versions[1].reason.as_deref(), Some("CRP の誤記"));
    let review = store.history(&doc, ids[3]).unwrap().suggestions[0]
        .review
        .clone()
        .unwrap();
    assert_eq!(
        (review.decision, review.reviewer.as_str()),
        (Decision::Accept, "ns.suzuki")
    );

    // The sources of a summary of P-0101 on that day: the signed note and the amendment, not the draft.
    let notes = store.signed_notes(&doc, "P-0101", day, day).unwrap();
    let got: Vec<(&str, i64)> = notes
        .iter()
        .map(|n| (n.encounter.as_str(), n.version))
        .collect();
    assert_eq!(got, [(ids[0], 1), (ids[1], 2)]);
    assert!(notes[1].text.contains("CRP 6.1mg/dL"), "{}", notes[1].text);
    assert!(notes.iter().all(|n| n.clinical_date == day));

    // The outbox rows written at schema 3, in signing order.
    let health = store.outbox_health().unwrap();
    assert_eq!((health.pending, health.sent, health.failed), (4, 0, 0));
    let mut order = Vec::new();
    while let Next::Due(d) = store.outbox_next(i64::MAX).unwrap() {
        order.push((d.item.encounter.clone(), d.item.version));
        store.outbox_mark_sent(d.item.id, 201).unwrap();
    }
    let want: Vec<(String, i64)> = [(0, 1), (1, 1), (1, 2), (3, 1)]
        .iter()
        .map(|&(i, v)| (ids[i].to_string(), v))
        .collect();
    assert_eq!(order, want);
    drop(store);

    // The audit chain written by the previous release still verifies, and goes on.
    let (store, admin) = login("admin");
    let report = store.verify_audit(&admin).unwrap();
    assert!(report.intact(), "{report:?}");
    let dates = encounter_dates(dir.path(), store.store_id());
    assert!(dates.iter().all(|(_, _, d)| *d == day.to_string()));
    assert_eq!(
        schema_version(dir.path(), store.store_id()),
        karte_store::db::SCHEMA_VERSION
    );
}

#[test]
fn a_schema3_ward_in_japan_dates_a_note_saved_at_0030_on_the_jst_day() {
    if keyring_session_with_env(
        "a_schema3_ward_in_japan_dates_a_note_saved_at_0030_on_the_jst_day",
        &[("TZ", "Asia/Tokyo")],
    ) {
        schema3_ward_opens_in("Asia/Tokyo", "2026-12-01");
    }
}

/// The zone decides, not UTC nor a fixed offset: the same ward on a UTC or a Californian clock gets the day before.
#[test]
fn a_schema3_ward_on_a_utc_clock_dates_the_same_notes_on_the_utc_day() {
    if keyring_session_with_env(
        "a_schema3_ward_on_a_utc_clock_dates_the_same_notes_on_the_utc_day",
        &[("TZ", "UTC")],
    ) {
        schema3_ward_opens_in("UTC", "2026-11-30");
    }
}

#[test]
fn a_schema3_ward_in_california_dates_the_same_notes_on_the_local_day() {
    if keyring_session_with_env(
        "a_schema3_ward_in_california_dates_the_same_notes_on_the_local_day",
        &[("TZ", "America/Los_Angeles")],
    ) {
        schema3_ward_opens_in("America/Los_Angeles", "2026-11-30");
    }
}
