//! Audio in: decode a file, fold to mono, resample to Whisper's 16 kHz.
//!
//! WAV (what a ward PC's recorder and the test TTS write) is read by hound; FLAC, MP3 and M4A/MP4 with AAC (what
//! phones and IC recorders write) by symphonia, pure Rust, so that decoding an opened file can happen in the app's
//! own process (to cut it into parts with progress) without bringing the recogniser there. Anything else is refused
//! with `audio.unsupported` rather than guessed at. Nothing longer than one transcription takes
//! ([`MAX_SECONDS`]) is decoded to the end: a small compressed file can hold hours, and memory would go first.

use karte_core::{Code, Error, Result};
use std::path::Path;

/// Whisper's input rate.
pub const SAMPLE_RATE: u32 = 16_000;

const _: () = assert!(SAMPLE_RATE == karte_ipc::voice::CAPTURE_RATE);

/// The longest audio one transcription takes: what fits the largest recording the store keeps
/// ([`karte_ipc::voice::MAX_RECORDING_BYTES`] of 16 kHz 16-bit PCM, about 17 minutes).
pub const MAX_SECONDS: f64 =
    karte_ipc::voice::MAX_RECORDING_BYTES as f64 / (SAMPLE_RATE as f64 * 2.0);

/// Decoded samples at their own rate, already mixed down to one channel.
#[derive(Debug, Clone)]
pub struct Pcm {
    pub rate: u32,
    pub samples: Vec<f32>,
}

/// Read an audio file (WAV PCM 8/16/24/32-bit integer or 32-bit float, FLAC, MP3, M4A/AAC; any channel count)
/// into mono samples in [-1, 1].
pub fn read_audio(path: &Path) -> Result<Pcm> {
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bytes = std::fs::read(path).map_err(|io| {
        Error::new(
            Code::InputUnreadable,
            format!("音声ファイルを読めません（{}）: {io}", path.display()),
        )
    })?;
    decode(&bytes, &format!("「{name}」"), MAX_SECONDS)
}

/// Decode audio bytes received over HTTP. The error names the upload generically: the client's file name may carry a
/// patient's name and must not reach a log or a response.
pub fn decode_bytes(bytes: &[u8]) -> Result<Pcm> {
    decode(bytes, "送られた音声", MAX_SECONDS)
}

fn decode(bytes: &[u8], what: &str, max_s: f64) -> Result<Pcm> {
    if bytes.starts_with(b"RIFF") {
        decode_wav(std::io::Cursor::new(bytes), what, max_s)
    } else {
        decode_compressed(bytes, what, max_s)
    }
}

/// FLAC, MP3, M4A (AAC) through symphonia's probe: the container is recognised from the bytes, never from a file
/// name. A packet that fails to decode is skipped (a damaged frame in a phone recording), as players do; a file
/// that yields no samples at all is refused.
fn decode_compressed(bytes: &[u8], what: &str, max_s: f64) -> Result<Pcm> {
    use symphonia::core::audio::SampleBuffer;
    use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
    use symphonia::core::errors::Error as SymError;
    use symphonia::core::formats::FormatOptions;
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;
    use symphonia::core::probe::Hint;

    let source = MediaSourceStream::new(
        Box::new(std::io::Cursor::new(bytes.to_vec())),
        Default::default(),
    );
    let probed = symphonia::default::get_probe()
        .format(
            &Hint::new(),
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|_| unsupported(what))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| unsupported(what))?;
    let track_id = track.id;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|_| unsupported(what))?;
    let mut rate = track.codec_params.sample_rate.unwrap_or(0);
    let mut samples = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            // The end of the stream, the only way symphonia reports it.
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(_) => return Err(unsupported(what)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(SymError::DecodeError(_)) => continue,
            Err(_) => return Err(unsupported(what)),
        };
        let spec = *decoded.spec();
        rate = spec.rate;
        let channels = spec.channels.count().max(1);
        let mut buf = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        buf.copy_interleaved_ref(decoded);
        samples.extend(
            buf.samples()
                .chunks(channels)
                .map(|frame| frame.iter().sum::<f32>() / frame.len() as f32),
        );
        if samples.len() as f64 > max_s * rate as f64 {
            return Err(too_long(what, max_s));
        }
    }
    if samples.is_empty() || rate == 0 {
        return Err(unsupported(what));
    }
    Ok(Pcm { rate, samples })
}

fn decode_wav<R: std::io::Read>(source: R, what: &str, max_s: f64) -> Result<Pcm> {
    let reader = hound::WavReader::new(source).map_err(|_| unsupported(what))?;
    let spec = reader.spec();
    // The header's length, before anything is read: a header that claims hours is refused at once.
    if spec.sample_rate > 0 && reader.duration() as f64 > max_s * spec.sample_rate as f64 {
        return Err(too_long(what, max_s));
    }
    let channels = spec.channels.max(1) as usize;
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .into_samples::<f32>()
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| unsupported(what))?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| unsupported(what))?
        }
    };
    let samples: Vec<f32> = interleaved
        .chunks(channels)
        .map(|frame| frame.iter().sum::<f32>() / frame.len() as f32)
        .collect();
    if samples.is_empty() || spec.sample_rate == 0 {
        return Err(unsupported(what));
    }
    Ok(Pcm {
        rate: spec.sample_rate,
        samples,
    })
}

fn unsupported(what: &str) -> Error {
    Error::new(
        Code::AudioUnsupported,
        format!(
            "{what}は読み取れる音声ファイルではありません。WAV・FLAC・MP3・M4A（AAC）のいずれかで保存し直してください。"
        ),
    )
}

fn too_long(what: &str, max_s: f64) -> Error {
    Error::new(
        Code::InputTooLarge,
        format!(
            "{what}は長すぎます（{}分まで）。録音を分けて、一つずつ読み込んでください。",
            (max_s / 60.0).floor()
        ),
    )
}

/// Decode `path` and resample to 16 kHz mono, the form the recogniser takes.
pub fn load_16k_mono(path: &Path) -> Result<Vec<f32>> {
    let pcm = read_audio(path)?;
    Ok(resample(&pcm.samples, pcm.rate, SAMPLE_RATE))
}

/// [`decode_bytes`], resampled to 16 kHz mono.
pub fn bytes_16k_mono(bytes: &[u8]) -> Result<Vec<f32>> {
    let pcm = decode_bytes(bytes)?;
    Ok(resample(&pcm.samples, pcm.rate, SAMPLE_RATE))
}

/// An opened file as the 16 kHz 16-bit little-endian mono PCM that recordings are kept in
/// (`karte_ipc::voice::CAPTURE_RATE`), so that it is heard the way a recording is: in parts, with progress.
pub fn bytes_to_pcm16(bytes: &[u8]) -> Result<Vec<u8>> {
    let pcm = decode(bytes, "音声ファイル", MAX_SECONDS)?;
    Ok(resample(&pcm.samples, pcm.rate, SAMPLE_RATE)
        .iter()
        .flat_map(|v| ((v.clamp(-1.0, 1.0) * i16::MAX as f32).round() as i16).to_le_bytes())
        .collect())
}

/// Band-limited resampling with a Hann-windowed sinc. When downsampling, the cut-off follows the target's Nyquist
/// frequency so that 44.1/48 kHz recordings do not alias into the speech band (aliasing raises Whisper's error rate).
pub fn resample(x: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || x.is_empty() {
        return x.to_vec();
    }
    let ratio = to as f64 / from as f64;
    let fc = ratio.min(1.0);
    let half_width = (16.0 / fc).ceil() as i64;
    let out_len = ((x.len() as f64) * ratio).round() as usize;
    let mut out = Vec::with_capacity(out_len);
    for n in 0..out_len {
        let t = n as f64 / ratio;
        let centre = t.floor() as i64;
        let mut acc = 0.0f64;
        for k in (centre - half_width + 1)..=(centre + half_width) {
            if k < 0 || k as usize >= x.len() {
                continue;
            }
            let d = t - k as f64;
            let w = 0.5 * (1.0 + (std::f64::consts::PI * d / half_width as f64).cos());
            if d.abs() >= half_width as f64 {
                continue;
            }
            acc += x[k as usize] as f64 * fc * sinc(fc * d) * w;
        }
        out.push(acc as f32);
    }
    out
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-9 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: u32, secs: f64) -> Vec<f32> {
        (0..(rate as f64 * secs) as usize)
            .map(|i| {
                (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin() as f32 * 0.5
            })
            .collect()
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn resampling_keeps_speech_band_and_removes_what_cannot_be_represented() {
        // 1 kHz passes from 48 kHz to 16 kHz with its level; 12 kHz (above the new 8 kHz Nyquist) must vanish
        // instead of folding back to 4 kHz.
        let kept = resample(&tone(1000.0, 48_000, 1.0), 48_000, 16_000);
        assert_eq!(kept.len(), 16_000);
        let mid = &kept[2000..14000];
        assert!((rms(mid) - 0.5 / 2f64.sqrt()).abs() < 0.02, "{}", rms(mid));
        let gone = resample(&tone(12_000.0, 48_000, 1.0), 48_000, 16_000);
        assert!(
            rms(&gone[2000..14000]) < 0.02,
            "{}",
            rms(&gone[2000..14000])
        );
        // Upsampling 8 kHz telephone audio keeps length and level.
        let up = resample(&tone(500.0, 8_000, 1.0), 8_000, 16_000);
        assert_eq!(up.len(), 16_000);
        assert!((rms(&up[2000..14000]) - 0.5 / 2f64.sqrt()).abs() < 0.02);
    }

    #[test]
    fn wav_in_every_sample_format_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        // Stereo 16-bit at 24 kHz: left and right carry opposite halves, so a correct downmix averages them.
        let p = dir.path().join("s.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 24_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&p, spec).unwrap();
        for _ in 0..2400 {
            w.write_sample(16384i16).unwrap();
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();
        let pcm = read_audio(&p).unwrap();
        assert_eq!((pcm.rate, pcm.samples.len()), (24_000, 2400));
        assert!((pcm.samples[100] - 0.25).abs() < 1e-4);
        assert_eq!(load_16k_mono(&p).unwrap().len(), 1600);

        let f = dir.path().join("f.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(&f, spec).unwrap();
        w.write_sample(-0.5f32).unwrap();
        w.finalize().unwrap();
        assert_eq!(read_audio(&f).unwrap().samples, vec![-0.5]);

        let junk = dir.path().join("x.mp3");
        std::fs::write(&junk, b"ID3 not a wav at all").unwrap();
        assert_eq!(read_audio(&junk).unwrap_err().code, Code::AudioUnsupported);
        // Bytes from an upload decode the same, and a refusal does not repeat anything the client sent.
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes_16k_mono(&bytes).unwrap().len(), 1600);
        let refused = decode_bytes(b"ID3 not a wav at all").unwrap_err();
        assert_eq!(refused.code, Code::AudioUnsupported);
        assert!(
            refused.message.starts_with("送られた音声は"),
            "{}",
            refused.message
        );
        let missing = read_audio(&dir.path().join("none.wav")).unwrap_err();
        assert_eq!(missing.code, Code::InputUnreadable);
    }

    /// The committed clip re-encoded by `tests/data/voice/make_formats.py`: every container decodes to the WAV's
    /// length, and to the same sound (correlation with the WAV after resampling to 16 kHz, lossy codecs included).
    #[test]
    fn flac_mp3_and_m4a_decode_to_the_same_sound_as_the_wav() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/voice");
        let wav = load_16k_mono(&dir.join("d03-jf_alpha.wav")).unwrap();
        for (file, max_len_diff_s) in [
            ("d03-jf_alpha.flac", 0.001),
            ("d03-jf_alpha.mp3", 0.1),
            ("d03-jf_alpha.m4a", 0.1),
        ] {
            let x = load_16k_mono(&dir.join(file)).unwrap();
            let diff_s = (x.len() as f64 - wav.len() as f64).abs() / SAMPLE_RATE as f64;
            assert!(
                diff_s <= max_len_diff_s,
                "{file}: {diff_s:.3} s longer or shorter"
            );
            // Encoders add a delay at the start (MP3, AAC priming): one second of speech from 1 s on is compared at
            // the best lag within ±100 ms.
            let window = &wav[16_000..32_000];
            let best = (14_400..=17_600)
                .map(|start| correlation(window, &x[start..start + 16_000]))
                .fold(f64::MIN, f64::max);
            assert!(best > 0.9, "{file}: correlation {best:.3}");
        }
    }

    /// A file longer than one transcription takes is refused as too large, before it is decoded to the end: a WAV
    /// by its header (which here claims an hour over a few bytes), a compressed file once its samples pass the limit.
    #[test]
    fn audio_longer_than_one_transcription_is_refused() {
        let mut bomb = Vec::new();
        let data: u32 = 16_000 * 2 * 3600;
        for (tag, v) in [(b"RIFF", data + 36), (b"WAVE", 0), (b"fmt ", 16)] {
            bomb.extend_from_slice(tag);
            if tag != b"WAVE" {
                bomb.extend_from_slice(&v.to_le_bytes());
            }
        }
        for v in [1u16, 1] {
            bomb.extend_from_slice(&v.to_le_bytes());
        }
        bomb.extend_from_slice(&16_000u32.to_le_bytes());
        bomb.extend_from_slice(&32_000u32.to_le_bytes());
        bomb.extend_from_slice(&2u16.to_le_bytes());
        bomb.extend_from_slice(&16u16.to_le_bytes());
        bomb.extend_from_slice(b"data");
        bomb.extend_from_slice(&data.to_le_bytes());
        bomb.extend_from_slice(&[0; 64]);
        let e = bytes_to_pcm16(&bomb).unwrap_err();
        assert_eq!(e.code, Code::InputTooLarge, "{e:?}");
        assert!(e.message.contains("17分まで"), "{}", e.message);

        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/voice");
        for file in [
            "d03-jf_alpha.wav",
            "d03-jf_alpha.flac",
            "d03-jf_alpha.mp3",
            "d03-jf_alpha.m4a",
        ] {
            let bytes = std::fs::read(dir.join(file)).unwrap();
            let e = decode(&bytes, "音声ファイル", 2.0).unwrap_err();
            assert_eq!(e.code, Code::InputTooLarge, "{file}: {e:?}");
            assert!(
                decode(&bytes, "音声ファイル", MAX_SECONDS).is_ok(),
                "{file}"
            );
        }
    }

    /// An opened file becomes the recordings' PCM: 16-bit little-endian at 16 kHz, the same sound as the samples.
    #[test]
    fn an_opened_file_becomes_recording_pcm() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/voice");
        let path = dir.join("d03-jf_alpha.mp3");
        let samples = load_16k_mono(&path).unwrap();
        let pcm = bytes_to_pcm16(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(pcm.len(), samples.len() * 2);
        let back: Vec<f32> = pcm
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / i16::MAX as f32)
            .collect();
        assert!(correlation(&samples, &back) > 0.999);
        let e = bytes_to_pcm16(b"not audio at all").unwrap_err();
        assert_eq!(e.code, Code::AudioUnsupported);
        assert!(e.message.starts_with("音声ファイルは"), "{}", e.message);
    }

    fn correlation(a: &[f32], b: &[f32]) -> f64 {
        let n = a.len().min(b.len());
        let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
        for i in 0..n {
            let (x, y) = (a[i] as f64, b[i] as f64);
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        ab / (aa.sqrt() * bb.sqrt()).max(1e-12)
    }
}
