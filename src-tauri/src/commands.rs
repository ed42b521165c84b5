//! Tauri commands: glue between IPC and `karte-api`, nothing more.
//!
//! Commands that may wait run the API on the blocking pool: a draft takes tens of seconds with a model, and even the
//! status call can wait for the engine while a draft or the preload holds it; on the main thread either would
//! freeze the window.

use karte_api::{Dictated, DraftOptions, Drafter, EngineStatus, Progress};
use karte_core::{Code, DraftOutput, Error};
use karte_ipc::event;
use std::sync::Arc;
use tauri::{AppHandle, Emitter, State};

fn join_error(e: impl std::fmt::Display) -> Error {
    tracing::error!("drafting task failed: {e}");
    Error::new(
        Code::Internal,
        "下書き処理が異常終了しました。もう一度お試しください。",
    )
}

/// Drafts inside the signed-in session: the store checks that a physician is signed in and audits the draft
/// (`Store::draft_with`); without a session the dictation goes nowhere.
#[tauri::command]
pub async fn draft(
    app: AppHandle,
    drafter: State<'_, Arc<Drafter>>,
    records: State<'_, Arc<crate::records::Records>>,
    text: String,
    no_llm: bool,
) -> Result<DraftOutput, Error> {
    let drafter = Arc::clone(&drafter);
    crate::records::blocking(&records, move |r| {
        let opts = DraftOptions { no_llm, kind: None };
        let kind = karte_core::document::DEFAULT_KIND;
        let mut progress = progress_to_window(app);
        r.with(|store, session| {
            store.draft_with(session, kind, || drafter.draft(&text, &opts, &mut progress))
        })
    })
    .await
}

/// A draft's progress as the window's `DRAFT_PROGRESS` events (notes and documents alike). A window that closed
/// mid-draft is not a reason to fail the draft.
pub(crate) fn progress_to_window(app: AppHandle) -> impl FnMut(Progress) {
    move |p: Progress| {
        if let Err(e) = app.emit(event::DRAFT_PROGRESS, &p) {
            tracing::debug!("progress event not delivered: {e}");
        }
    }
}

/// Stops the running draft; the `draft` call then returns `engine.cancelled`.
#[tauri::command]
pub fn cancel_draft(drafter: State<'_, Arc<Drafter>>) {
    drafter.cancel();
}

/// The window's 再接続: probe the clinic server now rather than when the cached answer expires.
#[tauri::command]
pub async fn reconnect_engine(drafter: State<'_, Arc<Drafter>>) -> Result<EngineStatus, Error> {
    let drafter = Arc::clone(&drafter);
    tauri::async_runtime::spawn_blocking(move || drafter.reconnect())
        .await
        .map_err(join_error)
}

#[tauri::command]
pub async fn engine_status(drafter: State<'_, Arc<Drafter>>) -> Result<EngineStatus, Error> {
    let drafter = Arc::clone(&drafter);
    tauri::async_runtime::spawn_blocking(move || drafter.status())
        .await
        .map_err(join_error)
}

/// A dictation recording (the file the physician opened) into text for the dictation box, inside the signed-in
/// session, part by part with the text so far sent to the window (as a kept recording is). The bytes come as the
/// call's raw body: JSON would triple a 19 MB recording.
#[tauri::command]
pub async fn transcribe_audio(
    app: tauri::AppHandle,
    request: tauri::ipc::Request<'_>,
    drafter: State<'_, Arc<Drafter>>,
    records: State<'_, Arc<crate::records::Records>>,
) -> Result<Dictated, Error> {
    let tauri::ipc::InvokeBody::Raw(audio) = request.body() else {
        return Err(Error::new(
            Code::InputUnreadable,
            "音声ファイルを受け取れませんでした。もう一度ファイルを選んでください。",
        ));
    };
    // Checked before the copy: an oversized file is refused without holding it twice.
    karte_api::check_audio_size(audio.len())?;
    let audio = audio.clone();
    let drafter = Arc::clone(&drafter);
    crate::records::blocking(&records, move |r| {
        let mut progress = crate::recording::to_window(&app);
        r.with(|store, session| {
            store.transcribe_with(session, || drafter.transcribe(&audio, &mut progress))
        })
    })
    .await
}
