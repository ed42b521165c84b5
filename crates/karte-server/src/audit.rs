//! The server's audit trail: who asked for an answer and how it ended, and every administrator act, in
//! `<data_dir>/audit.jsonl`. A hospital must be able to say which workstation or user drew which answers and when,
//! and that the record was not edited afterwards, without the record itself becoming a second store of clinical
//! text: so an entry names the token (id and name), sizes, the finish reason, the guard's categories and an error
//! code, never a prompt or an answer.
//!
//! Tamper evidence: each line carries the SHA-256 of the previous line and its own hash over both, so editing,
//! reordering or removing a line inside the file breaks the chain at that line ([`verify`]). Cutting lines off the
//! end is only visible against a copy of a later head: the last hash is also written to the ordinary log at start-up
//! and shutdown, which IT ships elsewhere.
//!
//! The local worker keeps no trail: its one client is the desktop, whose own audit log records the drafting.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use karte_core::{Code, Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const FILE_NAME: &str = "audit.jsonl";
/// The previous hash of the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened. Every field is an identifier, a count or a code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// One chat answer, however it ended.
    Chat {
        request: String,
        /// The token's id and the name the administrator gave it (a workstation or user id, e.g. `ward3-pc07`).
        caller: String,
        caller_name: String,
        model: String,
        prompt_tokens: u32,
        generated_tokens: u32,
        /// `stop`, `length`, `content_filter`, `cancelled` (the client went away) or `error`.
        finish: String,
        /// The error's code when `finish` is `error`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Guard categories that withheld or flagged a sentence of this answer.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        guard: Vec<String>,
    },
    /// One transcription (`/v1/audio/transcriptions`): how long the audio was and how much of it was speech,
    /// never what was said.
    Transcription {
        request: String,
        caller: String,
        caller_name: String,
        model: String,
        audio_ms: u64,
        speech_ms: u64,
        segments: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A management act: token created, revoked or changed, log level changed.
    Admin {
        admin: String,
        action: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
    },
    /// The server started or stopped (and in which mode), so that a gap in the trail can be told from silence;
    /// at start in upstream mode, which upstream credentials were loaded (fingerprints, never secrets).
    Server {
        action: String,
        mode: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credentials: Option<String>,
    },
}

/// One line of the file.
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    seq: u64,
    unix: u64,
    #[serde(flatten)]
    event: Event,
    prev: String,
    hash: String,
}

fn hash_of(prev: &str, seq: u64, unix: u64, event: &Event) -> String {
    // The event's own JSON (field order fixed by the type) after the previous hash: what is chained is exactly
    // what the line says.
    let body = serde_json::to_string(event).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(seq.to_le_bytes());
    h.update(unix.to_le_bytes());
    h.update(body.as_bytes());
    hex::encode(h.finalize())
}

fn unusable(path: &Path) -> Error {
    Error::new(
        Code::StoreIo,
        format!(
            "監査ログ {} に書き込めません。ディスクの空きと権限を確認してください。",
            path.display()
        ),
    )
}

struct Tail {
    file: File,
    seq: u64,
    head: String,
}

/// The open trail; `None` inside for the local worker.
pub struct Audit {
    path: Option<PathBuf>,
    tail: Mutex<Option<Tail>>,
}

impl Audit {
    /// No trail (the local worker).
    pub fn none() -> Self {
        Audit {
            path: None,
            tail: Mutex::new(None),
        }
    }

    /// Opens (or creates, mode 0600) `<dir>/audit.jsonl` and checks the chain so far: a broken chain stops the
    /// start-up, since appending to it would hide where it was broken.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(FILE_NAME);
        let (seq, head) = if path.exists() {
            verify(&path)?
        } else {
            (0, GENESIS.to_string())
        };
        let mut o = OpenOptions::new();
        o.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let file = o.open(&path).map_err(|_| unusable(&path))?;
        Ok(Audit {
            path: Some(path),
            tail: Mutex::new(Some(Tail { file, seq, head })),
        })
    }

    /// The hash of the last entry (what IT compares against a shipped copy).
    pub fn head(&self) -> Option<String> {
        let t = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        t.as_ref().map(|t| t.head.clone())
    }

    /// Appends one entry. A failed write is logged and counted by the caller's metrics, never fatal to the
    /// answer: a full disk must not stop the ward's drafting, and the gap shows in the chain's sequence numbers.
    pub fn record(&self, event: Event) -> Result<()> {
        let mut guard = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let Some(t) = guard.as_mut() else {
            return Ok(());
        };
        let seq = t.seq + 1;
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let hash = hash_of(&t.head, seq, unix, &event);
        let line = Line {
            seq,
            unix,
            event,
            prev: t.head.clone(),
            hash: hash.clone(),
        };
        let mut text = serde_json::to_string(&line).map_err(|_| unusable(self.path()))?;
        text.push('\n');
        // One write per line, no fsync: the answer does not wait on the disk; a crash may lose the last lines,
        // which the chain's sequence numbers then show as the end, not as a gap.
        t.file
            .write_all(text.as_bytes())
            .map_err(|_| unusable(self.path()))?;
        t.seq = seq;
        t.head = hash;
        Ok(())
    }

    fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(FILE_NAME))
    }
}

/// Checks every line's chain; returns the last sequence number and hash. The error names the first broken line.
pub fn verify(path: &Path) -> Result<(u64, String)> {
    let f = File::open(path).map_err(|_| unusable(path))?;
    let mut head = GENESIS.to_string();
    let mut seq = 0u64;
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let broken = || {
            Error::new(
                Code::AuditTampered,
                format!(
                    "監査ログ {} の {} 行目で記録の連続性が壊れています（編集・削除・並べ替えの可能性）。ファイルをそのまま保全し、管理者に連絡してください。",
                    path.display(),
                    i + 1
                ),
            )
        };
        let line = line.map_err(|_| broken())?;
        let l: Line = serde_json::from_str(&line).map_err(|_| broken())?;
        if l.seq != seq + 1 || l.prev != head || hash_of(&l.prev, l.seq, l.unix, &l.event) != l.hash
        {
            return Err(broken());
        }
        seq = l.seq;
        head = l.hash;
    }
    Ok((seq, head))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(caller: &str) -> Event {
        Event::Chat {
            request: "chatcmpl-1".into(),
            caller: caller.into(),
            caller_name: "ward3-pc07".into(),
            model: "m".into(),
            prompt_tokens: 120,
            generated_tokens: 40,
            finish: "stop".into(),
            error: None,
            guard: vec![],
        }
    }

    #[test]
    fn the_chain_survives_a_restart_and_any_edit_breaks_it_at_that_line() {
        let dir = tempfile::tempdir().unwrap();
        let a = Audit::open(dir.path()).unwrap();
        a.record(chat("tok-a")).unwrap();
        a.record(Event::Admin {
            admin: "adm".into(),
            action: "token_revoked".into(),
            target: Some("tok-a".into()),
        })
        .unwrap();
        let head = a.head().unwrap();
        drop(a);
        // Reopened: the chain goes on from the same head.
        let a = Audit::open(dir.path()).unwrap();
        assert_eq!(a.head().unwrap(), head);
        a.record(chat("tok-b")).unwrap();
        drop(a);
        let path = dir.path().join(FILE_NAME);
        assert_eq!(verify(&path).unwrap().0, 3);

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let edits = [
            ("a changed caller", text.replacen("tok-b", "tok-x", 1)),
            ("a removed line", format!("{}\n{}\n", lines[0], lines[2])),
            (
                "two lines swapped",
                format!("{}\n{}\n{}\n", lines[1], lines[0], lines[2]),
            ),
        ];
        for (what, edited) in edits {
            std::fs::write(&path, edited).unwrap();
            let e = verify(&path).unwrap_err();
            assert_eq!(e.code, Code::AuditTampered, "{what}");
            // A broken chain also stops the server from appending to it.
            assert!(Audit::open(dir.path()).is_err(), "{what}");
        }
    }
}
