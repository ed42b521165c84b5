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
    #[serde(rename = "internal")]
    Internal,
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
            Code::Internal => "internal",
        }
    }

    /// Process exit status for the CLI: 2 is bad input the user can fix, 3 a model problem, 1 anything else.
    pub fn exit_status(self) -> u8 {
        match self {
            Code::InputEmpty
            | Code::InputTooLarge
            | Code::InputInvalidUtf8
            | Code::InputUnreadable
            | Code::MappingInvalid => 2,
            Code::ModelUnknown
            | Code::ModelNotFound
            | Code::ModelTruncated
            | Code::ModelChecksumMismatch
            | Code::ModelInsufficientMemory
            | Code::ModelLoadFailed
            | Code::ModelFetchFailed => 3,
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
