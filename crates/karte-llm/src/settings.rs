//! The settings file, as karte-llm sees it: the structs and the path rule live in karte-settings (one file for
//! every crate: `[server]`, `[model]`, `[serve]`, `[sync]`); what they mean for an HTTP client lives here.
//!
//! `karte_llm::settings::Settings` (and `Settings::load()`) stays the name the desktop app and the server use.

use std::path::PathBuf;
use std::time::Duration;

use karte_core::Result;

pub use karte_settings::{
    invalid, ModelSettings, ServeSettings, ServerSettings, Settings, SyncSettings, SETTINGS_ENV,
};

use crate::http::{HttpEngineConfig, TlsSettings};
use crate::EngineKind;

/// Environment variable holding a bearer token: the server accepts it as its first client token, and a
/// workstation sends it when `server.token_file` is not set (scripted set-ups).
pub const TOKEN_ENV: &str = "KARTE_SERVER_TOKEN";

/// The conversion of `[server]` into the HTTP client's configuration. A trait because the struct now lives in
/// karte-settings; `use karte_llm::settings::ServerSettingsExt` (or `karte_llm::ServerSettingsExt`) to call it.
pub trait ServerSettingsExt {
    /// The HTTP client's configuration: reads the pinned certificate, the client identity and the token.
    fn http_config(&self) -> Result<HttpEngineConfig>;
}

impl ServerSettingsExt for ServerSettings {
    fn http_config(&self) -> Result<HttpEngineConfig> {
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

    /// The re-export keeps karte-llm's callers working, and `[server]` still converts to the HTTP client's config.
    #[test]
    fn server_section_converts_to_the_http_config() {
        let d = tempfile::tempdir().unwrap();
        let token = d.path().join("token");
        std::fs::write(&token, "ws-token-7\n").unwrap();
        let s = Settings::parse(&format!(
            "[server]\nurl = \"https://karte-gpu.example.local:8443\"\ntoken_file = \"{}\"\nconnect_timeout_ms = 900\n",
            token.display()
        ))
        .unwrap();
        let cfg = s.server.unwrap().http_config().unwrap();
        assert_eq!(cfg.connect_timeout, Duration::from_millis(900));
        assert_eq!(cfg.kind, EngineKind::Server);
        let missing = ServerSettings {
            url: "https://x".into(),
            pinned_cert: Some(PathBuf::from("/nonexistent/ca.pem")),
            client_cert: None,
            client_key: None,
            token_file: None,
            connect_timeout_ms: 1,
            idle_timeout_ms: 1,
            send_audio: true,
        };
        let e = missing.http_config().unwrap_err();
        assert_eq!(e.code, karte_core::Code::ConfigInvalid);
        assert!(e.message.contains("/nonexistent/ca.pem"), "{e}");
    }
}
