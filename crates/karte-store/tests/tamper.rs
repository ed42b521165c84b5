//! Someone with the database key edits, deletes, inserts or reorders one audit row through SQL: `verify` must
//! name exactly that entry. Each case gets its own store and keyring session.

mod common;

use common::*;
use karte_store::audit::entry_hash;
use karte_store::{AuditReport, BadEntry, Decision, Problem};
use rusqlite::Connection;

/// Builds a store with a realistic log (sign-ins, a draft, a read, a review, a signature), lets `tamper` loose on
/// the audit table with the key, then verifies as the administrator.
fn tampered(tamper: impl FnOnce(&Connection, i64)) -> (AuditReport, i64) {
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::new(dir.path(), config());
    let (doc, ns, admin) = (
        ward.login_physician(),
        ward.login_nurse(),
        ward.login_admin(),
    );
    let s = &ward.store;
    let id = s
        .save_draft(&doc, "P-1", None, DICTATION, &draft(DICTATION))
        .unwrap();
    s.history(&ns, &id).unwrap();
    s.review(&ns, &id, 1, Decision::Accept, "").unwrap();
    s.sign(&doc, &id, 1).unwrap();
    assert!(s.verify_audit(&admin).unwrap().intact());
    let raw = raw_conn(dir.path(), s.store_id());
    let last: i64 = raw
        .query_row("SELECT max(seq) FROM audit", [], |r| r.get(0))
        .unwrap();
    assert!(last >= 12, "{last} entries");
    raw.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        .unwrap();
    tamper(&raw, last);
    drop(raw);
    (s.verify_audit(&admin).unwrap(), last)
}

fn assert_bad(report: &AuditReport, seq: i64, problem: Problem) {
    assert_eq!(
        report.first_bad,
        Some(BadEntry { seq, problem }),
        "{report:?}"
    );
}

#[test]
fn edited_entry_is_named() {
    if !keyring_session("edited_entry_is_named") {
        return;
    }
    // An auditor-visible field changed in place: the entry's own hash no longer fits.
    let (r, _) = tampered(|c, _| {
        c.execute_batch("UPDATE audit SET user = 'someone-else' WHERE seq = 7")
            .unwrap();
    });
    assert_bad(&r, 7, Problem::HashMismatch);
}

#[test]
fn edited_entry_with_recomputed_hash_breaks_the_next_link() {
    if !keyring_session("edited_entry_with_recomputed_hash_breaks_the_next_link") {
        return;
    }
    // A forger who recomputes the edited entry's hash cannot also fix the next entry's link without rewriting
    // everything after it; the break shows at the entry after the edit.
    let (r, _) = tampered(|c, _| {
        rehash(c, 6, |row| row.outcome = "denied".into());
    });
    assert_bad(&r, 7, Problem::BrokenLink);
}

#[test]
fn deleted_entry_is_named() {
    if !keyring_session("deleted_entry_is_named") {
        return;
    }
    let (r, _) = tampered(|c, _| {
        c.execute_batch("DELETE FROM audit WHERE seq = 5").unwrap();
    });
    assert_bad(&r, 5, Problem::Missing);
}

#[test]
fn deleted_last_entry_is_named() {
    if !keyring_session("deleted_last_entry_is_named") {
        return;
    }
    // The remaining chain is consistent in itself; the head kept in the keyring says the entry existed. (The
    // verify run's own entry reuses the number, so the head's hash no longer matches that position.)
    let (r, last) = tampered(|c, last| {
        c.execute("DELETE FROM audit WHERE seq = ?1", [last])
            .unwrap();
    });
    assert_bad(&r, last, Problem::HeadMismatch);
}

#[test]
fn inserted_entry_is_named() {
    if !keyring_session("inserted_entry_is_named") {
        return;
    }
    // A forged "login ok" squeezed in as entry 4 (later entries renumbered to make room), copying the hashes of
    // the entry it displaced.
    let (r, _) = tampered(|c, _| {
        c.execute_batch(
            "UPDATE audit SET seq = seq + 1000 WHERE seq >= 4;
             UPDATE audit SET seq = seq - 999 WHERE seq >= 1000;
             INSERT INTO audit (seq, ts_ms, user, role, action, encounter, version, outcome, workstation, detail,
                                prev_hash, hash)
             SELECT 4, ts_ms, 'intruder', 'physician', 'login', NULL, NULL, 'ok', workstation, '', prev_hash, hash
             FROM audit WHERE seq = 5;",
        )
        .unwrap();
    });
    assert_bad(&r, 4, Problem::HashMismatch);
}

#[test]
fn reordered_entries_are_named() {
    if !keyring_session("reordered_entries_are_named") {
        return;
    }
    // Entries 8 and 9 swap places (each keeps its content and hashes): the first out-of-place one is named.
    let (r, _) = tampered(|c, _| {
        c.execute_batch(
            "UPDATE audit SET seq = -1 WHERE seq = 8;
             UPDATE audit SET seq = 8 WHERE seq = 9;
             UPDATE audit SET seq = 9 WHERE seq = -1;",
        )
        .unwrap();
    });
    assert_bad(&r, 8, Problem::HashMismatch);
}

#[test]
fn untouched_chain_verifies() {
    if !keyring_session("untouched_chain_verifies") {
        return;
    }
    // The harness itself (dropping the triggers) changes nothing.
    let (r, last) = tampered(|_, _| {});
    assert!(r.intact(), "{r:?}");
    assert_eq!(r.entries, last + 1);
    assert_eq!(r.head_seq, Some(last + 1));
}

struct Row {
    seq: i64,
    ts_ms: i64,
    user: Option<String>,
    role: Option<String>,
    action: String,
    encounter: Option<String>,
    version: Option<i64>,
    outcome: String,
    workstation: String,
    detail: String,
    prev_hash: String,
}

/// Edits entry `seq` and writes a correct hash for the edited content.
fn rehash(c: &Connection, seq: i64, edit: impl FnOnce(&mut Row)) {
    let mut row = c
        .query_row(
            "SELECT seq, ts_ms, user, role, action, encounter, version, outcome, workstation, detail, prev_hash
             FROM audit WHERE seq = ?1",
            [seq],
            |r| {
                Ok(Row {
                    seq: r.get(0)?,
                    ts_ms: r.get(1)?,
                    user: r.get(2)?,
                    role: r.get(3)?,
                    action: r.get(4)?,
                    encounter: r.get(5)?,
                    version: r.get(6)?,
                    outcome: r.get(7)?,
                    workstation: r.get(8)?,
                    detail: r.get(9)?,
                    prev_hash: r.get(10)?,
                })
            },
        )
        .unwrap();
    edit(&mut row);
    let hash = entry_hash(
        row.seq,
        row.ts_ms,
        row.user.as_deref(),
        row.role.as_deref(),
        &row.action,
        row.encounter.as_deref(),
        row.version,
        &row.outcome,
        &row.workstation,
        &row.detail,
        &row.prev_hash,
    );
    c.execute(
        "UPDATE audit SET outcome = ?2, hash = ?3 WHERE seq = ?1",
        rusqlite::params![seq, row.outcome, hash],
    )
    .unwrap();
}
