//! The upload queue as the window and `karte queue` show it: one row per signed document (no clinical text) and the
//! queue's health. The queue itself is karte-store's, the uploader karte-sync's.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Waiting to be sent (or to be retried after a transient failure).
    Pending,
    /// The server has it.
    Sent,
    /// The server refused it (4xx): it waits for a person to fix the cause and retry.
    Failed,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sent => "sent",
            OutboxState::Failed => "failed",
        }
    }
    /// 送信待ち / 送信済み / 送信失敗: what the window shows.
    pub fn label_ja(self) -> &'static str {
        match self {
            OutboxState::Pending => "送信待ち",
            OutboxState::Sent => "送信済み",
            OutboxState::Failed => "送信失敗",
        }
    }
}

/// One queued document. No clinical text: safe to list for any role that may see the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    pub id: i64,
    pub encounter: String,
    pub version: i64,
    /// `urn:uuid:…`: Bundle.identifier and the idempotency key.
    pub bundle_id: String,
    /// The bundle this one replaces (an amendment of a signed note).
    pub replaces: Option<String>,
    pub state: OutboxState,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub next_attempt_ms: i64,
    /// Stable code of the last failure (`sync.rejected`, `sync.unreachable`…).
    pub last_code: Option<String>,
    /// The last failure's reason: the server's diagnostics for a refusal, else the transport's message.
    pub last_reason: Option<String>,
    pub http_status: Option<i64>,
    pub created_at: String,
    pub sent_at: Option<String>,
    /// A pending amendment held back because the document it replaces (this item id) is not sent yet: an amendment
    /// never overtakes its original (「前の版の送信を待っています」).
    #[serde(default)]
    pub held_by: Option<i64>,
}

/// Set when the server's certificate failed the pin or validation: nothing is sent until a person resumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Halt {
    pub code: String,
    pub message: String,
    pub at: String,
}

/// Counts and alerts for the admin view and `karte queue status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueHealth {
    pub pending: i64,
    pub failed: i64,
    pub sent: i64,
    /// Pending amendments held back behind an earlier version that is not sent (counted in `pending` too).
    #[serde(default)]
    pub held: i64,
    pub oldest_pending_at: Option<String>,
    pub last_sent_at: Option<String>,
    /// The last transient failure of the head of the queue (it is being retried with backoff).
    pub last_error: Option<String>,
    pub halted: Option<Halt>,
}

/// Queue health plus the background uploader's last problem (settings or credentials missing, a failed build):
/// what the admin view shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadOverview {
    pub health: QueueHealth,
    pub worker_error: Option<karte_core::Error>,
}
