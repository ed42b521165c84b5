//! Upload settings: `sync.toml` in the data directory (or the file `KARTE_SYNC_CONFIG` names). Secrets are not
//! settings: the client certificate, its key, the bearer token and the pseudonym key live in the keyring
//! ([`Credentials`](crate::transport::Credentials)).

use karte_core::{Code, Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file name inside the data directory.
pub const SETTINGS_FILE: &str = "sync.toml";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyncSettings {
    /// The platform's FHIR base URL (https only); Bundles are POSTed to `{endpoint}/Bundle`.
    pub endpoint: String,
    /// Base64 SHA-256 of the server certificate's SubjectPublicKeyInfo (as `openssl x509 -pubkey | openssl pkey
    /// -pubin -outform der | openssl dgst -sha256 -binary | base64` prints it). Several are allowed, for a key
    /// rollover: any one must match. Checked in addition to normal certificate validation, never instead of it.
    pub spki_sha256: Vec<String>,
    /// PEM file of the CA(s) that issue the platform's certificate; without it, the Mozilla root set.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Whether the hospital's policy allows identifying data in the Bundle (patient id, unpseudonymised text).
    /// Off unless written here as `true`.
    #[serde(default)]
    pub include_identifying_data: bool,
    /// 10-digit 保険医療機関コード, used in the JP Core patient-id system when identifying data is allowed.
    #[serde(default)]
    pub facility_code: Option<String>,
    /// Per-request limit (connect + send + answer).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// First retry delay; doubled per attempt up to `retry_max_ms`, each with random jitter.
    #[serde(default = "default_base")]
    pub retry_base_ms: u64,
    #[serde(default = "default_max")]
    pub retry_max_ms: u64,
}

fn default_timeout() -> u64 {
    30
}
fn default_base() -> u64 {
    2_000
}
fn default_max() -> u64 {
    15 * 60 * 1000
}

fn invalid(path: &Path, why: &str) -> Error {
    Error::new(
        Code::ConfigInvalid,
        format!(
            "送信設定 {} が正しくありません（{why}）。README の「送信設定」を見て直してください。",
            path.display()
        ),
    )
}

impl SyncSettings {
    /// `KARTE_SYNC_CONFIG`, else `sync.toml` in `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        std::env::var_os("KARTE_SYNC_CONFIG")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join(SETTINGS_FILE))
    }

    /// Reads and checks the settings; `sync.not_configured` when the file does not exist.
    pub fn load(data_dir: &Path) -> Result<SyncSettings> {
        let path = Self::path(data_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::new(
                    Code::SyncNotConfigured,
                    format!(
                        "クラウドへの送信が設定されていません（{} がありません）。署名済みの記録は端末内の送信待ちに保存されています。\
                         システム管理者に送信先の設定を依頼してください。",
                        path.display()
                    ),
                ))
            }
            Err(_) => return Err(invalid(&path, "読み込めません")),
        };
        Self::parse(&text).map_err(|why| invalid(&path, &why))
    }

    /// Parses and checks the TOML text.
    pub fn parse(text: &str) -> std::result::Result<SyncSettings, String> {
        let s: SyncSettings = toml::from_str(text).map_err(|e| {
            // toml's message can quote the line; only the key path is safe to show.
            let _ = e;
            "TOML の形式または項目名".to_string()
        })?;
        if !s.endpoint.starts_with("https://") {
            return Err("endpoint は https:// で始まる URL にしてください".into());
        }
        if s.spki_sha256.is_empty() {
            return Err("spki_sha256 に証明書の公開鍵ピンを1つ以上書いてください".into());
        }
        if s.pins().is_none() {
            return Err("spki_sha256 は SHA-256 の Base64（44文字）にしてください".into());
        }
        if let Some(code) = &s.facility_code {
            if code.len() != 10 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err("facility_code は10桁の保険医療機関コードにしてください".into());
            }
        }
        Ok(s)
    }

    /// The pins as raw digests; `None` if one is not a base64 SHA-256 (a `sha256/` prefix is accepted).
    pub fn pins(&self) -> Option<Vec<[u8; 32]>> {
        use base64::Engine;
        self.spki_sha256
            .iter()
            .map(|p| {
                let p = p.trim();
                let p = p.strip_prefix("sha256/").unwrap_or(p);
                base64::engine::general_purpose::STANDARD
                    .decode(p)
                    .ok()
                    .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
            })
            .collect()
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.max(1))
    }

    pub fn bundle_url(&self) -> String {
        format!("{}/Bundle", self.endpoint.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIN: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

    #[test]
    fn settings_table() {
        let ok = format!("endpoint = \"https://fhir.example.jp/r4\"\nspki_sha256 = [\"{PIN}\"]\n");
        let s = SyncSettings::parse(&ok).unwrap();
        assert!(
            !s.include_identifying_data,
            "identifying data must be off by default"
        );
        assert_eq!(s.bundle_url(), "https://fhir.example.jp/r4/Bundle");
        let bad: &[(&str, &str)] = &[
            ("endpoint = \"http://x\"\nspki_sha256 = [\"PIN\"]", "https"),
            ("endpoint = \"https://x\"\nspki_sha256 = []", "spki_sha256"),
            (
                "endpoint = \"https://x\"\nspki_sha256 = [\"abc\"]",
                "Base64",
            ),
            (
                "endpoint = \"https://x\"\nspki_sha256 = [\"PIN\"]\nfacility_code = \"12\"",
                "10桁",
            ),
            (
                "endpoint = \"https://x\"\nspki_sha256 = [\"PIN\"]\nunknown = 1",
                "TOML",
            ),
        ];
        for (text, want) in bad {
            let err = SyncSettings::parse(&text.replace("PIN", PIN)).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
        let sha_prefixed = format!("endpoint = \"https://x\"\nspki_sha256 = [\"sha256/{PIN}\"]");
        assert_eq!(
            SyncSettings::parse(&sha_prefixed)
                .unwrap()
                .pins()
                .unwrap()
                .len(),
            1
        );
    }
}
