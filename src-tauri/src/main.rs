//! The Karte desktop app: a window around `karte-api`.
//!
//! Commands hold no logic, only glue: the same `Drafter::draft` serves the CLI and the window, so what the
//! physician sees in the window is what every other front end produces.
//!
//! The model never runs in this process: drafts go to the clinic server when the settings file names one and it
//! answers, else to the supervised `karte-server --local` worker installed beside this executable
//! (`karte_llm::Workstation`). A llama.cpp crash therefore costs the worker, never the window or the dictation typed
//! into it.

// Without this a console window opens beside the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod microphone;
mod recording;
mod records;
mod uploads;

use std::sync::Arc;
use tauri::{Emitter, RunEvent};

/// `tauri::generate_handler!` over `module::handler => NAME` pairs. Tauri names a command after its handler
/// function, while the window calls it by `karte_ipc::command::NAME`: each pair is checked at compile time, so a
/// renamed handler or constant breaks the build instead of leaving a button that does nothing.
macro_rules! handlers {
    ($($module:ident :: $handler:ident => $name:ident),* $(,)?) => {{
        $(const _: () = assert!(
            same_str(stringify!($handler), karte_ipc::command::$name),
            concat!(stringify!($handler), " is not karte_ipc::command::", stringify!($name))
        );)*
        tauri::generate_handler![$($module::$handler),*]
    }};
}

const fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

fn main() {
    // llama.cpp logs every tensor at info; by default keep Karte's own lines and only warnings from the rest.
    let filter = tracing_subscriber::EnvFilter::try_from_env("KARTE_LOG").unwrap_or_else(|_| {
        "warn,karte_desktop=info,karte_api=info,karte_engine=info,karte_llm=info".into()
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    // A manifest name or a GGUF path; unset means the settings file's model, else the manifest's default. Read
    // once: a running window keeps the model it started with.
    let model = std::env::var("KARTE_MODEL")
        .ok()
        .filter(|m| !m.trim().is_empty());
    // An unusable settings file does not stop the app: the window shows it with its code (the status carries it)
    // and rules-only drafting still works.
    let workstation =
        karte_llm::Workstation::load(karte_llm::WorkstationOptions::beside_current_exe(model));
    let drafter = Arc::new(karte_api::Drafter::for_workstation(Arc::new(workstation)));
    let on_exit = Arc::clone(&drafter);

    let records = Arc::new(records::Records::default());
    let uploads = Arc::new(uploads::Uploads::default());
    let result = tauri::Builder::default()
        .manage(Arc::clone(&drafter))
        .manage(Arc::clone(&records))
        .manage(Arc::clone(&uploads))
        .invoke_handler(handlers![
            commands::draft => DRAFT,
            commands::cancel_draft => CANCEL_DRAFT,
            commands::engine_status => ENGINE_STATUS,
            commands::reconnect_engine => RECONNECT_ENGINE,
            commands::transcribe_audio => TRANSCRIBE_AUDIO,
            recording::recording_start => RECORDING_START,
            recording::recording_append => RECORDING_APPEND,
            recording::recording_stop => RECORDING_STOP,
            recording::recordings_pending => RECORDINGS_PENDING,
            recording::recording_transcribe => RECORDING_TRANSCRIBE,
            recording::recording_discard => RECORDING_DISCARD,
            records::login => LOGIN,
            records::logout => LOGOUT,
            records::save_draft => SAVE_DRAFT,
            records::patient_notes => PATIENT_NOTES,
            records::draft_document => DRAFT_DOCUMENT,
            records::save_document => SAVE_DOCUMENT,
            records::encounters => ENCOUNTERS,
            records::encounter => ENCOUNTER,
            records::review_suggestion => REVIEW_SUGGESTION,
            records::sign_encounter => SIGN_ENCOUNTER,
            records::users => USERS,
            records::audit_log => AUDIT_LOG,
            records::audit_verify => AUDIT_VERIFY,
            uploads::upload_items => UPLOAD_ITEMS,
            uploads::upload_retry => UPLOAD_RETRY,
            uploads::upload_resume => UPLOAD_RESUME,
            uploads::upload_overview => UPLOAD_OVERVIEW,
        ])
        .setup(move |app| {
            microphone::allow(app);
            // The upload queue drains in the background from the start (signed notes of an earlier session too).
            uploads::start(records, uploads);
            // Start the worker and load its model while the physician is still typing, so the first draft does
            // not pay for it. A failure is only logged: the draft reports it to the user with its code, where it
            // can be acted on.
            let handle = app.handle().clone();
            tauri::async_runtime::spawn_blocking(move || {
                if let Err(e) = drafter.preload() {
                    tracing::warn!(code = %e.code, "local engine start failed");
                }
                let _ = handle.emit(karte_ipc::event::ENGINE_STATUS, drafter.status());
            });
            Ok(())
        })
        .build(tauri::generate_context!());
    let app = match result {
        Ok(app) => app,
        Err(e) => {
            eprintln!("karte-desktop: {e}");
            on_exit.shutdown();
            std::process::exit(1);
        }
    };
    // The event loop ends the process without running destructors: stop the worker here (its stdin is closed),
    // so no model process outlives the window.
    app.run(move |_, event| {
        if let RunEvent::Exit = event {
            on_exit.shutdown();
        }
    });
}
