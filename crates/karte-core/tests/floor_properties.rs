//! Invariants of the deterministic floor over generated dictations: it never writes a number the dictation lacks,
//! never panics, and every span is inside the input.

use karte_core::grounding::numbers;
use karte_core::normalize::normalize;
use karte_core::{draft_floor, Code};
use proptest::prelude::*;
use std::collections::BTreeSet;

/// Realistic fragments (full- and half-width, units, eras, doses, negations) to splice with random numbers.
const FRAGMENTS: &[&str] = &[
    "65歳男性。",
    "３日前から発熱と咳嗽あり、",
    "BT 38.6℃、",
    "体温３７．８度。",
    "SpO2 93%（室内気）。",
    "BP 132/78mmHg、",
    "HR 104/分。",
    "右下肺野で湿性ラ音を聴取。",
    "WBC 13,200/μL、CRP 12.3mg/dL。",
    "市中肺炎を疑い、",
    "胸部X線を施行予定。",
    "セフトリアキソン2g 1日1回点滴静注を開始する。",
    "咽頭痛、鼻汁なし。",
    "令和6年4月1日に入院。",
    "既往に糖尿病。",
    "S) 頭痛\n",
    "O) ",
    "【P】",
    "ｶﾛﾅｰﾙ 500mg 頓用。",
    "R6.4.1 ",
    "Hb ８．２g/dL",
    "1,000mL補液",
    "E3V4M6",
    "JCS II-10",
    "\n",
];

fn number_set(text: &str) -> BTreeSet<String> {
    numbers(text).into_iter().collect()
}

fn dictation() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(FRAGMENTS).prop_map(str::to_string),
            1 => (0u32..100_000, 0u32..100).prop_map(|(a, b)| format!("{a}.{b}")),
            1 => "\\PC{0,12}",
        ],
        1..20,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn floor_writes_no_number_the_dictation_lacks(input in dictation()) {
        match draft_floor(&input, karte_core::document::default_kind()) {
            Ok(d) => {
                let source = number_set(&normalize(&input).text);
                for (_, s) in d.sections.iter() {
                    for n in number_set(&s.text) {
                        prop_assert!(source.contains(&n), "number {n} in {:?} is not in the dictation", s.text);
                    }
                    prop_assert!(s.flags.is_empty(), "floor sentence flagged: {:?}", s.flags);
                }
            }
            Err(e) => prop_assert_eq!(e.code, Code::InputEmpty),
        }
    }

    #[test]
    fn any_text_drafts_without_panic_and_spans_stay_inside(input in "\\PC{0,300}") {
        let n = input.chars().count();
        if let Ok(d) = draft_floor(&input, karte_core::document::default_kind()) {
            for (_, s) in d.sections.iter() {
                for sp in &s.spans {
                    prop_assert!(sp.start < sp.end && sp.end <= n);
                }
            }
            for f in &d.facts {
                prop_assert!(f.span.start <= f.span.end && f.span.end <= n);
            }
            for g in &d.suggestions {
                prop_assert!(g.spans.iter().all(|sp| sp.end <= n));
            }
        }
    }
}

#[test]
fn sample_dictations_have_every_number_grounded() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/samples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let d = draft_floor(&text, karte_core::document::default_kind()).unwrap();
        let source = number_set(&normalize(&text).text);
        for (_, s) in d.sections.iter() {
            assert!(number_set(&s.text).is_subset(&source), "{}", s.text);
        }
        seen += 1;
    }
    assert!(seen >= 5);
}
