//! The database key and the audit chain head, kept in the OS keyring and nowhere else.
//!
//! The key never touches a file, a log line or an environment variable: it is generated here, written to the
//! keyring, and handed to SQLCipher as a raw key (`x'…'`, no passphrase derivation). The chain head (sequence
//! number and hash of the newest audit entry) lives beside it, outside the database, so that deleting the last
//! audit rows — which leaves a shorter but self-consistent chain — is still detected.

use crate::db::DbKey;
use karte_core::{Code, Error, Result};
use std::fmt;

/// The keyring service name every Karte entry is filed under.
pub const KEYRING_SERVICE: &str = "karte";

/// Which credential store holds the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyringBackend {
    /// The platform's persistent store: Windows Credential Manager, macOS Keychain, Secret Service on Linux
    /// (gnome-keyring, KWallet).
    Native,
    /// The Linux kernel's keyutils store (session + persistent keyrings). It does **not** survive a reboot, so a
    /// database keyed here becomes unreadable after one: meant for tests (`keyctl session - …`) and throw-away
    /// kiosks, selected only on request (`KARTE_KEYRING=keyutils`).
    KernelKeyutils,
}

impl KeyringBackend {
    /// `KARTE_KEYRING`: `keyutils` for the kernel store, unset / `native` / `secret-service` for the platform
    /// store. The variable names a store, never a key.
    pub fn from_env() -> Result<Self> {
        match std::env::var("KARTE_KEYRING").ok().as_deref() {
            None | Some("") | Some("native") | Some("secret-service") => Ok(Self::Native),
            Some("keyutils") => Ok(Self::KernelKeyutils),
            Some(_) => Err(Error::new(
                Code::ConfigInvalid,
                "KARTE_KEYRING は keyutils または native を指定してください。",
            )),
        }
    }

    fn unavailable(self) -> Error {
        let message = match self {
            KeyringBackend::KernelKeyutils => {
                "カーネルのキーリング（keyutils）を使えません。keyutils をインストールし（Debian: apt install keyutils）、\
                 `keyctl session - karte …` のようにセッションキーリングの中で実行してください。"
            }
            KeyringBackend::Native if cfg!(target_os = "linux") => {
                "OS のキーリング（Secret Service）を使えません。gnome-keyring（または KWallet）をインストールし\
                 （Debian: apt install gnome-keyring）、デスクトップにログインしてキーリングを開いた状態で起動してください。"
            }
            KeyringBackend::Native => {
                "OS のキーリング（Windows 資格情報マネージャー / macOS キーチェーン）を使えません。\
                 ログインし直してから起動してください。"
            }
        };
        Error::new(Code::StoreKeyringUnavailable, message)
    }
}

impl fmt::Display for KeyringBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyringBackend::Native => "native",
            KeyringBackend::KernelKeyutils => "keyutils",
        })
    }
}

/// The keyring entries of one data directory, named by its random store id so that two data directories (two
/// test runs, two installs) never share a key.
pub(crate) struct Vault {
    backend: KeyringBackend,
    store_id: String,
}

/// Keyring user names for one store. Public so that tests and operators can find the entries (`keyctl show`).
pub fn key_entry_user(store_id: &str) -> String {
    format!("db-key:{store_id}")
}
pub fn head_entry_user(store_id: &str) -> String {
    format!("audit-head:{store_id}")
}

impl Vault {
    pub(crate) fn new(backend: KeyringBackend, store_id: &str) -> Self {
        Vault {
            backend,
            store_id: store_id.to_string(),
        }
    }

    fn entry(&self, user: &str) -> Result<keyring::Entry> {
        entry(self.backend, user).map_err(|e| {
            tracing::warn!(backend = %self.backend, error = %e, "keyring entry unavailable");
            self.backend.unavailable()
        })
    }

    fn get(&self, user: &str) -> Result<Option<zeroize::Zeroizing<String>>> {
        match self.entry(user)?.get_password() {
            Ok(p) => Ok(Some(zeroize::Zeroizing::new(p))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => {
                tracing::warn!(backend = %self.backend, error = %e, "keyring read failed");
                Err(self.backend.unavailable())
            }
        }
    }

    fn set(&self, user: &str, value: &str) -> Result<()> {
        self.entry(user)?.set_password(value).map_err(|e| {
            tracing::warn!(backend = %self.backend, error = %e, "keyring write failed");
            self.backend.unavailable()
        })
    }

    /// The key, or `None` when this store has none yet (first run).
    pub(crate) fn db_key(&self) -> Result<Option<DbKey>> {
        match self.get(&key_entry_user(&self.store_id))? {
            None => Ok(None),
            Some(hex) => DbKey::from_hex(&hex).map(Some).ok_or_else(|| {
                Error::new(
                    Code::StoreWrongKey,
                    "キーリングに保存された鍵の形式が正しくありません。システム管理者に連絡してください。",
                )
            }),
        }
    }

    pub(crate) fn store_db_key(&self, key: &DbKey) -> Result<()> {
        self.set(&key_entry_user(&self.store_id), &key.to_hex())
    }

    /// `(seq, hash)` of the newest audit entry known to have been committed.
    pub(crate) fn head(&self) -> Result<Option<(i64, String)>> {
        let Some(v) = self.get(&head_entry_user(&self.store_id))? else {
            return Ok(None);
        };
        let (seq, hash) = v.split_once(':').unwrap_or(("", ""));
        Ok(seq.parse().ok().map(|s| (s, hash.to_string())))
    }

    pub(crate) fn set_head(&self, seq: i64, hash: &str) -> Result<()> {
        self.set(&head_entry_user(&self.store_id), &format!("{seq}:{hash}"))
    }
}

#[cfg(target_os = "linux")]
fn entry(backend: KeyringBackend, user: &str) -> keyring::Result<keyring::Entry> {
    let cred: Box<keyring::credential::Credential> = match backend {
        KeyringBackend::KernelKeyutils => Box::new(
            keyring::keyutils::KeyutilsCredential::new_with_target(None, KEYRING_SERVICE, user)?,
        ),
        KeyringBackend::Native => Box::new(keyring::secret_service::SsCredential::new_with_target(
            None,
            KEYRING_SERVICE,
            user,
        )?),
    };
    Ok(keyring::Entry::new_with_credential(cred))
}

#[cfg(not(target_os = "linux"))]
fn entry(backend: KeyringBackend, user: &str) -> keyring::Result<keyring::Entry> {
    match backend {
        KeyringBackend::Native => keyring::Entry::new(KEYRING_SERVICE, user),
        KeyringBackend::KernelKeyutils => Err(keyring::Error::NoStorageAccess(
            "keyutils exists only on Linux".into(),
        )),
    }
}

/// Reads another secret this workstation keeps in the same keyring (karte-sync's client certificate and key, its
/// bearer token): one keyring abstraction for every secret, so none of them ever lands in a file.
pub fn read_secret(
    backend: KeyringBackend,
    user: &str,
) -> Result<Option<zeroize::Zeroizing<String>>> {
    let e = entry(backend, user).map_err(|_| backend.unavailable())?;
    match e.get_password() {
        Ok(p) => Ok(Some(zeroize::Zeroizing::new(p))),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(err) => {
            tracing::warn!(%backend, error = %err, "keyring read failed");
            Err(backend.unavailable())
        }
    }
}

/// Writes (or replaces) such a secret: what `karte queue credentials` and the tests' set-up use.
pub fn write_secret(backend: KeyringBackend, user: &str, value: &str) -> Result<()> {
    entry(backend, user)
        .and_then(|e| e.set_password(value))
        .map_err(|err| {
            tracing::warn!(%backend, error = %err, "keyring write failed");
            backend.unavailable()
        })
}

/// Removes such a secret; absent is fine.
pub fn delete_secret(backend: KeyringBackend, user: &str) -> Result<()> {
    match entry(backend, user).and_then(|e| e.delete_credential()) {
        Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(err) => {
            tracing::warn!(%backend, error = %err, "keyring delete failed");
            Err(backend.unavailable())
        }
    }
}
