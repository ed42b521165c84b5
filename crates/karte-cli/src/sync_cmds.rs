//! `karte queue status|flush|retry|resume|credentials|pseudonym-key` and `karte export fhir`: argument parsing
//! over karte-store's outbox and karte-sync's uploader and installers.

use crate::store_cmds::{out, sign_in, SignIn};
use clap::{Args, Subcommand, ValueEnum};
use karte_core::{Code, Error, Result};
use karte_store::vault::KeyringBackend;
use karte_store::{Action, OutboxItem, QueueHealth, Store};
use karte_sync::{CredentialSource, PatientPolicy, Uploader};
use std::path::PathBuf;
use std::sync::Arc;
use zeroize::Zeroizing;

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum QueueFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum QueueCmd {
    /// Queue health and every queued document (no clinical text).
    Status {
        #[arg(long, value_enum, default_value = "text")]
        format: QueueFormat,
        #[command(flatten)]
        auth: SignIn,
    },
    /// Send what is due now, in order (physicians, administrators).
    Flush {
        #[command(flatten)]
        auth: SignIn,
    },
    /// Put a refused (送信失敗) document back in the queue after fixing the cause (or all of them).
    Retry {
        #[arg(
            value_name = "ID",
            required_unless_present = "all_failed",
            conflicts_with = "all_failed"
        )]
        id: Option<i64>,
        /// Every refused document at once.
        #[arg(long)]
        all_failed: bool,
        #[command(flatten)]
        auth: SignIn,
    },
    /// Lift a halt (certificate or pin problem) once IT has checked the server.
    Resume {
        #[command(flatten)]
        auth: SignIn,
    },
    /// Store the workstation's client certificate, key and bearer token in the keyring (administrators).
    Credentials(CredentialArgs),
    /// Store the hospital-wide pseudonym key in the keyring (administrators).
    PseudonymKey {
        /// The key (hex, at least 16 bytes) is read from this environment variable, never from the command line.
        #[arg(long, value_name = "VAR", default_value = "KARTE_PSEUDONYM_KEY")]
        key_env: String,
        #[command(flatten)]
        auth: SignIn,
    },
}

#[derive(Args)]
pub struct CredentialArgs {
    /// Client certificate (PEM).
    #[arg(long, value_name = "FILE")]
    cert: PathBuf,
    /// Its private key (PEM, PKCS#8 or SEC1). Delete the file afterwards: the keyring keeps it.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The bearer token is read from this environment variable, never from the command line.
    #[arg(long, value_name = "VAR", default_value = "KARTE_SYNC_TOKEN")]
    token_env: String,
    /// Optional: the hospital-wide pseudonym key (hex) from this environment variable, so that every workstation
    /// gives a patient the same pseudonym.
    #[arg(long, value_name = "VAR")]
    pseudonym_key_env: Option<String>,
    #[command(flatten)]
    auth: SignIn,
}

#[derive(Subcommand)]
pub enum ExportCmd {
    /// Print the FHIR R4 Bundle that is (or would be) sent for an encounter's latest signed version.
    Fhir {
        #[arg(long, value_name = "ENCOUNTER_ID")]
        encounter: String,
        #[command(flatten)]
        auth: SignIn,
    },
}

fn backend() -> Result<KeyringBackend> {
    KeyringBackend::from_env()
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|_| Error::new(Code::Internal, "送信処理を開始できません。"))
}

pub fn render_health(h: &QueueHealth) -> String {
    let mut s = format!(
        "送信待ち {}  送信済み {}  送信失敗 {}\n",
        h.pending, h.sent, h.failed
    );
    if let Some(halt) = &h.halted {
        s.push_str(&format!(
            "停止中 [{}] {}（{}）\n",
            halt.code, halt.message, halt.at
        ));
    }
    if let Some(at) = &h.oldest_pending_at {
        s.push_str(&format!("最も古い送信待ち: {at}\n"));
    }
    if let Some(code) = &h.last_error {
        s.push_str(&format!("先頭の再送理由: {code}\n"));
    }
    if h.held > 0 {
        s.push_str(&format!("前の版の送信を待っている修正版: {}\n", h.held));
    }
    if let Some(at) = &h.last_sent_at {
        s.push_str(&format!("最後の送信: {at}\n"));
    }
    s
}

fn render_item(i: &OutboxItem) -> String {
    let mut s = format!(
        "{:>5}  {}  {} 版 {}  {}  試行 {}",
        i.id,
        i.state.label_ja(),
        i.encounter,
        i.version,
        i.bundle_id,
        i.attempts
    );
    if let Some(code) = &i.last_code {
        s.push_str(&format!(
            "  [{code}] {}",
            i.last_reason.as_deref().unwrap_or("")
        ));
    }
    if let Some(before) = i.held_by {
        s.push_str(&format!("  前の版の送信を待っています（{before}）"));
    }
    s
}

/// The value of the environment variable `var`, or the code and message saying to set it.
fn secret_env(var: &str, code: Code, what: &str) -> Result<Zeroizing<String>> {
    std::env::var(var)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .map(Zeroizing::new)
        .ok_or_else(|| Error::new(code, format!("{what}を環境変数 {var} に設定してください。")))
}

pub fn queue(store: Store, cmd: QueueCmd) -> Result<()> {
    match cmd {
        QueueCmd::Status { format, auth } => {
            let s = sign_in(&store, &auth)?;
            let health = store.queue_health(&s)?;
            let items = store.queue_items(&s)?;
            match format {
                QueueFormat::Json => out(&serde_json::to_string_pretty(
                    &serde_json::json!({"health": health, "items": items}),
                )
                .expect("serialises")),
                QueueFormat::Text => {
                    let mut text = render_health(&health);
                    for i in &items {
                        text.push_str(&render_item(i));
                        text.push('\n');
                    }
                    out(text.trim_end())
                }
            }
        }
        QueueCmd::Flush { auth } => {
            let s = sign_in(&store, &auth)?;
            store.authorize_for(&s, &[Action::Export, Action::ManageUsers])?;
            let up = Uploader::from_store(Arc::new(store), backend()?)?;
            let report = runtime()?.block_on(up.flush())?;
            let mut text = format!("送信 {} 件、送信失敗 {} 件", report.sent, report.refused);
            if let Some((code, at)) = report.retry {
                text.push_str(&format!(
                    "。残りは自動で再送します（{code}、次回 {}）",
                    karte_store::iso8601(at)
                ));
            }
            out(&text)
        }
        QueueCmd::Retry {
            id,
            all_failed,
            auth,
        } => {
            let s = sign_in(&store, &auth)?;
            match id {
                Some(id) if !all_failed => {
                    let it = store.retry_upload(&s, id)?;
                    out(&format!("再送に戻しました: {}", render_item(&it)))
                }
                _ => {
                    let items = store.retry_all_failed(&s)?;
                    let mut text = format!("送信失敗 {} 件を再送に戻しました。", items.len());
                    for i in &items {
                        text.push('\n');
                        text.push_str(&render_item(i));
                    }
                    out(&text)
                }
            }
        }
        QueueCmd::Resume { auth } => {
            let s = sign_in(&store, &auth)?;
            store.resume_uploads(&s)?;
            out("送信を再開しました。")
        }
        QueueCmd::Credentials(a) => {
            let s = sign_in(&store, &a.auth)?;
            let token = secret_env(&a.token_env, Code::SyncTokenMissing, "アクセストークン")?;
            let pseudonym = a
                .pseudonym_key_env
                .as_deref()
                .map(|var| secret_env(var, Code::ConfigInvalid, "仮名化鍵（16進）"))
                .transpose()?;
            let installed = karte_sync::install_credentials(
                &store,
                &s,
                backend()?,
                &CredentialSource {
                    cert_file: &a.cert,
                    key_file: &a.key,
                    token: &token,
                    pseudonym_key_hex: pseudonym.as_deref().map(|k| k.as_str()),
                },
            )?;
            let mut text = format!(
                "クライアント証明書・秘密鍵・アクセストークンをキーリングに保存しました。\n証明書 SHA-256: {}\n公開鍵ピン: {}",
                installed.cert_sha256, installed.client_spki_sha256
            );
            if let Some(id) = installed.pseudonym_key_id {
                text.push_str(&format!("\n仮名化鍵 ID: {id}"));
            }
            out(&text)
        }
        QueueCmd::PseudonymKey { key_env, auth } => {
            let s = sign_in(&store, &auth)?;
            let key = secret_env(&key_env, Code::ConfigInvalid, "仮名化鍵（16進）")?;
            let id = karte_sync::install_pseudonym_key(&store, &s, backend()?, &key)?;
            out(&format!(
                "仮名化鍵をキーリングに保存しました（鍵 ID: {id}）。すべての端末で同じ ID になることを確認してください。"
            ))
        }
    }
}

pub fn export(store: Store, cmd: ExportCmd) -> Result<()> {
    match cmd {
        ExportCmd::Fhir { encounter, auth } => {
            let s = sign_in(&store, &auth)?;
            let doc = store.outbox_document(&s, &encounter)?;
            let policy = PatientPolicy::for_settings_file(
                &karte_sync::settings::Settings::default_path(),
                backend()?,
            )?;
            let bundle = policy.bundle(&doc);
            out(&serde_json::to_string_pretty(&bundle).expect("a Bundle serialises"))
        }
    }
}
