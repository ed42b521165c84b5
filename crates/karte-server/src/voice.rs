//! Speech to text behind `POST /v1/audio/transcriptions`, in every mode: the workstation's worker (so that a crash
//! of the recogniser takes the worker down, never the app) and the clinic server (so that a ward PC without the CPU
//! for it can send its recording inside the hospital network).
//!
//! The recogniser is loaded on the first request, not at start: most workers never hear a recording, and loading
//! Whisper costs a second and 300 MB. One transcription runs at a time; it takes every core, so a second one at the
//! same time would only make both slower.

use std::sync::{Arc, Mutex};

use karte_core::{Code, Error, Result};
use karte_llm::openai::{
    Transcription, TranscriptionCorrection, TranscriptionSegment, VerboseTranscription,
};
use karte_voice::{Options, Recogniser, Transcript};

/// Model names a client may ask for: Karte's own and OpenAI's, so that scripts written for OpenAI work unchanged.
const MODEL_NAMES: [&str; 2] = [karte_voice::MODEL, "whisper-1"];

/// Largest upload: the recording (`MAX_AUDIO_BYTES`, 32 MiB, about 17 minutes of 16 kHz 16-bit mono: a 10-minute
/// dictation fits; a 48 kHz stereo recording of that length does not and should be sent as 16 kHz mono) plus the
/// form's other fields, so a recording the workstation accepts is never refused here.
pub const AUDIO_BODY_LIMIT: usize = karte_ipc::voice::MAX_AUDIO_BYTES + 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    Json,
    Text,
    VerboseJson,
}

/// A transcription request as the multipart form carried it. No `Debug`: it holds the recording and the prompt
/// (which may name the patient), and a `{:?}` in a log or a panic message would print them.
#[derive(Default)]
pub struct TranscriptionRequest {
    pub file: Option<Vec<u8>>,
    pub model: Option<String>,
    pub language: Option<String>,
    pub prompt: Option<String>,
    pub response_format: Option<String>,
}

/// What a transcription answers, in the form the client asked for.
pub enum TranscriptionAnswer {
    Json(Transcription),
    Text(String),
    Verbose(VerboseTranscription),
}

fn bad(msg: impl Into<String>) -> Error {
    Error::new(Code::ServerBadRequest, msg)
}

impl TranscriptionRequest {
    /// Checks everything but the audio itself; the messages name the field and what it may be, never its value
    /// beyond the names Karte knows.
    fn check(&self) -> Result<ResponseFormat> {
        if self.file.as_ref().is_none_or(|f| f.is_empty()) {
            return Err(bad("file（音声ファイル）がありません"));
        }
        if let Some(m) = self.model.as_deref() {
            if !MODEL_NAMES.contains(&m) {
                return Err(Error::new(
                    Code::ModelUnknown,
                    format!(
                        "model は {} のいずれかにしてください",
                        MODEL_NAMES.join("、")
                    ),
                ));
            }
        }
        if let Some(l) = self.language.as_deref() {
            if !matches!(l, "ja" | "japanese") {
                return Err(bad("language は ja のみ対応しています（日本語の口述）"));
            }
        }
        match self.response_format.as_deref().unwrap_or("json") {
            "json" => Ok(ResponseFormat::Json),
            "text" => Ok(ResponseFormat::Text),
            "verbose_json" => Ok(ResponseFormat::VerboseJson),
            _ => Err(bad(
                "response_format は json、text、verbose_json のいずれかにしてください",
            )),
        }
    }
}

/// The process's one recogniser, loaded on first use.
#[derive(Default, Clone)]
pub struct Voice {
    rec: Arc<Mutex<Option<Recogniser>>>,
}

impl Voice {
    /// Decodes the upload, transcribes it and shapes the answer. Runs on a blocking thread: decoding takes seconds
    /// per window and must not stall the runtime's workers, which also serve health probes and other requests.
    pub async fn transcribe(
        &self,
        req: TranscriptionRequest,
    ) -> Result<(TranscriptionAnswer, Transcript)> {
        let format = req.check()?;
        let rec = Arc::clone(&self.rec);
        let task = tokio::task::spawn_blocking(move || -> Result<Transcript> {
            let pcm = karte_voice::audio::bytes_16k_mono(req.file.as_deref().unwrap_or_default())?;
            let mut guard = rec.lock().unwrap_or_else(|p| p.into_inner());
            if guard.is_none() {
                *guard = Some(Recogniser::load_default()?);
            }
            let rec = guard.as_mut().expect("loaded above");
            // The client's prompt (a previous chunk's text, a ward's words) comes after the lexicon terms: Whisper
            // weighs the newest prompt tokens most.
            let prompt = req
                .prompt
                .filter(|p| !p.trim().is_empty())
                .map(|p| format!("{}{p}", karte_voice::lexicon_prompt()));
            rec.transcribe_pcm(
                &pcm,
                &Options {
                    prompt,
                    ..Options::default()
                },
            )
        });
        let t = task.await.map_err(|_| {
            Error::new(
                Code::EngineFailed,
                "音声認識が異常終了しました。もう一度お試しください。",
            )
        })??;
        let answer = match format {
            ResponseFormat::Json => TranscriptionAnswer::Json(Transcription {
                text: t.text.clone(),
            }),
            ResponseFormat::Text => TranscriptionAnswer::Text(t.text.clone()),
            ResponseFormat::VerboseJson => TranscriptionAnswer::Verbose(verbose(&t)),
        };
        Ok((answer, t))
    }
}

/// OpenAI's `verbose_json` of a transcript. `seek` is the segment's start in Whisper's 10 ms frames, as OpenAI
/// reports it.
pub fn verbose(t: &Transcript) -> VerboseTranscription {
    VerboseTranscription {
        task: "transcribe".into(),
        language: "japanese".into(),
        duration: t.duration_s,
        text: t.text.clone(),
        segments: t
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| TranscriptionSegment {
                id: i as u32,
                seek: (s.start_s * 100.0).round() as u32,
                start: s.start_s,
                end: s.end_s,
                text: s.text.clone(),
                tokens: Vec::new(),
                temperature: 0.0,
                avg_logprob: s.avg_logprob,
                compression_ratio: 0.0,
                no_speech_prob: s.no_speech_prob,
            })
            .collect(),
        engine: Some(t.engine.clone()),
        speech_seconds: Some(t.speech_s),
        corrections: Some(
            t.corrections
                .iter()
                .map(|c| TranscriptionCorrection {
                    from: c.from.clone(),
                    to: c.to.clone(),
                    at: c.at,
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(f: impl FnOnce(&mut TranscriptionRequest)) -> TranscriptionRequest {
        let mut r = TranscriptionRequest {
            file: Some(vec![1]),
            ..Default::default()
        };
        f(&mut r);
        r
    }

    #[test]
    fn form_fields_are_checked_with_messages_that_name_the_field() {
        let cases: Vec<(
            TranscriptionRequest,
            std::result::Result<ResponseFormat, Code>,
        )> = vec![
            (req(|_| {}), Ok(ResponseFormat::Json)),
            (
                req(|r| {
                    r.model = Some("whisper-1".into());
                    r.language = Some("ja".into());
                    r.response_format = Some("verbose_json".into());
                }),
                Ok(ResponseFormat::VerboseJson),
            ),
            (
                req(|r| r.response_format = Some("text".into())),
                Ok(ResponseFormat::Text),
            ),
            (req(|r| r.file = None), Err(Code::ServerBadRequest)),
            (
                req(|r| r.file = Some(Vec::new())),
                Err(Code::ServerBadRequest),
            ),
            (
                req(|r| r.model = Some("gpt-4o-transcribe".into())),
                Err(Code::ModelUnknown),
            ),
            (
                req(|r| r.language = Some("en".into())),
                Err(Code::ServerBadRequest),
            ),
            (
                req(|r| r.response_format = Some("srt".into())),
                Err(Code::ServerBadRequest),
            ),
        ];
        for (i, (r, want)) in cases.into_iter().enumerate() {
            let got = r.check().map_err(|e| e.code);
            assert_eq!(got, want, "case {i}");
        }
        let e = req(|r| r.model = Some("山田さんの録音".into()))
            .check()
            .unwrap_err();
        assert!(!e.message.contains("山田"), "{}", e.message);
    }
}
