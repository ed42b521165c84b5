//! `karte document draft` as a ward uses it: the real binary, a real SQLCipher data directory, the key in the
//! kernel keyring. A patient's admission is dictated, saved with its clinical dates and signed note by note; the
//! 退院時サマリー and the 診療情報提供書 are then drafted from those signed notes only.

mod common;

use common::*;

/// (date, dictation with explicit headers, as a physician dictates a daily note)
const ADMISSION: [(&str, &str); 4] = [
    (
        "2026-11-02",
        "S）3日前からの発熱と咳嗽。既往歴は高血圧症。アムロジピン5mg 1日1回を内服中。O）BT 38.6℃、SpO2 93%。WBC 13800/μL。A）市中肺炎。P）抗菌薬治療のため入院とする。セフトリアキソン2g 1日1回を開始する。",
    ),
    (
        "2026-11-04",
        "O）BT 37.4℃、CRP 8.1 mg/dL。A）肺炎は改善傾向。P）セフトリアキソンを継続する。",
    ),
    (
        "2026-11-06",
        "O）喀痰培養で肺炎球菌を検出。A）解熱した。P）アモキシシリン500mg 1日3回内服に変更する。",
    ),
    (
        "2026-11-09",
        "O）BT 36.5℃、CRP 1.2 mg/dL。A）市中肺炎は軽快した。P）アモキシシリン500mg 1日3回をあと3日間内服する。2週間後に外来を受診する。",
    ),
];

#[test]
fn discharge_summary_and_referral_from_signed_notes() {
    if !keyring_session("discharge_summary_and_referral_from_signed_notes") {
        return;
    }
    let w = Ward::new();
    let admin = w.init_admin("admin");
    let doc = w.add_user(&admin, "admin", "dr.sato", "physician");
    let ns = w.add_user(&admin, "admin", "ns.suzuki", "nurse");

    let mut ids = Vec::new();
    for (date, text) in ADMISSION {
        let out = ok(w.run_as_with(
            doc.code(),
            "dr.sato",
            &[
                "draft",
                "-",
                "--no-llm",
                "--save",
                "--patient",
                "P-0042",
                "--date",
                date,
            ],
            Some(text),
        ));
        let id = out.split_whitespace().last().unwrap().to_string();
        ok(w.run_as(&doc, "dr.sato", &["sign", &id]));
        ids.push(id);
    }
    // An unsigned note of the same stay does not count.
    let (_, unsigned) = w.save_draft(&doc, "dr.sato", "P-0042");

    let summary = |extra: &[&str]| {
        let mut args = vec![
            "document",
            "draft",
            "--kind",
            "discharge-summary",
            "--patient",
            "P-0042",
            "--admitted",
            "2026-11-02",
            "--discharged",
            "2026-11-09",
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        w.run_as(&doc, "dr.sato", &args)
    };
    let v: serde_json::Value = serde_json::from_str(&ok(summary(&["--no-llm", "--save"]))).unwrap();
    assert_eq!(v["kind"], "discharge-summary");
    let section = |id: &str| -> Vec<String> {
        v["sections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no section {id}"))["sentences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["text"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(v["sections"][0]["title"], "入院時詳細");
    assert!(
        section("admission_diagnosis")
            .iter()
            .any(|t| t.contains("市中肺炎")),
        "{v}"
    );
    assert!(
        section("past_illness")
            .iter()
            .any(|t| t.contains("高血圧症")),
        "{v}"
    );
    assert!(
        section("discharge_medications")
            .iter()
            .any(|t| t.contains("アモキシシリン500mg")),
        "{v}"
    );
    assert!(
        section("hospital_course")
            .iter()
            .any(|t| t.starts_with("11/4 ")),
        "{v}"
    );
    // Every sentence cites a signed note of the stay (or a typed date), never the unsigned one.
    for s in v["sections"].as_array().unwrap() {
        for sent in s["sentences"].as_array().unwrap() {
            let cited = sent["sources"][0]["version"].as_str().unwrap();
            assert!(
                cited.starts_with("input:") || ids.iter().any(|id| cited == format!("{id}@1")),
                "{cited} is not a signed note of the stay"
            );
            assert!(!cited.starts_with(&unsigned), "{cited}");
            assert_eq!(sent["flags"].as_array().map_or(0, |f| f.len()), 0, "{sent}");
        }
    }
    // Saved as an unsigned record of the patient, dated the discharge day; the physician signs it like a note.
    let saved = v["encounter_id"].as_str().unwrap().to_string();
    let h: serde_json::Value = serde_json::from_str(&ok(w.run_as(
        &doc,
        "dr.sato",
        &["history", &saved, "--format", "json"],
    )))
    .unwrap();
    assert_eq!(h["versions"][0]["document"]["kind"], "discharge-summary");
    assert!(
        h["versions"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("入院時詳細\n入院日: 2026-11-02\n"),
        "{h}"
    );
    ok(w.run_as(&doc, "dr.sato", &["sign", &saved]));

    // The model phrases the same summary (the default model, in this process: the small test model never closes a
    // document's JSON within its budget, see karte-api's tests/documents_model.rs, which also checks that nothing
    // of the floor is lost). Whatever it writes, every sentence still cites the stay's signed notes or a typed field,
    // and a sentence with a number its cited sources lack is flagged.
    let v: serde_json::Value = serde_json::from_str(&ok(summary(&[]))).unwrap();
    assert_eq!(v["engine"]["kind"], "local", "{v}");
    assert_eq!(v["engine"]["model"], "qwen2.5-coder-0.5b", "{v}");
    assert!(v["timings_ms"]["generate"].is_u64(), "{v}");
    // What each signed note says: its dictation and its clinical date (a `history` per note would sign in once per
    // 30-second TOTP step).
    let signed_text = |version: &str| -> String {
        let i = ids
            .iter()
            .position(|id| version == format!("{id}@1"))
            .unwrap_or_else(|| panic!("{version} is not a signed note of the stay"));
        format!("{}\n{}", ADMISSION[i].0, ADMISSION[i].1)
    };
    let mut model_sentences = 0;
    for s in v["sections"].as_array().unwrap() {
        for sent in s["sentences"].as_array().unwrap() {
            let flags: Vec<&str> = sent["flags"]
                .as_array()
                .map(|f| f.iter().map(|f| f["code"].as_str().unwrap()).collect())
                .unwrap_or_default();
            if sent["origin"] == "model" {
                model_sentences += 1;
            }
            let Some(sources) = sent["sources"].as_array().filter(|s| !s.is_empty()) else {
                assert!(
                    flags.contains(&"no_source"),
                    "uncited and unflagged: {sent}"
                );
                continue;
            };
            let mut cited = String::new();
            for r in sources {
                let version = r["version"].as_str().unwrap();
                if let Some(input) = version.strip_prefix("input:") {
                    cited.push_str(&format!("{input} 2026-11-02 2026-11-09\n"));
                } else {
                    cited.push_str(&signed_text(version));
                }
            }
            let have: Vec<String> = karte_core::grounding::numbers(&cited);
            let stray: Vec<String> = karte_core::grounding::numbers(sent["text"].as_str().unwrap())
                .into_iter()
                .filter(|n| !have.contains(n))
                .collect();
            assert!(
                stray.is_empty()
                    || flags
                        .iter()
                        .any(|f| ["ungrounded_number", "misattributed"].contains(f)),
                "{stray:?} not in the cited notes and not flagged: {sent}"
            );
        }
    }
    assert!(model_sentences > 0, "the model wrote nothing: {v}");

    // A referral from the same notes, with what the physician types.
    let out = ok(w.run_as(
        &doc,
        "dr.sato",
        &[
            "document",
            "draft",
            "--kind",
            "referral",
            "--patient",
            "P-0042",
            "--purpose",
            "肺炎後の外来フォローをお願いします。",
            "--to-facility",
            "さくら内科クリニック",
            "--no-llm",
        ],
    ));
    assert!(
        out.contains("紹介目的\n肺炎後の外来フォローをお願いします。"),
        "{out}"
    );
    assert!(out.contains("さくら内科クリニック"), "{out}");

    // What is refused, with its code and exit status. A typing error is refused before anyone signs in (the code
    // given is never asked for); an unknown patient after.
    // (args, code, needs a sign-in)
    let refusals: [(&[&str], &str, bool); 5] = [
        (
            &[
                "--kind",
                "discharge-summary",
                "--patient",
                "P-0042",
                "--admitted",
                "2026-11-09",
                "--discharged",
                "2026-11-02",
            ],
            "input.date_invalid",
            false,
        ),
        (
            &[
                "--kind",
                "discharge-summary",
                "--patient",
                "P-0042",
                "--admitted",
                "2026-11-02",
            ],
            "input.empty",
            false,
        ),
        (
            &[
                "--kind",
                "referral",
                "--patient",
                "P-0042",
                "--to-facility",
                "A病院",
            ],
            "input.empty",
            false,
        ),
        (
            &["--kind", "progress-note", "--patient", "P-0042"],
            "input.document_invalid",
            false,
        ),
        (
            &[
                "--kind",
                "discharge-summary",
                "--patient",
                "P-9999",
                "--admitted",
                "2026-11-02",
                "--discharged",
                "2026-11-09",
            ],
            "document.no_sources",
            true,
        ),
    ];
    for (args, code, signs_in) in refusals {
        let mut a = vec!["document", "draft"];
        a.extend_from_slice(args);
        let totp = if signs_in {
            doc.code()
        } else {
            "000000".to_string()
        };
        fails(w.run_as_with(totp, "dr.sato", &a, None), code, 2);
    }
    // A nurse does not draft documents.
    fails(
        w.run_as(
            &ns,
            "ns.suzuki",
            &[
                "document",
                "draft",
                "--kind",
                "referral",
                "--patient",
                "P-0042",
                "--purpose",
                "x",
                "--to-facility",
                "y",
            ],
        ),
        "auth.forbidden",
        4,
    );
}
