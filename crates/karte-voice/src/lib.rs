//! Offline Japanese speech to text: one audio file in, one transcript with timed segments out.
//!
//! Whisper base (the one complete speech model a package registry carries) runs on candle, in pure Rust, reading the
//! CTranslate2 weights exactly as fetched and verified by karte-models. Pure Rust matters because the recogniser
//! must live in the same worker binary as llama.cpp: a second bundled copy of ggml (whisper.cpp) would collide with
//! llama.cpp's at link time. See ARCHITECTURE.md ("Speech") for the measured comparison.
//!
//! The decoding rules are Whisper's own: Japanese is forced (no language detection, which mislabels short clinical
//! clips), timestamps are predicted so that each segment has a time span, and a 30-second window whose no-speech
//! probability is high and whose text is improbable is dropped — the rule that keeps silence from turning into
//! "ご視聴ありがとうございました". The initial prompt carries terms from `assets/lexicon`, which biases the decoder
//! towards medical spellings (咳 rather than 積). What it still mishears as everyday words that sound alike is put
//! back by the near-homophone correction ([`correct`]), each replacement recorded in [`Transcript::corrections`].

/// Decoding lives in its own crate so that the app can cut an opened file into parts without linking the recogniser.
pub use karte_audio as audio;
pub mod correct;
mod ct2;
mod decoder;
pub mod metrics;
mod tokenizer;
pub mod vad;

use candle_core::{DType, Device, IndexOp, Tensor, D};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{self as w, model::Whisper, Config};
use karte_core::{Code, Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use tokenizer::Tokenizer;

/// The manifest name of the speech model.
pub const MODEL: &str = "whisper-base";

/// Whisper's own thresholds (openai/whisper `transcribe`): a window is silence when the no-speech token is likely
/// *and* the decoded text is improbable.
const NO_SPEECH_THRESHOLD: f64 = 0.6;
const LOGPROB_THRESHOLD: f64 = -1.0;
/// A window whose text the model itself finds this improbable (mean log-probability per token, after any
/// temperature retry) is dropped whatever its no-speech probability: over recorded music Whisper writes
/// 「iK」 (no-speech 0.59, −2.0) or 「H&R、3D、1D、…」 (0.10, −2.2) (`recorded_music_gives_no_text`), while no window
/// of the 64 spoken benchmark clips comes near (log-probability at least −0.84, no-speech at most 0.09;
/// BENCHMARKS.md). Speech heard this badly would be no use to the physician either.
const LOGPROB_ALONE: f64 = -1.5;
/// A window this sure to hold no speech is dropped whatever its text's probability: after the energy gate, what
/// still reaches the model without speech is noise with some structure (music, a voice far off), on which Whisper
/// writes confident subtitles-style lines.
const NO_SPEECH_ALONE: f64 = 0.8;
/// Repetition guard ([`is_looping`]): an n-gram repeated back to back this many times marks a decoder loop.
const LOOP_REPEATS: usize = 4;
/// …covering at least this many characters (so 「ーー」 or 「ささささ」-like short runs in real speech stay).
const LOOP_MIN_CHARS: usize = 8;
/// Whisper's temperature fallback (`transcribe(temperature=(0.0, 0.2, …, 1.0))`): a window whose greedy decoding
/// loops is decoded again, sampling at the next temperature, until one does not. Greedy decoding
/// falls into 「腹部、腹部、腹部…」 on some dictations (and on a sentence said twice) and the loop guard then drops
/// the whole window; sampling leaves the loop. Seeded per window, so a recording always gives the same text.
const TEMPERATURES: [f64; 6] = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];
/// Tokens sampled per 30-second window at most (Whisper's `sample_len`): a looping decoder stops here.
const MAX_SAMPLED: usize = 224;
/// The first timestamp may not be later than 1 s (Whisper's `max_initial_timestamp`).
const MAX_INITIAL_TIMESTAMP_STEPS: u32 = 50;
/// Seconds per timestamp token.
const TIME_STEP: f64 = 0.02;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Segment {
    pub start_s: f64,
    pub end_s: f64,
    pub text: String,
    /// Whisper's probability that its 30-second window holds no speech (as in OpenAI's `verbose_json`).
    pub no_speech_prob: f64,
    /// Mean log-probability of the window's sampled tokens.
    pub avg_logprob: f64,
}

/// What `karte transcribe` prints as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Transcript {
    pub text: String,
    pub segments: Vec<Segment>,
    /// Model and runtime, e.g. `whisper-base (candle, CTranslate2 float16, CPU)`.
    pub engine: String,
    pub language: String,
    pub duration_s: f64,
    /// Seconds the voice-activity gate judged to be speech; 0 means the recording holds no speech (the text is
    /// then empty and the model was not run).
    pub speech_s: f64,
    /// Near-homophones replaced by lexicon terms ([`correct`]), with what Whisper wrote; `at` counts characters
    /// of the text as decoded (the segments' texts joined).
    pub corrections: Vec<correct::Correction>,
    /// Set when the correction could not run (its dictionaries are missing): the text is then as decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correction_note: Option<String>,
}

impl Transcript {
    /// No speech was found (silence, steady noise), as opposed to speech that produced text.
    pub fn no_speech(&self) -> bool {
        self.speech_s == 0.0
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Initial prompt (Whisper's `initial_prompt`). `None` uses [`lexicon_prompt`].
    pub prompt: Option<String>,
    /// Decode with candle's own decoder, which re-runs every token at every step (no self-attention cache). Slow;
    /// kept only so that tests can check the cached decoder gives the same transcript.
    pub uncached_reference: bool,
    /// Leave Whisper's text as decoded, without the near-homophone correction ([`correct`]): for measuring what the
    /// correction changes (voice_bench), never for dictation.
    pub raw: bool,
}

/// A loaded recogniser. Loading costs about a second; keep one per process and reuse it.
pub struct Recogniser {
    model: Whisper,
    decoder: decoder::Decoder,
    tok: Tokenizer,
    filters: Vec<f32>,
    ids: SpecialIds,
    suppress: Vec<u32>,
    suppress_begin: Vec<u32>,
    engine: String,
}

struct SpecialIds {
    sot: u32,
    ja: u32,
    transcribe: u32,
    no_timestamps: u32,
    eot: u32,
    sot_prev: u32,
    no_speech: u32,
    ts_begin: u32,
}

fn load_err(msg: impl std::fmt::Display) -> Error {
    Error::new(
        Code::ModelLoadFailed,
        format!("音声認識モデルを読み込めません: {msg}"),
    )
}

fn engine_err(e: candle_core::Error) -> Error {
    Error::new(
        Code::EngineFailed,
        format!("音声認識の計算に失敗しました: {e}"),
    )
}

impl Recogniser {
    /// Load the manifest's Whisper model from the model cache, after checking its sha256 and companions.
    pub fn load_default() -> Result<Self> {
        let m = karte_models::resolve(Some(MODEL))?;
        karte_models::verify(&m)?;
        let dir = m
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::load_dir(&dir, MODEL)
    }

    /// Load a CTranslate2 Whisper directory (`model.bin`, `config.json`, `tokenizer.json`, `vocabulary.txt`).
    /// Unverified: callers outside tests go through [`Recogniser::load_default`].
    pub fn load_dir(dir: &Path, name: &str) -> Result<Self> {
        let read = |f: &str| {
            std::fs::read(dir.join(f))
                .map_err(|e| load_err(format!("{}: {e}", dir.join(f).display())))
        };
        let text = |f: &str| read(f).map(|b| String::from_utf8_lossy(&b).into_owned());
        let tok =
            Tokenizer::new(&text("vocabulary.txt")?, &text("tokenizer.json")?).map_err(load_err)?;
        let config: serde_json::Value =
            serde_json::from_str(&text("config.json")?).map_err(load_err)?;
        let ids_of = |k: &str| -> Vec<u32> {
            config
                .get(k)
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_u64().map(|x| x as u32))
                        .collect()
                })
                .unwrap_or_default()
        };
        let suppress = ids_of("suppress_ids");
        let suppress_begin = ids_of("suppress_ids_begin");
        let special = |t: &str| {
            tok.id(t)
                .ok_or_else(|| load_err(format!("vocabulary lacks {t}")))
        };
        let ids = SpecialIds {
            sot: special("<|startoftranscript|>")?,
            ja: special("<|ja|>")?,
            transcribe: special("<|transcribe|>")?,
            no_timestamps: special("<|notimestamps|>")?,
            eot: special("<|endoftext|>")?,
            sot_prev: special("<|startofprev|>")?,
            no_speech: special("<|nocaptions|>").or_else(|_| special("<|nospeech|>"))?,
            ts_begin: special("<|0.00|>")?,
        };
        let bytes = read("model.bin")?;
        let ct = ct2::read(&bytes).map_err(load_err)?;
        drop(bytes);
        let cfg: Config = ct.config(suppress.clone()).map_err(load_err)?;
        if cfg.vocab_size != tok.len() {
            return Err(load_err(format!(
                "vocabulary has {} tokens, model {}",
                tok.len(),
                cfg.vocab_size
            )));
        }
        let filters = mel_filters(cfg.num_mel_bins, w::N_FFT, w::SAMPLE_RATE as f64);
        let tensors = ct.into_candle(&cfg).map_err(load_err)?;
        // Both decoders share the same weight tensors (reference-counted, not copied).
        let decoder = decoder::Decoder::new(
            &tensors,
            cfg.decoder_layers,
            cfg.decoder_attention_heads,
            cfg.d_model,
        )
        .map_err(load_err)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let model = Whisper::load(&vb, cfg).map_err(load_err)?;
        Ok(Recogniser {
            model,
            decoder,
            tok,
            filters,
            ids,
            suppress,
            suppress_begin,
            engine: format!("{name} (candle, CTranslate2 float16, CPU)"),
        })
    }

    /// Decode, resample and transcribe an audio file.
    pub fn transcribe_file(&mut self, path: &Path, opts: &Options) -> Result<Transcript> {
        let pcm = audio::load_16k_mono(path)?;
        self.transcribe_pcm(&pcm, opts)
    }

    /// Transcribe 16 kHz mono samples in 30-second windows.
    /// Only what the voice-activity gate ([`vad`]) keeps reaches the model; a recording without speech gives an
    /// empty transcript (`speech_s == 0`) without a model call.
    pub fn transcribe_pcm(&mut self, pcm: &[f32], opts: &Options) -> Result<Transcript> {
        let duration_s = pcm.len() as f64 / audio::SAMPLE_RATE as f64;
        let gated = vad::gate(pcm);
        let mut t = Transcript {
            text: String::new(),
            segments: Vec::new(),
            engine: self.engine.clone(),
            language: "ja".into(),
            duration_s,
            speech_s: gated.speech_s(),
            corrections: Vec::new(),
            correction_note: None,
        };
        if gated.pcm.is_empty() {
            return Ok(t);
        }
        let (segments, voiced) = self.transcribe_speech(&gated.pcm, opts)?;
        if !voiced {
            // What passed the gate gave only silence or captions (a tone, music): no speech, as the caller reads it.
            t.speech_s = 0.0;
        }
        t.segments = segments
            .into_iter()
            .map(|s| Segment {
                start_s: gated.original_s(s.start_s),
                end_s: gated.original_s(s.end_s),
                ..s
            })
            .collect();
        if !opts.raw {
            apply_corrections(&mut t);
        }
        t.text = t.segments.iter().map(|s| s.text.as_str()).collect();
        Ok(t)
    }

    /// The 30-second-window loop over audio the gate passed; segment times are in that audio's time line. Also
    /// whether any window held something other than silence and captions ([`is_caption`]).
    fn transcribe_speech(&mut self, pcm: &[f32], opts: &Options) -> Result<(Vec<Segment>, bool)> {
        let prompt = opts.prompt.clone().unwrap_or_else(lexicon_prompt);
        let mut prompt_ids = self.tok.encode(&prompt);
        // Whisper keeps at most half its text context for the prompt (the newest tokens).
        let budget = self.model.config.max_target_positions / 2 - 1;
        if prompt_ids.len() > budget {
            prompt_ids.drain(..prompt_ids.len() - budget);
        }
        // Log-mel over the whole recording plus 30 s of zeros, so the last window is full length like in training.
        let mut padded = pcm.to_vec();
        padded.extend(std::iter::repeat_n(0.0f32, w::N_SAMPLES));
        let mel = w::audio::pcm_to_mel(&self.model.config, &padded, &self.filters);
        let n_mels = self.model.config.num_mel_bins;
        let total_frames = mel.len() / n_mels;
        let mel =
            Tensor::from_vec(mel, (1, n_mels, total_frames), &Device::Cpu).map_err(engine_err)?;
        let content_frames = pcm.len() / w::HOP_LENGTH;
        let mut seek = 0usize;
        let mut segments = Vec::new();
        let mut voiced = false;
        while seek < content_frames {
            let window = mel
                .narrow(2, seek, w::N_FRAMES)
                .and_then(|m| m.contiguous())
                .map_err(engine_err)?;
            let offset_s = seek as f64 * w::HOP_LENGTH as f64 / w::SAMPLE_RATE as f64;
            let window_frames = (content_frames - seek).min(w::N_FRAMES);
            let window_end_s =
                offset_s + window_frames as f64 * w::HOP_LENGTH as f64 / w::SAMPLE_RATE as f64;
            let mut attempt = 0;
            let (decoded, silent, segs, consumed) = loop {
                let temperature = TEMPERATURES[attempt];
                let mut rng = Rng::new(seek as u64, attempt as u64);
                let decoded = self
                    .decode_window(
                        &window,
                        &prompt_ids,
                        opts.uncached_reference,
                        temperature,
                        &mut rng,
                    )
                    .map_err(engine_err)?;
                let silent = (decoded.no_speech_prob > NO_SPEECH_THRESHOLD
                    && decoded.avg_logprob < LOGPROB_THRESHOLD)
                    || decoded.no_speech_prob > NO_SPEECH_ALONE;
                let (segs, consumed) = self.segments(&decoded.tokens, offset_s, window_end_s);
                // Whisper retries a window that loops (its compression-ratio test; here the loop guard) or is
                // improbable. Only the loop is retried here: a loop loses the whole window to the guard, while an
                // improbable window kept greedy keeps the text measured in BENCHMARKS.md, and sampling noise at
                // high temperatures could turn it into confident words.
                let looped = segs.iter().any(|s| is_looping(&s.text));
                let retry = !silent && looped;
                attempt += 1;
                if !retry || attempt == TEMPERATURES.len() {
                    break (decoded, silent, segs, consumed);
                }
            };
            let silent = silent || decoded.avg_logprob < LOGPROB_ALONE;
            if !silent {
                // Words, not only punctuation or ♪, and not only captions.
                let said = |s: &Segment| !fold(&s.text).is_empty() && !is_caption(&s.text);
                voiced |= segs.iter().any(said);
                segments.extend(
                    segs.into_iter()
                        .filter(|s| said(s) && !is_looping(&s.text))
                        .map(|s| Segment {
                            no_speech_prob: decoded.no_speech_prob,
                            avg_logprob: decoded.avg_logprob,
                            ..s
                        }),
                );
            }
            // Continue from the last complete segment when the window ended mid-sentence, else after the window.
            let step = match consumed {
                Some(frames) if !silent && frames > 0 && frames < window_frames => frames,
                _ => window_frames,
            };
            seek += step;
        }
        Ok((segments, voiced))
    }

    /// Decodes one 30-second window: greedy at temperature 0, else sampled from the tempered distribution.
    fn decode_window(
        &mut self,
        mel: &Tensor,
        prompt_ids: &[u32],
        uncached: bool,
        temperature: f64,
        rng: &mut Rng,
    ) -> candle_core::Result<Decoded> {
        let features = self.model.encoder.forward(mel, true)?;
        let mut tokens: Vec<u32> = Vec::new();
        if !prompt_ids.is_empty() {
            tokens.push(self.ids.sot_prev);
            tokens.extend_from_slice(prompt_ids);
        }
        let sot_index = tokens.len();
        tokens.extend([self.ids.sot, self.ids.ja, self.ids.transcribe]);
        let sample_begin = tokens.len();
        let vocab = self.model.config.vocab_size;
        let mut sum_logprob = 0.0f64;
        let mut no_speech_prob = 0.0f64;
        let max_len = (sample_begin + MAX_SAMPLED).min(self.model.config.max_target_positions);
        let mut state = if uncached {
            None
        } else {
            Some(self.decoder.start(&features)?)
        };
        for step in 0..(max_len - sample_begin) {
            // Final hidden states: of the whole prefix at the first step, then of the one new token (cached), or of
            // every token again (candle's decoder, the reference).
            let (hidden, first_row) = match state.as_mut() {
                Some(st) => {
                    let fed = st.len();
                    let h = self.decoder.forward(st, &tokens[fed..])?.squeeze(0)?;
                    (h, fed)
                }
                None => {
                    let input = Tensor::new(tokens.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
                    let h = self
                        .model
                        .decoder
                        .forward(&input, &features, step == 0)?
                        .squeeze(0)?;
                    (h, 0)
                }
            };
            if step == 0 {
                let first = self.decoder.logits(&hidden.i(sot_index - first_row)?)?;
                let probs = candle_nn::ops::softmax(&first, D::Minus1)?;
                no_speech_prob = probs.i(self.ids.no_speech as usize)?.to_scalar::<f32>()? as f64;
            }
            let last = tokens.len() - 1 - first_row;
            let mut logits: Vec<f32> = self.decoder.logits(&hidden.i(last)?)?.to_vec1()?;
            logits.truncate(vocab);
            self.apply_rules(&mut logits, &tokens[sample_begin..]);
            let logprobs = log_softmax(&logits);
            let next = if temperature > 0.0 {
                sample(&logprobs, temperature, rng.next_f64())
            } else {
                logprobs
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .expect("non-empty vocabulary")
                    .0
            };
            sum_logprob += logprobs[next] as f64;
            let next = next as u32;
            tokens.push(next);
            if next == self.ids.eot {
                break;
            }
        }
        let sampled = tokens[sample_begin..].to_vec();
        let n = sampled.len().max(1) as f64;
        Ok(Decoded {
            tokens: sampled,
            no_speech_prob,
            avg_logprob: sum_logprob / n,
        })
    }

    /// Whisper's suppression and timestamp rules (`SuppressTokens`, `SuppressBlank`, `ApplyTimestampRules`).
    fn apply_rules(&self, logits: &mut [f32], sampled: &[u32]) {
        let ninf = f32::NEG_INFINITY;
        let tsb = self.ids.ts_begin as usize;
        for &id in &self.suppress {
            if let Some(l) = logits.get_mut(id as usize) {
                *l = ninf;
            }
        }
        logits[self.ids.no_timestamps as usize] = ninf;
        if sampled.is_empty() {
            for &id in &self.suppress_begin {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l = ninf;
                }
            }
        }
        let is_ts = |t: u32| t >= self.ids.ts_begin;
        let last_ts = sampled.last().is_some_and(|t| is_ts(*t));
        let penult_ts = sampled.len() < 2 || is_ts(sampled[sampled.len() - 2]);
        if last_ts {
            if penult_ts {
                logits[tsb..].fill(ninf);
            } else {
                logits[..self.ids.eot as usize].fill(ninf);
            }
        }
        if let Some(&last) = sampled.iter().rev().find(|t| is_ts(**t)) {
            let bound = (if last_ts && !penult_ts {
                last
            } else {
                last + 1
            } as usize)
                .min(logits.len());
            logits[tsb..bound].fill(ninf);
        }
        if sampled.is_empty() {
            logits[..tsb].fill(ninf);
            let max_initial = tsb + MAX_INITIAL_TIMESTAMP_STEPS as usize + 1;
            if max_initial < logits.len() {
                logits[max_initial..].fill(ninf);
            }
        }
        // If the timestamps together are likelier than any single text token, a timestamp must come next.
        let lp = log_softmax(logits);
        let ts_mass = log_sum_exp(&lp[tsb..]);
        let text_max = lp[..tsb].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if ts_mass > text_max {
            logits[..tsb].fill(ninf);
        }
    }

    /// Cut the sampled tokens into timed segments. Returns the frames covered by complete segments, which is where
    /// the next window starts when this one ended mid-segment.
    fn segments(
        &self,
        sampled: &[u32],
        offset_s: f64,
        window_end_s: f64,
    ) -> (Vec<Segment>, Option<usize>) {
        let ts = |t: u32| (t - self.ids.ts_begin) as f64 * TIME_STEP;
        let mut out = Vec::new();
        let mut start: Option<f64> = None;
        let mut text_ids: Vec<u32> = Vec::new();
        let mut last_end: Option<f64> = None;
        for &t in sampled {
            if t == self.ids.eot {
                break;
            }
            if t >= self.ids.ts_begin {
                match start {
                    Some(s) if !text_ids.is_empty() => {
                        out.push(Segment {
                            start_s: offset_s + s,
                            end_s: offset_s + ts(t),
                            text: self.tok.decode(&text_ids).trim().to_string(),
                            no_speech_prob: 0.0,
                            avg_logprob: 0.0,
                        });
                        text_ids.clear();
                        last_end = Some(ts(t));
                        start = None;
                    }
                    _ => start = Some(ts(t)),
                }
            } else if t < self.ids.eot {
                text_ids.push(t);
            }
        }
        let ended_cleanly = text_ids.is_empty();
        if !text_ids.is_empty() {
            out.push(Segment {
                start_s: offset_s + start.or(last_end).unwrap_or(0.0),
                end_s: window_end_s,
                text: self.tok.decode(&text_ids).trim().to_string(),
                no_speech_prob: 0.0,
                avg_logprob: 0.0,
            });
        }
        let consumed = if ended_cleanly {
            None
        } else {
            last_end.map(|e| (e / TIME_STEP) as usize * 2)
        };
        (out, consumed)
    }
}

/// Correct each segment's text (a segment is a clause or sentence, the unit the grammatical check reads), keeping
/// offsets relative to the whole decoded text. Without the dictionaries the text stays as decoded, with a note.
fn apply_corrections(t: &mut Transcript) {
    let mut offset = 0;
    for s in &mut t.segments {
        let n = s.text.chars().count();
        match correct::correct(&s.text) {
            Ok((text, found)) => {
                s.text = text;
                t.corrections
                    .extend(found.into_iter().map(|c| correct::Correction {
                        at: c.at + offset,
                        ..c
                    }));
            }
            Err(e) => {
                t.correction_note = Some(e.message);
                return;
            }
        }
        offset += n;
    }
}

struct Decoded {
    tokens: Vec<u32>,
    no_speech_prob: f64,
    avg_logprob: f64,
}

/// A decoder loop: some n-gram (punctuation and spaces ignored) repeated back to back [`LOOP_REPEATS`] times over at
/// least [`LOOP_MIN_CHARS`] characters, like 「BGM、音楽、BGM、音楽、BGM、音楽、BGM、音楽」. Dictated Japanese does not
/// repeat a phrase four times running; a looping Whisper does, on noise and music and at the end of a window.
pub fn is_looping(text: &str) -> bool {
    let c = metrics::normalize(text);
    for n in 1..=c.len() / LOOP_REPEATS {
        if n * LOOP_REPEATS < LOOP_MIN_CHARS {
            continue;
        }
        let mut run = 1;
        let mut i = n;
        while i + n <= c.len() {
            if c[i..i + n] == c[i - n..i] {
                run += 1;
                if run >= LOOP_REPEATS {
                    return true;
                }
                i += n;
            } else {
                run = 1;
                i += 1;
            }
        }
    }
    false
}

/// The captions of `assets/voice/captions.txt`, folded as [`is_caption`] compares them.
static CAPTIONS: std::sync::LazyLock<Vec<Vec<char>>> = std::sync::LazyLock::new(|| {
    include_str!("../../../assets/voice/captions.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(fold)
        .collect()
});

fn fold(s: &str) -> Vec<char> {
    metrics::normalize(s)
        .into_iter()
        .flat_map(char::to_lowercase)
        .collect()
}

/// A segment made only of captions Whisper writes over music and noise (「BGM」「(音楽)」「ご視聴ありがとうございました」),
/// in any sequence: not dictation, whatever the no-speech probability says. Empty text is not a caption.
pub fn is_caption(text: &str) -> bool {
    let c = fold(text);
    // ends[i]: c[..i] is a sequence of captions.
    let mut ends = vec![false; c.len() + 1];
    ends[0] = true;
    for i in 0..c.len() {
        if !ends[i] {
            continue;
        }
        for cap in CAPTIONS.iter() {
            if c[i..].starts_with(cap) {
                ends[i + cap.len()] = true;
            }
        }
    }
    !c.is_empty() && ends[c.len()]
}

/// The index drawn by `u` (uniform in [0, 1)) from `softmax(logprobs / temperature)`. Suppressed tokens
/// (-inf) are never drawn.
fn sample(logprobs: &[f32], temperature: f64, u: f64) -> usize {
    let scaled: Vec<f64> = logprobs.iter().map(|&l| l as f64 / temperature).collect();
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = scaled.iter().map(|&l| (l - max).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut target = u * total;
    let mut last = 0;
    for (i, &w) in weights.iter().enumerate() {
        if w > 0.0 {
            last = i;
            if target < w {
                return i;
            }
            target -= w;
        }
    }
    last
}

/// A small deterministic generator (SplitMix64) for the fallback's sampling: no dependency, and the same window of
/// the same recording always samples the same tokens.
struct Rng(u64);

impl Rng {
    fn new(window: u64, attempt: u64) -> Rng {
        Rng(0x9E37_79B9_7F4A_7C15 ^ (window << 8) ^ attempt)
    }

    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn log_softmax(x: &[f32]) -> Vec<f32> {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = m + x.iter().map(|v| (v - m).exp()).sum::<f32>().ln();
    x.iter().map(|v| v - lse).collect()
}

fn log_sum_exp(x: &[f32]) -> f32 {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if m == f32::NEG_INFINITY {
        return m;
    }
    m + x.iter().map(|v| (v - m).exp()).sum::<f32>().ln()
}

/// Slaney-scale mel filterbank with Slaney area normalisation, as `librosa.filters.mel(sr, n_fft, n_mels)` builds
/// the table Whisper was trained with. Row-major `n_mels × (n_fft/2 + 1)`.
pub fn mel_filters(n_mels: usize, n_fft: usize, sr: f64) -> Vec<f32> {
    let hz_to_mel = |f: f64| {
        let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
        let min_log_mel = min_log_hz / f_sp;
        let logstep = 6.4f64.ln() / 27.0;
        if f >= min_log_hz {
            min_log_mel + (f / min_log_hz).ln() / logstep
        } else {
            f / f_sp
        }
    };
    let mel_to_hz = |m: f64| {
        let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
        let min_log_mel = min_log_hz / f_sp;
        let logstep = 6.4f64.ln() / 27.0;
        if m >= min_log_mel {
            min_log_hz * (logstep * (m - min_log_mel)).exp()
        } else {
            f_sp * m
        }
    };
    let n_bins = n_fft / 2 + 1;
    let fft_freqs: Vec<f64> = (0..n_bins).map(|i| i as f64 * sr / n_fft as f64).collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut out = vec![0f32; n_mels * n_bins];
    for m in 0..n_mels {
        let (f0, f1, f2) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
        let enorm = 2.0 / (f2 - f0);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - f0) / (f1 - f0);
            let upper = (f2 - f) / (f2 - f1);
            out[m * n_bins + k] = (lower.min(upper).max(0.0) * enorm) as f32;
        }
    }
    out
}

/// The initial prompt: a short dictation-style sentence followed by lexicon terms, drawn in turn from each
/// vocabulary (symptoms, findings, diagnoses, drugs, tests, labs) so that every kind is represented within
/// Whisper's prompt budget. Which terms are in the lexicon is data (`assets/lexicon`), so a department that adds its
/// drugs there also biases recognition towards them.
pub fn lexicon_prompt() -> String {
    use karte_core::lexicon::{DIAGNOSES, DRUGS, FINDINGS, LABS, SYMPTOMS, TESTS};
    let lists = [&SYMPTOMS, &FINDINGS, &DIAGNOSES, &DRUGS, &TESTS, &LABS];
    let mut terms: Vec<&str> = Vec::new();
    let longest = lists.iter().map(|l| l.entries.len()).max().unwrap_or(0);
    for i in 0..longest {
        for l in lists {
            if let Some(e) = l.entries.get(i) {
                terms.push(e.name.as_str());
            }
        }
    }
    // About 60 terms fit in the 223-token budget; later ones would be cut from the front anyway.
    let mut prompt = String::from("診察所見の口述です。");
    for t in terms.iter().take(PROMPT_TERMS) {
        prompt.push_str(t);
        prompt.push('、');
    }
    prompt
}

/// Terms placed in the initial prompt (see [`lexicon_prompt`]).
pub const PROMPT_TERMS: usize = 60;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_filters_match_librosa_shape_and_normalisation() {
        let f = mel_filters(80, 400, 16000.0);
        assert_eq!(f.len(), 80 * 201);
        // Every filter is a non-empty triangle; Slaney normalisation makes each filter's area ~ constant in Hz,
        // so the first (narrow) filter peaks higher than the last (wide) one.
        for m in 0..80 {
            assert!(
                f[m * 201..(m + 1) * 201].iter().any(|v| *v > 0.0),
                "filter {m}"
            );
        }
        let peak = |m: usize| {
            f[m * 201..(m + 1) * 201]
                .iter()
                .copied()
                .fold(0.0, f32::max)
        };
        assert!(peak(0) > peak(79));
        // librosa's value for filter 0, bin 1 (40 Hz): lower slope 40/37.24, upper 0.926 × 2/74.48 with sr=16000, n_fft=400, n_mels=80.
        assert!((f[1] - 0.024_862_3).abs() < 1e-4, "{}", f[1]);
    }

    #[test]
    fn captions_over_music_are_not_dictation() {
        for (text, caption) in [
            ("BGM", true),
            ("（音楽）", true),
            ("[拍手]", true),
            ("ご視聴ありがとうございました。", true),
            ("BGM、音楽、BGM、音楽", true),
            ("ｂｇｍ", true),
            ("Music", true),
            ("音楽療法を開始する。", false),
            ("笑いながら話す。", false),
            ("発熱あり。BGM", false),
            ("ありがとうございました、咳は治まりました", false),
            ("♪", false),
            ("", false),
        ] {
            assert_eq!(is_caption(text), caption, "{text:?}");
        }
    }

    #[test]
    fn fallback_sampling_follows_the_tempered_distribution() {
        let lp = log_softmax(&[2.0, 1.0, f32::NEG_INFINITY, 0.0]);
        // Draws across [0, 1) land on each token in proportion to its tempered probability; -inf never.
        let mut rng = Rng::new(3, 1);
        let mut counts = [0usize; 4];
        for _ in 0..20_000 {
            counts[sample(&lp, 1.0, rng.next_f64())] += 1;
        }
        assert_eq!(counts[2], 0);
        let p0 = 1.0 / (1.0 + (-1.0f64).exp() + (-2.0f64).exp());
        assert!(
            (counts[0] as f64 / 20_000.0 - p0).abs() < 0.02,
            "{counts:?}"
        );
        // A low temperature is nearly greedy; the generator is the same for the same window and attempt.
        let mut rng = Rng::new(0, 1);
        assert!((0..100).all(|_| sample(&lp, 0.05, rng.next_f64()) == 0));
        assert_eq!(Rng::new(7, 2).next_f64(), Rng::new(7, 2).next_f64());
        assert_ne!(Rng::new(7, 2).next_f64(), Rng::new(7, 3).next_f64());
        assert_eq!(
            sample(&lp, 1.0, 0.999_999_9),
            3,
            "the top of the range is the last drawable token"
        );
    }

    #[test]
    fn loops_are_caught_and_dictation_is_not() {
        assert!(is_looping("BGM、音楽、BGM、音楽、BGM、音楽、BGM、音楽"));
        assert!(is_looping("ご視聴ありがとうございました ご視聴ありがとうございました ご視聴ありがとうございました ご視聴ありがとうございました"));
        assert!(is_looping("あああああああああああ"));
        assert!(!is_looping(
            "三日前から発熱と咳嗽があり、本日から呼吸困難を自覚している。"
        ));
        assert!(!is_looping("血液培養を二セット採取し、尿培養も提出した。"));
        // Three repeats is emphasis or a list, not a loop; short runs are speech.
        assert!(!is_looping("はい、はい、はい。"));
        assert!(!is_looping("ST上昇、ST上昇、ST上昇を認める"));
    }

    #[test]
    fn prompt_draws_from_every_lexicon() {
        let p = lexicon_prompt();
        assert!(p.starts_with("診察所見の口述です。"));
        let n = p.matches('、').count();
        assert_eq!(n, PROMPT_TERMS);
    }
}
