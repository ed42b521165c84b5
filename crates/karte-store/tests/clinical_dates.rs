//! Clinical dates (schema 4): every encounter keeps the day its note describes, set when it is saved and never
//! changed; lists are ordered by it; and the sources of a discharge summary or referral letter are chosen by it
//! (`Store::signed_notes`: the latest signed version of each of a patient's notes in a date range).
//!
//! Each test runs in its own process with `TZ=Asia/Tokyo`, as a ward in Japan does, so that "today" is the JST day.

mod common;

use common::{config, draft, keyring_session_with_env, raw_conn, Ward, DICTATION};
use karte_core::{ClinicalDate, Code};
use karte_store::{Session, Store};
use std::time::{SystemTime, UNIX_EPOCH};

const JST: i32 = 9 * 3600;
const TOKYO: &[(&str, &str)] = &[("TZ", "Asia/Tokyo")];

fn date(s: &str) -> ClinicalDate {
    s.parse().unwrap()
}

/// The JST day `days_ahead` days from now, computed here from the clock and an explicit offset (not by the
/// store's time-zone lookup, which is what is under test).
fn jst_day(days_ahead: i64) -> ClinicalDate {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    ClinicalDate::from_unix_ms(ms + days_ahead * 86_400_000, JST)
}

fn save(store: &Store, s: &Session, patient: &str, day: Option<&str>) -> String {
    store
        .save_draft(s, patient, day.map(date), DICTATION, &draft(DICTATION))
        .unwrap()
}

#[test]
fn a_note_keeps_its_clinical_date_and_lists_are_ordered_by_it() {
    if !keyring_session_with_env(
        "a_note_keeps_its_clinical_date_and_lists_are_ordered_by_it",
        TOKYO,
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::new(dir.path(), config());
    let (store, doc) = (&ward.store, ward.login_physician());
    // (patient, date typed or none = today), in saving order.
    let saves: &[(&str, Option<&str>)] = &[
        ("P-1", Some("2026-11-28")),
        ("P-1", Some("2026-11-30")),
        ("P-1", None),
        ("P-2", Some("2026-11-28")),
        ("P-1", Some("2026-11-30")),
        ("P-3", Some("2000-02-29")),
    ];
    let ids: Vec<String> = saves
        .iter()
        .map(|(p, d)| save(store, &doc, p, *d))
        .collect();
    let want_date = |i: usize| saves[i].1.map_or_else(|| jst_day(0), date);
    for (i, id) in ids.iter().enumerate() {
        let h = store.history(&doc, id).unwrap();
        assert_eq!(h.clinical_date, want_date(i), "{i}");
    }
    // Newest clinical date first; on one day, the note saved last first.
    let listed: Vec<String> = store
        .encounters(&doc)
        .unwrap()
        .into_iter()
        .map(|e| {
            let i = ids.iter().position(|id| *id == e.id).unwrap();
            assert_eq!(e.clinical_date, want_date(i));
            e.id
        })
        .collect();
    let order = [2, 4, 1, 3, 0, 5];
    assert_eq!(listed, order.map(|i| ids[i].clone()));

    // The save's audit entry vouches for the date, next to the content hash.
    let admin = ward.login_admin();
    let entries = store.audit_entries(&admin).unwrap();
    for (i, id) in ids.iter().enumerate() {
        let e = entries
            .iter()
            .find(|e| e.action == "draft" && e.encounter.as_deref() == Some(id))
            .unwrap();
        assert!(e.detail.starts_with("sha256="), "{}", e.detail);
        assert!(
            e.detail.ends_with(&format!(" date={}", want_date(i))),
            "{}",
            e.detail
        );
    }
}

#[test]
fn a_day_that_has_not_come_is_refused_and_nothing_is_saved() {
    if !keyring_session_with_env(
        "a_day_that_has_not_come_is_refused_and_nothing_is_saved",
        TOKYO,
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::new(dir.path(), config());
    let (store, doc) = (&ward.store, ward.login_physician());
    // Today (JST) is the latest day a note may have.
    let today = jst_day(0);
    save(store, &doc, "P-1", Some(&today.to_string()));
    for day in [jst_day(1), jst_day(400), date("9999-12-31")] {
        let e = store
            .save_draft(&doc, "P-1", Some(day), DICTATION, &draft(DICTATION))
            .unwrap_err();
        assert_eq!(e.code, Code::DateInvalid, "{day}");
        assert_eq!(e.code.exit_status(), 2);
        assert!(!e.message.contains(&day.to_string()), "{}", e.message);
    }
    assert_eq!(store.encounters(&doc).unwrap().len(), 1);
    assert_eq!(karte_store::today(), today);
}

#[test]
fn encounter_rows_need_a_date_and_never_change() {
    if !keyring_session_with_env("encounter_rows_need_a_date_and_never_change", TOKYO) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::new(dir.path(), config());
    let doc = ward.login_physician();
    let id = save(&ward.store, &doc, "P-1", Some("2026-11-30"));
    let c = raw_conn(dir.path(), ward.store.store_id());
    let refused = |sql: &str, why: &str| {
        let e = c.execute_batch(sql).unwrap_err().to_string();
        assert!(e.contains(why), "{sql}: {e}");
    };
    refused(
        &format!("UPDATE encounters SET clinical_date = '2026-11-29' WHERE id = '{id}'"),
        "encounters are immutable",
    );
    refused(
        &format!("UPDATE encounters SET patient_ref = 'P-2' WHERE id = '{id}'"),
        "encounters are immutable",
    );
    refused(
        &format!("DELETE FROM encounters WHERE id = '{id}'"),
        "encounters are immutable",
    );
    refused(
        "INSERT INTO encounters (id, patient_ref, created_by, created_at_ms) VALUES ('E2', 'P-1', 1, 0)",
        "an encounter needs its clinical date",
    );
    refused(
        "INSERT INTO encounters (id, patient_ref, created_by, created_at_ms, clinical_date)
         VALUES ('E3', 'P-1', 1, 0, '30/11/2026')",
        "CHECK constraint failed",
    );
    let h = ward.store.history(&doc, &id).unwrap();
    assert_eq!(h.clinical_date, date("2026-11-30"));
    assert_eq!(ward.store.check_integrity().unwrap().altered_versions, []);
}

/// The text of a SOAP note whose objective line carries `mark`, so that each version is told apart.
fn note(mark: &str) -> String {
    format!(
        "S（主観的情報）\n発熱と咳嗽。\nO（客観的情報）\n{mark}\nA（評価）\n肺炎。\nP（計画）\n抗菌薬を継続する。\n"
    )
}

#[test]
fn the_sources_of_a_summary_are_the_latest_signed_versions_in_date_order() {
    if !keyring_session_with_env(
        "the_sources_of_a_summary_are_the_latest_signed_versions_in_date_order",
        TOKYO,
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::new(dir.path(), config());
    let (store, doc) = (&ward.store, ward.login_physician());
    // What happens to each encounter after its draft (version 1) is saved: `e` edit, `s` sign, `a` amend.
    let notes: &[(&str, &str, &str)] = &[
        ("P-A", "2026-11-27", "saa"), // 0: amended twice → version 3
        ("P-A", "2026-11-20", "s"),   // 1: signed draft → version 1
        ("P-A", "2026-11-22", "sa"),  // 2: amended → version 2
        ("P-A", "2026-11-22", "es"),  // 3: edited, then signed → version 2
        ("P-A", "2026-11-25", "e"),   // 4: never signed: never a source
        ("P-B", "2026-11-22", "s"),   // 5: another patient
        ("P-A", "2026-12-01", "se"), // 6: an edit after signing is refused: version 1 stays the signed one
    ];
    let mut ids = Vec::new();
    for (i, (patient, day, steps)) in notes.iter().enumerate() {
        let id = save(store, &doc, patient, Some(day));
        let mut latest = 1;
        for (n, step) in steps.chars().enumerate() {
            let text = note(&format!("BT 37.{i}℃。記録{i}-{n}。"));
            match step {
                'e' => match store.edit(&doc, &id, &text) {
                    Ok(v) => latest = v,
                    Err(e) => assert_eq!(e.code, Code::RecordSigned),
                },
                's' => latest = store.sign(&doc, &id, latest).unwrap(),
                'a' => latest = store.amend(&doc, &id, &text, "誤記の訂正").unwrap(),
                _ => unreachable!(),
            }
        }
        ids.push(id);
    }
    // (patient, from, to) → (note, version) in order, or the error.
    type Want = Result<&'static [(usize, i64)], Code>;
    let table: &[(&str, &str, &str, Want)] = &[
        (
            "P-A",
            "2026-11-01",
            "2026-12-31",
            Ok(&[(1, 1), (2, 2), (3, 2), (0, 3), (6, 1)]),
        ),
        ("P-A", "2026-11-22", "2026-11-22", Ok(&[(2, 2), (3, 2)])),
        ("P-A", "2026-11-21", "2026-11-26", Ok(&[(2, 2), (3, 2)])),
        ("P-A", "2026-11-20", "2026-11-20", Ok(&[(1, 1)])),
        ("P-A", "2026-11-27", "2026-11-30", Ok(&[(0, 3)])),
        (" P-B ", "2026-11-01", "2026-11-30", Ok(&[(5, 1)])),
        (
            "P-A",
            "2026-11-23",
            "2026-11-26",
            Err(Code::DocumentNoSources),
        ),
        (
            "P-A",
            "2026-10-01",
            "2026-10-31",
            Err(Code::DocumentNoSources),
        ),
        (
            "P-Z",
            "2026-11-01",
            "2026-11-30",
            Err(Code::DocumentNoSources),
        ),
        ("P-A", "2026-11-30", "2026-11-01", Err(Code::DateInvalid)),
    ];
    let admin = ward.login_admin();
    for (patient, from, to, want) in table {
        let before = store.audit_entries(&admin).unwrap().len();
        let got = store.signed_notes(&doc, patient, date(from), date(to));
        let after = store.audit_entries(&admin).unwrap();
        // Between the admin's two reads of the log (each appends its own entry first).
        let new_entries = &after[before..after.len() - 1];
        match (want, got) {
            (Ok(want), Ok(got)) => {
                let got_ids: Vec<(usize, i64)> = got
                    .iter()
                    .map(|n| {
                        (
                            ids.iter().position(|id| *id == n.encounter).unwrap(),
                            n.version,
                        )
                    })
                    .collect();
                assert_eq!(got_ids, *want, "{patient} {from}..{to}");
                for n in &got {
                    // What history shows of that version, and the encounter's date.
                    let h = store.history(&doc, &n.encounter).unwrap();
                    let v = &h.versions[n.version as usize - 1];
                    assert!(v.signature.is_some());
                    assert_eq!((&n.text, &n.document), (&v.text, &v.document));
                    assert_eq!(n.clinical_date, h.clinical_date);
                }
                // One audit entry per note read, naming its encounter and version, never its text.
                let reads: Vec<(Option<&str>, Option<i64>, &str)> = new_entries
                    .iter()
                    .map(|e| (e.encounter.as_deref(), e.version, e.detail.as_str()))
                    .collect();
                let detail = format!("sources from={from} to={to}");
                let want_reads: Vec<_> = got
                    .iter()
                    .map(|n| (Some(n.encounter.as_str()), Some(n.version), detail.as_str()))
                    .collect();
                assert_eq!(reads, want_reads);
                assert!(new_entries
                    .iter()
                    .all(|e| e.action == "view" && e.user.as_deref() == Some("dr.sato")));
            }
            (Err(code), Err(e)) => {
                assert_eq!(e.code, *code, "{patient} {from}..{to}");
                assert_eq!(e.code.exit_status(), 2);
                assert!(!e.message.contains(patient.trim()), "{}", e.message);
                assert!(new_entries.is_empty(), "{new_entries:?}");
            }
            (want, got) => panic!("{patient} {from}..{to}: want {want:?}, got {got:?}"),
        }
    }
    // Only a physician builds documents from notes; a refusal is itself audited.
    for s in [&ward.login_nurse(), &admin] {
        let e = store
            .signed_notes(s, "P-A", date("2026-11-01"), date("2026-11-30"))
            .unwrap_err();
        assert_eq!(e.code, Code::AuthForbidden);
    }
    let last = store.audit_entries(&admin).unwrap();
    assert!(last.iter().any(|e| e.action == "draft"
        && e.outcome == "denied"
        && e.user.as_deref() == Some("ns.suzuki")));
}
