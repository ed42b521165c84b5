//! Tauri commands for recording in the window: glue between IPC and `karte-store`'s recordings, nothing more. The
//! window captures the microphone and sends 16-bit PCM about once a second; the store keeps each piece as it comes,
//! so what was said survives a crash of the app, of the window or of the worker.

use crate::records::{blocking, Records};
use karte_api::Drafter;
use karte_core::{Code, Error};
use karte_ipc::voice::RECORDING_HEADER;
use karte_ipc::{event, Dictated, HearingProgress, Recording};
use std::sync::Arc;
use tauri::State;
use tauri::{AppHandle, Emitter};

#[tauri::command]
pub async fn recording_start(records: State<'_, Arc<Records>>) -> Result<Recording, Error> {
    blocking(&records, |r| r.with(|st, s| st.recording_start(s))).await
}

/// A piece of audio: the PCM is the call's raw body, the recording's id its `karte-recording` header. Returns the
/// seconds kept so far.
#[tauri::command]
pub async fn recording_append(
    request: tauri::ipc::Request<'_>,
    records: State<'_, Arc<Records>>,
) -> Result<f64, Error> {
    let unreadable = || {
        Error::new(
            Code::InputUnreadable,
            "録音データを受け取れませんでした。録音を止めて、もう一度お試しください。",
        )
    };
    let tauri::ipc::InvokeBody::Raw(pcm) = request.body() else {
        return Err(unreadable());
    };
    let id = request
        .headers()
        .get(RECORDING_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unreadable)?
        .to_string();
    let pcm = pcm.clone();
    blocking(&records, move |r| {
        r.with(|st, s| st.recording_append(s, &id, &pcm))
    })
    .await
}

#[tauri::command]
pub async fn recording_stop(
    records: State<'_, Arc<Records>>,
    id: String,
) -> Result<Recording, Error> {
    blocking(&records, move |r| r.with(|st, s| st.recording_stop(s, &id))).await
}

#[tauri::command]
pub async fn recordings_pending(records: State<'_, Arc<Records>>) -> Result<Vec<Recording>, Error> {
    blocking(&records, |r| r.with(|st, s| st.recordings_pending(s))).await
}

/// Hears a kept recording where dictations are heard (clinic server or this workstation's worker), part by part;
/// the text so far goes to the window after each part.
#[tauri::command]
pub async fn recording_transcribe(
    app: AppHandle,
    drafter: State<'_, Arc<Drafter>>,
    records: State<'_, Arc<Records>>,
    id: String,
) -> Result<Dictated, Error> {
    let drafter = Arc::clone(&drafter);
    blocking(&records, move |r| {
        let mut progress = to_window(&app);
        r.with(|st, s| {
            st.recording_transcribe(s, &id, |pcm| drafter.transcribe_pcm(pcm, &mut progress))
        })
    })
    .await
}

/// Sends each part's progress to the window. A closed window is no reason to stop hearing: the text is the call's
/// answer too.
pub(crate) fn to_window(app: &AppHandle) -> impl FnMut(HearingProgress) + '_ {
    move |p| {
        if let Err(e) = app.emit(event::HEARING_PROGRESS, &p) {
            tracing::debug!("hearing progress not delivered: {e}");
        }
    }
}

#[tauri::command]
pub async fn recording_discard(records: State<'_, Arc<Records>>, id: String) -> Result<(), Error> {
    blocking(&records, move |r| {
        r.with(|st, s| st.recording_discard(s, &id))
    })
    .await
}
