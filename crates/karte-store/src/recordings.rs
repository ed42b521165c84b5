//! Dictation recordings kept while the physician speaks (schema 5): nothing said into the window is lost to a crash,
//! a closed window, an idle sign-out or a dead worker. The window appends about a second of audio at a time; each
//! piece commits on its own. A recording is deleted once heard (its text is in the dictation box) or when it held no
//! speech; until then it is offered at every sign-in of the physician who made it.
//!
//! Audited like dictations (`dictate`): start, stop, discard and hearing, with lengths only, never the audio or words.
//! Pieces are not audited one by one (a ten-minute dictation would write six hundred entries); the stop's entry gives
//! the length, and an interrupted recording is seen at the next sign-in.

use crate::audit::NewEntry;
use crate::auth::{Action, Session};
use crate::clock::{iso8601, now_ms};
use crate::db::db_err;
use crate::Store;
use karte_core::{Code, Error, Result};
use karte_ipc::voice::{pcm_seconds, MAX_RECORDING_BYTES};
use karte_ipc::{Dictated, Recording};
use rusqlite::{params, Connection, OptionalExtension};

fn not_found() -> Error {
    Error::new(
        Code::RecordNotFound,
        "この録音は見つかりません（文字にしたか破棄した後です）。一覧を開き直してください。",
    )
}

fn too_long() -> Error {
    Error::new(
        Code::InputTooLarge,
        "録音が長すぎます（約17分まで）。ここまでを文字にしてから、新しく録音を始めてください。",
    )
}

fn new_id() -> Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|_| Error::new(Code::Internal, "乱数を取得できません。"))?;
    Ok(hex::encode(b))
}

/// `(open, bytes)` of the session user's recording `id`; another user's recording is "not found", like a record
/// the caller may not see.
fn owned(c: &Connection, s: &Session, id: &str) -> Result<(bool, usize)> {
    c.query_row(
        "SELECT open, bytes FROM recordings WHERE id = ?1 AND user_id = ?2",
        params![id, s.user_id],
        |r| Ok((r.get::<_, i64>(0)? != 0, r.get::<_, i64>(1)? as usize)),
    )
    .optional()
    .map_err(db_err)?
    .ok_or_else(not_found)
}

/// A `dictate` audit entry of the session's user: typed and heard dictations and recordings all write this one.
pub(crate) fn entry<'a>(s: &'a Session, outcome: &'a str, detail: String) -> NewEntry<'a> {
    NewEntry {
        user: Some(&s.name),
        role: Some(s.role.as_str()),
        action: Action::Dictate.as_str(),
        outcome,
        detail,
        ..Default::default()
    }
}

impl Store {
    /// Opens a new recording for the signed-in physician (the Dictate permission: a nurse's voice is not recorded).
    pub fn recording_start(&self, s: &Session) -> Result<Recording> {
        self.authorize(s, Action::Dictate, None)?;
        let id = new_id()?;
        let now = now_ms();
        self.tx(|c, log| {
            c.execute(
                "INSERT INTO recordings (id, user_id, started_at_ms) VALUES (?1, ?2, ?3)",
                params![id, s.user_id, now],
            )
            .map_err(db_err)?;
            log.append(c, &entry(s, "ok", "recording started".into()))
        })?;
        Ok(Recording {
            id,
            started_at: iso8601(now),
            seconds: 0.0,
            open: true,
        })
    }

    /// Appends a piece of 16-bit PCM (at `CAPTURE_RATE`) to an open recording and returns its length in seconds.
    /// Refused past what one transcription takes, so a recorder left on cannot grow the store without bound.
    pub fn recording_append(&self, s: &Session, id: &str, pcm: &[u8]) -> Result<f64> {
        if !pcm.len().is_multiple_of(2) {
            return Err(Error::new(
                Code::InputUnreadable,
                "録音データが壊れています。録音を止めて、もう一度お試しください。",
            ));
        }
        self.authorize(s, Action::Dictate, None)?;
        self.tx(|c, _| {
            let (open, bytes) = owned(c, s, id)?;
            if !open {
                return Err(Error::new(
                    Code::RecordChanged,
                    "この録音は停止済みです。新しく録音を始めてください。",
                ));
            }
            let total = bytes + pcm.len();
            if total > MAX_RECORDING_BYTES {
                return Err(too_long());
            }
            c.execute(
                "INSERT INTO recording_pieces (recording_id, seq, pcm) \
                 VALUES (?1, (SELECT count(*) FROM recording_pieces WHERE recording_id = ?1), ?2)",
                params![id, pcm],
            )
            .map_err(db_err)?;
            c.execute(
                "UPDATE recordings SET bytes = ?2 WHERE id = ?1",
                params![id, total as i64],
            )
            .map_err(db_err)?;
            Ok(pcm_seconds(total))
        })
    }

    /// Closes a recording: nothing more is appended, and it waits to be heard.
    pub fn recording_stop(&self, s: &Session, id: &str) -> Result<Recording> {
        self.authorize(s, Action::Dictate, None)?;
        self.tx(|c, log| {
            let (_, bytes) = owned(c, s, id)?;
            c.execute("UPDATE recordings SET open = 0 WHERE id = ?1", [id])
                .map_err(db_err)?;
            log.append(
                c,
                &entry(
                    s,
                    "ok",
                    format!("recording stopped seconds={:.1}", pcm_seconds(bytes)),
                ),
            )?;
            recording(c, id)
        })
    }

    /// The signed-in physician's recordings not yet heard, oldest first: what a crash or a failed hearing left.
    /// Open ones were cut off (the window that recorded them is gone) and are offered like stopped ones.
    pub fn recordings_pending(&self, s: &Session) -> Result<Vec<Recording>> {
        self.authorize(s, Action::Dictate, None)?;
        let c = self.conn();
        let mut st = c
            .prepare(
                "SELECT id, started_at_ms, bytes, open FROM recordings WHERE user_id = ?1 \
                 ORDER BY started_at_ms, id",
            )
            .map_err(db_err)?;
        let rows = st.query_map([s.user_id], row).map_err(db_err)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
    }

    /// Hears a kept recording (stopping it first if a crash left it open): `hear` gets its 16-bit PCM at
    /// `CAPTURE_RATE` (the caller cuts it into parts or wraps it as WAV). Heard, or found to hold no speech, it is
    /// deleted; any other failure keeps it, to be heard again later.
    pub fn recording_transcribe(
        &self,
        s: &Session,
        id: &str,
        hear: impl FnOnce(&[u8]) -> Result<Dictated>,
    ) -> Result<Dictated> {
        self.authorize(s, Action::Dictate, None)?;
        let pcm = {
            let c = self.conn();
            owned(&c, s, id)?;
            let mut st = c
                .prepare("SELECT pcm FROM recording_pieces WHERE recording_id = ?1 ORDER BY seq")
                .map_err(db_err)?;
            let pieces = st
                .query_map([id], |r| r.get::<_, Vec<u8>>(0))
                .map_err(db_err)?;
            let mut pcm = Vec::new();
            for p in pieces {
                pcm.extend_from_slice(&p.map_err(db_err)?);
            }
            c.execute("UPDATE recordings SET open = 0 WHERE id = ?1", [id])
                .map_err(db_err)?;
            pcm
        };
        let out = hear(&pcm);
        let seconds = pcm_seconds(pcm.len());
        let (outcome, detail, done) = match &out {
            Ok(d) => (
                "ok",
                format!(
                    "audio recording engine={} speech_s={:.1}",
                    d.engine.as_str(),
                    d.speech_s
                ),
                true,
            ),
            Err(e) => (
                e.code.as_str(),
                format!("audio recording seconds={seconds:.1}"),
                e.code == Code::AudioNoSpeech,
            ),
        };
        self.tx(|c, log| {
            if done {
                c.execute("DELETE FROM recordings WHERE id = ?1", [id])
                    .map_err(db_err)?;
            }
            log.append(c, &entry(s, outcome, detail))
        })?;
        out
    }

    /// Deletes a kept recording the physician does not want heard.
    pub fn recording_discard(&self, s: &Session, id: &str) -> Result<()> {
        self.authorize(s, Action::Dictate, None)?;
        self.tx(|c, log| {
            let (_, bytes) = owned(c, s, id)?;
            c.execute("DELETE FROM recordings WHERE id = ?1", [id])
                .map_err(db_err)?;
            log.append(
                c,
                &entry(
                    s,
                    "ok",
                    format!("recording discarded seconds={:.1}", pcm_seconds(bytes)),
                ),
            )
        })
    }
}

/// A `recordings` row selected as `id, started_at_ms, bytes, open`.
fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Recording> {
    Ok(Recording {
        id: r.get(0)?,
        started_at: iso8601(r.get(1)?),
        seconds: pcm_seconds(r.get::<_, i64>(2)? as usize),
        open: r.get::<_, i64>(3)? != 0,
    })
}

fn recording(c: &Connection, id: &str) -> Result<Recording> {
    c.query_row(
        "SELECT id, started_at_ms, bytes, open FROM recordings WHERE id = ?1",
        [id],
        row,
    )
    .map_err(db_err)
}
