//! The upload outbox: signed documents waiting for the hospital's cloud platform.
//!
//! A row is written by [`Store::sign`] and [`Store::amend`] in the same transaction as the signature, so the
//! outbox can never miss a signed document nor hold an unsigned one. The uploader (karte-sync) takes the oldest
//! pending row, sends it, and marks the outcome; rows are never deleted, and a `sent` row is final (a trigger
//! refuses to change it), so nothing is sent twice by the store's doing. Duplicates caused by a crash between
//! "server stored it" and "marked sent" are absorbed by the server, which deduplicates on the row's `bundle_id`.
//!
//! The uploader's methods (`outbox_*`) take no [`Session`]: the queue belongs to the workstation and drains
//! whoever is signed in (or nobody). They hand out clinical text only as the document to send, and every read
//! and outcome is audited under the pseudo-user [`UPLOADER`]. What people see and do (status, retry, resume) goes
//! through sessions and the permission matrix like everything else.

use crate::audit::NewEntry;
use crate::clock::now_ms;
use crate::db::db_err;
use crate::records::{SuggestionView, VersionKind};
use crate::{iso8601, latest_version, load_encounter, permits, Action, Session, Store};
use karte_core::{Code, Error, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

/// The audit log's name for the workstation's uploader.
pub const UPLOADER: &str = "karte-sync";

pub use karte_ipc::outbox::{Halt, OutboxItem, OutboxState, QueueHealth};

/// A stored `outbox.state`; the column only ever holds `as_str` values.
fn parse_state(s: &str) -> OutboxState {
    match s {
        "sent" => OutboxState::Sent,
        "failed" => OutboxState::Failed,
        _ => OutboxState::Pending,
    }
}

/// What the uploader maps to a FHIR Bundle: one signed version and what it needs around it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedDocument {
    pub item: OutboxItem,
    /// The hospital's patient identifier as entered (personal data: karte-sync pseudonymises it by default).
    pub patient_ref: String,
    pub encounter_created_at: String,
    pub kind: VersionKind,
    pub author: String,
    pub signer: String,
    pub signed_at: String,
    /// The signed note as text (the rendering of `document`).
    pub text: String,
    /// What the FHIR Composition is built from: the kind and its sections.
    pub document: karte_core::Document,
    /// Why a signed note was amended (amendments only).
    pub reason: Option<String>,
    pub content_sha256: String,
    /// Test suggestions whose latest review accepted them.
    pub accepted_tests: Vec<SuggestionView>,
}

/// What [`Store::outbox_next`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// The oldest pending document, due now.
    Due(Box<SignedDocument>),
    /// The oldest pending document waits for its backoff until this time (ms): later ones wait behind it, so the
    /// platform receives documents in signing order.
    Wait(i64),
    Empty,
    Halted(Halt),
}

const HALT_CODE: &str = "sync.halt_code";
const HALT_MESSAGE: &str = "sync.halt_message";
const HALT_AT: &str = "sync.halt_at_ms";

/// A random `urn:uuid:` (version 4), minted once in the signing transaction and stored in the outbox row, so every
/// retry and restart sends the same identifier. Random rather than derived from (store, encounter, version): a data
/// directory restored from backup or a cloned workstation image would otherwise sign a *different* document under an
/// identifier the platform already holds, and the platform's deduplication would silently drop it.
pub fn new_bundle_id() -> Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|_| Error::new(Code::Internal, "乱数を取得できません。"))?;
    b[6] = (b[6] & 0x0f) | 0x40; // RFC 9562 version 4
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    Ok(format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    ))
}

/// Queues `encounter` v`version` inside the caller's (signing) transaction. An amendment replaces the document of
/// the previous signed version of the same encounter.
pub(crate) fn enqueue(c: &Connection, encounter: &str, version: i64, now: i64) -> Result<()> {
    insert_row(c, encounter, version, now, now)
}

/// The upgrade to schema 2 (in its migration transaction): every version signed before the outbox existed is
/// queued, in signing order, each with its own random identifier minted now. Without it those documents would
/// never reach the platform, and nothing would show that they had not.
pub(crate) fn queue_signed_before_outbox(c: &Connection) -> Result<()> {
    let mut st = c
        .prepare(
            "SELECT s.encounter_id, s.version, s.signed_at_ms FROM signatures s
              WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.encounter_id = s.encounter_id AND o.version = s.version)
              ORDER BY s.signed_at_ms, s.encounter_id, s.version",
        )
        .map_err(db_err)?;
    let signed: Vec<(String, i64, i64)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(db_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(db_err)?;
    let now = now_ms();
    for (encounter, version, signed_at) in &signed {
        insert_row(c, encounter, *version, *signed_at, now)?;
    }
    if !signed.is_empty() {
        tracing::info!(
            documents = signed.len(),
            "schema 2: documents signed before the outbox queued"
        );
    }
    Ok(())
}

fn insert_row(
    c: &Connection,
    encounter: &str,
    version: i64,
    created_ms: i64,
    due_ms: i64,
) -> Result<()> {
    let replaces: Option<String> = c
        .query_row(
            "SELECT bundle_id FROM outbox WHERE encounter_id = ?1 AND version < ?2 ORDER BY version DESC LIMIT 1",
            params![encounter, version],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?;
    c.execute(
        "INSERT INTO outbox (encounter_id, version, bundle_id, replaces, next_attempt_ms, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            encounter,
            version,
            new_bundle_id()?,
            replaces,
            due_ms,
            created_ms
        ],
    )
    .map_err(db_err)?;
    Ok(())
}

/// The item's columns; the last one is computed: the id of the not-yet-sent row a pending amendment waits for.
/// Every query selects `FROM outbox` unaliased, so `outbox.` names the row being read.
const ITEM_COLS: &str =
    "id, encounter_id, version, bundle_id, replaces, state, attempts, next_attempt_ms,
                         last_code, last_reason, http_status, created_at_ms, sent_at_ms,
                         (SELECT p.id FROM outbox p WHERE outbox.state = 'pending' AND p.bundle_id = outbox.replaces
                                                      AND p.state <> 'sent')";

/// A pending row may go out only when the row it replaces (if any) is sent.
const NOT_HELD: &str =
    "NOT EXISTS (SELECT 1 FROM outbox p WHERE p.bundle_id = outbox.replaces AND p.state <> 'sent')";

fn item(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxItem> {
    let next: i64 = r.get(7)?;
    Ok(OutboxItem {
        id: r.get(0)?,
        encounter: r.get(1)?,
        version: r.get(2)?,
        bundle_id: r.get(3)?,
        replaces: r.get(4)?,
        state: parse_state(&r.get::<_, String>(5)?),
        attempts: r.get(6)?,
        next_attempt_at: iso8601(next),
        next_attempt_ms: next,
        last_code: r.get(8)?,
        last_reason: r.get(9)?,
        http_status: r.get(10)?,
        created_at: iso8601(r.get(11)?),
        sent_at: r.get::<_, Option<i64>>(12)?.map(iso8601),
        held_by: r.get(13)?,
    })
}

fn item_by_id(c: &Connection, id: i64) -> Result<OutboxItem> {
    c.query_row(
        &format!("SELECT {ITEM_COLS} FROM outbox WHERE id = ?1"),
        [id],
        item,
    )
    .optional()
    .map_err(db_err)?
    .ok_or_else(|| {
        Error::new(
            Code::SyncItemNotFound,
            "その番号の送信項目はありません。karte queue status で番号を確認してください。",
        )
    })
}

fn halt(c: &Connection) -> Result<Option<Halt>> {
    let get = |k: &str| -> Result<Option<String>> {
        c.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
            .optional()
            .map_err(db_err)
    };
    Ok(match get(HALT_CODE)? {
        Some(code) => Some(Halt {
            code,
            message: get(HALT_MESSAGE)?.unwrap_or_default(),
            at: iso8601(get(HALT_AT)?.and_then(|v| v.parse().ok()).unwrap_or(0)),
        }),
        None => None,
    })
}

fn signed_document(c: &Connection, it: OutboxItem) -> Result<SignedDocument> {
    let view = load_encounter(c, &it.encounter)?;
    let v = view
        .versions
        .iter()
        .find(|v| v.version == it.version)
        .ok_or_else(crate::not_found)?;
    let sig = v.signature.clone().ok_or_else(|| {
        Error::new(
            Code::Internal,
            "送信待ちの版に署名がありません。システム管理者に連絡してください。",
        )
    })?;
    // The tests as the physician saw them when signing: per suggestion, the latest review made no later than this
    // version's signature. A review after signing must not change a document already signed (and possibly sent
    // under the same identifier).
    let signed_at_ms: i64 = c
        .query_row(
            "SELECT signed_at_ms FROM signatures WHERE encounter_id = ?1 AND version = ?2",
            params![it.encounter, it.version],
            |r| r.get(0),
        )
        .map_err(db_err)?;
    let mut accepted_at_signing = c
        .prepare(
            "SELECT r.suggestion FROM reviews r
              WHERE r.encounter_id = ?1 AND r.created_at_ms <= ?2 AND r.decision = 'accept'
                AND r.id = (SELECT max(r2.id) FROM reviews r2
                             WHERE r2.encounter_id = r.encounter_id AND r2.suggestion = r.suggestion
                               AND r2.created_at_ms <= ?2)",
        )
        .map_err(db_err)?;
    let accepted: std::collections::BTreeSet<i64> = accepted_at_signing
        .query_map(params![it.encounter, signed_at_ms], |r| r.get(0))
        .map_err(db_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(db_err)?;
    let accepted_tests = view
        .suggestions
        .iter()
        .filter(|g| accepted.contains(&g.id))
        .cloned()
        .collect();
    Ok(SignedDocument {
        patient_ref: view.patient_ref.clone(),
        encounter_created_at: view.created_at.clone(),
        kind: v.kind,
        author: v.author.clone(),
        signer: sig.signer,
        signed_at: sig.signed_at,
        text: v.text.clone(),
        document: v.document.clone(),
        reason: v.reason.clone(),
        content_sha256: v.content_sha256.clone(),
        accepted_tests,
        item: it,
    })
}

/// Back to pending, due now, with the failure history of the earlier attempts cleared.
fn requeue(c: &Connection, id: i64, now: i64) -> Result<()> {
    c.execute(
        "UPDATE outbox SET state = 'pending', next_attempt_ms = ?2, attempts = 0, last_code = NULL,
                           last_reason = NULL, http_status = NULL WHERE id = ?1 AND state <> 'sent'",
        params![id, now],
    )
    .map_err(db_err)?;
    Ok(())
}

/// Clips a server's reason: it is shown and stored, and must stay a reason, not a payload.
fn clip(s: &str) -> String {
    s.chars().take(500).collect()
}

impl Store {
    fn uploader_entry<'a>(
        &self,
        it: &'a OutboxItem,
        outcome: &'a str,
        detail: String,
    ) -> NewEntry<'a> {
        NewEntry {
            user: Some(UPLOADER),
            role: None,
            action: "upload",
            encounter: Some(&it.encounter),
            version: Some(it.version),
            outcome,
            detail,
        }
    }

    /// The oldest pending document if it is due (its text read is audited), else how long to wait. An amendment
    /// whose original is not sent is skipped (a failed original holds its amendments until it is retried and sent),
    /// so the platform never receives a replacement before the document it replaces.
    pub fn outbox_next(&self, now_ms: i64) -> Result<Next> {
        self.tx(|c, log| {
            if let Some(h) = halt(c)? {
                return Ok(Next::Halted(h));
            }
            let head = c
                .query_row(
                    &format!(
                        "SELECT {ITEM_COLS} FROM outbox WHERE state = 'pending' AND {NOT_HELD} ORDER BY id LIMIT 1"
                    ),
                    [],
                    item,
                )
                .optional()
                .map_err(db_err)?;
            let Some(it) = head else {
                return Ok(Next::Empty);
            };
            if it.next_attempt_ms > now_ms {
                return Ok(Next::Wait(it.next_attempt_ms));
            }
            let doc = signed_document(c, it)?;
            log.append(
                c,
                &self.uploader_entry(
                    &doc.item,
                    "ok",
                    format!(
                        "read bundle={} attempt={}",
                        doc.item.bundle_id,
                        doc.item.attempts + 1
                    ),
                ),
            )?;
            Ok(Next::Due(Box::new(doc)))
        })
    }

    /// The document of one queued item, whatever its state (`karte export fhir` shows what would be sent). Audited.
    pub fn outbox_document(&self, s: &Session, encounter: &str) -> Result<SignedDocument> {
        self.authorize(s, Action::Export, Some(encounter))?;
        self.tx(|c, log| {
            let it = c
                .query_row(
                    &format!(
                        "SELECT {ITEM_COLS} FROM outbox WHERE encounter_id = ?1 ORDER BY version DESC LIMIT 1"
                    ),
                    [encounter],
                    item,
                )
                .optional()
                .map_err(db_err)?;
            let it = match it {
                Some(it) => it,
                None => {
                    latest_version(c, encounter)?;
                    return Err(Error::new(
                        Code::RecordNotSigned,
                        "この記録はまだ署名されていません。送信されるのは署名済みの記録だけです。",
                    ));
                }
            };
            let doc = signed_document(c, it)?;
            log.append(
                c,
                &s.entry(
                    Action::Export,
                    Some(encounter),
                    Some(doc.item.version),
                    format!("fhir bundle={}", doc.item.bundle_id),
                ),
            )?;
            Ok(doc)
        })
    }

    /// The server has the document (created now, or it already had it under the same identifier).
    pub fn outbox_mark_sent(&self, id: i64, http_status: u16) -> Result<()> {
        let now = now_ms();
        self.tx(|c, log| {
            let it = item_by_id(c, id)?;
            if it.state == OutboxState::Sent {
                return Ok(());
            }
            c.execute(
                "UPDATE outbox SET state = 'sent', sent_at_ms = ?2, http_status = ?3, attempts = attempts + 1,
                                   last_code = NULL, last_reason = NULL WHERE id = ?1",
                params![id, now, http_status],
            )
            .map_err(db_err)?;
            log.append(
                c,
                &self.uploader_entry(&it, "ok", format!("sent bundle={} http={http_status}", it.bundle_id)),
            )
        })
    }

    /// A transient failure (5xx, timeout, no connection): try again at `next_attempt_ms`.
    pub fn outbox_mark_retry(
        &self,
        id: i64,
        code: Code,
        reason: &str,
        http_status: Option<u16>,
        next_attempt_ms: i64,
    ) -> Result<()> {
        self.tx(|c, log| {
            let it = item_by_id(c, id)?;
            c.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = ?2, last_code = ?3, last_reason = ?4,
                                   http_status = ?5 WHERE id = ?1 AND state = 'pending'",
                params![id, next_attempt_ms, code.as_str(), clip(reason), http_status],
            )
            .map_err(db_err)?;
            log.append(c, &self.uploader_entry(&it, "retry", format!("code={code}")))
        })
    }

    /// The server refused the document (4xx): it leaves the queue's head and waits for a person.
    pub fn outbox_mark_failed(
        &self,
        id: i64,
        code: Code,
        reason: &str,
        http_status: Option<u16>,
    ) -> Result<()> {
        self.tx(|c, log| {
            let it = item_by_id(c, id)?;
            c.execute(
                "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_code = ?2, last_reason = ?3,
                                   http_status = ?4 WHERE id = ?1 AND state = 'pending'",
                params![id, code.as_str(), clip(reason), http_status],
            )
            .map_err(db_err)?;
            log.append(c, &self.uploader_entry(&it, "failed", format!("code={code}")))
        })
    }

    /// Stops the queue: the server's certificate is not the one pinned (or not valid). Only a person resumes it.
    pub fn outbox_halt(&self, code: Code, message: &str) -> Result<()> {
        let now = now_ms();
        self.tx(|c, log| {
            for (k, v) in [
                (HALT_CODE, code.as_str().to_string()),
                (HALT_MESSAGE, clip(message)),
                (HALT_AT, now.to_string()),
            ] {
                c.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![k, v],
                )
                .map_err(db_err)?;
            }
            log.append(
                c,
                &NewEntry {
                    user: Some(UPLOADER),
                    action: "upload",
                    outcome: "halted",
                    detail: format!("code={code}"),
                    ..Default::default()
                },
            )
        })
    }

    /// Counts and alerts; no clinical text. For the uploader itself and the desktop's status bar.
    pub fn outbox_health(&self) -> Result<QueueHealth> {
        let c = self.conn();
        let count = |state: &str| -> Result<i64> {
            c.query_row(
                "SELECT count(*) FROM outbox WHERE state = ?1",
                [state],
                |r| r.get(0),
            )
            .map_err(db_err)
        };
        let oldest: Option<i64> = c
            .query_row(
                "SELECT min(created_at_ms) FROM outbox WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )
            .map_err(db_err)?;
        let last_sent: Option<i64> = c
            .query_row(
                "SELECT max(sent_at_ms) FROM outbox WHERE state = 'sent'",
                [],
                |r| r.get(0),
            )
            .map_err(db_err)?;
        let last_error: Option<String> = c
            .query_row(
                &format!(
                    "SELECT last_code FROM outbox WHERE state = 'pending' AND {NOT_HELD} ORDER BY id LIMIT 1"
                ),
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)?
            .flatten();
        let held: i64 = c
            .query_row(
                &format!("SELECT count(*) FROM outbox WHERE state = 'pending' AND NOT {NOT_HELD}"),
                [],
                |r| r.get(0),
            )
            .map_err(db_err)?;
        Ok(QueueHealth {
            pending: count("pending")?,
            failed: count("failed")?,
            sent: count("sent")?,
            held,
            oldest_pending_at: oldest.map(iso8601),
            last_sent_at: last_sent.map(iso8601),
            last_error,
            halted: halt(&c)?,
        })
    }

    /// Checks that `s` may do one of `actions` (the first the role holds): for front-end steps that are not a
    /// store operation of their own, e.g. starting an upload from the command line. Audited like any check.
    pub fn authorize_for(&self, s: &Session, actions: &[Action]) -> Result<()> {
        self.authorize_any(s, actions, None)
    }

    /// Picks the first of `actions` the role holds, so one view can serve several roles through the matrix.
    fn authorize_any(
        &self,
        s: &Session,
        actions: &[Action],
        encounter: Option<&str>,
    ) -> Result<()> {
        self.authorize_any_as(s, actions, encounter, true)
    }

    fn authorize_any_as(
        &self,
        s: &Session,
        actions: &[Action],
        encounter: Option<&str>,
        touch: bool,
    ) -> Result<()> {
        let a = actions
            .iter()
            .copied()
            .find(|a| permits(s.role, *a))
            .unwrap_or(actions[0]);
        self.authorize_as(s, a, encounter, touch)
    }

    /// Queue health for people: physicians and nurses (View) and administrators (ManageUsers). Does not count as
    /// activity for the idle sign-out: the window refreshes it by itself.
    pub fn queue_health(&self, s: &Session) -> Result<QueueHealth> {
        self.authorize_any_as(s, &[Action::View, Action::ManageUsers], None, false)?;
        self.outbox_health()
    }

    /// Every queued item, oldest first (ids, states and reasons; no clinical text). Does not count as activity for
    /// the idle sign-out: the window refreshes it by itself.
    pub fn queue_items(&self, s: &Session) -> Result<Vec<OutboxItem>> {
        self.authorize_any_as(s, &[Action::View, Action::ManageUsers], None, false)?;
        let c = self.conn();
        let mut st = c
            .prepare(&format!("SELECT {ITEM_COLS} FROM outbox ORDER BY id"))
            .map_err(db_err)?;
        let rows = st.query_map([], item).map_err(db_err)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
    }

    /// The upload state of each signed version of one encounter (the window's 送信待ち / 送信済み / 送信失敗).
    pub fn upload_status(&self, s: &Session, encounter: &str) -> Result<Vec<OutboxItem>> {
        self.authorize(s, Action::View, Some(encounter))?;
        let c = self.conn();
        let mut st = c
            .prepare(&format!(
                "SELECT {ITEM_COLS} FROM outbox WHERE encounter_id = ?1 ORDER BY version"
            ))
            .map_err(db_err)?;
        let rows = st.query_map([encounter], item).map_err(db_err)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
    }

    /// 再送: puts a refused (failed) item back in the queue, due now, as if new (attempts and the last failure are
    /// cleared: what the window shows afterwards is about the new attempt). A physician, after fixing the cause, or
    /// an administrator. Its place is its original one: it goes out before documents signed after it. A document the
    /// platform already has answers `sync.already_sent`.
    pub fn retry_upload(&self, s: &Session, id: i64) -> Result<OutboxItem> {
        self.authorize_any(s, &[Action::Export, Action::ManageUsers], None)?;
        let now = now_ms();
        self.tx(|c, log| {
            let it = item_by_id(c, id)?;
            if it.state == OutboxState::Sent {
                return Err(Error::new(
                    Code::SyncAlreadySent,
                    "この文書は送信済みです（クラウドに届いています）。再送は不要です。",
                ));
            }
            requeue(c, id, now)?;
            log.append(
                c,
                &s.entry(
                    Action::Export,
                    Some(&it.encounter),
                    Some(it.version),
                    format!("upload retry id={id}"),
                ),
            )?;
            item_by_id(c, id)
        })
    }

    /// `karte queue retry --all-failed`: every refused document back in the queue at once (after IT fixed a cause
    /// common to all of them). Each is audited. Returns the items requeued, oldest first.
    pub fn retry_all_failed(&self, s: &Session) -> Result<Vec<OutboxItem>> {
        self.authorize_any(s, &[Action::Export, Action::ManageUsers], None)?;
        let now = now_ms();
        self.tx(|c, log| {
            let mut st = c
                .prepare("SELECT id FROM outbox WHERE state = 'failed' ORDER BY id")
                .map_err(db_err)?;
            let ids: Vec<i64> = st
                .query_map([], |r| r.get(0))
                .map_err(db_err)?
                .collect::<rusqlite::Result<_>>()
                .map_err(db_err)?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                requeue(c, id, now)?;
                let it = item_by_id(c, id)?;
                log.append(
                    c,
                    &s.entry(
                        Action::Export,
                        Some(&it.encounter),
                        Some(it.version),
                        format!("upload retry id={id} all-failed"),
                    ),
                )?;
                out.push(it);
            }
            Ok(out)
        })
    }

    /// Records an administrator's act that is not a store operation of its own (installing the upload credentials,
    /// for instance) in the audit log, after checking the role. `detail` holds ids and fingerprints, never secrets.
    pub fn audit_admin_event(&self, s: &Session, detail: String) -> Result<()> {
        self.authorize(s, Action::ManageUsers, None)?;
        self.tx(|c, log| log.append(c, &s.entry(Action::ManageUsers, None, None, detail)))
    }

    /// Lifts a halt (after IT has checked the certificate or the pin) and makes the head of the queue due now.
    pub fn resume_uploads(&self, s: &Session) -> Result<()> {
        self.authorize_any(s, &[Action::Export, Action::ManageUsers], None)?;
        let now = now_ms();
        self.tx(|c, log| {
            c.execute(
                "DELETE FROM meta WHERE key IN (?1, ?2, ?3)",
                params![HALT_CODE, HALT_MESSAGE, HALT_AT],
            )
            .map_err(db_err)?;
            c.execute(
                "UPDATE outbox SET next_attempt_ms = min(next_attempt_ms, ?1) WHERE state = 'pending'",
                [now],
            )
            .map_err(db_err)?;
            log.append(c, &s.entry(Action::Export, None, None, "upload resume".into()))
        })
    }
}
