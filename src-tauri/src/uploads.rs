//! The upload queue in the desktop app: karte-sync's uploader as a background task on Tauri's tokio runtime (it
//! never blocks the window: store calls go to the blocking pool, the network is async), plus thin commands for the
//! window's upload badges, 再送, queue health and 送信再開.
//!
//! The task starts at launch and waits until it can open the store and build an uploader (settings in
//! `sync.toml`, certificate and token in the keyring); until then the reason is shown in the admin view. Signing
//! and 再送 nudge it, so a signed note leaves at once when the platform is reachable.

use crate::records::Records;
use karte_core::Error;
use karte_store::vault::KeyringBackend;
use karte_store::{OutboxItem, QueueHealth};
use karte_sync::Uploader;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tauri::State;
use tokio::sync::Notify;

/// Shared between the task and the commands.
#[derive(Default)]
pub struct Uploads {
    pub nudge: Arc<Notify>,
    worker_error: Mutex<Option<Error>>,
}

impl Uploads {
    fn set_error(&self, e: Option<Error>) {
        *self.worker_error.lock().unwrap_or_else(|p| p.into_inner()) = e;
    }
}

/// How often the uploader looks again without being nudged (also the retry period of its own set-up).
const POLL: Duration = Duration::from_secs(30);

/// Starts the background uploader.
pub fn start(records: Arc<Records>, uploads: Arc<Uploads>) {
    tauri::async_runtime::spawn(async move {
        let (_never, shutdown) = tokio::sync::watch::channel(false);
        loop {
            let r = Arc::clone(&records);
            let built = tauri::async_runtime::spawn_blocking(move || {
                let store = r.store_handle()?;
                Uploader::from_store(store, KeyringBackend::from_env()?)
            })
            .await;
            match built {
                Ok(Ok(up)) => {
                    uploads.set_error(None);
                    let u = Arc::clone(&uploads);
                    up.run(
                        Arc::clone(&uploads.nudge),
                        shutdown.clone(),
                        POLL,
                        move |o| {
                            u.set_error(o.err().cloned());
                        },
                    )
                    .await;
                }
                Ok(Err(e)) => {
                    tracing::info!(code = %e.code, "uploader not started");
                    uploads.set_error(Some(e));
                }
                Err(_) => tracing::error!("uploader set-up task failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = uploads.nudge.notified() => {}
            }
        }
    });
}

/// Queue health with the uploader's last problem.
#[derive(Debug, Clone, Serialize)]
pub struct UploadOverview {
    pub health: QueueHealth,
    pub worker_error: Option<Error>,
}

#[tauri::command]
pub async fn upload_items(records: State<'_, Arc<Records>>) -> Result<Vec<OutboxItem>, Error> {
    crate::records::blocking(&records, |r| r.with(|st, s| st.queue_items(s))).await
}

#[tauri::command]
pub async fn upload_retry(
    records: State<'_, Arc<Records>>,
    uploads: State<'_, Arc<Uploads>>,
    item: i64,
) -> Result<OutboxItem, Error> {
    let out =
        crate::records::blocking(&records, move |r| r.with(|st, s| st.retry_upload(s, item))).await;
    uploads.nudge.notify_one();
    out
}

#[tauri::command]
pub async fn upload_resume(
    records: State<'_, Arc<Records>>,
    uploads: State<'_, Arc<Uploads>>,
) -> Result<(), Error> {
    let out = crate::records::blocking(&records, |r| r.with(|st, s| st.resume_uploads(s))).await;
    uploads.nudge.notify_one();
    out
}

#[tauri::command]
pub async fn upload_overview(
    records: State<'_, Arc<Records>>,
    uploads: State<'_, Arc<Uploads>>,
) -> Result<UploadOverview, Error> {
    let health = crate::records::blocking(&records, |r| r.with(|st, s| st.queue_health(s))).await?;
    let worker_error = uploads
        .worker_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(UploadOverview {
        health,
        worker_error,
    })
}
