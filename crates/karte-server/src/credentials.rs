//! The upstream engines' credentials in upstream mode: the bearer token an engine asks for (vLLM and llama-server
//! `--api-key`), the client certificate and key of mutual TLS, and the CA that issued the engines' certificates
//! (trusted instead of the public roots). Like the workstation's upload credentials they live in the OS keyring
//! (service `karte`), never in the settings file or on the command line.
//!
//! `karte serve credentials` reads and checks everything first and only then writes, so a mistake never leaves a
//! half-replaced identity. At start-up the gateway reads them and writes their fingerprints (never the secrets)
//! to the audit trail. A container has no OS keyring: there the token comes from `KARTE_UPSTREAM_TOKEN` (an
//! orchestrator secret), which wins over the keyring's.

use std::io::BufReader;
use std::path::Path;

use karte_core::{Code, Error, Result};
use karte_llm::TlsSettings;
use karte_store::vault::{read_secret, write_secret, KeyringBackend};
use sha2::{Digest, Sha256};

pub const TOKEN_ENTRY: &str = "upstream:token";
pub const CLIENT_CERT_ENTRY: &str = "upstream:client-cert";
pub const CLIENT_KEY_ENTRY: &str = "upstream:client-key";
pub const CA_ENTRY: &str = "upstream:ca";

/// Bearer token for every upstream from the environment (containers), winning over the keyring's.
pub const TOKEN_ENV: &str = "KARTE_UPSTREAM_TOKEN";

/// What the gateway sends to its upstreams.
pub struct Loaded {
    pub token: Option<String>,
    pub tls: TlsSettings,
    /// Fingerprints of what was loaded, for the audit trail and the log.
    pub summary: String,
}

/// Reads the credentials. An unusable keyring is not fatal (a container has none): it is logged, and an upstream
/// that needs credentials then fails its probe, which `/health` shows.
pub fn load() -> Result<Loaded> {
    let backend = KeyringBackend::from_env()?;
    // One warning, not one per entry: after the first failure the keyring is not asked again.
    let usable = std::cell::Cell::new(true);
    let read = |entry: &str| {
        if !usable.get() {
            return None;
        }
        match read_secret(backend, entry) {
            Ok(v) => v.map(|s| s.to_string()),
            Err(e) => {
                usable.set(false);
                tracing::warn!(code = %e.code, "upstream credentials: keyring not readable, none used from it");
                None
            }
        }
    };
    let env_token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
    let token_source = if env_token.is_some() {
        "env"
    } else {
        "keyring"
    };
    let token = env_token.or_else(|| read(TOKEN_ENTRY));
    let cert = read(CLIENT_CERT_ENTRY);
    let key = read(CLIENT_KEY_ENTRY);
    let ca = read(CA_ENTRY);
    let mut summary = Vec::new();
    if token.is_some() {
        summary.push(format!("token({token_source})"));
    }
    if let Some(c) = &cert {
        summary.push(format!("client_cert_sha256={}", first_der_sha256(c)));
    }
    if let Some(c) = &ca {
        summary.push(format!("ca_sha256={}", first_der_sha256(c)));
    }
    if cert.is_some() != key.is_some() {
        return Err(Error::new(
            Code::ConfigInvalid,
            "キーリングに上流サーバー用のクライアント証明書と秘密鍵の片方しかありません。karte serve credentials で両方を登録し直してください。",
        ));
    }
    Ok(Loaded {
        token,
        tls: TlsSettings {
            pinned_cert_pem: ca.map(String::into_bytes),
            client_cert_pem: cert.map(String::into_bytes),
            client_key_pem: key.map(String::into_bytes),
        },
        summary: if summary.is_empty() {
            "none".into()
        } else {
            summary.join(" ")
        },
    })
}

/// Where new credentials come from: PEM files (IT deletes them afterwards) and the token's text (from an
/// environment variable, never the command line). Each part is optional; what is given replaces what is stored.
pub struct Source<'a> {
    pub token: Option<&'a str>,
    pub client_cert: Option<&'a Path>,
    pub client_key: Option<&'a Path>,
    pub ca: Option<&'a Path>,
}

fn bad(what: &str, path: &Path) -> Error {
    Error::new(
        Code::ConfigInvalid,
        format!(
            "{} を{}として読めません。キーリングは変更していません。PEM 形式のファイルを指定してください。",
            path.display(),
            what
        ),
    )
}

fn read_pem(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|_| {
        Error::new(
            Code::InputUnreadable,
            format!(
                "{} を読めません。ファイルの場所と権限を確認してください。キーリングは変更していません。",
                path.display()
            ),
        )
    })
}

fn certificates(pem: &str) -> Vec<Vec<u8>> {
    rustls_pemfile::certs(&mut BufReader::new(pem.as_bytes()))
        .filter_map(|c| c.ok())
        .map(|c| c.to_vec())
        .collect()
}

fn first_der_sha256(pem: &str) -> String {
    certificates(pem)
        .first()
        .map_or_else(|| "?".into(), |d| hex::encode(Sha256::digest(d)))
}

/// Checks everything, then writes it; returns the fingerprints (what the operator compares, never a secret).
pub fn install(backend: KeyringBackend, src: &Source<'_>) -> Result<String> {
    let mut writes: Vec<(&str, String)> = Vec::new();
    let mut shown = Vec::new();
    if let Some(t) = src.token {
        let t = t.trim();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::new(
                Code::ConfigInvalid,
                "上流サーバーのトークンが空か、使えない文字（空白や改行）を含んでいます。キーリングは変更していません。",
            ));
        }
        writes.push((TOKEN_ENTRY, t.to_string()));
        shown.push("トークン".to_string());
    }
    match (src.client_cert, src.client_key) {
        (Some(c), Some(k)) => {
            let cert = read_pem(c)?;
            if certificates(&cert).is_empty() {
                return Err(bad("証明書", c));
            }
            let key = read_pem(k)?;
            let parsed = rustls_pemfile::private_key(&mut BufReader::new(key.as_bytes()));
            if !matches!(parsed, Ok(Some(_))) {
                return Err(bad("秘密鍵", k));
            }
            shown.push(format!(
                "クライアント証明書 SHA-256: {}",
                first_der_sha256(&cert)
            ));
            writes.push((CLIENT_CERT_ENTRY, cert));
            writes.push((CLIENT_KEY_ENTRY, key));
        }
        (None, None) => {}
        _ => return Err(Error::new(
            Code::ConfigInvalid,
            "クライアント証明書と秘密鍵は両方を指定してください。キーリングは変更していません。",
        )),
    }
    if let Some(p) = src.ca {
        let ca = read_pem(p)?;
        if certificates(&ca).is_empty() {
            return Err(bad("CA 証明書", p));
        }
        shown.push(format!("CA 証明書 SHA-256: {}", first_der_sha256(&ca)));
        writes.push((CA_ENTRY, ca));
    }
    if writes.is_empty() {
        return Err(Error::new(
            Code::ConfigInvalid,
            "登録するものがありません。--token-env、--client-cert と --client-key、--ca のいずれかを指定してください。",
        ));
    }
    for (entry, value) in &writes {
        write_secret(backend, entry, value)?;
    }
    Ok(shown.join("\n"))
}
