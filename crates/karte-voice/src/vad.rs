//! Energy-based voice-activity gate, applied before the model sees any audio.
//!
//! Whisper turns silence and steady noise into fluent text (「ご視聴ありがとうございました」, 「BGM、音楽」): its
//! training subtitles put such lines over quiet stretches. Its own no-speech probability catches only part of it, so
//! stretches that are not louder than the recording's own noise floor never reach the model: a recording with no
//! speech gives an empty transcript without a model call, and long pauses inside a dictation are cut out (which
//! also saves decoding time). The gate is deliberately generous around speech (padding, short pauses kept):
//! cutting a quiet syllable costs more than leaving a pause in.
//!
//! The noise floor is the recording's own (a low percentile of its frame energies), so a noisy ward and a quiet
//! office are judged alike; steady noise (fan, hum, hiss) sits at its floor and never opens the gate.

use std::ops::Range;

use crate::audio::SAMPLE_RATE;

/// Analysis frame: 20 ms at 16 kHz.
pub const FRAME: usize = SAMPLE_RATE as usize / 50;
/// A frame is speech when it is this much louder than the noise floor…
pub const MARGIN_DB: f32 = 10.0;
/// …and louder than this absolute level (dBFS): digital silence and a muted microphone never open the gate.
pub const MIN_LEVEL_DB: f32 = -55.0;
/// The noise floor: this percentile of the frame energies.
const FLOOR_PERCENTILE: f32 = 0.10;
/// Less speech than this in the whole recording (a click, a cough on an open microphone) counts as none.
const MIN_SPEECH_FRAMES: usize = 10;
/// Audio kept on each side of a speech frame (300 ms): word onsets and trailing consonants are quiet.
const PAD_FRAMES: usize = 15;
/// Pauses shorter than this (after padding) are kept, so a sentence is never cut in the middle.
const MIN_GAP_FRAMES: usize = 25;

/// Frame energies in dBFS (mean square; digital silence clamps at -100).
pub fn frame_db(pcm: &[f32]) -> Vec<f32> {
    pcm.chunks(FRAME)
        .map(|f| {
            let ms = f.iter().map(|x| x * x).sum::<f32>() / f.len() as f32;
            (10.0 * (ms + 1e-10).log10()).max(-100.0)
        })
        .collect()
}

/// Sample ranges of `pcm` (16 kHz mono) that hold speech, padded and merged; empty when there is no speech.
pub fn speech_regions(pcm: &[f32]) -> Vec<Range<usize>> {
    let db = frame_db(pcm);
    if db.is_empty() {
        return Vec::new();
    }
    let mut sorted = db.clone();
    sorted.sort_by(f32::total_cmp);
    let floor = sorted[((sorted.len() - 1) as f32 * FLOOR_PERCENTILE) as usize];
    let threshold = (floor + MARGIN_DB).max(MIN_LEVEL_DB);
    let speech: Vec<usize> = (0..db.len()).filter(|&i| db[i] > threshold).collect();
    if speech.len() < MIN_SPEECH_FRAMES {
        return Vec::new();
    }
    let mut frames: Vec<Range<usize>> = Vec::new();
    for i in speech {
        let r = i.saturating_sub(PAD_FRAMES)..(i + PAD_FRAMES + 1).min(db.len());
        match frames.last_mut() {
            Some(last) if r.start <= last.end + MIN_GAP_FRAMES => last.end = last.end.max(r.end),
            _ => frames.push(r),
        }
    }
    frames
        .into_iter()
        .map(|r| r.start * FRAME..(r.end * FRAME).min(pcm.len()))
        .collect()
}

/// The speech of a recording, joined, with the map back to the recording's own time line.
#[derive(Debug, Clone)]
pub struct Gated {
    pub pcm: Vec<f32>,
    /// (start in `pcm`, start in the original, length), in samples.
    pieces: Vec<(usize, usize, usize)>,
}

impl Gated {
    /// Seconds of audio that passed the gate (0: no speech).
    pub fn speech_s(&self) -> f64 {
        self.pcm.len() as f64 / SAMPLE_RATE as f64
    }

    /// A time in the joined speech → the same instant in the original recording.
    pub fn original_s(&self, t: f64) -> f64 {
        let s = (t.max(0.0) * SAMPLE_RATE as f64) as usize;
        let piece = self
            .pieces
            .iter()
            .rev()
            .find(|p| p.0 <= s)
            .or(self.pieces.first());
        match piece {
            Some(&(g, o, len)) => (o + (s - g.min(s)).min(len)) as f64 / SAMPLE_RATE as f64,
            None => t,
        }
    }
}

/// Keep only the speech regions of `pcm`.
pub fn gate(pcm: &[f32]) -> Gated {
    let mut out = Vec::new();
    let mut pieces = Vec::new();
    for r in speech_regions(pcm) {
        pieces.push((out.len(), r.start, r.len()));
        out.extend_from_slice(&pcm[r]);
    }
    Gated { pcm: out, pieces }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random source (no dependency, reproducible): xorshift, uniform in [-1, 1].
    fn noise(n: usize, amp: f32, seed: u64) -> Vec<f32> {
        let mut s = seed.max(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0) * amp
            })
            .collect()
    }

    /// Speech-like: a 150 Hz voiced tone whose loudness rises and falls at a syllable rate (4 Hz).
    fn voiced(n: usize, amp: f32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f32 / SAMPLE_RATE as f32;
                let env = 0.5 - 0.5 * (2.0 * std::f32::consts::PI * 4.0 * t).cos();
                amp * env * (2.0 * std::f32::consts::PI * 150.0 * t).sin()
            })
            .collect()
    }

    const S: usize = SAMPLE_RATE as usize;

    #[test]
    fn silence_and_steady_noise_hold_no_speech() {
        assert!(speech_regions(&vec![0.0; 10 * S]).is_empty());
        // Hiss at three levels, from a quiet room to a loud fan: the floor is the noise itself.
        for amp in [0.001, 0.05, 0.5] {
            assert!(speech_regions(&noise(10 * S, amp, 7)).is_empty(), "{amp}");
        }
        assert_eq!(gate(&noise(10 * S, 0.05, 3)).speech_s(), 0.0);
        // A 60 ms click is not a dictation.
        let mut click = vec![0.0; 5 * S];
        click[S..S + S * 6 / 100].copy_from_slice(&voiced(S * 6 / 100, 0.5));
        assert!(speech_regions(&click).is_empty());
    }

    #[test]
    fn speech_in_noise_is_kept_and_long_pauses_are_cut() {
        // 1 s noise, 2 s speech, 4 s noise, 2 s speech, 1 s noise (speech 20 dB over the noise).
        let mut pcm = noise(10 * S, 0.01, 11);
        for (start, len) in [(S, 2 * S), (7 * S, 2 * S)] {
            for (x, v) in pcm[start..start + len].iter_mut().zip(voiced(len, 0.3)) {
                *x += v;
            }
        }
        let r = speech_regions(&pcm);
        assert_eq!(r.len(), 2, "{r:?}");
        // Each region covers its speech (padding may add up to 0.3 s either side), and the 4 s pause is dropped.
        assert!(
            r[0].start <= S && r[0].end >= 3 * S && r[0].end <= 3 * S + S / 2,
            "{r:?}"
        );
        assert!(
            r[1].start <= 7 * S && r[1].start >= 7 * S - S / 2 && r[1].end >= 9 * S,
            "{r:?}"
        );
        let g = gate(&pcm);
        assert!(g.speech_s() < 6.0 && g.speech_s() > 4.0, "{}", g.speech_s());
        // Times map back: the start of the second piece is where the second region starts in the recording.
        let second = r[0].len() as f64 / SAMPLE_RATE as f64;
        let back = g.original_s(second + 0.5);
        assert!((back - (r[1].start as f64 / SAMPLE_RATE as f64 + 0.5)).abs() < 1e-3);
        assert!((g.original_s(0.0) - r[0].start as f64 / SAMPLE_RATE as f64).abs() < 1e-3);
    }

    #[test]
    fn short_pauses_inside_a_sentence_are_kept() {
        // Two 1 s phrases with a 0.6 s breath between: one region.
        let mut pcm = vec![0.0; 4 * S];
        let phrase = voiced(S, 0.3);
        pcm[S / 2..S / 2 + S].copy_from_slice(&phrase);
        let b = S / 2 + S + S * 6 / 10;
        pcm[b..b + S].copy_from_slice(&phrase);
        assert_eq!(speech_regions(&pcm).len(), 1);
    }
}
