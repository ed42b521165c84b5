//! The window contract: what crosses Tauri IPC between the desktop app (`src-tauri`) and the window (`ui`).
//!
//! The window is compiled to wasm and cannot link karte-store (SQLCipher, the OS keyring), so the types it receives
//! used to be copied by hand into `ui/` and their states compared as strings. They live here instead, with serde and
//! karte-core as their only dependencies: the store, the app and the window compile against one definition, a field
//! or state added on one side is seen by the other at build time, and enums cross as enums. karte-store re-exports
//! them, so its own API is unchanged.
//!
//! The serde attributes are the wire format, and also the format of the CLI's JSON output and of stored values:
//! `tests/wire.rs` pins them.

pub mod audit;
pub mod auth;
pub mod engine;
pub mod outbox;
pub mod records;
pub mod voice;

pub use audit::{AuditEntry, AuditReport, BadEntry, Problem};
pub use auth::{Role, SignedIn, UserInfo};
pub use engine::{EngineStatus, Progress, Serving};
pub use outbox::{Halt, OutboxItem, OutboxState, QueueHealth, UploadOverview};
pub use records::{
    ClinicalDate, Decision, DocumentDraft, DocumentRequest, EncounterSummary, EncounterView,
    ReviewView, Signature, SignedNote, SuggestionView, VersionKind, VersionView,
};
pub use voice::{Dictated, HearingProgress, Recording, TranscriptionCorrection};

/// Tauri command names. Tauri takes a command's name from its handler function, so `src-tauri` checks at compile
/// time that each handler is named as below; the window calls by these constants, never by a literal.
pub mod command {
    pub const DRAFT: &str = "draft";
    pub const CANCEL_DRAFT: &str = "cancel_draft";
    pub const ENGINE_STATUS: &str = "engine_status";
    pub const RECONNECT_ENGINE: &str = "reconnect_engine";
    pub const LOGIN: &str = "login";
    pub const LOGOUT: &str = "logout";
    pub const SAVE_DRAFT: &str = "save_draft";
    pub const PATIENT_NOTES: &str = "patient_notes";
    pub const DRAFT_DOCUMENT: &str = "draft_document";
    pub const SAVE_DOCUMENT: &str = "save_document";
    pub const ENCOUNTERS: &str = "encounters";
    pub const ENCOUNTER: &str = "encounter";
    pub const REVIEW_SUGGESTION: &str = "review_suggestion";
    pub const SIGN_ENCOUNTER: &str = "sign_encounter";
    pub const USERS: &str = "users";
    pub const AUDIT_LOG: &str = "audit_log";
    pub const AUDIT_VERIFY: &str = "audit_verify";
    pub const UPLOAD_ITEMS: &str = "upload_items";
    pub const UPLOAD_RETRY: &str = "upload_retry";
    pub const UPLOAD_RESUME: &str = "upload_resume";
    pub const UPLOAD_OVERVIEW: &str = "upload_overview";
    /// The recording's bytes as the raw body of the call (not JSON: a 10-minute WAV is 19 MB).
    pub const TRANSCRIBE_AUDIO: &str = "transcribe_audio";
    /// Recording in the window: the audio is kept in the record store as it arrives (`RECORDING_APPEND`'s raw body
    /// is 16-bit PCM at `voice::CAPTURE_RATE`), so a crash or a closed window loses at most the last second.
    pub const RECORDING_START: &str = "recording_start";
    pub const RECORDING_APPEND: &str = "recording_append";
    pub const RECORDING_STOP: &str = "recording_stop";
    /// The signed-in physician's recordings that were never heard (left by a crash, or heard without success).
    pub const RECORDINGS_PENDING: &str = "recordings_pending";
    pub const RECORDING_TRANSCRIBE: &str = "recording_transcribe";
    pub const RECORDING_DISCARD: &str = "recording_discard";
}

/// Events the app emits to the window.
pub mod event {
    /// One [`Progress`] per step while drafting.
    pub const DRAFT_PROGRESS: &str = "draft-progress";
    /// An [`EngineStatus`] when the engine's status changed outside a command (the start-up preload ended).
    pub const ENGINE_STATUS: &str = "engine-status";
    /// How far the hearing of a recording is (`voice::HearingProgress`), after each part.
    pub const HEARING_PROGRESS: &str = "hearing-progress";
}

/// The desktop app's supervised worker (`karte-llm`'s `worker`) and `karte-server --local` (its `serve`): the two
/// ends of one protocol, spelled once.
pub mod worker {
    /// The one-time token, passed in the environment: argv is readable by every local user through `ps`.
    pub const TOKEN_ENV: &str = "KARTE_WORKER_TOKEN";
    /// The line the worker prints once bound, followed by `127.0.0.1:PORT`.
    pub const LISTENING_PREFIX: &str = "KARTE_SERVER_LISTENING ";
}
