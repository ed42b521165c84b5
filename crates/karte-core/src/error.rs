//! One error type for every boundary (CLI, Tauri IPC, HTTP).
//!
//! The `code` is stable and machine-matched (the UI switches on it, scripts grep for it); the `message` is Japanese,
//! says what the user can do, and never contains dictation text or other personal data: callers must only ever pass
//! sizes, names of models or files, and limits into it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Stable error codes. Never renumber or rename: add new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Code {
    #[serde(rename = "input.empty")]
    InputEmpty,
    #[serde(rename = "input.too_large")]
    InputTooLarge,
    #[serde(rename = "input.invalid_utf8")]
    InputInvalidUtf8,
    #[serde(rename = "input.unreadable")]
    InputUnreadable,
    #[serde(rename = "input.mapping_invalid")]
    MappingInvalid,
    #[serde(rename = "output.unwritable")]
    OutputUnwritable,
    #[serde(rename = "guard.target_missed")]
    TargetMissed,
    #[serde(rename = "model.unknown")]
    ModelUnknown,
    #[serde(rename = "model.not_found")]
    ModelNotFound,
    #[serde(rename = "model.truncated")]
    ModelTruncated,
    #[serde(rename = "model.checksum_mismatch")]
    ModelChecksumMismatch,
    #[serde(rename = "model.insufficient_memory")]
    ModelInsufficientMemory,
    #[serde(rename = "model.load_failed")]
    ModelLoadFailed,
    #[serde(rename = "model.fetch_failed")]
    ModelFetchFailed,
    #[serde(rename = "engine.failed")]
    EngineFailed,
    #[serde(rename = "engine.cancelled")]
    EngineCancelled,
    #[serde(rename = "engine.bad_output")]
    EngineBadOutput,
    #[serde(rename = "config.invalid")]
    ConfigInvalid,
    // karte-store: records, keyring, users and sign-in, audit log, feedback export.
    #[serde(rename = "keyring.unavailable")]
    StoreKeyringUnavailable,
    #[serde(rename = "store.key_missing")]
    StoreKeyMissing,
    #[serde(rename = "store.wrong_key")]
    StoreWrongKey,
    #[serde(rename = "store.corrupt")]
    StoreCorrupt,
    #[serde(rename = "store.newer_version")]
    StoreNewerVersion,
    #[serde(rename = "store.locked")]
    StoreLocked,
    #[serde(rename = "store.io")]
    StoreIo,
    #[serde(rename = "store.not_initialized")]
    StoreNotInitialized,
    #[serde(rename = "store.already_initialized")]
    StoreAlreadyInitialized,
    #[serde(rename = "auth.failed")]
    AuthFailed,
    #[serde(rename = "auth.locked_out")]
    AuthLockedOut,
    #[serde(rename = "auth.disabled")]
    AuthDisabled,
    #[serde(rename = "auth.totp_required")]
    AuthTotpRequired,
    #[serde(rename = "auth.totp_reused")]
    AuthTotpReused,
    #[serde(rename = "auth.session_expired")]
    AuthSessionExpired,
    #[serde(rename = "auth.forbidden")]
    AuthForbidden,
    #[serde(rename = "user.exists")]
    UserExists,
    #[serde(rename = "user.not_found")]
    UserNotFound,
    #[serde(rename = "user.invalid")]
    UserInvalid,
    #[serde(rename = "user.last_admin")]
    UserLastAdmin,
    #[serde(rename = "record.not_found")]
    RecordNotFound,
    #[serde(rename = "record.signed")]
    RecordSigned,
    #[serde(rename = "record.not_signed")]
    RecordNotSigned,
    #[serde(rename = "record.suggestion_not_found")]
    RecordSuggestionNotFound,
    #[serde(rename = "record.reason_required")]
    RecordReasonRequired,
    #[serde(rename = "audit.tampered")]
    AuditTampered,
    #[serde(rename = "feedback.pseudonymiser_missing")]
    FeedbackPseudonymiserMissing,
    #[serde(rename = "internal")]
    Internal,
    // karte-sync: the upload queue (and record.changed, karte-store's sign with an expected version).
    #[serde(rename = "record.changed")]
    RecordChanged,
    #[serde(rename = "sync.not_configured")]
    SyncNotConfigured,
    #[serde(rename = "sync.pin_mismatch")]
    SyncPinMismatch,
    #[serde(rename = "sync.cert_expired")]
    SyncCertExpired,
    #[serde(rename = "sync.cert_untrusted")]
    SyncCertUntrusted,
    #[serde(rename = "sync.client_cert_missing")]
    SyncClientCertMissing,
    #[serde(rename = "sync.client_cert_rejected")]
    SyncClientCertRejected,
    #[serde(rename = "sync.token_missing")]
    SyncTokenMissing,
    #[serde(rename = "sync.unauthorized")]
    SyncUnauthorized,
    #[serde(rename = "sync.rejected")]
    SyncRejected,
    #[serde(rename = "sync.server_error")]
    SyncServerError,
    #[serde(rename = "sync.unreachable")]
    SyncUnreachable,
    #[serde(rename = "sync.timeout")]
    SyncTimeout,
    #[serde(rename = "sync.halted")]
    SyncHalted,
    #[serde(rename = "sync.item_not_found")]
    SyncItemNotFound,
    // karte-server / karte-llm: clinic server, local worker, HTTP client and failover.
    #[serde(rename = "llm.unreachable")]
    LlmUnreachable,
    #[serde(rename = "llm.timeout")]
    LlmTimeout,
    #[serde(rename = "llm.protocol")]
    LlmProtocol,
    #[serde(rename = "llm.tls")]
    LlmTls,
    #[serde(rename = "server.unauthorized")]
    ServerUnauthorized,
    #[serde(rename = "server.forbidden")]
    ServerForbidden,
    #[serde(rename = "server.busy")]
    ServerBusy,
    #[serde(rename = "server.rate_limited")]
    ServerRateLimited,
    #[serde(rename = "server.not_ready")]
    ServerNotReady,
    #[serde(rename = "server.bad_request")]
    ServerBadRequest,
    #[serde(rename = "server.token_not_found")]
    ServerTokenNotFound,
    #[serde(rename = "server.store_failed")]
    ServerStoreFailed,
    // karte-server hardening (issue 24).
    /// The last active admin token cannot be revoked or demoted (HTTP 409).
    #[serde(rename = "server.last_admin")]
    ServerLastAdmin,
    /// A revoked token cannot be changed (HTTP 409).
    #[serde(rename = "server.token_revoked")]
    ServerTokenRevoked,
    /// The prompt plus `max_tokens` does not fit the model's context (HTTP 400, before the engine).
    #[serde(rename = "server.prompt_too_long")]
    ServerPromptTooLong,
    /// A `response_format` JSON schema over the server's size or alternatives caps (HTTP 400).
    #[serde(rename = "server.schema_too_complex")]
    ServerSchemaTooComplex,
    /// `--listen` on a non-loopback address without TLS and without `--insecure-plaintext`.
    #[serde(rename = "server.plaintext_refused")]
    ServerPlaintextRefused,
    // karte-server in front of OpenAI-compatible engines (issue 23). Prefixed `karte.` so that a client tells the
    // gateway's verdict from an error the upstream engine itself sent.
    /// No upstream engine answered (all out of rotation, or each failed before its first token): HTTP 503.
    #[serde(rename = "karte.upstream_unavailable")]
    UpstreamUnavailable,
    /// The upstream failed after part of the answer had streamed: the client gets this as the stream's last event.
    #[serde(rename = "karte.upstream_interrupted")]
    UpstreamInterrupted,
    /// An upstream URL in `--upstream` or `[serve] upstreams` is not an http(s) URL.
    #[serde(rename = "karte.upstream_invalid")]
    UpstreamInvalid,
    #[serde(rename = "worker.start_failed")]
    WorkerStartFailed,
    #[serde(rename = "worker.crashed")]
    WorkerCrashed,
    // karte-engine (issue 6: scheduling for many clients)
    /// The engine's request queue is full: try again shortly (HTTP 429 with Retry-After).
    #[serde(rename = "engine.busy")]
    EngineBusy,
    // karte-eval: candidate-model comparison (data sets, candidates, remote endpoints, canary kits).
    #[serde(rename = "eval.data_malformed")]
    EvalDataMalformed,
    #[serde(rename = "eval.candidate_invalid")]
    EvalCandidateInvalid,
    #[serde(rename = "eval.suite_unknown")]
    EvalSuiteUnknown,
    #[serde(rename = "eval.kit_invalid")]
    EvalKitInvalid,
    #[serde(rename = "eval.scoring_unsupported")]
    EvalScoringUnsupported,
    // karte-sync (session 4)
    /// The endpoint answers like a wrong address (3xx, 404, 405, 406, 415): the queue stops instead of refusing
    /// every document one by one; IT must check `[sync] endpoint` in the settings file.
    #[serde(rename = "sync.endpoint_invalid")]
    SyncEndpointInvalid,
    /// `queue retry` of a document the platform already has.
    #[serde(rename = "sync.already_sent")]
    SyncAlreadySent,
    /// No pseudonym key (or too short) in the keyring: IT installs the hospital's key.
    #[serde(rename = "sync.pseudonym_key_missing")]
    SyncPseudonymKeyMissing,
    /// The server's certificate is not valid yet: almost always the workstation's clock.
    #[serde(rename = "sync.cert_not_yet_valid")]
    SyncCertNotYetValid,
    // karte-store (session 6)
    /// `admin restore` of a file that this store's key does not open (another workstation's or data directory's
    /// backup) or that fails its integrity check: nothing was changed.
    #[serde(rename = "store.backup_invalid")]
    StoreBackupInvalid,
    // Document kinds (session 7)
    /// An unknown document kind, or an edit whose text does not fit the kind's headings.
    #[serde(rename = "input.document_invalid")]
    DocumentInvalid,
    // Clinical dates (issue 15)
    /// A clinical date that is not a calendar day written `YYYY-MM-DD`, lies after today, or a range whose start
    /// is after its end.
    #[serde(rename = "input.date_invalid")]
    DateInvalid,
    /// No signed note of the patient lies in the chosen date range (or the patient has no notes at all): there is
    /// nothing to build a summary or a letter from.
    #[serde(rename = "document.no_sources")]
    DocumentNoSources,
    /// An audio file karte-voice cannot decode (not WAV, FLAC, MP3 or M4A/AAC, or no samples).
    #[serde(rename = "audio.unsupported")]
    AudioUnsupported,
    /// The recording held no speech (silence or noise only): told apart from a failure so the physician records
    /// again rather than calling IT.
    #[serde(rename = "audio.no_speech")]
    AudioNoSpeech,
    /// Speech was there but no text came of it (every window dropped as a decoder loop).
    #[serde(rename = "audio.unrecognised")]
    AudioUnrecognised,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InputEmpty => "input.empty",
            Code::InputTooLarge => "input.too_large",
            Code::InputInvalidUtf8 => "input.invalid_utf8",
            Code::InputUnreadable => "input.unreadable",
            Code::MappingInvalid => "input.mapping_invalid",
            Code::OutputUnwritable => "output.unwritable",
            Code::TargetMissed => "guard.target_missed",
            Code::ModelUnknown => "model.unknown",
            Code::ModelNotFound => "model.not_found",
            Code::ModelTruncated => "model.truncated",
            Code::ModelChecksumMismatch => "model.checksum_mismatch",
            Code::ModelInsufficientMemory => "model.insufficient_memory",
            Code::ModelLoadFailed => "model.load_failed",
            Code::ModelFetchFailed => "model.fetch_failed",
            Code::EngineFailed => "engine.failed",
            Code::EngineCancelled => "engine.cancelled",
            Code::EngineBadOutput => "engine.bad_output",
            Code::ConfigInvalid => "config.invalid",
            Code::StoreKeyringUnavailable => "keyring.unavailable",
            Code::StoreKeyMissing => "store.key_missing",
            Code::StoreWrongKey => "store.wrong_key",
            Code::StoreCorrupt => "store.corrupt",
            Code::StoreNewerVersion => "store.newer_version",
            Code::StoreLocked => "store.locked",
            Code::StoreIo => "store.io",
            Code::StoreNotInitialized => "store.not_initialized",
            Code::StoreAlreadyInitialized => "store.already_initialized",
            Code::AuthFailed => "auth.failed",
            Code::AuthLockedOut => "auth.locked_out",
            Code::AuthDisabled => "auth.disabled",
            Code::AuthTotpRequired => "auth.totp_required",
            Code::AuthTotpReused => "auth.totp_reused",
            Code::AuthSessionExpired => "auth.session_expired",
            Code::AuthForbidden => "auth.forbidden",
            Code::UserExists => "user.exists",
            Code::UserNotFound => "user.not_found",
            Code::UserInvalid => "user.invalid",
            Code::UserLastAdmin => "user.last_admin",
            Code::RecordNotFound => "record.not_found",
            Code::RecordSigned => "record.signed",
            Code::RecordNotSigned => "record.not_signed",
            Code::RecordSuggestionNotFound => "record.suggestion_not_found",
            Code::RecordReasonRequired => "record.reason_required",
            Code::AuditTampered => "audit.tampered",
            Code::FeedbackPseudonymiserMissing => "feedback.pseudonymiser_missing",
            Code::Internal => "internal",
            Code::RecordChanged => "record.changed",
            Code::SyncNotConfigured => "sync.not_configured",
            Code::SyncPinMismatch => "sync.pin_mismatch",
            Code::SyncCertExpired => "sync.cert_expired",
            Code::SyncCertUntrusted => "sync.cert_untrusted",
            Code::SyncClientCertMissing => "sync.client_cert_missing",
            Code::SyncClientCertRejected => "sync.client_cert_rejected",
            Code::SyncTokenMissing => "sync.token_missing",
            Code::SyncUnauthorized => "sync.unauthorized",
            Code::SyncRejected => "sync.rejected",
            Code::SyncServerError => "sync.server_error",
            Code::SyncUnreachable => "sync.unreachable",
            Code::SyncTimeout => "sync.timeout",
            Code::SyncHalted => "sync.halted",
            Code::SyncItemNotFound => "sync.item_not_found",
            Code::LlmUnreachable => "llm.unreachable",
            Code::LlmTimeout => "llm.timeout",
            Code::LlmProtocol => "llm.protocol",
            Code::LlmTls => "llm.tls",
            Code::ServerUnauthorized => "server.unauthorized",
            Code::ServerForbidden => "server.forbidden",
            Code::ServerBusy => "server.busy",
            Code::ServerRateLimited => "server.rate_limited",
            Code::ServerNotReady => "server.not_ready",
            Code::ServerBadRequest => "server.bad_request",
            Code::ServerTokenNotFound => "server.token_not_found",
            Code::ServerStoreFailed => "server.store_failed",
            Code::ServerLastAdmin => "server.last_admin",
            Code::ServerTokenRevoked => "server.token_revoked",
            Code::ServerPromptTooLong => "server.prompt_too_long",
            Code::ServerSchemaTooComplex => "server.schema_too_complex",
            Code::ServerPlaintextRefused => "server.plaintext_refused",
            Code::UpstreamUnavailable => "karte.upstream_unavailable",
            Code::UpstreamInterrupted => "karte.upstream_interrupted",
            Code::UpstreamInvalid => "karte.upstream_invalid",
            Code::WorkerStartFailed => "worker.start_failed",
            Code::WorkerCrashed => "worker.crashed",
            Code::EngineBusy => "engine.busy",
            Code::EvalDataMalformed => "eval.data_malformed",
            Code::EvalCandidateInvalid => "eval.candidate_invalid",
            Code::EvalSuiteUnknown => "eval.suite_unknown",
            Code::EvalKitInvalid => "eval.kit_invalid",
            Code::EvalScoringUnsupported => "eval.scoring_unsupported",
            Code::SyncEndpointInvalid => "sync.endpoint_invalid",
            Code::SyncAlreadySent => "sync.already_sent",
            Code::SyncPseudonymKeyMissing => "sync.pseudonym_key_missing",
            Code::SyncCertNotYetValid => "sync.cert_not_yet_valid",
            Code::StoreBackupInvalid => "store.backup_invalid",
            Code::DocumentInvalid => "input.document_invalid",
            Code::DateInvalid => "input.date_invalid",
            Code::DocumentNoSources => "document.no_sources",
            Code::AudioUnsupported => "audio.unsupported",
            Code::AudioNoSpeech => "audio.no_speech",
            Code::AudioUnrecognised => "audio.unrecognised",
        }
    }

    /// Process exit status for the CLI: 2 is bad input the user can fix, 3 a model problem, 4 sign-in or permission,
    /// 5 the record store or keyring, 1 anything else (including a broken audit chain).
    pub fn exit_status(self) -> u8 {
        match self {
            Code::InputEmpty
            | Code::InputTooLarge
            | Code::InputInvalidUtf8
            | Code::InputUnreadable
            | Code::MappingInvalid
            | Code::DocumentInvalid
            | Code::DateInvalid
            | Code::DocumentNoSources
            | Code::AudioUnsupported
            | Code::AudioNoSpeech
            | Code::AudioUnrecognised => 2,
            Code::ModelUnknown
            | Code::ModelNotFound
            | Code::ModelTruncated
            | Code::ModelChecksumMismatch
            | Code::ModelInsufficientMemory
            | Code::ModelLoadFailed
            | Code::ModelFetchFailed => 3,
            Code::UserExists
            | Code::UserNotFound
            | Code::UserInvalid
            | Code::UserLastAdmin
            | Code::RecordNotFound
            | Code::RecordSigned
            | Code::RecordNotSigned
            | Code::RecordSuggestionNotFound
            | Code::RecordReasonRequired
            | Code::ServerBadRequest
            | Code::ServerTokenNotFound
            | Code::ServerLastAdmin
            | Code::ServerTokenRevoked
            | Code::ServerPromptTooLong
            | Code::ServerSchemaTooComplex
            | Code::ServerPlaintextRefused
            | Code::UpstreamInvalid => 2,
            Code::AuthFailed
            | Code::AuthLockedOut
            | Code::AuthDisabled
            | Code::AuthTotpRequired
            | Code::AuthTotpReused
            | Code::AuthSessionExpired
            | Code::AuthForbidden
            | Code::ServerUnauthorized
            | Code::ServerForbidden => 4,
            Code::StoreKeyringUnavailable
            | Code::StoreKeyMissing
            | Code::StoreWrongKey
            | Code::StoreCorrupt
            | Code::StoreNewerVersion
            | Code::StoreLocked
            | Code::StoreIo
            | Code::StoreNotInitialized
            | Code::StoreAlreadyInitialized => 5,
            Code::RecordChanged | Code::SyncItemNotFound => 2,
            Code::SyncNotConfigured
            | Code::SyncPinMismatch
            | Code::SyncCertExpired
            | Code::SyncCertUntrusted
            | Code::SyncClientCertMissing
            | Code::SyncClientCertRejected
            | Code::SyncTokenMissing
            | Code::SyncUnauthorized
            | Code::SyncRejected
            | Code::SyncServerError
            | Code::SyncUnreachable
            | Code::SyncTimeout
            | Code::SyncHalted => 6,
            Code::EvalDataMalformed
            | Code::EvalCandidateInvalid
            | Code::EvalSuiteUnknown
            | Code::EvalKitInvalid => 2,
            Code::EvalScoringUnsupported => 3,
            Code::SyncAlreadySent => 2,
            Code::SyncEndpointInvalid
            | Code::SyncPseudonymKeyMissing
            | Code::SyncCertNotYetValid => 6,
            Code::StoreBackupInvalid => 5,
            _ => 1,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{code, message}`: the shape that crosses Tauri IPC and HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} [{code}]")]
pub struct Error {
    pub code: Code,
    pub message: String,
}

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod server_code_tests {
    use super::Code;

    /// karte-server / karte-llm codes cross HTTP, and karte-sync's cross the CLI and Tauri IPC, as strings: the serde
    /// name, `as_str` and the exit status agree.
    #[test]
    fn server_llm_and_sync_codes_round_trip_as_their_strings() {
        let table: &[(Code, &str, u8)] = &[
            (Code::LlmUnreachable, "llm.unreachable", 1),
            (Code::LlmTimeout, "llm.timeout", 1),
            (Code::LlmProtocol, "llm.protocol", 1),
            (Code::LlmTls, "llm.tls", 1),
            (Code::ServerUnauthorized, "server.unauthorized", 4),
            (Code::ServerForbidden, "server.forbidden", 4),
            (Code::ServerBusy, "server.busy", 1),
            (Code::ServerRateLimited, "server.rate_limited", 1),
            (Code::ServerNotReady, "server.not_ready", 1),
            (Code::ServerBadRequest, "server.bad_request", 2),
            (Code::ServerTokenNotFound, "server.token_not_found", 2),
            (Code::ServerStoreFailed, "server.store_failed", 1),
            (Code::ServerLastAdmin, "server.last_admin", 2),
            (Code::ServerTokenRevoked, "server.token_revoked", 2),
            (Code::ServerPromptTooLong, "server.prompt_too_long", 2),
            (Code::ServerSchemaTooComplex, "server.schema_too_complex", 2),
            (Code::ServerPlaintextRefused, "server.plaintext_refused", 2),
            (Code::InputTooLarge, "input.too_large", 2),
            (Code::WorkerStartFailed, "worker.start_failed", 1),
            (Code::UpstreamUnavailable, "karte.upstream_unavailable", 1),
            (Code::UpstreamInterrupted, "karte.upstream_interrupted", 1),
            (Code::UpstreamInvalid, "karte.upstream_invalid", 2),
            (Code::WorkerCrashed, "worker.crashed", 1),
            (Code::SyncEndpointInvalid, "sync.endpoint_invalid", 6),
            (Code::SyncAlreadySent, "sync.already_sent", 2),
            (
                Code::SyncPseudonymKeyMissing,
                "sync.pseudonym_key_missing",
                6,
            ),
            (Code::SyncCertNotYetValid, "sync.cert_not_yet_valid", 6),
            (Code::StoreBackupInvalid, "store.backup_invalid", 5),
            (Code::DocumentInvalid, "input.document_invalid", 2),
            (Code::DateInvalid, "input.date_invalid", 2),
            (Code::DocumentNoSources, "document.no_sources", 2),
            (Code::AudioUnsupported, "audio.unsupported", 2),
            (Code::AudioNoSpeech, "audio.no_speech", 2),
            (Code::AudioUnrecognised, "audio.unrecognised", 2),
        ];
        for (code, s, exit) in table {
            assert_eq!(code.as_str(), *s);
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(s));
            assert_eq!(
                serde_json::from_value::<Code>(serde_json::json!(s)).unwrap(),
                *code
            );
            assert_eq!(code.exit_status(), *exit, "{s}");
        }
    }
}
