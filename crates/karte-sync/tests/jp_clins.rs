//! 退院時サマリー and 診療情報提供書 as JP-CLINS documents (eDischargeSummary, eReferral), built by the real code
//! from signed notes in a real store: checked against the profiles' rules as docs/jp-clins.md reads them from the
//! IG's FSH sources (the table below), against the FHIR R4 validator, and sent to the loopback platform.
//!
//! The synthetic stays are karte-core's admissions (`crates/karte-core/tests/data/admissions/`), the same that
//! test how the documents are composed.

mod common;

use common::*;
use karte_core::ClinicalDate;
use karte_store::DocumentRequest;
use karte_sync::fhir::{self, Facility};
use karte_sync::worker::PatientPolicy;
use serde_json::Value;
use std::collections::BTreeMap;

const FACILITY_CODE: &str = "1312345678";

/// docs/jp-clins.md §3.3 and §4.3: the sections each profile requires (min 1), with their code and where they sit
/// ("" = a section of the Composition, "300" = inside 構造情報).
const REQUIRED: &[(&str, &str, &str, &str)] = &[
    ("discharge-summary", "", "300", "構造情報"),
    ("discharge-summary", "300", "322", "入院時詳細"),
    ("discharge-summary", "300", "342", "入院時診断"),
    ("discharge-summary", "300", "352", "主訴"),
    ("discharge-summary", "300", "312", "入院理由"),
    ("discharge-summary", "300", "360", "現病歴"),
    ("discharge-summary", "300", "333", "入院中経過"),
    ("discharge-summary", "300", "324", "退院時詳細"),
    ("discharge-summary", "300", "344", "退院時診断"),
    ("discharge-summary", "300", "444", "退院時投薬指示"),
    ("discharge-summary", "300", "424", "退院時方針指示"),
    ("referral", "", "920", "紹介元情報"),
    ("referral", "", "910", "紹介先情報"),
    ("referral", "", "300", "構造情報"),
    ("referral", "300", "950", "紹介目的"),
    ("referral", "300", "340", "傷病名・主訴"),
    ("referral", "300", "360", "現病歴"),
];

/// Sections whose entries the profile requires, and the resource type they must reference (§3.3, §4.3).
const ENTRIES: &[(&str, &str, &str)] = &[
    ("discharge-summary", "322", "Encounter"),
    ("discharge-summary", "324", "Encounter"),
    ("discharge-summary", "333", "DocumentReference"),
    ("discharge-summary", "344", "Condition"),
    ("referral", "920", "Organization"),
    ("referral", "910", "Organization"),
];

/// Profile-level facts per kind (§2, §3.1–3.2, §4.1–4.2).
struct Profile {
    kind: &'static str,
    admission: &'static str,
    bundle_profile: &'static str,
    composition_profile: &'static str,
    type_code: &'static str,
    title: &'static str,
    category: &'static str,
    /// (type, at least, at most) of the Bundle's entries.
    resources: &'static [(&'static str, usize, usize)],
    event_text: Option<&'static str>,
    event_end: bool,
}

const PROFILES: &[Profile] = &[
    Profile {
        kind: "discharge-summary",
        admission: "02-heart-failure.toml",
        bundle_profile: "http://jpfhir.jp/fhir/clins/StructureDefinition/JP_Bundle_eDischargeSummary",
        composition_profile:
            "http://jpfhir.jp/fhir/eDischargeSummary/StructureDefinition/JP_Composition_eDischargeSummary",
        type_code: "18842-5",
        title: "退院時サマリー",
        category: "DISCHARGE",
        resources: &[
            ("Composition", 1, 1),
            ("Patient", 1, 1),
            ("Practitioner", 1, 99),
            ("Organization", 1, 99),
            ("Encounter", 1, 1),
            ("Condition", 1, 99),
        ],
        event_text: None,
        event_end: true,
    },
    Profile {
        kind: "referral",
        admission: "10-referral-cardiology.toml",
        bundle_profile: "http://jpfhir.jp/fhir/clins/StructureDefinition/JP_Bundle_eReferral",
        composition_profile:
            "http://jpfhir.jp/fhir/eReferral/StructureDefinition/JP_Composition_eReferral",
        type_code: "57133-1",
        title: "診療情報提供書",
        category: "OUTPATIENT",
        resources: &[
            ("Composition", 1, 1),
            ("Patient", 1, 1),
            ("Practitioner", 1, 99),
            ("Organization", 2, 4),
        ],
        event_text: Some("診療情報提供書発行"),
        event_end: false,
    },
];

const SECTION_SYSTEM: &str = "http://jpfhir.jp/fhir/clins/CodeSystem/document-section";

/// One synthetic stay: its notes signed on their days, then the document composed from them, saved and signed.
/// Returns the encounter of the signed document and the inputs typed for it.
fn sign_document(w: &Ward, patient: &str, file: &str) -> (String, BTreeMap<String, String>) {
    let path = format!(
        "{}/../karte-core/tests/data/admissions/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let stay: Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let kind = karte_core::document::kind(stay["kind"].as_str().unwrap()).unwrap();
    let inputs: BTreeMap<String, String> = stay["inputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let mut dates = Vec::new();
    for n in stay["notes"].as_array().unwrap() {
        let date = ClinicalDate::parse(n["date"].as_str().unwrap()).unwrap();
        let text = n["text"].as_str().unwrap();
        let draft = karte_core::draft_floor(text, karte_core::document::default_kind()).unwrap();
        let id = w
            .store
            .save_draft(&w.doctor, patient, Some(date), text, &draft)
            .unwrap();
        w.store.sign(&w.doctor, &id, 1).unwrap();
        dates.push(date);
    }
    // What the CLI and the window call: the store reads the signed notes (its kind's range, else this one) and
    // composes.
    let req = DocumentRequest {
        kind: kind.id.clone(),
        patient: patient.to_string(),
        inputs: inputs.clone(),
        from: dates.first().copied(),
        to: dates.last().copied(),
    };
    let d = w.store.draft_document(&w.doctor, &req).unwrap();
    let id = w
        .store
        .save_document(&w.doctor, patient, d.date, &d.draft)
        .unwrap();
    w.store.sign(&w.doctor, &id, 1).unwrap();
    (id, inputs)
}

fn policy() -> PatientPolicy {
    PatientPolicy {
        identifying: false,
        facility_code: Some(FACILITY_CODE.into()),
        facility_name: Some("カルテ記念病院".into()),
        pseudonym_key: zeroize::Zeroizing::new(b"test-pseudonym-key-32-bytes-long".to_vec()),
    }
}

fn sections<'a>(composition: &'a Value, parent: &str) -> &'a Vec<Value> {
    let top = composition["section"].as_array().unwrap();
    if parent.is_empty() {
        return top;
    }
    top.iter()
        .find(|s| s["code"]["coding"][0]["code"] == parent)
        .unwrap_or_else(|| panic!("no section {parent}"))["section"]
        .as_array()
        .unwrap()
}

/// Every rule of the conformance table that one Bundle must meet; the messages name the rule broken.
fn check(p: &Profile, b: &Value, inputs: &BTreeMap<String, String>) {
    let k = p.kind;
    // Bundle (§3.1, §4.1, §2.3).
    assert_eq!(b["type"], "document", "{k}");
    assert_eq!(b["meta"]["profile"][0], p.bundle_profile, "{k}");
    assert!(
        b["meta"]["lastUpdated"].is_string(),
        "{k}: meta.lastUpdated"
    );
    assert_eq!(
        b["identifier"]["system"],
        fhir::CLINS_BUNDLE_ID_SYSTEM,
        "{k}"
    );
    let id = b["identifier"]["value"].as_str().unwrap();
    let parts: Vec<&str> = id.split('^').collect();
    assert_eq!(parts.len(), 3, "{k}: Bundle-ID {id}");
    assert_eq!(parts[0], FACILITY_CODE);
    assert!(
        parts[0].len() == 10
            && parts[0].as_bytes()[0] <= b'4'
            && (b'1'..=b'3').contains(&parts[0].as_bytes()[2]),
        "{k}: {id}"
    );
    assert!(("2020".."2040").contains(&parts[1]), "{k}: year in {id}");
    assert!(
        (1..=36).contains(&parts[2].len())
            && parts[2]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-'),
        "{k}: serial in {id}"
    );
    let ts = b["timestamp"].as_str().unwrap();
    assert!(
        ts.len() == 24 && ts.as_bytes()[19] == b'.' && ts.ends_with('Z'),
        "{k}: timestamp with milliseconds and zone: {ts}"
    );

    // Every reference resolves inside the Bundle, and the counts of each resource type are the profile's.
    let entries = b["entry"].as_array().unwrap();
    let urls: BTreeMap<&str, &str> = entries
        .iter()
        .map(|e| {
            (
                e["fullUrl"].as_str().unwrap(),
                e["resource"]["resourceType"].as_str().unwrap(),
            )
        })
        .collect();
    let text = b.to_string();
    for (i, _) in text.match_indices("\"reference\":\"") {
        let r = &text[i + 13..];
        let r = &r[..r.find('"').unwrap()];
        assert!(urls.contains_key(r), "{k}: dangling reference {r}");
    }
    for (ty, min, max) in p.resources {
        let n = urls.values().filter(|t| *t == ty).count();
        assert!(
            (*min..=*max).contains(&n),
            "{k}: {n} {ty} (profile: {min}..{max})"
        );
    }

    // Composition (§3.2, §4.2).
    let c = &entries[0]["resource"];
    assert_eq!(c["resourceType"], "Composition", "{k}: bdl-11");
    assert_eq!(c["meta"]["profile"][0], p.composition_profile, "{k}");
    assert_eq!(c["extension"][0]["url"], fhir::VERSION_EXTENSION_URL, "{k}");
    assert_eq!(c["extension"][0]["valueString"], "1", "{k}: first edition");
    assert_eq!(
        c["identifier"]["system"],
        fhir::RESOURCE_INSTANCE_ID_SYSTEM,
        "{k}"
    );
    let cid = c["identifier"]["value"].as_str().unwrap();
    let cparts: Vec<&str> = cid.split('^').collect();
    assert!(
        cparts.len() == 3 && cparts[0] == FACILITY_CODE && cparts[2].len() <= 32,
        "{k}: Composition identifier {cid}"
    );
    assert_eq!(c["status"], "final", "{k}");
    assert_eq!(
        c["type"]["coding"][0]["system"],
        "http://jpfhir.jp/fhir/Common/CodeSystem/doc-typecodes"
    );
    assert_eq!(c["type"]["coding"][0]["code"], p.type_code, "{k}");
    assert_eq!(c["type"]["coding"][0]["display"], p.title, "{k}");
    assert_eq!(c["type"]["coding"].as_array().unwrap().len(), 1, "{k}");
    assert_eq!(
        c["category"][0]["coding"][0]["system"],
        "http://jpfhir.jp/fhir/Common/CodeSystem/doc-subtypecodes"
    );
    assert_eq!(c["category"][0]["coding"][0]["code"], p.category, "{k}");
    assert_eq!(c["title"], p.title, "{k}");
    let author: Vec<&str> = c["author"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| urls[a["reference"].as_str().unwrap()])
        .collect();
    assert_eq!(author, ["Practitioner", "Organization"], "{k}: author");
    assert_eq!(
        urls[c["custodian"]["reference"].as_str().unwrap()],
        "Organization",
        "{k}: custodian"
    );
    assert_eq!(urls[c["subject"]["reference"].as_str().unwrap()], "Patient");
    let event = &c["event"].as_array().unwrap()[..];
    assert_eq!(event.len(), 1, "{k}: event 1..1");
    match p.event_text {
        Some(t) => {
            assert_eq!(event[0]["code"][0]["text"], t, "{k}");
            assert!(
                event[0]["code"][0]["coding"].is_null(),
                "{k}: event.code.coding ..0"
            );
        }
        None => assert!(event[0]["code"].is_null(), "{k}: event.code ..0"),
    }
    let start = event[0]["period"]["start"].as_str().unwrap();
    assert!(
        ClinicalDate::parse(start).is_ok(),
        "{k}: period.start {start}"
    );
    if p.event_end {
        assert_eq!(Some(start), inputs.get("admitted").map(String::as_str));
        assert_eq!(
            event[0]["period"]["end"].as_str(),
            inputs.get("discharged").map(String::as_str)
        );
    }

    // Sections (§2.2): 200 xor 300; the required ones where the profile puts them; each coded exactly once in
    // the section system, display = title + セクション, no code.text; narrative `additional`; 構造情報 has none.
    let top = sections(c, "");
    let has = |code: &str| top.iter().any(|s| s["code"]["coding"][0]["code"] == code);
    assert!(has("300") ^ has("200"), "{k}: 200 xor 300");
    for (_, parent, code, title) in REQUIRED.iter().filter(|r| r.0 == k) {
        let s = sections(c, parent)
            .iter()
            .find(|s| s["code"]["coding"][0]["code"] == *code)
            .unwrap_or_else(|| panic!("{k}: required section {code} {title} not under {parent:?}"));
        assert_eq!(s["title"], *title, "{k} {code}");
        assert_eq!(s["code"]["coding"].as_array().unwrap().len(), 1);
        assert_eq!(
            s["code"]["coding"][0]["system"], SECTION_SYSTEM,
            "{k} {code}"
        );
        assert_eq!(
            s["code"]["coding"][0]["display"],
            format!("{title}セクション"),
            "{k} {code}"
        );
        assert!(s["code"]["text"].is_null(), "{k} {code}: code.text ..0");
        if *code == "300" {
            assert!(s["text"].is_null(), "{k}: 構造情報 has no narrative");
        } else if s["entry"].is_null() {
            assert_eq!(s["text"]["status"], "additional", "{k} {code}");
            assert!(
                s["text"]["div"].as_str().unwrap().starts_with("<div"),
                "{k} {code}"
            );
        }
    }
    for s in sections(c, "300") {
        assert!(s["section"].is_null(), "{k}: no deeper nesting");
        if let Some(t) = s["text"].as_object() {
            assert_eq!(t["status"], "additional");
        }
        // An empty section says why (emptyReason) and still has its narrative (cmp-1).
        if s["entry"].is_null() && s["text"]["div"].as_str().unwrap().contains("（記載なし）")
        {
            assert_eq!(s["emptyReason"]["coding"][0]["code"], "unavailable", "{k}");
        }
    }
    for (_, code, ty) in ENTRIES.iter().filter(|e| e.0 == k) {
        let s = top
            .iter()
            .chain(sections(c, "300"))
            .find(|s| s["code"]["coding"][0]["code"] == *code)
            .unwrap();
        let refs = s["entry"]
            .as_array()
            .unwrap_or_else(|| panic!("{k} {code}: no entry"));
        assert!(!refs.is_empty(), "{k} {code}: entry 1..*");
        assert!(
            refs.iter()
                .any(|r| urls[r["reference"].as_str().unwrap()] == *ty),
            "{k} {code}: no {ty} entry"
        );
    }
}

#[test]
fn discharge_summary_and_referral_are_jp_clins_documents() {
    if !keyring_session("discharge_summary_and_referral_are_jp_clins_documents") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let w = Ward::new(dir.path());
    let mut files = Vec::new();
    for (i, p) in PROFILES.iter().enumerate() {
        let patient = format!("P-CLINS-{i}");
        let (id, inputs) = sign_document(&w, &patient, p.admission);
        let doc = w.store.outbox_document(&w.doctor, &id).unwrap();
        let b = policy().bundle(&doc);
        let json: Value = serde_json::from_slice(&fhir::to_json(&b)).unwrap();
        check(p, &json, &inputs);
        let f = dir.path().join(format!("{}.json", p.kind));
        std::fs::write(&f, fhir::to_json(&b)).unwrap();
        files.push(f);

        // The kind's particular resources.
        let entries = json["entry"].as_array().unwrap();
        let of = |ty: &str| -> Vec<&Value> {
            entries
                .iter()
                .map(|e| &e["resource"])
                .filter(|r| r["resourceType"] == ty)
                .collect()
        };
        let author_org = of("Organization")[0];
        assert_eq!(
            author_org["identifier"][0]["system"],
            fhir::INSTITUTION_NO_SYSTEM
        );
        assert_eq!(author_org["identifier"][0]["value"], FACILITY_CODE);
        assert_eq!(author_org["name"], "カルテ記念病院");
        if p.kind == "referral" {
            let to = of("Organization")[1];
            assert_eq!(to["name"], inputs["to_facility"]);
            assert_eq!(to["extension"][0]["url"], fhir::DEPARTMENT_EXTENSION_URL);
            assert_eq!(
                to["extension"][0]["valueCodeableConcept"]["text"],
                inputs["to_department"]
            );
        } else {
            let enc = of("Encounter")[0];
            assert_eq!(enc["status"], "finished");
            assert_eq!(enc["class"]["code"], "IMP");
            // Each 退院時診断 sentence is a Condition, as signed.
            let dx: Vec<String> = doc
                .document
                .sections
                .get("discharge_diagnosis")
                .iter()
                .map(|s| s.text.clone())
                .collect();
            let conditions: Vec<&str> = of("Condition")
                .iter()
                .map(|c| c["code"]["text"].as_str().unwrap())
                .collect();
            assert_eq!(conditions, dx);
            // The hospital course travels whole in its DocumentReference.
            let course = of("DocumentReference")[0]["content"][0]["attachment"]["data"]
                .as_str()
                .unwrap()
                .to_string();
            use base64::Engine as _;
            let course = String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(course)
                    .unwrap(),
            )
            .unwrap();
            let signed: Vec<String> = doc
                .document
                .sections
                .get("hospital_course")
                .iter()
                .map(|s| s.text.clone())
                .collect();
            assert_eq!(course, signed.join("\n"));
        }
    }

    // An amendment of the discharge summary (typed as text): still `final` as the profile fixes, a later edition,
    // replacing the first, and the stay's period carried over from the inputs typed for the original.
    let original = w
        .store
        .queue_items(&w.doctor)
        .unwrap()
        .into_iter()
        .find(|i| {
            let d = w.store.outbox_document(&w.doctor, &i.encounter).unwrap();
            d.document.kind == "discharge-summary"
        })
        .unwrap();
    let signed = w
        .store
        .outbox_document(&w.doctor, &original.encounter)
        .unwrap();
    let amended_text = signed
        .text
        .replacen("フロセミド", "フロセミド（ラシックス）", 1);
    assert_ne!(amended_text, signed.text);
    w.store
        .amend(
            &w.doctor,
            &original.encounter,
            &amended_text,
            "商品名の追記",
        )
        .unwrap();
    let doc = w
        .store
        .outbox_document(&w.doctor, &original.encounter)
        .unwrap();
    assert_eq!(doc.document.inputs, signed.document.inputs);
    let b: Value = serde_json::from_slice(&fhir::to_json(&policy().bundle(&doc))).unwrap();
    let c = &b["entry"][0]["resource"];
    assert_eq!(c["status"], "final");
    assert_ne!(c["extension"][0]["valueString"], "1");
    assert_eq!(c["relatesTo"][0]["code"], "replaces");
    assert_eq!(
        c["relatesTo"][0]["targetIdentifier"]["value"],
        original.bundle_id
    );
    assert_eq!(
        c["event"][0]["period"],
        serde_json::json!({"start": "2026-10-20", "end": "2026-10-30"})
    );
    let f = dir.path().join("discharge-summary-amended.json");
    std::fs::write(&f, fhir::to_json(&policy().bundle(&doc))).unwrap();
    files.push(f);

    let (ok, report) = validate(&files);
    assert!(ok, "R4 validation failed:\n{report}");

    // Without a facility code the identifiers cannot take the JP-CLINS form: the UUIDs the progress note uses,
    // still a valid R4 document.
    let doc = w
        .store
        .outbox_document(
            &w.doctor,
            &w.store
                .queue_items(&w.doctor)
                .unwrap()
                .last()
                .unwrap()
                .encounter,
        )
        .unwrap();
    let b = fhir::bundle(
        &doc,
        &fhir::PatientRef::Pseudonym("x".into()),
        &Facility::default(),
    );
    assert_eq!(b.identifier.value, doc.item.bundle_id);

    // And to the platform, on loopback: the JP-CLINS identifier is what its conditional create names.
    let (pki, receiver) = platform(dir.path());
    write_settings(
        dir.path(),
        &pki,
        &receiver,
        &format!("facility_code = \"{FACILITY_CODE}\"\nfacility_name = \"カルテ記念病院\"\n"),
    );
    let up = uploader_for(&w.store);
    let report = rt().block_on(up.flush()).unwrap();
    assert_eq!((report.refused, report.retry), (0, None), "{report:?}");
    let stored = receiver.stored();
    let clins: Vec<&Value> = stored
        .iter()
        .map(|s| &s.bundle)
        .filter(|b| b["identifier"]["system"] == fhir::CLINS_BUNDLE_ID_SYSTEM)
        .collect();
    assert_eq!(
        clins.len(),
        3,
        "both documents and the amendment arrived as JP-CLINS Bundles"
    );
    for p in PROFILES {
        assert!(clins
            .iter()
            .any(|b| b["meta"]["profile"][0] == p.bundle_profile));
    }
}
