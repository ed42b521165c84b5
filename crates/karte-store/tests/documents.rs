//! Documents made from signed notes through the store (`Store::draft_document`, `save_document`), as the CLI and the
//! window use them: typing errors are refused before any note is read, the draft cites the notes it read, and the
//! typed inputs (入院日…) are kept with the document, carried over by an edit, and tamper-evident.
//!
//! Runs with `TZ=Asia/Tokyo`, as a ward in Japan does.

mod common;

use common::{config, keyring_session_with_env, raw_conn, Ward};
use karte_core::Code;
use karte_store::{ClinicalDate, DocumentRequest};
use std::collections::BTreeMap;

const TOKYO: &[(&str, &str)] = &[("TZ", "Asia/Tokyo")];

const STAY: &[(&str, &str)] = &[
    ("2026-11-02", "S）3日前から発熱と咳嗽。\nO）BT 38.6℃。CRP 12.4 mg/dL。\nA）市中肺炎。\nP）セフトリアキソンで入院加療とする。"),
    ("2026-11-04", "O）BT 37.2℃。\nA）改善傾向。\nP）セフトリアキソンを継続する。"),
    ("2026-11-07", "A）市中肺炎は軽快。\nP）アモキシシリン内服に変更し退院とする。"),
];

fn request(inputs: &[(&str, &str)]) -> DocumentRequest {
    DocumentRequest {
        kind: "discharge-summary".into(),
        patient: "P-A".into(),
        inputs: inputs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        from: None,
        to: None,
    }
}

#[test]
fn a_discharge_summary_keeps_its_inputs_and_they_are_tamper_evident() {
    if !keyring_session_with_env(
        "a_discharge_summary_keeps_its_inputs_and_they_are_tamper_evident",
        TOKYO,
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::new(dir.path(), config());
    let (store, doc, admin) = (&ward.store, ward.login_physician(), ward.login_admin());
    for (day, text) in STAY {
        let draft = karte_core::draft_floor(text, karte_core::document::default_kind()).unwrap();
        let id = store
            .save_draft(&doc, "P-A", Some(day.parse().unwrap()), text, &draft)
            .unwrap();
        store.sign(&doc, &id, 1).unwrap();
    }

    // Typing errors: refused with their code, and no note was read (no `view` entry).
    let stay = [("admitted", "2026-11-02"), ("discharged", "2026-11-07")];
    let mut wrong_kind = request(&stay);
    wrong_kind.kind = "progress-note".into();
    let refusals: &[(DocumentRequest, Code)] = &[
        (request(&[("admitted", "2026-11-02")]), Code::InputEmpty),
        (
            request(&[("admitted", "2026-11-02"), ("discharged", "2026-02-30")]),
            Code::DateInvalid,
        ),
        (
            request(&[("admitted", "2026-11-07"), ("discharged", "2026-11-02")]),
            Code::DateInvalid,
        ),
        (
            request(&[("admitted", "2026-11-02"), ("discharged", "2999-01-01")]),
            Code::DateInvalid,
        ),
        (
            request(&[
                ("admitted", "2026-11-02"),
                ("discharged", "2026-11-07"),
                ("purpose", "x"),
            ]),
            Code::DocumentInvalid,
        ),
        (wrong_kind, Code::DocumentInvalid),
        (
            request(&[("admitted", "2026-10-01"), ("discharged", "2026-10-05")]),
            Code::DocumentNoSources,
        ),
    ];
    for (req, code) in refusals {
        let before = store.audit_entries(&admin).unwrap().len();
        let e = store.draft_document(&doc, req).unwrap_err();
        assert_eq!(e.code, *code, "{:?}", req.inputs);
        let after = store.audit_entries(&admin).unwrap();
        assert!(
            after[before..].iter().all(|e| e.action != "view"),
            "a note was read for a refused request"
        );
    }

    // The stay's notes, in date order, each cited; dated the discharge day; the inputs kept.
    let d = store.draft_document(&doc, &request(&stay)).unwrap();
    let days: Vec<String> = d
        .notes
        .iter()
        .map(|n| n.clinical_date.to_string())
        .collect();
    assert_eq!(days, ["2026-11-02", "2026-11-04", "2026-11-07"]);
    assert_eq!(d.date, "2026-11-07".parse::<ClinicalDate>().unwrap());
    assert_eq!(d.draft.inputs, request(&stay).inputs);
    let cited: Vec<&str> = d
        .draft
        .sections
        .parts()
        .iter()
        .flat_map(|p| p.sentences.iter())
        .flat_map(|s| s.sources.iter().map(|r| r.version.as_str()))
        .collect();
    for n in &d.notes {
        assert!(
            cited.contains(&format!("{}@{}", n.encounter, n.version).as_str()),
            "note {} is not cited",
            n.clinical_date
        );
    }

    // What the window lists before drafting: every signed note of the patient, whatever its day, and nobody else's.
    let listed: Vec<String> = store
        .patient_notes(&doc, "P-A")
        .unwrap()
        .iter()
        .map(|n| n.clinical_date.to_string())
        .collect();
    assert_eq!(listed, ["2026-11-02", "2026-11-04", "2026-11-07"]);
    assert_eq!(
        store.patient_notes(&doc, "P-B").unwrap_err().code,
        Code::DocumentNoSources
    );

    let id = store.save_document(&doc, "P-A", d.date, &d.draft).unwrap();
    // The records list says which record is the summary.
    let kinds: Vec<(String, String)> = store
        .encounters(&doc)
        .unwrap()
        .into_iter()
        .map(|e| (e.clinical_date.to_string(), e.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("2026-11-07", "discharge-summary"),
            ("2026-11-07", "progress-note"),
            ("2026-11-04", "progress-note"),
            ("2026-11-02", "progress-note"),
        ]
        .map(|(d, k)| (d.to_string(), k.to_string()))
    );
    let h = store.history(&doc, &id).unwrap();
    assert_eq!(h.clinical_date, d.date);
    assert_eq!(h.versions[0].document.inputs, d.draft.inputs);
    // An edit typed as text keeps the inputs: text edits sentences, never the inputs they quote.
    let edited = h.versions[0].text.replacen("軽快", "軽快した", 1);
    let v = store.edit(&doc, &id, &edited).unwrap();
    let h = store.history(&doc, &id).unwrap();
    assert_eq!(h.versions[v as usize - 1].document.inputs, d.draft.inputs);
    let report = store.check_integrity().unwrap();
    assert!(report.altered_versions.is_empty(), "{report:?}");

    // Signed, the summary is a record of the patient but no source of the next document: drafted again, the
    // summary reads the same three notes.
    store.sign(&doc, &id, v).unwrap();
    assert_eq!(store.patient_notes(&doc, "P-A").unwrap().len(), 3);
    let again = store.draft_document(&doc, &request(&stay)).unwrap();
    assert_eq!(again.notes, d.notes);
    assert_eq!(again.draft.sections, d.draft.sections);

    // An input changed behind the store's back (the stay's end, which the FHIR period reads) is found.
    let raw = raw_conn(dir.path(), store.store_id());
    raw.execute_batch(
        "DROP TRIGGER versions_no_update;
         UPDATE versions SET document = replace(document, '\"discharged\":\"2026-11-07\"', '\"discharged\":\"2026-11-09\"')
         WHERE version = 1 AND document LIKE '%discharged%';",
    )
    .unwrap();
    assert_eq!(
        store.check_integrity().unwrap().altered_versions,
        vec![(id.clone(), 1)]
    );
}
