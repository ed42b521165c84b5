//! The Karte desktop app: a window around `karte-api`.
//!
//! Commands hold no logic, only glue: the same `Drafter::draft` serves the CLI and (later) the server, so what the
//! physician sees in the window is what every other front end produces.

// Without this a console window opens beside the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod records;
mod uploads;

use std::sync::Arc;
use tauri::Emitter;

fn main() {
    // llama.cpp logs every tensor at info; by default keep Karte's own lines and only warnings from the rest.
    let filter = tracing_subscriber::EnvFilter::try_from_env("KARTE_LOG")
        .unwrap_or_else(|_| "warn,karte_desktop=info,karte_api=info,karte_engine=info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    // A manifest name or a GGUF path; unset means the manifest's default model. Read once: a running window keeps
    // the model it started with.
    let model = std::env::var("KARTE_MODEL")
        .ok()
        .filter(|m| !m.trim().is_empty());
    let drafter = Arc::new(karte_api::Drafter::new(model));

    let records = Arc::new(records::Records::default());
    let uploads = Arc::new(uploads::Uploads::default());
    let result = tauri::Builder::default()
        .manage(Arc::clone(&drafter))
        .manage(Arc::clone(&records))
        .manage(Arc::clone(&uploads))
        .invoke_handler(tauri::generate_handler![
            commands::draft,
            commands::cancel_draft,
            commands::engine_status,
            records::login,
            records::logout,
            records::save_draft,
            records::encounters,
            records::encounter,
            records::review_suggestion,
            records::sign_encounter,
            records::users,
            records::audit_log,
            records::audit_verify,
            uploads::upload_items,
            uploads::upload_retry,
            uploads::upload_resume,
            uploads::upload_overview
        ])
        .setup(move |app| {
            // The upload queue drains in the background from the start (signed notes of an earlier session too).
            uploads::start(records, uploads);
            // Load the model while the physician is still typing, so the first draft does not pay for it. A
            // failure is only logged: the draft reports it to the user with its code, where it can be acted on.
            let handle = app.handle().clone();
            tauri::async_runtime::spawn_blocking(move || {
                if let Err(e) = drafter.preload() {
                    tracing::warn!("model preload failed: {e}");
                }
                let _ = handle.emit(commands::STATUS_EVENT, drafter.status());
            });
            Ok(())
        })
        .run(tauri::generate_context!());
    if let Err(e) = result {
        eprintln!("karte-desktop: {e}");
        std::process::exit(1);
    }
}
