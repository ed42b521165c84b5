//! Documents made from signed notes, over the synthetic admissions in `tests/data/admissions`: each expected fact
//! lands in its section, every sentence cites a span of a note (or a typed field) that says what the sentence says,
//! no number or drug appears that its cited sources lack, and an empty required section is flagged, never hidden.

use karte_core::compose::{compose, input_source, SourceNote};
use karte_core::document::{default_kind, kind, Document};
use karte_core::grounding::numbers;
use karte_core::Code;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    department: String,
    kind: String,
    inputs: BTreeMap<String, String>,
    notes: Vec<NoteCase>,
    expect: Vec<Expect>,
    /// Required sections the notes have nothing for (flagged `section_empty`).
    #[serde(default)]
    empty: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteCase {
    date: String,
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    section: String,
    contains: String,
}

fn cases() -> Vec<(String, Case)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/admissions");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let case = toml::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, case)
        })
        .collect()
}

fn notes(case: &Case) -> Vec<SourceNote> {
    case.notes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            SourceNote::rendered(
                format!("E{:04}@1", i + 1),
                n.date.clone(),
                Document::from_text(default_kind(), &n.text).unwrap(),
            )
        })
        .collect()
}

#[test]
fn every_admission_drafts_with_each_fact_in_its_section_and_nothing_its_sources_lack() {
    let cases = cases();
    assert!(cases.len() >= 10, "the admissions are missing");
    let departments: BTreeSet<&str> = cases.iter().map(|(_, c)| c.department.as_str()).collect();
    assert!(departments.len() >= 8, "{departments:?}");
    for (name, case) in &cases {
        let k = kind(&case.kind).unwrap();
        let notes = notes(case);
        let draft = compose(k, &notes, &case.inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(draft.kind, case.kind);
        let texts = |id: &str| -> Vec<String> {
            draft
                .sections
                .get(id)
                .iter()
                .map(|s| s.text.clone())
                .collect()
        };
        for e in &case.expect {
            assert!(
                k.position(&e.section).is_some(),
                "{name}: no section {}",
                e.section
            );
            assert!(
                texts(&e.section).iter().any(|t| t.contains(&e.contains)),
                "{name}: {} lacks {:?}: {:?}",
                e.section,
                e.contains,
                texts(&e.section)
            );
        }

        // Every sentence cites a source whose span is what the sentence says (after its date label), and every
        // number in it is one of the cited source's (or its date's).
        let by_id: BTreeMap<String, (String, String)> = notes
            .iter()
            .map(|n| (n.id.clone(), (n.text.clone(), n.date.clone())))
            .collect();
        for (_, s) in draft.sections.iter() {
            assert!(
                s.flags.is_empty(),
                "{name}: {:?} flagged {:?}",
                s.text,
                s.flags
            );
            assert_eq!(s.sources.len(), 1, "{name}: {:?}", s.text);
            let r = &s.sources[0];
            let (said, allowed) = match by_id.get(&r.version) {
                Some((text, date)) => (r.span.slice(text).to_string(), format!("{date} {text}")),
                None => {
                    let input = case
                        .inputs
                        .iter()
                        .find(|(n, _)| input_source(n) == r.version)
                        .unwrap_or_else(|| panic!("{name}: unknown source {}", r.version))
                        .1
                        .trim()
                        .to_string();
                    (r.span.slice(&input).to_string(), input)
                }
            };
            assert!(!said.is_empty(), "{name}: empty span for {:?}", s.text);
            assert!(
                s.text.ends_with(&said) || s.text.contains(&said),
                "{name}: {:?} cites {said:?}",
                s.text
            );
            let have: BTreeSet<String> = numbers(&allowed).into_iter().collect();
            for n in numbers(&s.text) {
                assert!(
                    have.contains(&n),
                    "{name}: {n} in {:?} is not in its source",
                    s.text
                );
            }
        }

        let flagged: BTreeSet<String> = draft
            .flags
            .iter()
            .filter(|f| f.code == "section_empty")
            .filter_map(|f| f.detail.clone())
            .collect();
        let want: BTreeSet<String> = case.empty.iter().cloned().collect();
        assert_eq!(
            flagged, want,
            "{name}: required sections without a sentence"
        );
        for (i, spec) in k.sections.iter().enumerate() {
            let n = draft.sections.parts()[i].sentences.len();
            assert_eq!(
                spec.required && n == 0,
                want.contains(&spec.id),
                "{name}: {}",
                spec.id
            );
        }
    }
}

/// The JSON of `karte document draft`: sections as a list with their JP-CLINS titles, sentences with sources.
#[test]
fn the_json_view_lists_sections_with_their_titles_and_sources() {
    let (_, case) = cases().into_iter().next().unwrap();
    let draft = compose(kind(&case.kind).unwrap(), &notes(&case), &case.inputs).unwrap();
    let v = serde_json::to_value(karte_core::compose::View::of(&draft)).unwrap();
    assert_eq!(v["kind"], "discharge-summary");
    assert_eq!(v["sections"][0]["id"], "admission_details");
    assert_eq!(v["sections"][0]["title"], "入院時詳細");
    assert_eq!(v["sections"][1]["title"], "入院時診断");
    let s = &v["sections"][1]["sentences"][0];
    assert_eq!(s["sources"][0]["version"], "E0001@1");
    let span = s["sources"][0]["span"].as_array().unwrap();
    assert_eq!(span.len(), 2);
    assert!(span[0].as_u64() < span[1].as_u64());
    assert_eq!(v["engine"]["kind"], "rules");
}

/// A version signed before documents were structured keeps the physician's own layout: spans point into that text.
#[test]
fn spans_point_into_the_text_as_signed_even_in_the_physicians_own_layout() {
    let typed = "前医より紹介。\nS）発熱と咳嗽。\nA）市中肺炎。\nP）アモキシシリン500mg 1日3回を内服する。\n";
    let document = karte_core::document::recover(default_kind(), typed, None);
    assert_ne!(
        document.render(),
        typed,
        "the layout must differ, or this proves nothing"
    );
    let note = SourceNote {
        id: "E9@2".into(),
        date: "2026-03-01".into(),
        document,
        text: typed.into(),
    };
    let inputs: BTreeMap<String, String> =
        [("admitted", "2026-03-01"), ("discharged", "2026-03-01")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let draft = compose(kind("discharge-summary").unwrap(), &[note], &inputs).unwrap();
    let mut n = 0;
    for (_, s) in draft.sections.iter() {
        let r = &s.sources[0];
        if r.version == "E9@2" {
            let said = r.span.slice(typed);
            assert!(
                !said.is_empty() && s.text.ends_with(said),
                "{:?} cites {said:?}",
                s.text
            );
            n += 1;
        }
    }
    assert!(n >= 3, "{n}");
}

/// A long stay keeps every assessment and plan of every day, in date order.
#[test]
fn the_course_of_a_long_stay_keeps_every_day_in_order() {
    let (_, case) = cases()
        .into_iter()
        .find(|(n, _)| n.starts_with("09-"))
        .unwrap();
    let notes = notes(&case);
    assert!(notes.len() >= 12);
    let draft = compose(kind("discharge-summary").unwrap(), &notes, &case.inputs).unwrap();
    let course = draft.sections.get("hospital_course");
    let cited: Vec<&str> = course
        .iter()
        .map(|s| s.sources[0].version.as_str())
        .collect();
    let mut sorted = cited.clone();
    sorted.sort();
    assert_eq!(cited, sorted, "date order");
    let days: BTreeSet<&str> = cited.iter().copied().collect();
    assert_eq!(
        days.len(),
        notes.len(),
        "a day of the stay is missing from the course"
    );
}

#[test]
fn what_a_document_from_notes_refuses() {
    let k = kind("discharge-summary").unwrap();
    let dates = |a: &str, d: &str| -> BTreeMap<String, String> {
        [("admitted", a), ("discharged", d)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let one = vec![SourceNote::rendered(
        "E1@1".into(),
        "2026-11-02".into(),
        Document::from_text(default_kind(), "A）肺炎。").unwrap(),
    )];
    // (kind, notes, inputs, expected code)
    type Refusal = (
        &'static str,
        Vec<SourceNote>,
        BTreeMap<String, String>,
        Code,
    );
    let cases: Vec<Refusal> = vec![
        (
            "discharge-summary",
            vec![],
            dates("2026-11-02", "2026-11-09"),
            Code::DocumentNoSources,
        ),
        (
            "discharge-summary",
            one.clone(),
            dates("2026-11-02", " "),
            Code::InputEmpty,
        ),
        ("referral", one.clone(), BTreeMap::new(), Code::InputEmpty),
        (
            "progress-note",
            one.clone(),
            BTreeMap::new(),
            Code::DocumentInvalid,
        ),
        (
            "discharge-summary",
            one.clone(),
            {
                let mut m = dates("2026-11-02", "2026-11-09");
                m.insert("purpose".into(), "x".into());
                m
            },
            Code::DocumentInvalid,
        ),
    ];
    for (kid, notes, inputs, want) in cases {
        let err = compose(kind(kid).unwrap(), &notes, &inputs).unwrap_err();
        assert_eq!(err.code, want, "{kid}: {err}");
    }
    // A kind made from notes is not drafted from a dictation.
    assert_eq!(
        karte_core::draft_floor("発熱。", k).unwrap_err().code,
        Code::DocumentInvalid
    );
}

/// The window's first dates: the patient's latest episode by the kind's gap (a week for a stay, 90 days for a
/// course of visits), whatever order the notes come in.
#[test]
fn the_prefilled_range_is_the_latest_episode() {
    use karte_core::compose::prefill_range;
    use karte_core::ClinicalDate;
    let d = |s: &str| ClinicalDate::parse(s).unwrap();
    type Row<'a> = (&'a str, &'a [&'a str], Option<(&'a str, &'a str)>);
    let table: &[Row] = &[
        ("discharge-summary", &[], None),
        (
            "discharge-summary",
            &["2026-11-02"],
            Some(("2026-11-02", "2026-11-02")),
        ),
        // One stay, notes every day or two, listed out of order.
        (
            "discharge-summary",
            &["2026-11-07", "2026-11-02", "2026-11-04", "2026-11-03"],
            Some(("2026-11-02", "2026-11-07")),
        ),
        // Two admissions a month apart: the last one. A gap of exactly a week still joins.
        (
            "discharge-summary",
            &[
                "2026-09-01",
                "2026-09-05",
                "2026-10-20",
                "2026-10-27",
                "2026-10-30",
            ],
            Some(("2026-10-20", "2026-10-30")),
        ),
        // Two notes of one day count once.
        (
            "discharge-summary",
            &["2026-10-01", "2026-10-30", "2026-10-30"],
            Some(("2026-10-30", "2026-10-30")),
        ),
        // Outpatient visits: quarterly follow-up is one course, a visit two years before is not.
        (
            "referral",
            &[
                "2024-06-10",
                "2026-03-02",
                "2026-05-25",
                "2026-08-20",
                "2026-11-16",
            ],
            Some(("2026-03-02", "2026-11-16")),
        ),
    ];
    for (kind_id, dates, want) in table {
        let k = kind(kind_id).unwrap();
        let dates: Vec<ClinicalDate> = dates.iter().map(|s| d(s)).collect();
        let got = prefill_range(k, &dates);
        let want = want.map(|(f, t)| (d(f), d(t)));
        assert_eq!(got, want, "{kind_id} {dates:?}");
    }
}
