//! Dictation recordings in the record store: kept piece by piece while the physician speaks, offered again after a
//! crash, deleted once heard, never seen by anyone else. Real SQLCipher files, the real kernel keyring, and for the
//! crash test a child process SIGKILLed mid-recording.

mod common;

use common::*;
use karte_core::{Code, EngineKind, Error};
use karte_ipc::voice::{pcm_seconds, MAX_RECORDING_BYTES};
use karte_ipc::Dictated;
use karte_store::Store;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A second of a 440 Hz tone as the window sends it (16-bit PCM at 16 kHz), different for every `piece`.
fn piece(piece: u32) -> Vec<u8> {
    (0..16_000u32)
        .flat_map(|i| {
            let t = i as f32 / 16_000.0;
            let v = (2.0 * std::f32::consts::PI * 440.0 * t).sin() * 0.3 + piece as f32 * 1e-3;
            ((v * i16::MAX as f32) as i16).to_le_bytes()
        })
        .collect()
}

fn heard(text: &str) -> Dictated {
    Dictated {
        text: text.into(),
        engine: EngineKind::LocalWorker,
        duration_s: 3.0,
        speech_s: 2.5,
        corrections: Vec::new(),
    }
}

fn code_of<T: std::fmt::Debug>(r: Result<T, Error>) -> Code {
    r.expect_err("expected an error").code
}

#[test]
fn a_recording_is_kept_until_heard_and_offered_again_after_the_app_is_gone() {
    if !keyring_session("a_recording_is_kept_until_heard_and_offered_again_after_the_app_is_gone") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::new(dir.path(), config());
    let s = ward.login_physician();
    let rec = ward.store.recording_start(&s).unwrap();
    assert!(rec.open && rec.seconds == 0.0);
    let mut said = Vec::new();
    for i in 0..3 {
        let p = piece(i);
        let secs = ward.store.recording_append(&s, &rec.id, &p).unwrap();
        said.extend_from_slice(&p);
        assert_eq!(secs, (i + 1) as f64);
    }
    // The app goes away without stopping (a crash, a closed window): the next sign-in is offered the recording.
    let Ward {
        store,
        physician,
        admin,
        ..
    } = ward;
    drop(store);
    let store = Store::open(dir.path(), config()).unwrap();
    let s = store.login("dr.sato", PASSWORD, &physician.code()).unwrap();
    let pending = store.recordings_pending(&s).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, rec.id);
    assert_eq!(pending[0].seconds, 3.0);
    assert!(pending[0].open, "cut off, not stopped");
    // Stopped, it takes no more audio.
    let stopped = store.recording_stop(&s, &rec.id).unwrap();
    assert!(!stopped.open);
    assert_eq!(
        code_of(store.recording_append(&s, &rec.id, &piece(9))),
        Code::RecordChanged
    );

    // A failed hearing keeps it; the recogniser gets exactly what was said, in order.
    let got = store.recording_transcribe(&s, &rec.id, |audio| {
        assert_eq!(audio, said.as_slice());
        Err(Error::new(Code::WorkerCrashed, "worker crashed"))
    });
    assert_eq!(code_of(got), Code::WorkerCrashed);
    assert_eq!(store.recordings_pending(&s).unwrap().len(), 1);
    // Heard: its text comes back and the audio is gone.
    let d = store
        .recording_transcribe(&s, &rec.id, |_| Ok(heard("発熱あり")))
        .unwrap();
    assert_eq!(d.text, "発熱あり");
    assert!(store.recordings_pending(&s).unwrap().is_empty());
    let raw = raw_conn(dir.path(), store.store_id());
    let left: i64 = raw
        .query_row("SELECT count(*) FROM recording_pieces", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0, "the audio of a heard recording is deleted");

    // The audit trail says what happened to it, with lengths and never words.
    let admin = store.login("admin", PASSWORD, &admin.code()).unwrap();
    let trail: Vec<(String, String)> = store
        .audit_entries(&admin)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "dictate")
        .map(|e| (e.outcome, e.detail))
        .collect();
    let want = [
        ("ok", "recording started"),
        ("ok", "recording stopped seconds=3.0"),
        ("worker.crashed", "audio recording seconds=3.0"),
        ("ok", "audio recording engine=local_worker speech_s=2.5"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(trail, want);
    assert!(store.verify_audit(&admin).unwrap().intact());
}

#[test]
fn only_its_physician_hears_a_recording_and_limits_hold() {
    if !keyring_session("only_its_physician_hears_a_recording_and_limits_hold") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::new(dir.path(), config());
    let s = ward.login_physician();
    let rec = ward.store.recording_start(&s).unwrap();
    ward.store.recording_append(&s, &rec.id, &piece(0)).unwrap();

    // Another physician neither sees nor touches it; a nurse cannot record at all.
    let admin = ward.login_admin();
    let other = ward
        .store
        .add_user(&admin, "dr.tanaka", karte_store::Role::Physician, PASSWORD)
        .unwrap();
    let o = ward
        .store
        .login("dr.tanaka", PASSWORD, &phone(&other).code())
        .unwrap();
    assert!(ward.store.recordings_pending(&o).unwrap().is_empty());
    assert_eq!(
        code_of(ward.store.recording_append(&o, &rec.id, &piece(1))),
        Code::RecordNotFound
    );
    assert_eq!(
        code_of(
            ward.store
                .recording_transcribe(&o, &rec.id, |_| Ok(heard("x")))
        ),
        Code::RecordNotFound
    );
    assert_eq!(
        code_of(ward.store.recording_discard(&o, &rec.id)),
        Code::RecordNotFound
    );
    let n = ward.login_nurse();
    assert_eq!(code_of(ward.store.recording_start(&n)), Code::AuthForbidden);

    // Half a sample is not audio; past what one transcription takes, the recording is full.
    assert_eq!(
        code_of(ward.store.recording_append(&s, &rec.id, &[0u8; 3])),
        Code::InputUnreadable
    );
    let big = vec![0u8; MAX_RECORDING_BYTES - piece(0).len()];
    let secs = ward.store.recording_append(&s, &rec.id, &big).unwrap();
    assert_eq!(secs, pcm_seconds(MAX_RECORDING_BYTES));
    assert_eq!(
        code_of(ward.store.recording_append(&s, &rec.id, &[0u8; 2])),
        Code::InputTooLarge
    );

    // A recording with no speech is done with (nothing to keep); a discarded one is gone.
    let got = ward.store.recording_transcribe(&s, &rec.id, |_| {
        Err(Error::new(Code::AudioNoSpeech, "no speech"))
    });
    assert_eq!(code_of(got), Code::AudioNoSpeech);
    assert!(ward.store.recordings_pending(&s).unwrap().is_empty());
    let second = ward.store.recording_start(&s).unwrap();
    ward.store.recording_discard(&s, &second.id).unwrap();
    assert!(ward.store.recordings_pending(&s).unwrap().is_empty());
    assert_eq!(
        code_of(
            ward.store
                .recording_transcribe(&s, &second.id, |_| Ok(heard("x")))
        ),
        Code::RecordNotFound
    );
}

const TRIALS: usize = 12;

#[test]
fn sigkill_while_recording_keeps_every_piece_already_sent() {
    if !keyring_session("sigkill_while_recording_keeps_every_piece_already_sent") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::new(dir.path(), config());
    let admin = ward.login_admin();
    let mut secrets = Vec::new();
    for i in 0..TRIALS {
        let e = ward
            .store
            .add_user(
                &admin,
                &format!("dr{i:02}"),
                karte_store::Role::Physician,
                PASSWORD,
            )
            .unwrap();
        secrets.push(e.totp_secret_base32);
    }
    let store_id = ward.store.store_id().to_string();
    drop(ward);

    let mut killed_mid_run = 0;
    let mut pieces_checked = 0;
    for (trial, secret) in secrets.iter().enumerate() {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash_child_record",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("KARTE_CRASH_DIR", dir.path())
            .env("KARTE_CRASH_USER", format!("dr{trial:02}"))
            .env("KARTE_CRASH_TOTP", secret)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("trial {trial}: child never started recording"));
            if line.contains("CHILD recording ") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100 + random_u64() % 400));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        reader.join().unwrap();
        if status.code().is_none() {
            killed_mid_run += 1;
        }
        let sent = rx
            .try_iter()
            .filter(|l| l.contains("CHILD appended "))
            .count();

        // Every piece the child was told was kept is there, in order, byte for byte; a piece cut off by the kill
        // is wholly absent, never half there.
        let raw = raw_conn(dir.path(), &store_id);
        let (open, bytes): (i64, i64) = raw
            .query_row(
                "SELECT r.open, r.bytes FROM recordings r JOIN users u ON u.id = r.user_id WHERE u.name = ?1",
                [format!("dr{trial:02}")],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap_or_else(|e| panic!("trial {trial}: the recording is gone: {e}"));
        assert_eq!(open, 1, "trial {trial}");
        let mut st = raw
            .prepare(
                "SELECT p.seq, p.pcm FROM recording_pieces p JOIN recordings r ON r.id = p.recording_id                  JOIN users u ON u.id = r.user_id WHERE u.name = ?1 ORDER BY p.seq",
            )
            .unwrap();
        let kept: Vec<(i64, Vec<u8>)> = st
            .query_map([format!("dr{trial:02}")], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            kept.len() >= sent,
            "trial {trial}: {} kept, {sent} reported",
            kept.len()
        );
        assert!(kept.len() <= sent + 1, "trial {trial}: more kept than sent");
        for (i, (seq, pcm)) in kept.iter().enumerate() {
            assert_eq!(*seq, i as i64, "trial {trial}");
            assert_eq!(pcm, &piece(i as u32), "trial {trial}: piece {i} differs");
        }
        assert_eq!(bytes as usize, kept.len() * piece(0).len(), "trial {trial}");
        pieces_checked += kept.len();
    }
    eprintln!("{TRIALS} trials, {killed_mid_run} killed mid-run, {pieces_checked} pieces checked");
    assert!(
        killed_mid_run >= TRIALS * 9 / 10,
        "only {killed_mid_run} killed while recording"
    );
    assert!(
        pieces_checked >= TRIALS,
        "too few pieces to mean anything: {pieces_checked}"
    );

    // The store opens and the audit chain is whole after the kills.
    let store = Store::open(dir.path(), config()).unwrap();
    drop(store);
}

/// The child side of the crash test; does nothing unless run by it.
#[test]
#[ignore = "run by sigkill_while_recording_keeps_every_piece_already_sent as its child process"]
fn crash_child_record() {
    let Some(dir) = std::env::var_os("KARTE_CRASH_DIR") else {
        return;
    };
    let user = std::env::var("KARTE_CRASH_USER").unwrap();
    let auth = Phone::from_base32(&std::env::var("KARTE_CRASH_TOTP").unwrap());
    let store = Store::open(std::path::Path::new(&dir), config()).unwrap();
    let s = store.login(&user, PASSWORD, &auth.code()).unwrap();
    let rec = store.recording_start(&s).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "CHILD recording {}", rec.id).unwrap();
    out.flush().unwrap();
    for i in 0u32.. {
        store.recording_append(&s, &rec.id, &piece(i)).unwrap();
        writeln!(out, "CHILD appended {i}").unwrap();
        out.flush().unwrap();
    }
}
