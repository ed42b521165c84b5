//! Upload settings: the `[sync]` section of the machine-wide settings file (karte-settings: `$KARTE_SETTINGS`, else
//! `/etc/karte/settings.toml`), which hospital IT owns. Secrets are not settings: the client certificate, its key,
//! the bearer token and the pseudonym key live in the keyring ([`crate::credentials`]).

use karte_core::{Code, Error, Result};
use std::path::Path;

pub use karte_settings::{Settings, SyncSettings, SETTINGS_ENV};

/// The `[sync]` section of the settings file at `path`: `sync.not_configured` when the file or the section is
/// absent (documents then wait in the queue), `config.invalid` when the file is wrong.
pub fn load(path: &Path) -> Result<SyncSettings> {
    Settings::load_from(path)?.sync.ok_or_else(|| {
        Error::new(
            Code::SyncNotConfigured,
            format!(
                "クラウドへの送信が設定されていません（設定ファイル {} に [sync] がありません）。\
                 署名済みの記録は端末内の送信待ちに保存されています。システム管理者に送信先の設定を依頼してください。",
                path.display()
            ),
        )
    })
}
