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
    /// Words the recogniser heard as near-homophones and replaced with lexicon terms (聴診 for 調身): shown under
    /// the box so the physician checks exactly those before drafting.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub corrections: Vec<TranscriptionCorrection>,
}

/// One replacement of the correction pass: `from` as decoded, `to` the lexicon term, `at` its character offset in
/// the decoded text. The OpenAI-compatible `verbose_json` carries the same objects (karte's own extension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptionCorrection {
    pub from: String,
    pub to: String,
    pub at: usize,
}

/// The rate the window records at. Whisper hears 16 kHz, and at 16-bit mono a 10-minute dictation stays under
/// [`MAX_AUDIO_BYTES`] (a 48 kHz recording would not).
pub const CAPTURE_RATE: u32 = 16_000;

/// The longest recording the store keeps in one piece: what fits in one transcription once it is a WAV file.
pub const MAX_RECORDING_BYTES: usize = MAX_AUDIO_BYTES - WAV_HEADER_BYTES;

/// The header of a `recording_append` call that names its recording (the raw body is the audio itself).
pub const RECORDING_HEADER: &str = "karte-recording";

/// A recording kept in the record store while (and after) the physician speaks into the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    pub id: String,
    /// When recording began (local time, ISO 8601), so the physician can tell which dictation it was.
    pub started_at: String,
    /// Audio kept so far, in seconds.
    pub seconds: f64,
    /// Still open: the window is recording into it, or the app ended before it was stopped.
    pub open: bool,
}

/// 音量 of one block of samples, 0.0–1.0, for the level meter: the RMS in dB, -60 dBFS (a quiet room) to 0 dBFS
/// mapped linearly, because a linear RMS bar barely moves for speech at a normal distance from the microphone.
pub fn level(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let power = samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32;
    let db = 10.0 * power.max(1e-12).log10();
    ((db + 60.0) / 60.0).clamp(0.0, 1.0)
}

/// The window's samples (Web Audio `f32` at whatever rate the device runs) as 16-bit little-endian PCM at
/// [`CAPTURE_RATE`], the store's format. Linear interpolation: speech has little above 4 kHz, and the recogniser
/// low-passes again; a 48 kHz device gives every third sample, averaged with its neighbours' share.
pub fn to_pcm16(samples: &[f32], rate: f32) -> Vec<u8> {
    let step = rate / CAPTURE_RATE as f32;
    if samples.is_empty() || !step.is_finite() || step <= 0.0 {
        return Vec::new();
    }
    let n = (samples.len() as f32 / step).floor() as usize;
    let mut out = Vec::with_capacity(n * 2);
    for i in 0..n {
        let pos = i as f32 * step;
        let at = pos as usize;
        let frac = pos - at as f32;
        let a = samples[at];
        let b = samples.get(at + 1).copied().unwrap_or(a);
        let v = (a + (b - a) * frac).clamp(-1.0, 1.0);
        out.extend_from_slice(&((v * i16::MAX as f32).round() as i16).to_le_bytes());
    }
    out
}

/// The size of the RIFF header [`wav`] writes.
pub const WAV_HEADER_BYTES: usize = 44;

/// 16-bit mono PCM at [`CAPTURE_RATE`] as a WAV file, the form every recogniser (and the clinic server) takes.
pub fn wav(pcm: &[u8]) -> Vec<u8> {
    let data = pcm.len() as u32;
    let rate = CAPTURE_RATE;
    let mut out = Vec::with_capacity(WAV_HEADER_BYTES + pcm.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    out.extend_from_slice(pcm);
    out
}

/// A long recording is heard in parts of at most this many seconds (Whisper's own window), so that the window can
/// show text as each part is recognised and one failed part is retried alone.
pub const PART_S: f64 = 30.0;

/// Where to cut the store's PCM into parts of at most `max_s` seconds: at the quietest 100 ms of the last third of
/// each part, so a word is seldom cut in two (dictation pauses between sentences). Contiguous byte ranges that
/// cover all of `pcm`, each starting on a sample.
pub fn parts(pcm: &[u8], max_s: f64) -> Vec<std::ops::Range<usize>> {
    let frame = 2 * CAPTURE_RATE as usize / 10;
    let max = ((max_s * CAPTURE_RATE as f64) as usize * 2 / frame).max(3) * frame;
    let energy = |at: usize| -> u64 {
        pcm[at..(at + frame).min(pcm.len())]
            .chunks_exact(2)
            .map(|b| {
                let v = i16::from_le_bytes([b[0], b[1]]) as i64;
                (v * v) as u64
            })
            .sum()
    };
    let mut out = Vec::new();
    let mut start = 0;
    while pcm.len() - start > max {
        let from = start + max / frame * 2 / 3 * frame;
        let frames: Vec<(usize, u64)> = (from..start + max)
            .step_by(frame)
            .map(|f| (f, energy(f)))
            .collect();
        let mean = frames.iter().map(|(_, e)| e).sum::<u64>() / frames.len().max(1) as u64;
        // A pause is a frame well under the part's level; without one the part runs to its limit.
        let cut = match frames.iter().min_by_key(|(_, e)| *e) {
            Some(&(f, e)) if e.saturating_mul(10) < mean => f + frame / 2,
            _ => start + max,
        };
        out.push(start..cut);
        start = cut;
    }
    if start < pcm.len() {
        out.push(start..pcm.len());
    }
    out
}

/// How far the hearing of a recording is, for the window: seconds heard of the whole, and the text so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HearingProgress {
    pub heard_s: f64,
    pub total_s: f64,
    pub text: String,
}

/// Seconds of audio in `bytes` of the store's PCM.
pub fn pcm_seconds(bytes: usize) -> f64 {
    bytes as f64 / (2.0 * CAPTURE_RATE as f64)
}

/// Tells when a recording has been left on: the level stayed under [`SilenceWatch::QUIET`] for
/// [`SilenceWatch::ALERT_AFTER_S`] seconds of recorded audio. Counted in audio seconds, not wall time, so a paused
/// recording does not alert and the rule can be tested with blocks of samples.
#[derive(Debug, Clone, Default)]
pub struct SilenceWatch {
    quiet_s: f64,
}

impl SilenceWatch {
    /// Below this [`level`] a block counts as silence (about -45 dBFS: a quiet ward room through a headset).
    pub const QUIET: f32 = 0.25;
    /// Five minutes, as the issue asks: long enough for a pause to think, short enough to catch a forgotten recorder.
    pub const ALERT_AFTER_S: f64 = 300.0;

    /// Adds a block of `seconds` at `level`; true while the alert should show.
    pub fn push(&mut self, level: f32, seconds: f64) -> bool {
        if level >= Self::QUIET {
            self.quiet_s = 0.0;
        } else {
            self.quiet_s += seconds;
        }
        self.alerting()
    }

    pub fn alerting(&self) -> bool {
        self.quiet_s >= Self::ALERT_AFTER_S
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_maps_decibels_to_the_meter() {
        // (samples, expected level): silence, a quiet room, normal speech, full scale.
        let cases: &[(f32, f32)] = &[
            (0.0, 0.0),
            (0.001, 0.0),
            (0.01, 0.333),
            (0.1, 0.667),
            (1.0, 1.0),
        ];
        for &(amp, want) in cases {
            let got = level(&vec![amp; 1600]);
            assert!(
                (got - want).abs() < 0.01,
                "amplitude {amp}: {got} != {want}"
            );
        }
        assert_eq!(level(&[]), 0.0);
    }

    #[test]
    fn pcm16_resamples_to_the_capture_rate() {
        // (device rate, input samples, output samples)
        for (rate, n, want) in [
            (48_000.0, 4800, 1600),
            (44_100.0, 4410, 1600),
            (16_000.0, 1600, 1600),
        ] {
            let out = to_pcm16(&vec![0.5; n], rate);
            assert_eq!(out.len(), want * 2, "rate {rate}");
            let first = i16::from_le_bytes([out[0], out[1]]);
            assert_eq!(first, (0.5 * i16::MAX as f32).round() as i16);
        }
        // A ramp keeps its shape: every third 48 kHz sample.
        let ramp: Vec<f32> = (0..48).map(|i| i as f32 / 100.0).collect();
        let out = to_pcm16(&ramp, 48_000.0);
        let got: Vec<i16> = out
            .chunks(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let want: Vec<i16> = (0..16)
            .map(|i| ((i * 3) as f32 / 100.0 * i16::MAX as f32).round() as i16)
            .collect();
        assert_eq!(got, want);
        // Out of range is clipped, not wrapped.
        let out = to_pcm16(&[2.0, -2.0], 16_000.0);
        assert_eq!(
            out,
            [i16::MAX.to_le_bytes(), (-i16::MAX).to_le_bytes()].concat()
        );
        assert!(to_pcm16(&[0.1; 10], 0.0).is_empty());
    }

    #[test]
    fn wav_header_describes_the_pcm() {
        let pcm = vec![0u8; 3200];
        let w = wav(&pcm);
        assert_eq!(w.len(), WAV_HEADER_BYTES + 3200);
        assert_eq!(&w[0..4], b"RIFF");
        assert_eq!(&w[8..16], b"WAVEfmt ");
        assert_eq!(
            u32::from_le_bytes(w[24..28].try_into().unwrap()),
            CAPTURE_RATE
        );
        assert_eq!(u32::from_le_bytes(w[40..44].try_into().unwrap()), 3200);
        assert_eq!(pcm_seconds(3200), 0.1);
        // The largest recording the store keeps is the largest file a transcription takes.
        assert_eq!(wav(&vec![0; MAX_RECORDING_BYTES]).len(), MAX_AUDIO_BYTES);
    }

    /// `seconds` of a loud tone with half-second pauses at the given times.
    fn speech_with_pauses(seconds: f64, pauses: &[f64]) -> Vec<u8> {
        let n = (seconds * CAPTURE_RATE as f64) as usize;
        (0..n)
            .flat_map(|i| {
                let t = i as f64 / CAPTURE_RATE as f64;
                let quiet = pauses.iter().any(|&p| t >= p && t < p + 0.5);
                let v = if quiet {
                    0.0
                } else {
                    (t * 440.0 * std::f64::consts::TAU).sin() * 0.5
                };
                ((v * i16::MAX as f64) as i16).to_le_bytes()
            })
            .collect()
    }

    #[test]
    fn long_recordings_are_cut_at_pauses_into_parts_whisper_hears_whole() {
        let secs = |b: usize| b as f64 / (2.0 * CAPTURE_RATE as f64);
        // (length, pauses, expected cuts in seconds ± 0.1): a pause in the last third is taken (its first quiet
        // frame); without one the part ends at its limit; short recordings are one part.
        let cases: &[(f64, &[f64], &[f64])] = &[
            (75.0, &[25.0, 52.0], &[25.05, 52.1]),
            (75.0, &[5.0, 40.0], &[30.0, 60.0]),
            (12.0, &[5.0], &[]),
            (30.0, &[], &[]),
        ];
        for &(len, pauses, cuts) in cases {
            let pcm = speech_with_pauses(len, pauses);
            let got = parts(&pcm, PART_S);
            assert_eq!(
                got.len(),
                cuts.len() + 1,
                "{len} s, pauses {pauses:?}: {got:?}"
            );
            assert_eq!(got[0].start, 0);
            assert_eq!(got.last().unwrap().end, pcm.len());
            for (w, r) in got.windows(2).zip(cuts) {
                assert_eq!(w[0].end, w[1].start, "contiguous");
                assert!(
                    (secs(w[0].end) - r).abs() <= 0.1,
                    "cut at {} s, want {r}",
                    secs(w[0].end)
                );
            }
            for r in &got {
                assert_eq!(r.start % 2, 0, "on a sample");
                assert!(secs(r.len()) <= PART_S + 1e-9, "{r:?} too long");
            }
        }
        assert!(parts(&[], PART_S).is_empty());
    }

    #[test]
    fn silence_alert_after_five_minutes_of_quiet_audio() {
        let mut w = SilenceWatch::default();
        // 299 s of quiet, then speech resets, then 300 s of quiet alerts, and speech clears it.
        assert!(!w.push(0.1, 299.0));
        assert!(!w.push(0.6, 1.0));
        for _ in 0..299 {
            assert!(!w.push(0.0, 1.0));
        }
        assert!(w.push(0.2, 1.0));
        assert!(!w.push(SilenceWatch::QUIET, 0.25));
    }
}
