//! The one settings file hospital IT manages, read by the CLI, the desktop app and the server alike.
//!
//! Where: `$KARTE_SETTINGS` if set, else `/etc/karte/settings.toml` (Linux), `/Library/Application Support/Karte/
//! settings.toml` (macOS), `%ProgramData%\Karte\settings.toml` (Windows). A machine-wide file, not a per-user one,
//! because IT pushes it with the installer and users must not point their workstation at another server. A missing
//! file means "local model only, defaults"; a file that exists but does not parse is an error (`config.invalid`)
//! rather than a silent fallback, so that a typo does not quietly send a ward to the wrong engine.

use std::path::{Path, PathBuf};
use std::time::Duration;

use karte_core::{Code, Error, Result};
use serde::{Deserialize, Serialize};

use crate::http::{HttpEngineConfig, TlsSettings};
use crate::EngineKind;

/// Environment variable holding a bearer token: the server accepts it as its first client token, and a
/// workstation sends it when `server.token_file` is not set (scripted set-ups).
pub const TOKEN_ENV: &str = "KARTE_SERVER_TOKEN";
pub const SETTINGS_ENV: &str = "KARTE_SETTINGS";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The clinic server this workstation drafts with when it is healthy. Absent: always the local model.
    #[serde(default)]
    pub server: Option<ServerSettings>,
    #[serde(default)]
    pub model: ModelSettings,
    /// Used by `karte serve` / `karte-server` on the clinic machine.
    #[serde(default)]
    pub serve: ServeSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// e.g. `https://karte-gpu.example.local:8443`
    pub url: String,
    /// PEM of the server certificate or the hospital CA: the only certificate trusted for this server.
    #[serde(default)]
    pub pinned_cert: Option<PathBuf>,
    /// Client certificate and key (PEM) when the server requires mutual TLS.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// File holding this workstation's bearer token (mode 0600); else `$KARTE_SERVER_TOKEN`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// How long a connection attempt may take before the local model takes over.
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    /// Longest silence in a streamed answer before it counts as a failure.
    #[serde(default = "default_idle_ms")]
    pub idle_timeout_ms: u64,
}

fn default_connect_ms() -> u64 {
    1500
}
fn default_idle_ms() -> u64 {
    30_000
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    /// A name from models/manifest.toml or a path to a GGUF file; absent = the manifest's default.
    #[serde(default)]
    pub name: Option<String>,
    /// Threads for generation; absent = every core.
    #[serde(default)]
    pub threads: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSettings {
    /// Address to listen on, e.g. `0.0.0.0:8443`.
    #[serde(default)]
    pub listen: Option<String>,
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// When set, clients must present a certificate signed by this CA (mutual TLS).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// Token store and other state; default `/var/lib/karte-server`.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// JSON logs, rotated daily; absent = stderr only.
    #[serde(default)]
    pub log_dir: Option<PathBuf>,
    /// Requests waiting beyond this get 429 with Retry-After.
    #[serde(default)]
    pub max_queue: Option<usize>,
    /// Requests decoded together (continuous batching); default 4.
    #[serde(default)]
    pub parallel: Option<u32>,
    /// Upper bound on `max_tokens` of any request.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Upper bound on the time one request may generate, in seconds.
    #[serde(default)]
    pub request_timeout_s: Option<u64>,
}

fn invalid(path: &Path, why: &str) -> Error {
    let file = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    Error::new(
        Code::ConfigInvalid,
        format!("設定ファイル（{file}）を読み込めません（{why}）。管理者に連絡してください。"),
    )
}

impl Settings {
    /// The settings file's location on this machine (see the module docs).
    pub fn default_path() -> PathBuf {
        if let Some(p) = std::env::var_os(SETTINGS_ENV) {
            return PathBuf::from(p);
        }
        if cfg!(windows) {
            let base = std::env::var_os("ProgramData").unwrap_or_else(|| "C:\\ProgramData".into());
            PathBuf::from(base).join("Karte").join("settings.toml")
        } else if cfg!(target_os = "macos") {
            PathBuf::from("/Library/Application Support/Karte/settings.toml")
        } else {
            PathBuf::from("/etc/karte/settings.toml")
        }
    }

    /// Reads the machine's settings; a missing file gives the defaults.
    pub fn load() -> Result<Settings> {
        Self::load_from(&Self::default_path())
    }

    pub fn load_from(path: &Path) -> Result<Settings> {
        match std::fs::read_to_string(path) {
            Ok(s) => Self::parse(&s).map_err(|why| invalid(path, &why)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(_) => Err(invalid(path, "読み取り権限がありません")),
        }
    }

    /// Parses the TOML text; the error names the offending key and line, never values (a value could be a token).
    pub fn parse(text: &str) -> std::result::Result<Settings, String> {
        let s: Settings = toml::from_str(text).map_err(|e| {
            let msg = e.message().to_string();
            let line = e
                .span()
                .map(|sp| text[..sp.start.min(text.len())].lines().count().max(1));
            match line {
                Some(l) => format!("{l} 行目: {msg}"),
                None => msg,
            }
        })?;
        if let Some(srv) = &s.server {
            if !(srv.url.starts_with("http://") || srv.url.starts_with("https://")) {
                return Err("server.url は http:// か https:// で始めてください".into());
            }
            if srv.client_cert.is_some() != srv.client_key.is_some() {
                return Err("client_cert と client_key は両方指定してください".into());
            }
        }
        if s.serve.tls_cert.is_some() != s.serve.tls_key.is_some() {
            return Err("serve.tls_cert と serve.tls_key は両方指定してください".into());
        }
        Ok(s)
    }
}

impl ServerSettings {
    /// The HTTP client's configuration: reads the pinned certificate, the client identity and the token.
    pub fn http_config(&self) -> Result<HttpEngineConfig> {
        let read = |p: &PathBuf| std::fs::read(p).map_err(|_| invalid(p, "証明書を読めません"));
        let token = match &self.token_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|_| invalid(p, "トークンを読めません"))?
                    .trim()
                    .to_string(),
            ),
            None => std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()),
        };
        let mut cfg = HttpEngineConfig::new(&self.url, token);
        cfg.kind = EngineKind::Server;
        cfg.connect_timeout = Duration::from_millis(self.connect_timeout_ms);
        cfg.idle_timeout = Duration::from_millis(self.idle_timeout_ms);
        cfg.tls = TlsSettings {
            pinned_cert_pem: self.pinned_cert.as_ref().map(read).transpose()?,
            client_cert_pem: self.client_cert.as_ref().map(read).transpose()?,
            client_key_pem: self.client_key.as_ref().map(read).transpose()?,
        };
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_example_parses() {
        let s = Settings::parse(
            r#"
[server]
url = "https://karte-gpu.example.local:8443"
pinned_cert = "/etc/karte/clinic-ca.pem"
token_file = "/etc/karte/token"

[model]
name = "qwen2.5-coder-0.5b"
threads = 4

[serve]
listen = "0.0.0.0:8443"
tls_cert = "/etc/karte/server.pem"
tls_key = "/etc/karte/server.key"
max_queue = 32
"#,
        )
        .unwrap();
        let srv = s.server.unwrap();
        assert_eq!(srv.connect_timeout_ms, 1500);
        assert_eq!(s.model.threads, Some(4));
        assert_eq!(s.serve.max_queue, Some(32));
    }

    #[test]
    fn bad_files_are_refused_with_a_line() {
        let cases = [
            ("[server]\nurl = \"ftp://x\"\n", "http"),
            (
                "[server]\nurl = \"https://x\"\nclient_cert = \"a\"\n",
                "client_key",
            ),
            ("[model]\nthreads = \"four\"\n", "2 行目"),
            ("[modle]\n", "modle"),
        ];
        for (text, needle) in cases {
            let e = Settings::parse(text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn missing_file_is_defaults() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            Settings::load_from(&d.path().join("none.toml")).unwrap(),
            Settings::default()
        );
    }
}
