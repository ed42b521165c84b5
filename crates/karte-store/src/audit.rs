//! The hash-chained audit log.
//!
//! Each entry's hash is sha256 over the canonical JSON array of its fields (sequence number included) and the
//! previous entry's hash. So an edited entry no longer matches its hash, a deleted one leaves a gap in the
//! sequence, an inserted or moved one carries a hash computed for another position, and verification names the
//! first entry where that happens. Deleting the *newest* entries leaves a shorter chain that is consistent in
//! itself: that is caught by the chain head kept in the OS keyring ([`crate::vault`]), outside the database.
//!
//! Limits, stated plainly: someone holding both the keyring and the database (the workstation's OS account) can
//! rewrite the whole chain and the head together. Detecting that needs the head to leave the workstation (the
//! planned upload queue can carry it). Entries never contain clinical text: actions, ids, roles, outcomes, and
//! content hashes only.

use crate::clock::iso8601;
use crate::db::db_err;
use karte_core::Result;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

pub use karte_ipc::audit::{AuditEntry, AuditReport, BadEntry, Problem};

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What to record; the chain fields are filled in by [`append`].
#[derive(Debug, Clone, Default)]
pub(crate) struct NewEntry<'a> {
    pub user: Option<&'a str>,
    pub role: Option<&'a str>,
    pub action: &'a str,
    pub encounter: Option<&'a str>,
    pub version: Option<i64>,
    pub outcome: &'a str,
    pub detail: String,
}

/// sha256 over `[seq, ts_ms, user, role, action, encounter, version, outcome, workstation, detail, prev_hash]`
/// serialised as compact JSON: one unambiguous byte string per entry (field boundaries are explicit, no
/// separator can be smuggled into a field).
#[allow(clippy::too_many_arguments)]
pub fn entry_hash(
    seq: i64,
    ts_ms: i64,
    user: Option<&str>,
    role: Option<&str>,
    action: &str,
    encounter: Option<&str>,
    version: Option<i64>,
    outcome: &str,
    workstation: &str,
    detail: &str,
    prev_hash: &str,
) -> String {
    let canonical = serde_json::json!([
        seq,
        ts_ms,
        user,
        role,
        action,
        encounter,
        version,
        outcome,
        workstation,
        detail,
        prev_hash
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// The hash `e`'s fields give, to compare with the one stored.
fn computed_hash(e: &AuditEntry) -> String {
    entry_hash(
        e.seq,
        e.ts_ms,
        e.user.as_deref(),
        e.role.as_deref(),
        &e.action,
        e.encounter.as_deref(),
        e.version,
        &e.outcome,
        &e.workstation,
        &e.detail,
        &e.prev_hash,
    )
}

/// Appends inside the caller's transaction (so the entry commits or rolls back with what it records) and returns
/// the new `(seq, hash)` for the keyring head.
pub(crate) fn append(
    conn: &Connection,
    workstation: &str,
    ts_ms: i64,
    e: &NewEntry<'_>,
) -> Result<(i64, String)> {
    let last: Option<(i64, String)> = conn
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db_err)?;
    let (seq, prev) = match last {
        Some((s, h)) => (s + 1, h),
        None => (1, GENESIS_HASH.to_string()),
    };
    let hash = entry_hash(
        seq,
        ts_ms,
        e.user,
        e.role,
        e.action,
        e.encounter,
        e.version,
        e.outcome,
        workstation,
        &e.detail,
        &prev,
    );
    conn.execute(
        "INSERT INTO audit (seq, ts_ms, user, role, action, encounter, version, outcome, workstation, detail,
                            prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            seq,
            ts_ms,
            e.user,
            e.role,
            e.action,
            e.encounter,
            e.version,
            e.outcome,
            workstation,
            e.detail,
            prev,
            hash
        ],
    )
    .map_err(db_err)?;
    Ok((seq, hash))
}

pub(crate) fn entries(conn: &Connection) -> Result<Vec<AuditEntry>> {
    let mut st = conn
        .prepare(
            "SELECT seq, ts_ms, user, role, action, encounter, version, outcome, workstation, detail, prev_hash,
                    hash
             FROM audit ORDER BY seq",
        )
        .map_err(db_err)?;
    let rows = st
        .query_map([], |r| {
            let ts_ms: i64 = r.get(1)?;
            Ok(AuditEntry {
                seq: r.get(0)?,
                ts_ms,
                ts: iso8601(ts_ms),
                user: r.get(2)?,
                role: r.get(3)?,
                action: r.get(4)?,
                encounter: r.get(5)?,
                version: r.get(6)?,
                outcome: r.get(7)?,
                workstation: r.get(8)?,
                detail: r.get(9)?,
                prev_hash: r.get(10)?,
                hash: r.get(11)?,
            })
        })
        .map_err(db_err)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
}

/// The hash stored for entry `seq`, if that entry exists.
pub(crate) fn hash_at(conn: &Connection, seq: i64) -> Result<Option<String>> {
    conn.query_row("SELECT hash FROM audit WHERE seq = ?1", [seq], |r| r.get(0))
        .optional()
        .map_err(db_err)
}

/// Walks the chain from the first entry and stops at the first problem.
pub fn verify_chain(entries: &[AuditEntry], head: Option<(i64, &str)>) -> AuditReport {
    let bad = |seq, problem| Some(BadEntry { seq, problem });
    let mut first_bad = None;
    let mut prev_hash = GENESIS_HASH;
    for (i, e) in entries.iter().enumerate() {
        let expected_seq = i as i64 + 1;
        if e.seq != expected_seq {
            first_bad = bad(expected_seq, Problem::Missing);
            break;
        }
        if computed_hash(e) != e.hash {
            first_bad = bad(e.seq, Problem::HashMismatch);
            break;
        }
        if e.prev_hash != prev_hash {
            first_bad = bad(e.seq, Problem::BrokenLink);
            break;
        }
        prev_hash = &e.hash;
    }
    if first_bad.is_none() {
        let last = entries.len() as i64;
        first_bad = match head {
            None if last > 0 => bad(last, Problem::HeadMissing),
            None => None,
            Some((seq, _)) if seq > last => bad(last + 1, Problem::Missing),
            Some((seq, hash)) if seq >= 1 && entries[seq as usize - 1].hash != hash => {
                bad(seq, Problem::HeadMismatch)
            }
            Some(_) => None,
        };
    }
    AuditReport {
        entries: entries.len() as i64,
        head_seq: head.map(|h| h.0),
        first_bad,
    }
}

/// One JSON object per line, for auditors' tools.
pub fn to_ndjson(entries: &[AuditEntry]) -> String {
    let mut s = String::new();
    for e in entries {
        s.push_str(&serde_json::to_string(e).expect("audit entry serialises"));
        s.push('\n');
    }
    s
}

/// RFC 4180 CSV with a header row.
pub fn to_csv(entries: &[AuditEntry]) -> String {
    fn cell(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }
    let mut s = String::from(
        "seq,ts,ts_ms,user,role,action,encounter,version,outcome,workstation,detail,prev_hash,hash\r\n",
    );
    for e in entries {
        let row = [
            e.seq.to_string(),
            e.ts.clone(),
            e.ts_ms.to_string(),
            e.user.clone().unwrap_or_default(),
            e.role.clone().unwrap_or_default(),
            e.action.clone(),
            e.encounter.clone().unwrap_or_default(),
            e.version.map(|v| v.to_string()).unwrap_or_default(),
            e.outcome.clone(),
            e.workstation.clone(),
            e.detail.clone(),
            e.prev_hash.clone(),
            e.hash.clone(),
        ];
        s.push_str(&row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(","));
        s.push_str("\r\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for seq in 1..=n {
            let prev = out
                .last()
                .map(|e| e.hash.clone())
                .unwrap_or(GENESIS_HASH.into());
            let mut e = AuditEntry {
                seq,
                ts_ms: 1000 * seq,
                ts: iso8601(1000 * seq),
                user: Some("u".into()),
                role: Some("nurse".into()),
                action: "record_view".into(),
                encounter: Some(format!("E{seq}")),
                version: Some(1),
                outcome: "ok".into(),
                workstation: "ws".into(),
                detail: String::new(),
                prev_hash: prev,
                hash: String::new(),
            };
            e.hash = computed_hash(&e);
            out.push(e);
        }
        out
    }

    #[test]
    fn verify_table() {
        let intact = chain(5);
        let head = |c: &[AuditEntry], i: usize| Some((c[i].seq, c[i].hash.clone()));
        type Case = (&'static str, fn(&mut Vec<AuditEntry>), Option<BadEntry>);
        let cases: Vec<Case> = vec![
            ("intact", |_| {}, None),
            (
                "edited",
                |c| c[2].detail = "x".into(),
                Some(BadEntry {
                    seq: 3,
                    problem: Problem::HashMismatch,
                }),
            ),
            (
                "deleted middle",
                |c| {
                    c.remove(1);
                },
                Some(BadEntry {
                    seq: 2,
                    problem: Problem::Missing,
                }),
            ),
            (
                "swapped",
                |c| {
                    c.swap(1, 2);
                    c[1].seq = 2;
                    c[2].seq = 3;
                },
                Some(BadEntry {
                    seq: 2,
                    problem: Problem::HashMismatch,
                }),
            ),
            (
                "deleted last",
                |c| {
                    c.pop();
                },
                Some(BadEntry {
                    seq: 5,
                    problem: Problem::Missing,
                }),
            ),
        ];
        for (name, tamper, want) in cases {
            let mut c = intact.clone();
            let h = head(&intact, 4);
            tamper(&mut c);
            let r = verify_chain(&c, h.as_ref().map(|(s, h)| (*s, h.as_str())));
            assert_eq!(r.first_bad, want, "{name}");
        }
    }

    #[test]
    fn csv_quotes_cells() {
        let mut c = chain(1);
        c[0].detail = "a,\"b\"".into();
        let csv = to_csv(&c);
        assert!(csv.contains(",\"a,\"\"b\"\"\","), "{csv}");
        assert_eq!(csv.lines().count(), 2);
    }
}
