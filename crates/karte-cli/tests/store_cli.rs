//! The record commands as a ward uses them: the real `karte` binary, a real SQLCipher data directory, the key in
//! the kernel keyring (each test re-runs itself under `keyctl session`, and the `karte` processes it starts inherit
//! that session), TOTP codes computed from the enrolment the binary printed.

mod common;

use common::*;

#[test]
fn draft_review_sign_amend_history() {
    if !keyring_session("draft_review_sign_amend_history") {
        return;
    }
    let w = Ward::new();
    let admin = w.init_admin("admin");
    let doc = w.add_user(&admin, "admin", "dr.sato", "physician");
    let ns = w.add_user(&admin, "admin", "ns.suzuki", "nurse");
    let ns2 = w.add_user(&admin, "admin", "ns.tanaka", "nurse");

    // The physician drafts without a model and saves: the id is the last word of the last line.
    let (out, id) = w.save_draft(&doc, "dr.sato", "P-0001");
    assert!(
        out.contains("S（主観的情報）") && out.contains("検査提案"),
        "{out}"
    );
    assert!(id.starts_with('E') && id.len() == 13, "{id}");

    // A nurse sees the suggestions with their numbers, accepts one and rejects one with a reason.
    let h = ok(w.run_as(&ns, "ns.suzuki", &["history", &id]));
    assert!(
        h.contains("[1] ")
            && h.contains("[2] ")
            && h.contains("未レビュー")
            && h.contains("P-0001"),
        "{h}"
    );
    ok(w.run_as(
        &ns,
        "ns.suzuki",
        &["review", &id, "--suggestion", "1", "--accept"],
    ));
    ok(w.run_as(
        &ns,
        "ns.suzuki",
        &[
            "review",
            &id,
            "--suggestion",
            "2",
            "--reject",
            "--comment",
            "前日に施行済み",
        ],
    ));

    // Nurses do not sign.
    fails(
        w.run_as(&ns2, "ns.tanaka", &["sign", &id]),
        "auth.forbidden",
        4,
    );
    // The physician signs, then amends with a reason (text from stdin).
    assert!(ok(w.run_as(&doc, "dr.sato", &["sign", &id])).contains("版 1"));
    let amended = ok(w.run_as_with(
        doc.code(),
        "dr.sato",
        &["amend", &id, "--reason", "体温の誤記"],
        Some(AMENDED),
    ));
    assert!(amended.contains("版 2"), "{amended}");
    // Feedback for fine-tuning: the signed record, with personal data replaced by karte-guard's placeholders.
    let fb = ok(w.run_as(&doc, "dr.sato", &["feedback", "export"]));
    assert!(
        fb.contains(&id) || fb.contains("発熱"),
        "the signed record is exported: {fb}"
    );
    assert!(fb.contains("【氏名1】") && fb.contains("【電話1】"), "{fb}");
    assert!(
        !fb.contains("山田") && !fb.contains("1234-5678"),
        "personal data left in feedback: {fb}"
    );

    let h: serde_json::Value = serde_json::from_str(&ok(w.run_as(
        &ns2,
        "ns.tanaka",
        &["history", &id, "--format", "json"],
    )))
    .unwrap();
    let versions = h["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["kind"], "draft");
    assert_eq!(versions[0]["signature"]["signer"], "dr.sato");
    assert_eq!(versions[1]["kind"], "amendment");
    assert_eq!(versions[1]["reason"], "体温の誤記");
    // Stored as its sections, shown as their rendering under the document kind's headings.
    assert_eq!(versions[1]["document"]["kind"], "progress-note");
    assert_eq!(
        versions[1]["document"]["sections"]["objective"][0]["text"],
        "BT 38.4℃。"
    );
    assert_eq!(
        versions[1]["text"],
        "S（主観的情報）\n発熱と咳嗽。\nO（客観的情報）\nBT 38.4℃。\nA（評価）\n（なし）\nP（計画）\n妻の山田 花子さん（090-1234-5678）に説明。\n"
    );
    assert_eq!(h["suggestions"][0]["review"]["decision"], "accept");
    assert_eq!(h["suggestions"][1]["review"]["comment"], "前日に施行済み");
    assert_eq!(h["signed"], true);

    // Nothing readable in the data directory.
    for f in files_under(w.path()) {
        let bytes = std::fs::read(&f).unwrap();
        for marker in ["P-0001", "前日に施行済み", "体温の誤記", "湿性ラ音"] {
            let m = marker.as_bytes();
            assert!(
                !bytes.windows(m.len()).any(|x| x == m),
                "{marker} in {}",
                f.display()
            );
        }
    }
}

/// `draft --save --date`: the note keeps the day it describes; history shows it; without `--date` it is today on
/// the workstation's clock (here Japan's); a day that is not a calendar day, or has not come, is refused before
/// anything is drafted or saved.
#[test]
fn draft_save_keeps_the_clinical_date() {
    if !keyring_session_with_env(
        "draft_save_keeps_the_clinical_date",
        &[("TZ", "Asia/Tokyo")],
    ) {
        return;
    }
    let w = Ward::new();
    let admin = w.init_admin("admin");
    let doc = w.add_user(&admin, "admin", "dr.sato", "physician");
    let save_on = |date: &str| {
        w.run_as_with(
            doc.code(),
            "dr.sato",
            &[
                "draft",
                "-",
                "--no-llm",
                "--save",
                "--patient",
                "P-0001",
                "--date",
                date,
            ],
            Some(DICTATION),
        )
    };
    let id_of = |out: String| out.split_whitespace().last().unwrap().to_string();
    let dated = id_of(ok(save_on("2026-11-30")));
    let (_, undated) = w.save_draft(&doc, "dr.sato", "P-0001");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let today = karte_core::ClinicalDate::from_unix_ms(now_ms, 9 * 3600).to_string();
    for (id, day) in [(&dated, "2026-11-30"), (&undated, today.as_str())] {
        let text = ok(w.run_as(&doc, "dr.sato", &["history", id]));
        assert!(text.contains(&format!("診療日: {day}")), "{text}");
        let json: serde_json::Value = serde_json::from_str(&ok(w.run_as(
            &doc,
            "dr.sato",
            &["history", id, "--format", "json"],
        )))
        .unwrap();
        assert_eq!(json["clinical_date"], day);
    }
    let tomorrow =
        karte_core::ClinicalDate::from_unix_ms(now_ms + 86_400_000, 9 * 3600).to_string();
    for bad in ["2026-02-30", "2026/11/30", "30-11-2026", tomorrow.as_str()] {
        let err = fails(save_on(bad), "input.date_invalid", 2);
        assert!(err.contains("診療日"), "{err}");
    }
    // Nothing was saved for the refused dates: the audit log has the two saves only.
    let log = ok(w.run_as(&admin, "admin", &["audit", "export"]));
    let saves = log
        .lines()
        .filter(|l| l.contains("\"action\":\"draft\"") && l.contains("sha256="))
        .count();
    assert_eq!(saves, 2, "{log}");
    assert!(log.contains("date=2026-11-30"), "{log}");
}

#[test]
fn admin_reads_no_clinical_text_and_the_audit_log_verifies() {
    if !keyring_session("admin_reads_no_clinical_text_and_the_audit_log_verifies") {
        return;
    }
    let w = Ward::new();
    let admin = w.init_admin("admin");
    let doc = w.add_user(&admin, "admin", "dr.sato", "physician");
    let auditor = w.add_user(&admin, "admin", "it.kato", "admin");
    fails(
        w.karte()
            .args(["admin", "init", "--user", "x"])
            .env("KARTE_NEW_PASSWORD", PASSWORD)
            .output()
            .unwrap(),
        "store.already_initialized",
        5,
    );

    let out = ok(w.run_as_with(
        doc.code(),
        "dr.sato",
        &[
            "draft",
            "-",
            "--no-llm",
            "--format",
            "json",
            "--save",
            "--patient",
            "P-0002",
        ],
        Some(DICTATION),
    ));
    let draft: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = draft["encounter_id"].as_str().unwrap().to_string();
    assert!(draft["sections"]["objective"].is_array());

    let e = fails(
        w.run_as(&auditor, "it.kato", &["history", &id]),
        "auth.forbidden",
        4,
    );
    assert!(!e.contains("P-0002") && !e.contains("発熱"), "{e}");
    let v = ok(w.run_as(&auditor, "it.kato", &["audit", "verify"]));
    assert!(v.contains("改ざんされていません"), "{v}");
    let nd = ok(w.run_as(
        &auditor,
        "it.kato",
        &["audit", "export", "--format", "ndjson"],
    ));
    let entries: Vec<serde_json::Value> = nd
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let has = |action: &str, user: &str, outcome: &str| {
        entries
            .iter()
            .any(|e| e["action"] == action && e["user"] == user && e["outcome"] == outcome)
    };
    assert!(has("admin_init", "admin", "ok"));
    assert!(has("login", "dr.sato", "ok"));
    assert!(has("draft", "dr.sato", "ok"));
    assert!(has("view", "it.kato", "denied"));
    assert!(has("read_audit_log", "it.kato", "ok"));
    assert!(entries.iter().all(|e| e["workstation"] == "ward3-ws07"));
    assert!(entries
        .windows(2)
        .all(|p| p[1]["prev_hash"] == p[0]["hash"]));
    for clinical in ["P-0002", "発熱", "38.6"] {
        assert!(!nd.contains(clinical), "audit log contains {clinical}");
    }
    let list = ok(w.run_as(&admin, "admin", &["admin", "user", "list"]));
    for l in ["admin\tadmin", "dr.sato\tphysician", "it.kato\tadmin"] {
        assert!(list.contains(l), "{list}");
    }
}

#[test]
fn audit_verify_exits_1_naming_the_tampered_entry_and_exports_csv() {
    if !keyring_session("audit_verify_exits_1_naming_the_tampered_entry_and_exports_csv") {
        return;
    }
    let w = Ward::new();
    let admin = w.init_admin("admin");
    let doc = w.add_user(&admin, "admin", "dr.sato", "physician");
    w.save_draft(&doc, "dr.sato", "P-3");

    // With the key from the keyring, change entry 4 (the physician's sign-in) through SQL.
    let store_id = std::fs::read_to_string(w.path().join("store-id")).unwrap();
    let cred = keyring::keyutils::KeyutilsCredential::new_with_target(
        None,
        "karte",
        &format!("db-key:{store_id}"),
    )
    .unwrap();
    let key = keyring::Entry::new_with_credential(Box::new(cred))
        .get_password()
        .unwrap();
    let c = rusqlite::Connection::open(w.path().join("karte.db")).unwrap();
    c.execute_batch(&format!("PRAGMA key = \"x'{key}'\";"))
        .unwrap();
    let action: String = c
        .query_row("SELECT action FROM audit WHERE seq = 4", [], |r| r.get(0))
        .unwrap();
    assert_eq!(action, "login");
    c.execute_batch(
        "DROP TRIGGER audit_no_update; UPDATE audit SET outcome = 'failed' WHERE seq = 4;",
    )
    .unwrap();
    drop(c);

    let e = fails(
        w.run_as(&admin, "admin", &["audit", "verify"]),
        "audit.tampered",
        1,
    );
    assert!(e.contains("#4"), "{e}");
    let csv = ok(w.run_as(&admin, "admin", &["audit", "export", "--format", "csv"]));
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("seq,ts,ts_ms,user,role,action"));
    assert!(lines.any(|l| l.starts_with("4,") && l.contains(",login,") && l.contains(",failed,")));
}

#[test]
fn wrong_password_wrong_code_replay_lockout_disabled_no_keyring() {
    if !keyring_session("wrong_password_wrong_code_replay_lockout_disabled_no_keyring") {
        return;
    }
    let w = Ward::new();
    // Before `admin init` nobody can sign in.
    let mut c = w.karte();
    c.args(["audit", "verify", "--user", "admin"])
        .env("KARTE_PASSWORD", PASSWORD)
        .env("KARTE_TOTP", "123456");
    fails(run(c, None), "store.not_initialized", 5);
    let admin = w.init_admin("admin");
    let code = admin.code();
    let ns = Phone::from_enrolment_output(&ok(w.run_as_with(
        code.clone(),
        "admin",
        &["admin", "user", "add", "ns.suzuki", "--role", "nurse"],
        None,
    )));
    // The same code again: refused as a replay.
    fails(
        w.run_as_with(code, "admin", &["admin", "user", "list"], None),
        "auth.totp_reused",
        4,
    );
    let doc = w.add_user(&admin, "admin", "dr.sato", "physician");

    // Wrong password; wrong code; no code at all (no terminal to ask on).
    let mut c = w.karte();
    c.args(["history", "E000000000000", "--user", "ns.suzuki"])
        .env("KARTE_PASSWORD", "wrong-password-1")
        .env("KARTE_TOTP", ns.code());
    fails(run(c, None), "auth.failed", 4);
    fails(
        w.run_as_with(ns.stale(), "ns.suzuki", &["history", "E000000000000"], None),
        "auth.failed",
        4,
    );
    let mut c = w.karte();
    c.args(["history", "E000000000000", "--user", "ns.suzuki"])
        .env("KARTE_PASSWORD", PASSWORD);
    fails(run(c, None), "auth.totp_required", 4);

    // Three more failures make five: locked, even with the right password and a fresh code.
    for _ in 0..2 {
        fails(
            w.run_as_with(ns.stale(), "ns.suzuki", &["history", "E000000000000"], None),
            "auth.failed",
            4,
        );
    }
    let e = fails(
        w.run_as_with(ns.stale(), "ns.suzuki", &["history", "E000000000000"], None),
        "auth.locked_out",
        4,
    );
    assert!(e.contains("ロック"), "{e}");
    fails(
        w.run_as(&ns, "ns.suzuki", &["history", "E000000000000"]),
        "auth.locked_out",
        4,
    );
    ok(w.run_as(&admin, "admin", &["admin", "user", "unlock", "ns.suzuki"]));
    fails(
        w.run_as(&ns, "ns.suzuki", &["history", "E000000000000"]),
        "record.not_found",
        2,
    );

    // A disabled account cannot sign in.
    ok(w.run_as(&admin, "admin", &["admin", "user", "disable", "dr.sato"]));
    fails(
        w.run_as(&doc, "dr.sato", &["sign", "E000000000000"]),
        "auth.disabled",
        4,
    );

    // No keyring reachable (no Secret Service on this bus): refused, naming what to install.
    let mut c = w.karte();
    c.args(["audit", "verify", "--user", "admin"])
        .env_remove("KARTE_KEYRING")
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/karte-bus",
        )
        .env("KARTE_DATA_DIR", w.path().join("elsewhere"));
    let e = fails(run(c, None), "keyring.unavailable", 5);
    assert!(e.contains("gnome-keyring"), "{e}");
}

/// The abuse test's F1 as IT met it: an emptied `karte.db` beside its `store-id` and keyring key must be refused as
/// damage, never re-created (then `admin init` "worked" and every record was gone); `admin restore` brings the
/// backup back and the audit log verifies.
#[test]
fn an_emptied_database_is_refused_and_restored_from_backup() {
    if !keyring_session("an_emptied_database_is_refused_and_restored_from_backup") {
        return;
    }
    let w = Ward::new();
    let admin = w.init_admin("admin");
    let doc = w.add_user(&admin, "admin", "dr.sato", "physician");
    let (_, kept) = w.save_draft(&doc, "dr.sato", "P-0001");
    let backup = w.path().join("backup").join("karte-2026-12-05.db");
    std::fs::create_dir_all(backup.parent().unwrap()).unwrap();
    let said = ok(w.run_as(
        &admin,
        "admin",
        &["admin", "backup", "--to", backup.to_str().unwrap()],
    ));
    assert!(said.contains("検査しました"), "{said}");
    let (_, lost) = w.save_draft(&doc, "dr.sato", "P-0002");

    let db = w.path().join("karte.db");
    // A damaged page first: one code and one message on stderr, none of SQLCipher's own diagnostic lines.
    let whole = std::fs::read(&db).unwrap();
    let mut damaged = whole.clone();
    for page in damaged.chunks_mut(4096).skip(1) {
        page[100..164].copy_from_slice(&[0x5a; 64]);
    }
    std::fs::write(&db, &damaged).unwrap();
    let err = fails(
        w.run_as(&admin, "admin", &["audit", "verify"]),
        "store.corrupt",
        5,
    );
    assert!(
        !err.contains("ERROR CORE") && !err.to_lowercase().contains("sqlcipher"),
        "{err}"
    );
    std::fs::write(&db, &whole).unwrap();
    std::fs::write(&db, b"").unwrap();
    let err = fails(
        w.run_as(&admin, "admin", &["admin", "user", "list"]),
        "store.corrupt",
        5,
    );
    assert!(err.contains("karte admin restore"), "{err}");
    let mut init = w.karte();
    init.args(["admin", "init", "--user", "boss"])
        .env("KARTE_NEW_PASSWORD", PASSWORD);
    fails(run(init, None), "store.corrupt", 5);
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "left as it was");

    // A nurse-level mistake: a file that is not this store's backup.
    let foreign = w.path().join("not-a-backup.db");
    std::fs::write(&foreign, vec![7u8; 8192]).unwrap();
    fails(
        w.run_as(
            &admin,
            "admin",
            &["admin", "restore", foreign.to_str().unwrap()],
        ),
        "store.backup_invalid",
        5,
    );
    let said = ok(w.run_as(
        &admin,
        "admin",
        &["admin", "restore", backup.to_str().unwrap()],
    ));
    assert!(said.contains("復元しました"), "{said}");
    assert!(said.contains("置き換えた元のファイル"), "{said}");
    ok(w.run_as(&admin, "admin", &["audit", "verify"]));
    ok(w.run_as(&doc, "dr.sato", &["history", &kept]));
    fails(
        w.run_as(&doc, "dr.sato", &["history", &lost]),
        "record.not_found",
        2,
    );
}
