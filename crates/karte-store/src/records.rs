//! What the store hands out about encounters (the types are karte-ipc's, since the window receives them), and the
//! content hash and migration that need the database.

use sha2::{Digest, Sha256};

pub use karte_ipc::records::{
    Decision, EncounterSummary, EncounterView, ReviewView, Signature, SignedNote, SuggestionView,
    VersionKind, VersionView,
};

/// A stored `versions.kind`; the column only ever holds `as_str` values.
pub(crate) fn parse_version_kind(s: &str) -> VersionKind {
    match s {
        "edit" => VersionKind::Edit,
        "amendment" => VersionKind::Amendment,
        _ => VersionKind::Draft,
    }
}

/// A stored `reviews.decision`; the column only ever holds `as_str` values.
pub(crate) fn parse_decision(s: &str) -> Decision {
    if s == "accept" {
        Decision::Accept
    } else {
        Decision::Reject
    }
}

/// sha256 over a version's clinical content, length-prefixed so that moving text between fields changes it. Kept
/// with the version and in the audit entry of the write, so an edit of the text through SQL is detectable.
pub(crate) fn content_hash(
    note: &str,
    dictation: Option<&str>,
    draft_json: Option<&str>,
    reason: Option<&str>,
) -> String {
    let mut h = Sha256::new();
    for part in [Some(note), dictation, draft_json, reason] {
        match part {
            Some(p) => {
                h.update((p.len() as u64).to_be_bytes());
                h.update(p.as_bytes());
            }
            None => h.update(u64::MAX.to_be_bytes()),
        }
    }
    hex::encode(h.finalize())
}

/// Schema 3's data step: every version gets its document, recovered from its text and draft (all records before
/// schema 3 are progress notes), then `versions` is immutable again.
pub(crate) fn migrate_documents(c: &rusqlite::Connection) -> karte_core::Result<()> {
    use crate::db::db_err;
    let kind = karte_core::document::default_kind();
    let rows: Vec<(String, i64, String, Option<String>)> = {
        let mut st = c
            .prepare("SELECT encounter_id, version, note_text, draft_json FROM versions WHERE document IS NULL")
            .map_err(db_err)?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(db_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db_err)?
    };
    for (enc, v, note, json) in rows {
        let doc = karte_core::document::recover(kind, &note, json.as_deref());
        let doc = serde_json::to_string(&doc).map_err(|_| {
            karte_core::Error::new(karte_core::Code::Internal, "記録の移行に失敗しました。")
        })?;
        c.execute(
            "UPDATE versions SET document = ?1 WHERE encounter_id = ?2 AND version = ?3",
            rusqlite::params![doc, enc, v],
        )
        .map_err(db_err)?;
    }
    c.execute_batch(
        "CREATE TRIGGER versions_no_update BEFORE UPDATE ON versions
         BEGIN SELECT RAISE(ABORT, 'versions are immutable'); END;",
    )
    .map_err(db_err)
}

/// Schema 4's data step: every encounter written before gets its clinical date, the workstation's local calendar
/// day of its creation (`clock::local_date`: on a ward in Japan, a note saved at 00:30 JST is dated that JST day),
/// then encounter rows become immutable and an insert without a date is refused.
pub(crate) fn migrate_clinical_dates(c: &rusqlite::Connection) -> karte_core::Result<()> {
    use crate::db::db_err;
    let rows: Vec<(String, i64)> = {
        let mut st = c
            .prepare("SELECT id, created_at_ms FROM encounters WHERE clinical_date IS NULL")
            .map_err(db_err)?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db_err)?
    };
    for (id, created_at_ms) in rows {
        c.execute(
            "UPDATE encounters SET clinical_date = ?1 WHERE id = ?2",
            rusqlite::params![crate::clock::local_date(created_at_ms).to_string(), id],
        )
        .map_err(db_err)?;
    }
    c.execute_batch(
        "CREATE TRIGGER encounters_date_required BEFORE INSERT ON encounters WHEN NEW.clinical_date IS NULL
         BEGIN SELECT RAISE(ABORT, 'an encounter needs its clinical date'); END;
         CREATE TRIGGER encounters_no_update BEFORE UPDATE ON encounters
         BEGIN SELECT RAISE(ABORT, 'encounters are immutable'); END;
         CREATE TRIGGER encounters_no_delete BEFORE DELETE ON encounters
         BEGIN SELECT RAISE(ABORT, 'encounters are immutable'); END;",
    )
    .map_err(db_err)
}
