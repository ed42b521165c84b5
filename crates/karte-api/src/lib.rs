//! The drafting API. Every front end (CLI, Tauri commands, later the HTTP server) calls [`Drafter::draft`] and
//! nothing else, so behaviour cannot drift between them.
//!
//! Drafting is verification-first: the deterministic floor (karte-core) always runs; the model only rephrases the
//! floor's items, and its answer is checked and merged back. If the model fails in a way that is not the user's to
//! fix (bad JSON, prompt too long), the floor draft is returned with the reason, so a physician always gets a
//! usable, grounded draft.

use karte_core::grounding::Grounding;
use karte_core::pipeline::floor_sections;
use karte_core::{compose, phrase};
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
                vec![phrase::build(kind, &for_model)],
                &for_model,
                &g,
                &mut timings,
                &mut flags,
                progress,
            )?
        };
        let in_dictation = |s: &Sentence| s.spans.iter().map(|sp| (0, sp.start)).min();
        for (sec, mut s) in withheld {
            s.flags.push(injection_sentence_flag());
            put_back(sections.at_mut(sec), s, &in_dictation);
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

    /// A document made from signed notes (退院時サマリー, 診療情報提供書), phrased by the model: `floor` is the
    /// store's rules-only draft with the notes it cites ([`karte_ipc::DocumentDraft`], what `Store::draft_document`
    /// returns), and comes back with the model's sentences where they hold up. The promise is the progress note's:
    /// the model only rewords and condenses the floor's sentences, each of its sentences cites floor sentences and
    /// inherits their notes and spans, a number, unit, drug or dose its cited notes lack is flagged, a floor
    /// sentence no sound sentence carries stays in the physician's words, and the guard judges the stream and every
    /// sentence against the notes (their personal data is not a leak, anything else is). A long stay is asked in
    /// parts of consecutive sections ([`PART_CHARS`]), so no answer has to hold a month; a part the model cannot
    /// answer keeps the physician's words for that part only. `opts.no_llm` returns the floor as it is.
    pub fn document(
        &self,
        mut d: karte_ipc::DocumentDraft,
        opts: &DraftOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<karte_ipc::DocumentDraft> {
        if opts.no_llm {
            return Ok(d);
        }
        let t0 = Instant::now();
        let kind = karte_core::document::kind(&d.draft.kind)?;
        let notes: Vec<compose::SourceNote> =
            d.notes.iter().map(karte_ipc::SignedNote::source).collect();
        let grounding = compose::groundings(&notes, &d.draft.inputs);
        let all = Grounding::union(grounding.values());
        // What the guard reads as the "dictation": the notes and what was typed, for their personal data and
        // patient (not split into clauses: a month of notes is not one dictation).
        let mut text: Vec<&str> = notes.iter().map(|n| n.text.as_str()).collect();
        text.extend(d.draft.inputs.values().map(String::as_str));
        let dictation = Dictation::of_prompt(&text.join("\n"), kind);
        // A signed sentence that reads like an instruction to an AI stays in the physician's words, flagged, and
        // the model never sees it, as in a dictation.
        let mut for_model = Sections::empty(kind);
        let mut withheld = Vec::new();
        for (sec, s) in d.draft.sections.iter() {
            if !karte_guard::injection::detect(&s.text).is_empty() {
                withheld.push((sec, s.clone()));
            } else {
                for_model.at_mut(sec).push(s.clone());
            }
        }
        let mut flags = std::mem::take(&mut d.draft.flags);
        let mut timings = std::mem::take(&mut d.draft.timings_ms);
        let prompts = phrase::build_parts(kind, &for_model, PART_CHARS);
        let (mut sections, engine) = self.phrase_with_model(
            &dictation,
            kind,
            prompts,
            &for_model,
            &all,
            &mut timings,
            &mut flags,
            progress,
        )?;
        // Typed fields first, then the notes in date order, each by position.
        let in_notes = |s: &Sentence| {
            s.sources
                .iter()
                .filter_map(|r| {
                    let at = if r.version.starts_with("input:") {
                        0
                    } else {
                        1 + notes.iter().position(|n| n.id == r.version)?
                    };
                    Some((at, r.span.start))
                })
                .min()
        };
        for (sec, mut s) in withheld {
            s.flags.push(injection_sentence_flag());
            put_back(sections.at_mut(sec), s, &in_notes);
        }
        stage(progress, "verify", "根拠と安全性を確認しています");
        // merge checked each model sentence against the floor sentences it cites; this checks it against the
        // notes themselves, as the floor's sentences were.
        for s in sections.iter_mut() {
            for f in compose::check(&grounding, s) {
                if !s.flags.iter().any(|x| x.code == f.code) {
                    s.flags.push(f);
                }
            }
        }
        d.draft.sections = sections;
        d.draft.engine = engine;
        d.draft.flags = flags;
        let t = Instant::now();
        karte_guard::draft::guard_draft(&dictation, &mut d.draft);
        timings.insert("guard".to_string(), ms(t));
        timings.insert(
            "total".to_string(),
            ms(t0) + timings.get("compose").copied().unwrap_or(0),
        );
        d.draft.timings_ms = timings;
        Ok(d)
    }

    /// Asks the model `prompts` in turn (one for a note, a part per run of sections for a long document) and
    /// merges each answer; a part whose answer cannot be used keeps `floor`'s sentences of its sections.
    #[allow(clippy::too_many_arguments)]
    fn phrase_with_model(
        &self,
        dictation: &Dictation,
        kind: &'static karte_core::DocumentKind,
        prompts: Vec<phrase::Prompt>,
        floor: &Sections,
        g: &karte_core::grounding::Grounding,
        timings: &mut BTreeMap<String, u64>,
        flags: &mut Vec<Flag>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(Sections, EngineInfo)> {
        // One token for the whole answer, set before the model loads: 中止 pressed while the model loads or
        // between two parts of a document stops the draft, rather than finding no request to stop.
        let cancel = CancelToken::new();
        if let Ok(mut c) = self.current.lock() {
            *c = Some(cancel.clone());
        }
        let _request = Running(&self.current);
        let t = Instant::now();
        let engine = self.engine.as_ref();
        if !engine.ready() {
            stage(
                progress,
                "load_model",
                "モデルを読み込んでいます（初回のみ時間がかかります）",
            );
        }
        // An in-process model not loaded yet loads here, to count; an engine that cannot count: one token per
        // character bounds Japanese text from above.
        let source_tokens: Vec<u32> = prompts
            .iter()
            .map(|p| {
                engine
                    .count_tokens(&p.user)
                    .unwrap_or_else(|| p.user.chars().count()) as u32
            })
            .collect();
        timings.insert("load_model".to_string(), ms(t));

        let serving = engine.serving();
        let mut info = EngineInfo {
            kind: "local".into(),
            // A model in this process is the configured one, named even if it fails; another engine names its
            // model when it answers.
            model: (serving.kind == EngineKind::InProcess).then(|| self.configured_model()),
            ..Default::default()
        };
        let mut out = Sections::empty(kind);
        let mut fallbacks: Vec<String> = Vec::new();
        let t = Instant::now();
        let mut n = 0u32;
        let mut first_text: Option<u64> = None;
        let parts = prompts.len();
        for (i, (prompt, source_tokens)) in prompts.iter().zip(source_tokens).enumerate() {
            let mut req = ChatRequest::new(vec![
                ChatMessage::system(&prompt.system),
                ChatMessage::user(&prompt.user),
            ]);
            req.json_schema = Some(prompt.schema.clone());
            // The answer restates the items with some JSON around them; twice the source plus slack is ample.
            req.max_tokens = (source_tokens * 2 + 256).min(3072);
            if parts > 1 {
                let names: Vec<&str> = prompt
                    .sections
                    .iter()
                    .map(|&s| kind.sections[s].heading.as_str())
                    .collect();
                stage(
                    progress,
                    "generate",
                    &format!(
                        "下書きを生成しています（{}/{parts}: {}）",
                        i + 1,
                        names.join("・")
                    ),
                );
            } else {
                stage(progress, "generate", "下書きを生成しています");
            }
            let n_before = n;
            // What streams to the screen passes the output guard first: nothing blocked is ever shown.
            let mut guard = karte_guard::stream::StreamGuard::new(dictation);
            let mut shown = |text: String, n: u32, progress: &mut dyn FnMut(Progress)| {
                if first_text.is_none() && !text.is_empty() {
                    first_text = Some(ms(t));
                }
                progress(Progress::Token { text, tokens: n });
            };
            let result = engine
                .chat(&req, &cancel, &mut |piece| match piece {
                    Piece::Text(p) => {
                        n += 1;
                        let text = guard.push(p);
                        shown(text, n, progress);
                    }
                    // The answer starts over (worker restart, failover): so does the guard's look-back, and the
                    // window drops what it showed.
                    Piece::Reset => {
                        guard = karte_guard::stream::StreamGuard::new(dictation);
                        n = n_before;
                        progress(Progress::Reset {
                            message:
                                "生成をやり直しています（文章生成プロセスの再起動または切り替え）"
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
                shown(tail, n, progress);
            }
            let merged = match result {
                Ok(r) => {
                    if let Ok(mut l) = self.last_tps.lock() {
                        *l = r.stats.tokens_per_s();
                    }
                    if r.stats.finish == FinishReason::ContentFilter
                        && !flags.iter().any(|f| f.code == "content_filter")
                    {
                        // The clinic server's guard withheld model sentences: the items they cited stay in the
                        // physician's words (merge keeps every uncovered item), and the reader is told why.
                        flags.push(Flag::new(
                            "content_filter",
                            "院内サーバーの安全チェックで、モデルの文の一部を表示しませんでした。口述の内容は下書きに残っています。内容を確認してください。",
                            None,
                        ));
                    }
                    let merged = phrase::merge(prompt, &r.text, g);
                    info.stats = Some(match info.stats.take() {
                        Some(before) => before.then(r.stats),
                        None => r.stats,
                    });
                    merged
                }
                Err(e) if e.code == Code::EngineCancelled => return Err(e),
                Err(e) if matches!(e.code, Code::EngineBadOutput | Code::EngineFailed) => {
                    Err(format!("[{}] {}", e.code, e.message))
                }
                Err(e) => return Err(e),
            };
            match merged {
                Ok(part) => {
                    for (sec, s) in part.iter() {
                        out.at_mut(sec).push(s.clone());
                    }
                }
                Err(why) => {
                    for (sec, s) in floor
                        .iter()
                        .filter(|(sec, _)| prompt.sections.contains(sec))
                    {
                        out.at_mut(sec).push(s.clone());
                    }
                    fallbacks.push(why);
                }
            }
        }
        timings.insert("generate".to_string(), ms(t));
        if let Some(f) = first_text {
            timings.insert("first_text".to_string(), f);
        }
        if !fallbacks.is_empty() {
            let reason = fallbacks.join(" / ");
            flags.push(Flag::new(
                "model_fallback",
                "モデルの出力を使えなかったため、口述の文をそのまま下書きにしました。",
                Some(reason.clone()),
            ));
            info.fallback_reason = Some(reason);
        }
        Ok((out, info))
    }
}

/// Characters of floor sentences one answer restates, at most (the sections of a part together): a sample
/// dictation's worth (about 300 characters), which every model of the manifest answers within its context. More is
/// not safe: SmolLM2's tokenizer spends about four tokens on a kanji, and 600 characters of a stay with the system
/// prompt and the answer's budget overflowed its 4,096-token context (measured 2026-12-07).
pub const PART_CHARS: usize = 300;

fn injection_sentence_flag() -> Flag {
    Flag::new(
        "injection",
        "AI への指示のような文です。データとして扱い、モデルには渡していません。",
        None,
    )
}

/// The answer under way, as [`Drafter::cancel`] finds it: forgotten when the answer ends, however it ends.
struct Running<'a>(&'a Mutex<Option<CancelToken>>);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Ok(mut c) = self.0.lock() {
            *c = None;
        }
    }
}

/// Puts a sentence the model never saw back where it stood in its sources: before the first sentence of its section
/// that comes later by `place` (a dictation's position; a note's date order, then its position). Appended, it would
/// follow every model sentence, and a hospital course told in date order would not be.
fn put_back(
    section: &mut Vec<Sentence>,
    s: Sentence,
    place: &dyn Fn(&Sentence) -> Option<(usize, usize)>,
) {
    let at = place(&s)
        .and_then(|k| {
            section
                .iter()
                .position(|x| place(x).is_some_and(|kx| kx > k))
        })
        .unwrap_or(section.len());
    section.insert(at, s);
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

    /// A withheld sentence goes back before the first sentence that comes later in the sources; one with no
    /// position, or later than all, at the end.
    #[test]
    fn a_withheld_sentence_goes_back_where_it_stood() {
        let at = |text: &str, start: Option<usize>| Sentence {
            text: text.into(),
            spans: start
                .map(|s| {
                    vec![karte_core::Span {
                        start: s,
                        end: s + 1,
                    }]
                })
                .unwrap_or_default(),
            flags: Vec::new(),
            origin: karte_core::Origin::Model,
            problem: None,
            sources: Vec::new(),
        };
        let place = |s: &Sentence| s.spans.first().map(|sp| (0, sp.start));
        type At<'a> = (&'a str, Option<usize>);
        let table: [(&[At], At, &[&str]); 5] = [
            (&[], ("x", Some(5)), &["x"]),
            (
                &[("a", Some(0)), ("c", Some(20))],
                ("b", Some(10)),
                &["a", "b", "c"],
            ),
            (
                &[("a", Some(0)), ("c", Some(20))],
                ("z", Some(30)),
                &["a", "c", "z"],
            ),
            (
                &[("c", Some(20)), ("d", Some(30))],
                ("a", Some(0)),
                &["a", "c", "d"],
            ),
            // No position of its own: the end, as before.
            (
                &[("a", Some(0)), ("c", Some(20))],
                ("n", None),
                &["a", "c", "n"],
            ),
        ];
        for (section, held, want) in table {
            let mut sec: Vec<Sentence> = section.iter().map(|(t, p)| at(t, *p)).collect();
            put_back(&mut sec, at(held.0, held.1), &place);
            let got: Vec<&str> = sec.iter().map(|s| s.text.as_str()).collect();
            assert_eq!(got, want, "{held:?} into {section:?}");
        }
    }

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
