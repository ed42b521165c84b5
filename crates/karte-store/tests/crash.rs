//! A saving process killed with SIGKILL at random moments, over and over: the database must open every time, hold
//! every save the process reported as done, contain no half-written version, and keep an intact audit chain.
//!
//! The child is this test binary itself, run with `--ignored --exact crash_child_save_loop` and told what to do
//! through the environment; it inherits the parent's keyring session, so it finds the same key.

mod common;

use common::*;
use karte_store::{Decision, Role, Store};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const TRIALS: usize = 100;

#[test]
fn sigkill_while_saving_loses_no_completed_save() {
    if !keyring_session("sigkill_while_saving_loses_no_completed_save") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::new(dir.path(), config());
    let admin = ward.login_admin();
    // One physician per trial: each child signs in once, and a TOTP code is good only once.
    let mut secrets = Vec::new();
    for i in 0..TRIALS {
        let e = ward
            .store
            .add_user(&admin, &format!("dr{i:03}"), Role::Physician, PASSWORD)
            .unwrap();
        secrets.push(e.totp_secret_base32);
    }
    let store_id = ward.store.store_id().to_string();
    let admin_phone = ward.admin;
    drop(ward.store);

    // (encounter, version, signed) reported complete by some child.
    let mut completed: BTreeSet<(String, i64, bool)> = BTreeSet::new();
    let mut killed_mid_run = 0;
    for (trial, secret) in secrets.iter().enumerate() {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash_child_save_loop",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("KARTE_CRASH_DIR", dir.path())
            .env("KARTE_CRASH_USER", format!("dr{trial:03}"))
            .env("KARTE_CRASH_TOTP", secret)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // The test harness prints its own lines too; the child's are the ones tagged CHILD.
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("trial {trial}: child never got ready"));
            if line.ends_with("CHILD ready") {
                break;
            }
        }
        std::thread::sleep(Duration::from_micros(random_u64() % 120_000));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        reader.join().unwrap();
        if status.code().is_none() {
            killed_mid_run += 1;
        }
        for line in rx.try_iter() {
            let Some((_, report)) = line.split_once("CHILD ") else {
                continue;
            };
            let f: Vec<&str> = report.split(' ').collect();
            match f.as_slice() {
                ["done", id, v, signed] => {
                    completed.insert((id.to_string(), v.parse().unwrap(), *signed == "signed"));
                }
                _ => panic!("trial {trial}: unexpected child output {line:?}"),
            }
        }

        // The database opens after every kill, and is sound page by page and version by version.
        let store = Store::open(dir.path(), config())
            .unwrap_or_else(|e| panic!("trial {trial}: store does not open: {e}"));
        let report = store.check_integrity().unwrap();
        assert!(
            report.altered_versions.is_empty(),
            "trial {trial}: {report:?}"
        );
        drop(store);
        let raw = raw_conn(dir.path(), &store_id);
        for (id, v, signed) in &completed {
            let (versions, signatures): (i64, i64) = raw
                .query_row(
                    "SELECT (SELECT count(*) FROM versions WHERE encounter_id = ?1 AND version = ?2),
                            (SELECT count(*) FROM signatures WHERE encounter_id = ?1 AND version = ?2)",
                    rusqlite::params![id, v],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!(
                versions, 1,
                "trial {trial}: completed save {id} v{v} is missing"
            );
            if *signed {
                assert_eq!(
                    signatures, 1,
                    "trial {trial}: completed signature {id} v{v} is missing"
                );
            }
        }
        // No record without its first version: an encounter row commits only together with it.
        let orphans: i64 = raw
            .query_row(
                "SELECT count(*) FROM encounters e WHERE NOT EXISTS
                   (SELECT 1 FROM versions v WHERE v.encounter_id = e.id AND v.version = 1)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(orphans, 0, "trial {trial}");
        // Signing and queueing for upload are one transaction: no signature without its outbox row, no row
        // without its signature, whatever the kill interrupted.
        let unqueued: (i64, i64) = raw
            .query_row(
                "SELECT (SELECT count(*) FROM signatures s WHERE NOT EXISTS
                           (SELECT 1 FROM outbox o WHERE o.encounter_id = s.encounter_id AND o.version = s.version)),
                        (SELECT count(*) FROM outbox o WHERE NOT EXISTS
                           (SELECT 1 FROM signatures s WHERE s.encounter_id = o.encounter_id AND s.version = o.version))",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(unqueued, (0, 0), "trial {trial}: signatures vs outbox rows");
    }
    eprintln!(
        "{TRIALS} trials, {killed_mid_run} killed mid-run, {} completed writes checked",
        completed.len()
    );
    assert!(
        killed_mid_run >= TRIALS * 9 / 10,
        "only {killed_mid_run} children were killed while running"
    );
    assert!(
        completed.len() >= TRIALS,
        "too few saves completed to mean anything: {}",
        completed.len()
    );

    // The audit chain survived every kill: no entry lost, the keyring head never ahead of the database.
    let store = Store::open(dir.path(), config()).unwrap();
    let admin = store.login("admin", PASSWORD, &admin_phone.code()).unwrap();
    let report = store.verify_audit(&admin).unwrap();
    assert!(report.intact(), "{report:?}");
}

/// The child side of the crash test; does nothing unless run by it.
#[test]
#[ignore = "run by sigkill_while_saving_loses_no_completed_save as its child process"]
fn crash_child_save_loop() {
    let Some(dir) = std::env::var_os("KARTE_CRASH_DIR") else {
        return;
    };
    let user = std::env::var("KARTE_CRASH_USER").unwrap();
    let auth = Phone::from_base32(&std::env::var("KARTE_CRASH_TOTP").unwrap());
    let store = Store::open(std::path::Path::new(&dir), config()).unwrap();
    let s = store.login(&user, PASSWORD, &auth.code()).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "CHILD ready").unwrap();
    out.flush().unwrap();
    let d = draft(DICTATION);
    for i in 0u64.. {
        // Sizes vary so that kills land in different parts of a page write.
        let dictation = format!("{DICTATION}{}", "追記。".repeat((i % 40) as usize * 25));
        let id = store
            .save_draft(&s, &format!("P-{user}-{i}"), None, &dictation, &d)
            .unwrap();
        writeln!(out, "CHILD done {id} 1 unsigned").unwrap();
        out.flush().unwrap();
        let mut latest = 1;
        if i % 3 == 0 {
            let v = store
                .edit(&s, &id, &format!("S）{dictation} 編集"))
                .unwrap();
            latest = v;
            writeln!(out, "CHILD done {id} {v} unsigned").unwrap();
            out.flush().unwrap();
        }
        if i % 2 == 0 {
            let v = store.sign(&s, &id, latest).unwrap();
            writeln!(out, "CHILD done {id} {v} signed").unwrap();
            out.flush().unwrap();
            if i % 4 == 0 {
                let v = store.amend(&s, &id, "P）修正本文", "誤記").unwrap();
                writeln!(out, "CHILD done {id} {v} signed").unwrap();
                out.flush().unwrap();
            }
        }
        store.review(&s, &id, 1, Decision::Accept, "").unwrap();
    }
}
