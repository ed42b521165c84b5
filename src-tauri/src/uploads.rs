//! The upload queue in the desktop app: karte-sync's [`Background`] uploader as a task on Tauri's tokio runtime (it
//! never blocks the window: store calls go to the blocking pool, the network is async), plus thin commands for the
//! window's upload badges, 再送, queue health and 送信再開.
//!
//! The task starts at launch. The library builds its uploader from the settings file's `[sync]` and the keyring,
//! and builds it again on 送信再開 (and after a halt or a failed build), so IT fixing a setting or installing a
//! certificate needs no restart; until it can send, the reason is shown in the admin view. Signing and 再送 nudge
//! it, so a signed note leaves at once when the platform is reachable.

use crate::records::Records;
use karte_core::Error;
use karte_ipc::{OutboxItem, UploadOverview};
use karte_store::vault::KeyringBackend;
use karte_sync::{Background, Uploader};
use std::sync::Arc;
use std::time::Duration;
use tauri::State;
use tokio::sync::Notify;

/// Shared between the task and the commands.
pub struct Uploads {
    /// What signing (records.rs) notifies: the background uploader's own nudge.
    pub nudge: Arc<Notify>,
    background: Arc<Background>,
}

impl Default for Uploads {
    fn default() -> Self {
        let background = Arc::new(Background::default());
        Uploads {
            nudge: background.nudger(),
            background,
        }
    }
}

/// How often the uploader looks again without being nudged (also the retry period of its own set-up).
const POLL: Duration = Duration::from_secs(30);

/// Starts the background uploader.
pub fn start(records: Arc<Records>, uploads: Arc<Uploads>) {
    tauri::async_runtime::spawn(async move {
        // The app never stops the uploader: it ends with the process. The sender must outlive the loop.
        let (_keep, shutdown) = tokio::sync::watch::channel(false);
        let build: karte_sync::worker::Build = Arc::new(move || {
            Uploader::from_store(records.store_handle()?, KeyringBackend::from_env()?)
        });
        uploads.background.run(build, shutdown, POLL).await;
    });
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
    // Rebuild from the current settings file and keyring: what IT fixed before pressing 送信再開 takes effect now.
    uploads.background.reload();
    out
}

#[tauri::command]
pub async fn upload_overview(
    records: State<'_, Arc<Records>>,
    uploads: State<'_, Arc<Uploads>>,
) -> Result<UploadOverview, Error> {
    let health = crate::records::blocking(&records, |r| r.with(|st, s| st.queue_health(s))).await?;
    let worker_error = uploads.background.problem();
    Ok(UploadOverview {
        health,
        worker_error,
    })
}
