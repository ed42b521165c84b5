//! The drafting API. Every front end (CLI, Tauri commands, later the HTTP server) calls [`Drafter::draft`] and
//! nothing else, so behaviour cannot drift between them.
//!
//! Drafting is verification-first: the deterministic floor (karte-core) always runs; the model only rephrases the
//! floor's items, and its answer is checked and merged back. If the model fails in a way that is not the user's to
//! fix (bad JSON, prompt too long), the floor draft is returned with the reason, so a physician always gets a
//! usable, grounded draft.

use karte_core::phrase;
use karte_core::pipeline::floor_sections;
use karte_core::{Code, DraftOutput, EngineInfo, Flag, Result, Sections, Sentence};
use karte_guard::Dictation;
pub use karte_ipc::{Dictated, EngineStatus, HearingProgress, Progress};
use karte_llm::{
    CancelToken, ChatEngine, ChatMessage, ChatRequest, EngineKind, FinishReason, Heard, Piece,
    Workstation,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Options a caller may set per draft.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DraftOptions {
    /// Skip the model: the deterministic, fully grounded floor draft only.
    pub no_llm: bool,
    /// The document kind to draft (`assets/documents/<kind>.toml`); the progress note when not given.
    #[serde(default)]
    pub kind: Option<String>,
}

/// An empty recording, or one over [`karte_ipc::voice::MAX_AUDIO_BYTES`], is refused before anything is sent.
pub fn check_audio_size(len: usize) -> Result<()> {
    if len == 0 {
        return Err(karte_core::Error::new(
            Code::InputEmpty,
            "音声ファイルが空です。録音し直すか、別のファイルを選んでください。",
        ));
    }
    if len > karte_ipc::voice::MAX_AUDIO_BYTES {
        return Err(karte_core::Error::new(
            Code::InputTooLarge,
            "音声ファイルが大きすぎます（32 MB まで）。16 kHz モノラルで録音するか、分けて読み込んでください。",
        ));
    }
    Ok(())
}

/// The text a recording gave, or why there is none: no speech at all (silence, noise) is told apart from speech
/// that gave no text, because the physician's next step differs (check the microphone, or say it again).
pub fn dictation_text(text: &str, speech_seconds: Option<f64>) -> Result<String> {
    let text = text.trim();
    if !text.is_empty() {
        return Ok(text.to_string());
    }
    if speech_seconds.is_some_and(|s| s > 0.0) {
        Err(karte_core::Error::new(
            Code::AudioUnrecognised,
            "音声はありましたが、文字にできませんでした。はっきり録音し直すか、入力してください。",
        ))
    } else {
        Err(karte_core::Error::new(
            Code::AudioNoSpeech,
            "音声が検出されませんでした（無音・雑音のみ）。マイクを確認して録音し直してください。",
        ))
    }
}

fn stage(progress: &mut dyn FnMut(Progress), stage: &str, message: &str) {
    progress(Progress::Stage {
        stage: stage.into(),
        message: message.into(),
    });
}

/// Drafts with one chat engine. `Drafter` is `Send + Sync`; concurrent drafts share the engine.
///
/// The engine is always given: this crate does not link llama.cpp (karte-engine), so the desktop app, which drafts
/// only through its worker process, does not either. A model in this process comes from where karte-engine is a
/// dependency (the CLI, karte-eval, karte-server) as karte-engine's `Engine` or `LazyEngine`.
pub struct Drafter {
    /// The configured model's manifest name or file, shown until the engine has named the model it ran.
    model_spec: Option<String>,
    engine: Arc<dyn ChatEngine>,
    /// The workstation the engine came from: its settings problem, server re-check and worker shutdown.
    workstation: Option<Arc<Workstation>>,
    /// The model that produced the last draft, as the engine named it (the clinic server's may differ from ours).
    last_model: Mutex<Option<String>>,
    last_tps: Mutex<Option<f64>>,
    current: Mutex<Option<CancelToken>>,
}

impl Drafter {
    /// Draft with `engine`, which serves `model` (a manifest name or a GGUF path; `None`: the manifest's default),
    /// the name the status shows before the first draft.
    pub fn new(engine: Arc<dyn ChatEngine>, model: Option<String>) -> Self {
        Drafter {
            model_spec: model,
            engine,
            workstation: None,
            last_model: Mutex::new(None),
            last_tps: Mutex::new(None),
            current: Mutex::new(None),
        }
    }

    /// Draft with a chat engine the caller already holds (an OpenAI-compatible server, or a local engine the
    /// caller also uses elsewhere, as the evaluation does): the prompt, grammar, merge and guard are the same for
    /// every engine.
    pub fn with_engine(engine: Arc<dyn ChatEngine>) -> Self {
        Self::new(engine, None)
    }

    /// Draft with this workstation's engine (clinic server or supervised local worker, from the settings file):
    /// what the desktop app does.
    pub fn for_workstation(ws: Arc<Workstation>) -> Self {
        let mut d = Self::new(ws.engine(), ws.model().map(str::to_string));
        d.workstation = Some(ws);
        d
    }

    /// The drafter of a one-shot command (`karte draft`): with a clinic server in the settings file, this
    /// workstation's engine (the server when it answers, else the local worker beside the `karte` binary); without
    /// one, `in_process` of the model name, a model in this process (a crash costs only the command). `model`
    /// (`--model`) wins over the settings' `model.name`. An unusable settings file is an error here: a command has
    /// no window to show it in.
    pub fn for_command_line(
        model: Option<String>,
        in_process: impl FnOnce(Option<String>) -> Arc<dyn ChatEngine>,
    ) -> Result<Self> {
        let settings = karte_llm::Settings::load()?;
        let model = model.or_else(|| settings.model.name.clone());
        if settings.server.is_none() {
            return Ok(Self::new(in_process(model.clone()), model));
        }
        let mut opts = karte_llm::WorkstationOptions::beside_current_exe(model);
        // The worker's own logs would interleave with the command's output.
        opts.worker_stderr = false;
        let ws = Workstation::from_settings(Ok(settings), opts);
        if let Some(e) = ws.problem() {
            return Err(e.clone());
        }
        Ok(Self::for_workstation(Arc::new(ws)))
    }

    /// An audio file the physician opened (WAV, FLAC, MP3, M4A) into text for the dictation box, heard where this
    /// workstation's drafts are made (the clinic server when it answers and the settings allow audio there, the
    /// worker otherwise). It is decoded here and heard as a recording is ([`Self::transcribe_pcm`]: in parts, the
    /// text so far to `progress`), so a ten-minute file shows its words while the rest is heard. Decoding is pure
    /// Rust; a decoder panic on a damaged file is caught here so that it cannot take the window's store lock with it.
    /// A drafter without a workstation (an in-process model) hears nothing: the recogniser never runs in the
    /// caller's process here.
    pub fn transcribe(
        &self,
        audio: &[u8],
        progress: &mut dyn FnMut(HearingProgress),
    ) -> Result<Dictated> {
        check_audio_size(audio.len())?;
        let pcm = std::panic::catch_unwind(|| karte_audio::bytes_to_pcm16(audio)).unwrap_or_else(|_| {
            Err(karte_core::Error::new(
                Code::AudioUnsupported,
                "音声ファイルの一部が壊れていて読み取れません。元の録音機器で保存し直してください。",
            ))
        })?;
        self.transcribe_pcm(&pcm, progress)
    }

    fn hear(&self, audio: &[u8]) -> Result<Heard> {
        let Some(ws) = &self.workstation else {
            return Err(karte_core::Error::new(
                Code::WorkerStartFailed,
                "この構成では音声入力を使えません。管理者に連絡してください。",
            ));
        };
        ws.transcriber().transcribe(audio)
    }

    /// A recording made in the window (the store's 16 kHz PCM) into text, heard in parts of at most 30 s cut at
    /// pauses (`karte_ipc::voice::parts`): `progress` gets the text so far after each part, so a ten-minute
    /// dictation shows its words while the rest is heard, and a part that fails over or restarts the worker is
    /// heard again alone. Parts without speech add nothing; the whole is `audio.no_speech` only if none held any.
    pub fn transcribe_pcm(
        &self,
        pcm: &[u8],
        progress: &mut dyn FnMut(HearingProgress),
    ) -> Result<Dictated> {
        use karte_ipc::voice::{parts, pcm_seconds, wav, PART_S};
        check_audio_size(pcm.len())?;
        let total_s = pcm_seconds(pcm.len());
        let mut text = String::new();
        let mut corrections = Vec::new();
        let (mut speech_s, mut engine) = (0.0, None);
        for part in parts(pcm, PART_S) {
            let end = part.end;
            let Heard { transcript, kind } = self.hear(&wav(&pcm[part]))?;
            engine = Some(kind);
            speech_s += transcript.speech_seconds.unwrap_or(transcript.duration);
            let piece = transcript.text.trim();
            if !piece.is_empty() {
                // The part's corrections count from its trimmed text; the whole text's offsets from its start.
                let lead = transcript
                    .text
                    .chars()
                    .take_while(|c| c.is_whitespace())
                    .count();
                let base = text.chars().count();
                corrections.extend(transcript.corrections.unwrap_or_default().into_iter().map(
                    |mut c| {
                        c.at = c.at.saturating_sub(lead) + base;
                        c
                    },
                ));
                text.push_str(piece);
            }
            progress(HearingProgress {
                heard_s: pcm_seconds(end),
                total_s,
                text: text.clone(),
            });
        }
        let text = dictation_text(&text, Some(speech_s))?;
        Ok(Dictated {
            text,
            engine: engine.unwrap_or(EngineKind::LocalWorker),
            duration_s: total_s,
            speech_s,
            corrections,
        })
    }

    /// Probes the clinic server now (the window's 再接続) and returns the new status.
    pub fn reconnect(&self) -> EngineStatus {
        if let Some(ws) = &self.workstation {
            ws.recheck();
        }
        self.status()
    }

    /// Stops the local worker, if any (the app calls this on exit).
    pub fn shutdown(&self) {
        if let Some(ws) = &self.workstation {
            ws.shutdown();
        }
    }

    /// The configured model's manifest name (the name an in-process engine gives it), else the spec as given.
    fn configured_model(&self) -> String {
        karte_models::resolve(self.model_spec.as_deref())
            .map(|m| m.name)
            .unwrap_or_else(|_| self.model_spec.clone().unwrap_or_default())
    }

    pub fn status(&self) -> EngineStatus {
        let model = self
            .last_model
            .lock()
            .ok()
            .and_then(|m| m.clone())
            .unwrap_or_else(|| self.configured_model());
        let serving = self.engine.serving();
        EngineStatus {
            model,
            loaded: self.engine.ready(),
            tokens_per_s: self.last_tps.lock().ok().and_then(|t| *t),
            serving: (serving.kind != EngineKind::InProcess).then_some(serving),
            problem: self.workstation.as_ref().and_then(|w| w.problem().cloned()),
        }
    }

    /// Stop the draft in progress, if any: it returns `engine.cancelled`.
    pub fn cancel(&self) {
        if let Some(c) = self.current.lock().ok().and_then(|c| c.clone()) {
            c.cancel();
        }
    }

    /// Get the engine ready now (load the model, start the worker): the window calls this at start so that the
    /// first draft is not slow.
    pub fn preload(&self) -> Result<()> {
        self.engine.prepare()
    }

    /// Draft a SOAP note with suggestions from one dictation. Input is validated here (empty, too large).
    pub fn draft(
        &self,
        input: &str,
        opts: &DraftOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<DraftOutput> {
        let t0 = Instant::now();
        let mut timings = BTreeMap::new();
        let kind = match &opts.kind {
            Some(k) => karte_core::document::kind(k)?,
            None => karte_core::document::default_kind(),
        };
        stage(progress, "extract", "口述を解析しています");
        // Read once here; the streamed guard and the final guard judge against this same reading.
        let dictation = Dictation::new(input, kind)?;
        let a = dictation.analysis();
        let floor = floor_sections(a);
        let g = a.grounding();
        timings.insert("extract".to_string(), ms(t0));

        // Instruction-like text in the dictation is data: it stays in the draft in the physician's words, flagged,
        // and the model never sees it.
        let injections = dictation.injections();
        let mut flags = Vec::new();
        if !injections.is_empty() {
            flags.push(karte_guard::draft::injection_flag(injections));
        }
        let (for_model, withheld) = withhold(kind, &floor, injections);
        let (mut sections, engine) = if opts.no_llm {
            (
                for_model,
                EngineInfo {
                    kind: "rules".into(),
                    ..Default::default()
                },
            )
        } else {
            self.phrase_with_model(
                &dictation,
                kind,
                &for_model,
                &g,
                &mut timings,
                &mut flags,
                progress,
            )?
        };
        for (sec, mut s) in withheld {
            s.flags.push(Flag::new(
                "injection",
                "AI への指示のような文です。データとして扱い、モデルには渡していません。",
                None,
            ));
            sections.at_mut(sec).push(s);
        }

        stage(
            progress,
            "verify",
            "根拠と安全性を確認し、検査提案を作成しています",
        );
        let mut out = karte_core::pipeline::finish(a, sections, engine, flags, timings);
        let t = Instant::now();
        karte_guard::draft::guard_draft(&dictation, &mut out);
        out.timings_ms.insert("guard".to_string(), ms(t));
        out.timings_ms.insert("total".to_string(), ms(t0));
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn phrase_with_model(
        &self,
        dictation: &Dictation,
        kind: &'static karte_core::DocumentKind,
        floor: &Sections,
        g: &karte_core::grounding::Grounding,
        timings: &mut BTreeMap<String, u64>,
        flags: &mut Vec<Flag>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(Sections, EngineInfo)> {
        let t = Instant::now();
        let engine = self.engine.as_ref();
        if !engine.ready() {
            stage(
                progress,
                "load_model",
                "モデルを読み込んでいます（初回のみ時間がかかります）",
            );
        }
        let prompt = phrase::build(kind, floor);
        // An in-process model not loaded yet loads here, to count; an engine that cannot count: one token per
        // character bounds Japanese text from above.
        let source_tokens = engine
            .count_tokens(&prompt.user)
            .unwrap_or_else(|| prompt.user.chars().count()) as u32;
        timings.insert("load_model".to_string(), ms(t));

        let serving = engine.serving();
        let mut info = EngineInfo {
            kind: "local".into(),
            // A model in this process is the configured one, named even if it fails; another engine names its
            // model when it answers.
            model: (serving.kind == EngineKind::InProcess).then(|| self.configured_model()),
            ..Default::default()
        };
        let mut req = ChatRequest::new(vec![
            ChatMessage::system(&prompt.system),
            ChatMessage::user(&prompt.user),
        ]);
        req.json_schema = Some(prompt.schema.clone());
        // The answer restates the items with some JSON around them; twice the source plus slack is ample.
        req.max_tokens = (source_tokens * 2 + 256).min(3072);

        stage(progress, "generate", "下書きを生成しています");
        let cancel = CancelToken::new();
        if let Ok(mut c) = self.current.lock() {
            *c = Some(cancel.clone());
        }
        let t = Instant::now();
        let mut n = 0u32;
        // What streams to the screen passes the output guard first: nothing blocked is ever shown.
        let mut guard = karte_guard::stream::StreamGuard::new(dictation);
        let result = engine
            .chat(&req, &cancel, &mut |piece| match piece {
                Piece::Text(p) => {
                    n += 1;
                    let text = guard.push(p);
                    progress(Progress::Token { text, tokens: n });
                }
                // The answer starts over (worker restart, failover): so does the guard's look-back, and the
                // window drops what it showed.
                Piece::Reset => {
                    guard = karte_guard::stream::StreamGuard::new(dictation);
                    n = 0;
                    progress(Progress::Reset {
                        message: "生成をやり直しています（文章生成プロセスの再起動または切り替え）"
                            .into(),
                    });
                }
            })
            .inspect(|r| {
                // Which engine actually answered: after a failover that is not the one chosen at the start.
                if r.stats.kind == EngineKind::Server {
                    info.kind = "remote".into();
                }
                info.model = Some(r.stats.model.clone());
                if let Ok(mut m) = self.last_model.lock() {
                    *m = Some(r.stats.model.clone());
                }
            });
        let tail = guard.finish();
        if !tail.is_empty() {
            progress(Progress::Token {
                text: tail,
                tokens: n,
            });
        }
        if let Ok(mut c) = self.current.lock() {
            *c = None;
        }
        timings.insert("generate".to_string(), ms(t));
        let fallback = |reason: String, info: &mut EngineInfo, flags: &mut Vec<Flag>| {
            flags.push(Flag::new(
                "model_fallback",
                "モデルの出力を使えなかったため、口述の文をそのまま下書きにしました。",
                Some(reason.clone()),
            ));
            info.fallback_reason = Some(reason);
            (floor.clone(), info.clone())
        };
        match result {
            Ok(r) => {
                let text = r.text;
                if let Ok(mut l) = self.last_tps.lock() {
                    *l = r.stats.tokens_per_s();
                }
                if r.stats.finish == FinishReason::ContentFilter {
                    // The clinic server's guard withheld model sentences: the items they cited stay in the
                    // physician's words (merge keeps every uncovered item), and the reader is told why.
                    flags.push(Flag::new(
                        "content_filter",
                        "院内サーバーの安全チェックで、モデルの文の一部を表示しませんでした。口述の内容は下書きに残っています。内容を確認してください。",
                        None,
                    ));
                }
                info.stats = Some(r.stats);
                match phrase::merge(&prompt, &text, g) {
                    Ok(s) => Ok((s, info)),
                    Err(why) => Ok(fallback(why, &mut info, flags)),
                }
            }
            Err(e) if e.code == Code::EngineCancelled => Err(e),
            Err(e) if matches!(e.code, Code::EngineBadOutput | Code::EngineFailed) => Ok(fallback(
                format!("[{}] {}", e.code, e.message),
                &mut info,
                flags,
            )),
            Err(e) => Err(e),
        }
    }
}

/// Split off the floor sentences that contain instruction-like text: they are kept for the draft, not the model.
fn withhold(
    kind: &karte_core::DocumentKind,
    floor: &Sections,
    found: &[karte_guard::injection::Injection],
) -> (Sections, Vec<(usize, Sentence)>) {
    let mut keep = Sections::empty(kind);
    let mut held = Vec::new();
    for (sec, s) in floor.iter() {
        let hit = s
            .spans
            .iter()
            .any(|sp| found.iter().any(|i| i.start < sp.end && sp.start < i.end));
        if hit {
            held.push((sec, s.clone()));
        } else {
            keep.at_mut(sec).push(s.clone());
        }
    }
    (keep, held)
}

fn ms(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a recording's transcript becomes for the box: text as heard (trimmed), or the error that says why
    /// there is none.
    #[test]
    fn a_heard_recording_is_text_or_says_why_not() {
        let cases: [(&str, Option<f64>, std::result::Result<&str, Code>); 6] = [
            ("市中肺炎と診断し。", Some(3.2), Ok("市中肺炎と診断し。")),
            ("  咳嗽あり \n", Some(1.0), Ok("咳嗽あり")),
            ("", Some(0.0), Err(Code::AudioNoSpeech)),
            ("", None, Err(Code::AudioNoSpeech)),
            (" ", Some(2.5), Err(Code::AudioUnrecognised)),
            ("", Some(0.4), Err(Code::AudioUnrecognised)),
        ];
        for (text, speech, want) in cases {
            let got = dictation_text(text, speech).map_err(|e| e.code);
            assert_eq!(got.as_deref().map_err(|c| *c), want, "{text:?} {speech:?}");
        }
    }

    #[test]
    fn recordings_are_refused_empty_or_over_the_limit_before_anything_is_sent() {
        let max = karte_ipc::voice::MAX_AUDIO_BYTES;
        let cases = [
            (0, Some(Code::InputEmpty)),
            (1, None),
            (max, None),
            (max + 1, Some(Code::InputTooLarge)),
        ];
        for (len, want) in cases {
            assert_eq!(check_audio_size(len).err().map(|e| e.code), want, "{len}");
        }
    }
}
