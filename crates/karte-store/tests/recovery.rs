//! Damage, lock-out under parallel sign-ins, and backup/restore, against real SQLCipher files and a real kernel
//! keyring (the abuse test of 2026-12-05, F1, F2 and F6, reproduced as tests).

mod common;

use common::*;
use karte_core::Code;
use karte_store::{Store, DB_FILE, STORE_ID_FILE};
use std::path::Path;
use std::sync::{Arc, Barrier};

fn code_of<T>(r: karte_core::Result<T>) -> Code {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.code,
    }
}

/// A store with one saved, signed record, closed again.
fn store_with_records(dir: &Path) -> Ward {
    let ward = Ward::new(dir, config());
    let doc = ward.login_physician();
    let id = ward
        .store
        .save_draft(&doc, "P-0001", None, DICTATION, &draft(DICTATION))
        .unwrap();
    ward.store.sign(&doc, &id, 1).unwrap();
    ward
}

fn file_state(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

/// What is done to karte.db.
type Damage = fn(&Path);

/// Damage a file whose store-id and keyring key are still there; (name, what is done to karte.db).
const DAMAGE: &[(&str, Damage)] = &[
    ("emptied to 0 bytes", |p| std::fs::write(p, b"").unwrap()),
    ("cut to half", |p| {
        let n = std::fs::metadata(p).unwrap().len();
        truncate(p, n / 2)
    }),
    ("last 4 KiB cut off", |p| {
        let n = std::fs::metadata(p).unwrap().len();
        truncate(p, n - 4096)
    }),
    ("cut inside a page", |p| {
        let n = std::fs::metadata(p).unwrap().len();
        truncate(p, n - 100)
    }),
    ("deleted", |p| std::fs::remove_file(p).unwrap()),
];

fn truncate(p: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(p)
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn a_damaged_database_is_corrupt_never_re_created_and_left_as_it_was() {
    if !keyring_session("a_damaged_database_is_corrupt_never_re_created_and_left_as_it_was") {
        return;
    }
    for (name, damage) in DAMAGE {
        let dir = tempfile::tempdir().unwrap();
        drop(store_with_records(dir.path()));
        let db = dir.path().join(DB_FILE);
        // Checkpointed on close: the records are in karte.db itself, not only in a WAL beside it.
        assert!(
            !dir.path().join(format!("{DB_FILE}-wal")).exists() || {
                std::fs::metadata(dir.path().join(format!("{DB_FILE}-wal")))
                    .unwrap()
                    .len()
                    == 0
            }
        );
        damage(&db);
        let before = file_state(&db);
        for attempt in 1..=2 {
            let got = Store::open(dir.path(), config());
            assert_eq!(
                code_of(got),
                Code::StoreCorrupt,
                "{name}, attempt {attempt}"
            );
        }
        assert_eq!(file_state(&db), before, "{name}: the file was changed");
        assert!(dir.path().join(STORE_ID_FILE).exists());
    }
}

#[test]
fn the_damage_message_says_what_happened_and_points_to_restore() {
    if !keyring_session("the_damage_message_says_what_happened_and_points_to_restore") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    drop(store_with_records(dir.path()));
    truncate(&dir.path().join(DB_FILE), 0);
    let e = Store::open(dir.path(), config()).err().unwrap();
    assert!(e.message.contains("karte admin restore"), "{}", e.message);
    assert!(e.message.contains("空"), "{}", e.message);
}

#[test]
fn a_crash_during_first_creation_is_resumed_not_refused() {
    if !keyring_session("a_crash_during_first_creation_is_resumed_not_refused") {
        return;
    }
    // What a crash inside the first run leaves: the id written, the database still under its temporary name.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(STORE_ID_FILE),
        "0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    std::fs::write(dir.path().join("karte.db.creating"), b"half").unwrap();
    let store = Store::open(dir.path(), config()).unwrap();
    assert!(!store.is_initialized().unwrap());
    assert!(!dir.path().join("karte.db.creating").exists());
}

#[test]
fn sixty_parallel_wrong_passwords_check_at_most_five_and_the_right_one_gets_no_other_answer() {
    if !keyring_session(
        "sixty_parallel_wrong_passwords_check_at_most_five_and_the_right_one_gets_no_other_answer",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Ward {
        store,
        admin,
        physician,
        ..
    } = Ward::new(dir.path(), config());
    let store = Arc::new(store);
    // The attacker's code: seen over a shoulder, so already used once by its owner.
    let seen = physician.code();
    store.login("dr.sato", PASSWORD, &seen).unwrap();
    let start = Arc::new(Barrier::new(61));
    let threads: Vec<_> = (0..61)
        .map(|i| {
            let (store, start, seen) = (Arc::clone(&store), Arc::clone(&start), seen.clone());
            std::thread::spawn(move || {
                // One attempt in the burst has the right password.
                let password = if i == 40 {
                    PASSWORD.to_string()
                } else {
                    format!("guess-{i}")
                };
                start.wait();
                code_of(store.login("dr.sato", &password, &seen))
            })
        })
        .collect();
    let answers: Vec<Code> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for (i, code) in answers.iter().enumerate() {
        assert!(
            matches!(
                code,
                Code::AuthFailed | Code::AuthLockedOut | Code::AuthTotpReused
            ),
            "attempt {i}: {code:?}"
        );
    }
    let admin = store.login("admin", PASSWORD, &admin.code()).unwrap();
    let log = store.audit_entries(&admin).unwrap();
    let checked = log
        .iter()
        .filter(|e| {
            e.action == "login"
                && e.user.as_deref() == Some("dr.sato")
                && e.detail.starts_with("reason=password")
        })
        .count();
    let right_checked = answers[40] == Code::AuthTotpReused;
    assert!(
        checked + usize::from(right_checked) <= 5,
        "{checked} wrong passwords were checked"
    );
    // The right password with a replayed code is an answer only a checked attempt can get: it cannot come after
    // the lock, and nothing else in the burst gets it.
    assert_eq!(
        answers
            .iter()
            .filter(|c| **c == Code::AuthTotpReused)
            .count(),
        usize::from(right_checked)
    );
    // Locked now, even for the owner with a fresh code; the count was not reset by locking.
    assert_eq!(
        code_of(store.login("dr.sato", PASSWORD, &physician.code())),
        Code::AuthLockedOut
    );
    assert!(store
        .list_users(&admin)
        .unwrap()
        .iter()
        .any(|u| u.name == "dr.sato" && u.locked));
    store.unlock_user(&admin, "dr.sato").unwrap();
    store.login("dr.sato", PASSWORD, &physician.code()).unwrap();
}

#[test]
fn backup_while_another_process_writes_then_restore_after_damage_verifies() {
    if !keyring_session("backup_while_another_process_writes_then_restore_after_damage_verifies") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ward = store_with_records(dir.path());
    let admin = ward.login_admin();
    let ito = phone(
        &ward
            .store
            .add_user(&admin, "dr.ito", karte_store::Role::Physician, PASSWORD)
            .unwrap(),
    );
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("karte-backup.db");

    // The app: its own connection to the same file (as the desktop process has), saving drafts while the backup
    // runs.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let app = {
        let (dir, stop) = (dir.path().to_path_buf(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let app = Store::open(&dir, config()).unwrap();
            let doc = app.login("dr.ito", PASSWORD, &ito.code()).unwrap();
            let mut saved = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || saved < 3 {
                app.save_draft(&doc, "P-0002", None, DICTATION, &draft(DICTATION))
                    .unwrap();
                saved += 1;
            }
            saved
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let report = ward.store.backup(&admin, &file).unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(app.join().unwrap() >= 3);
    assert!(report.contents.versions >= 2, "{report:?}");
    assert!(report.contents.last_audit_seq > 0);
    assert_eq!(report.bytes, std::fs::metadata(&file).unwrap().len());
    assert_eq!(
        code_of(ward.store.backup(&admin, &file)),
        Code::OutputUnwritable,
        "an existing file is never overwritten"
    );
    // Encrypted like the store: no SQLite header, no clinical text.
    let raw = std::fs::read(&file).unwrap();
    assert!(!raw.windows(15).any(|w| w == b"SQLite format 3"));
    assert!(!raw.windows(6).any(|w| w == "発熱".as_bytes()));

    // Work after the backup, then the database file is emptied.
    let doc = ward.login_physician();
    let lost = ward
        .store
        .save_draft(&doc, "P-0003", None, DICTATION, &draft(DICTATION))
        .unwrap();
    let Ward {
        store,
        admin: admin_phone,
        physician,
        ..
    } = ward;
    drop(store);
    truncate(&dir.path().join(DB_FILE), 0);

    // Only an administrator of the backup may restore it.
    assert_eq!(
        code_of(Store::restore(
            dir.path(),
            config(),
            &file,
            "dr.sato",
            PASSWORD,
            &physician.code(),
        )),
        Code::AuthForbidden
    );
    assert_eq!(
        std::fs::metadata(dir.path().join(DB_FILE)).unwrap().len(),
        0
    );
    let restored = Store::restore(
        dir.path(),
        config(),
        &file,
        "admin",
        PASSWORD,
        &admin_phone.code(),
    )
    .unwrap();
    assert_eq!(restored.contents, report.contents);
    assert!(
        restored.lost_audit_entries.unwrap() > 0,
        "the work after the backup is reported lost: {restored:?}"
    );
    let kept = restored.replaced.expect("the damaged file is kept");
    assert_eq!(std::fs::metadata(&kept).unwrap().len(), 0);

    let store = Store::open(dir.path(), config()).unwrap();
    let admin = store.login("admin", PASSWORD, &admin_phone.code()).unwrap();
    let verify = store.verify_audit(&admin).unwrap();
    assert!(verify.intact(), "{verify:?}");
    let log = store.audit_entries(&admin).unwrap();
    assert!(log
        .iter()
        .any(|e| e.action == "backup" && e.detail.starts_with("restore backup_last_seq=")));
    let doc = store.login("dr.sato", PASSWORD, &physician.code()).unwrap();
    let have: Vec<String> = store
        .encounters(&doc)
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert!(have.len() >= 2);
    assert!(!have.contains(&lost), "a record saved after the backup");
    // The restored store goes on: new work is recorded and still verifies.
    store
        .save_draft(&doc, "P-0004", None, DICTATION, &draft(DICTATION))
        .unwrap();
    assert!(store.verify_audit(&admin).unwrap().intact());
}

#[test]
fn a_backup_of_another_store_is_refused_and_nothing_changes() {
    if !keyring_session("a_backup_of_another_store_is_refused_and_nothing_changes") {
        return;
    }
    let (here, there) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ward = store_with_records(here.path());
    let other = store_with_records(there.path());
    let file = there.path().join("other-backup.db");
    other.store.backup(&other.login_admin(), &file).unwrap();
    let Ward {
        store,
        admin: admin_phone,
        ..
    } = ward;
    drop(store);
    let before = file_state(&here.path().join(DB_FILE));
    let got = Store::restore(
        here.path(),
        config(),
        &file,
        "admin",
        PASSWORD,
        &admin_phone.code(),
    );
    assert_eq!(code_of(got), Code::StoreBackupInvalid);
    assert_eq!(file_state(&here.path().join(DB_FILE)), before);
    let store = Store::open(here.path(), config()).unwrap();
    assert!(store.is_initialized().unwrap());
}
