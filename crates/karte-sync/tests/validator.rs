//! The Bundles karte-sync sends, built by the real code from real signed records, pass a real FHIR R4 validator:
//! the `fhir.resources` package (6.2.0 = R4 4.0.1) from PyPI, in the venv `cargo xtask setup` creates. No skip:
//! without Python or the package the test fails and says how to install it.

mod common;

use common::*;
use karte_sync::worker::PatientPolicy;

fn policy(identifying: bool) -> PatientPolicy {
    PatientPolicy {
        identifying,
        facility_code: identifying.then(|| "1312345678".to_string()),
        facility_name: None,
        pseudonym_key: zeroize::Zeroizing::new(b"test-pseudonym-key-32-bytes-long".to_vec()),
    }
}

#[test]
fn bundles_pass_the_fhir_r4_validator() {
    if !keyring_session("bundles_pass_the_fhir_r4_validator") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let w = Ward::new(dir.path());
    // Every synthetic dictation, signed with its first suggestion accepted; the first one also amended.
    let ids: Vec<String> = DICTATIONS
        .iter()
        .enumerate()
        .map(|(i, d)| w.sign(&format!("P-{i:04}"), d))
        .collect();
    w.store
        .amend(
            &w.doctor,
            &ids[0],
            "S）発熱と咳嗽。\nO）BT 38.4℃。\nA）市中肺炎。\nP）抗菌薬。",
            "体温の誤記",
        )
        .unwrap();
    let mut files = Vec::new();
    let mut with_requests = 0;
    for id in &ids {
        let doc = w.store.outbox_document(&w.doctor, id).unwrap();
        for identifying in [false, true] {
            let b = policy(identifying).bundle(&doc);
            with_requests += b.entry.len().saturating_sub(3);
            let p = dir.path().join(format!("{id}-{identifying}.json"));
            std::fs::write(&p, karte_sync::fhir::to_json(&b)).unwrap();
            files.push(p);
        }
    }
    assert!(
        with_requests > 0,
        "no accepted suggestion became a ServiceRequest"
    );
    // The amendment (the first encounter's latest version) carries its reason, and still validates.
    let amended = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        amended.contains(karte_sync::fhir::AMENDMENT_REASON_URL) && amended.contains("体温の誤記"),
        "no amendment reason in {amended}"
    );
    let (ok, report) = validate(&files);
    assert!(ok, "R4 validation failed:\n{report}");
    assert_eq!(
        report.lines().filter(|l| l.starts_with("OK ")).count(),
        files.len(),
        "{report}"
    );

    // The validator is not a rubber stamp: each of these breakages inside the same Bundle is refused. (It checks
    // structure, cardinality and datatypes; it does not check terminology bindings such as status codes.)
    let base: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    type Mutation = fn(&mut serde_json::Value);
    let breakages: &[(&str, Mutation)] = &[
        ("Composition.title missing (1..1)", |b| {
            b["entry"][0]["resource"]
                .as_object_mut()
                .unwrap()
                .remove("title");
        }),
        ("Composition.date not a dateTime", |b| {
            b["entry"][0]["resource"]["date"] = "昨日".into();
        }),
        ("Bundle.type missing (1..1)", |b| {
            b.as_object_mut().unwrap().remove("type");
        }),
        ("unknown element in Patient", |b| {
            b["entry"][1]["resource"]["shoeSize"] = 27.into();
        }),
        ("section narrative without div", |b| {
            b["entry"][0]["resource"]["section"][0]["text"]
                .as_object_mut()
                .unwrap()
                .remove("div");
        }),
    ];
    let mut bad_files = Vec::new();
    for (i, (_, mutate)) in breakages.iter().enumerate() {
        let mut b = base.clone();
        mutate(&mut b);
        let p = dir.path().join(format!("broken-{i}.json"));
        std::fs::write(&p, b.to_string()).unwrap();
        bad_files.push(p);
    }
    let (ok, report) = validate(&bad_files);
    assert!(!ok);
    for ((what, _), p) in breakages.iter().zip(&bad_files) {
        assert!(
            report.contains(&format!("INVALID {}", p.display())),
            "not refused: {what}\n{report}"
        );
    }
}

#[test]
fn identifying_data_only_when_the_policy_allows_it() {
    if !keyring_session("identifying_data_only_when_the_policy_allows_it") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let w = Ward::new(dir.path());
    // (patient id, dictation, a name in the dictation)
    let table = [
        ("P-0001", DICTATIONS[0], "山田太郎"),
        ("P-0002", DICTATIONS[1], "佐藤花子"),
        ("P-0003", DICTATIONS[2], "鈴木一郎"),
    ];
    for (patient, dictation, name) in table {
        let id = w.sign(patient, dictation);
        let doc = w.store.outbox_document(&w.doctor, &id).unwrap();
        let pseud =
            String::from_utf8(karte_sync::fhir::to_json(&policy(false).bundle(&doc))).unwrap();
        assert!(!pseud.contains(patient), "{patient} leaked");
        assert!(!pseud.contains(name), "{name} leaked");
        assert!(pseud.contains(karte_sync::fhir::PSEUDONYM_SYSTEM));
        let same =
            String::from_utf8(karte_sync::fhir::to_json(&policy(false).bundle(&doc))).unwrap();
        assert_eq!(
            pseud, same,
            "the Bundle is not deterministic: a retry would differ"
        );
        let ident =
            String::from_utf8(karte_sync::fhir::to_json(&policy(true).bundle(&doc))).unwrap();
        assert!(ident.contains(patient));
        assert!(ident.contains(name));
        assert!(ident.contains("urn:oid:1.2.392.100495.20.3.51.11312345678"));
    }
    // The default settings file never allows it.
    let pki = karte_receiver::TestPki::new();
    let r = karte_receiver::Receiver::start(&pki, karte_receiver::ServerCert::Good, TOKEN);
    write_settings(dir.path(), &pki, &r, "");
    assert!(
        !karte_sync::settings::load(&settings_path(dir.path()))
            .unwrap()
            .include_identifying_data
    );
}
