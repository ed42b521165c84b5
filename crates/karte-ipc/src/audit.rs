//! The audit log as it is exported and shown: entries, and what verification of the hash chain found. The chain
//! itself (hashing, appending, verifying) is karte-store's.

use serde::{Deserialize, Serialize};

/// One audit entry as stored and exported. `ts` is derived from `ts_ms` for readers; the hash covers `ts_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub ts_ms: i64,
    pub ts: String,
    /// The signed-in (or attempting) user; `None` when the name given matched no account.
    pub user: Option<String>,
    pub role: Option<String>,
    /// Stable action name, e.g. `login`, `record_view`, `record_sign`, `user_add`.
    pub action: String,
    pub encounter: Option<String>,
    pub version: Option<i64>,
    /// `ok`, `denied` (the matrix said no), `failed` (bad credentials), `locked`, `expired`.
    pub outcome: String,
    pub workstation: String,
    /// Non-clinical particulars: a suggestion number and decision, a content hash, a reason code.
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Why verification stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// The entry's fields do not give its stored hash: it was edited, or put in another position.
    HashMismatch,
    /// The entry does not link to the hash of the entry before it.
    BrokenLink,
    /// No entry has this sequence number although later ones exist (deleted), or the chain ends before the head
    /// recorded in the keyring (newest entries deleted).
    Missing,
    /// The entry at the keyring's head position is not the one the head recorded (rewritten or replaced).
    HeadMismatch,
    /// The keyring holds no chain head although the log has entries.
    HeadMissing,
}

impl Problem {
    /// The serde name: stable, for scripts and tests.
    pub fn as_str(&self) -> &'static str {
        match self {
            Problem::HashMismatch => "hash_mismatch",
            Problem::BrokenLink => "broken_link",
            Problem::Missing => "missing",
            Problem::HeadMismatch => "head_mismatch",
            Problem::HeadMissing => "head_missing",
        }
    }
    pub fn label_ja(&self) -> &'static str {
        match self {
            Problem::HashMismatch => "内容がハッシュと一致しません（改変または並べ替え）",
            Problem::BrokenLink => "直前の項目のハッシュとつながっていません（挿入または削除）",
            Problem::Missing => "項目がありません（削除）",
            Problem::HeadMismatch => {
                "キーリングに記録した最新項目と一致しません（末尾の削除または書き換え）"
            }
            Problem::HeadMissing => "キーリングに最新項目の記録がありません",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadEntry {
    pub seq: i64,
    pub problem: Problem,
}

/// Result of `karte audit verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Entries read.
    pub entries: i64,
    /// The keyring's head `(seq)` the chain was checked against.
    pub head_seq: Option<i64>,
    /// The first bad entry, `None` when the chain is intact.
    pub first_bad: Option<BadEntry>,
}

impl AuditReport {
    pub fn intact(&self) -> bool {
        self.first_bad.is_none()
    }
}
