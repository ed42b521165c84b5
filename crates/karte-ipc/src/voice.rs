//! Dictation audio in the window: what a recording becomes before it lands in the dictation box.

use karte_core::EngineKind;
use serde::{Deserialize, Serialize};

/// The largest recording one transcription takes (the body limit of `/v1/audio/transcriptions`, and what the app
/// accepts before sending anything): about 17 minutes of 16 kHz 16-bit mono WAV, past the 10-minute dictations wards
/// make. One number, so the window, the app and the server refuse the same files.
pub const MAX_AUDIO_BYTES: usize = 32 * 1024 * 1024;

/// A recording's transcript, for the dictation box. Empty results never get here: a recording without speech is
/// the `audio.no_speech` error, so the box is never silently cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dictated {
    /// What was said, as recognised (the physician edits it in the box before drafting).
    pub text: String,
    /// Where the audio was heard: the clinic server, or this workstation's worker.
    pub engine: EngineKind,
    /// The recording's length and how much of it was speech, in seconds.
    pub duration_s: f64,
    pub speech_s: f64,
}
