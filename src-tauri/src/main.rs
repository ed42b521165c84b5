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
mod records;
mod uploads;

use std::sync::Arc;
use tauri::{Emitter, RunEvent};

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
        .invoke_handler(tauri::generate_handler![
            commands::draft,
            commands::cancel_draft,
            commands::engine_status,
            commands::reconnect_engine,
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
            // Start the worker and load its model while the physician is still typing, so the first draft does
            // not pay for it. A failure is only logged: the draft reports it to the user with its code, where it
            // can be acted on.
            let handle = app.handle().clone();
            tauri::async_runtime::spawn_blocking(move || {
                if let Err(e) = drafter.preload() {
                    tracing::warn!(code = %e.code, "local engine start failed");
                }
                let _ = handle.emit(commands::STATUS_EVENT, drafter.status());
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
