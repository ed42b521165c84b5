//! Installing the workstation's secrets for the platform (what `karte queue credentials` and `karte queue
//! pseudonym-key` call): everything is read and checked first — the certificate parses, the key parses and is the
//! certificate's own, the token is usable — and only then written to the keyring, so a mistake never leaves a
//! half-replaced identity behind. Each installation is an audited administrator act (fingerprints only, never a
//! secret).

use crate::transport::{
    spki, CLIENT_CERT_ENTRY, CLIENT_KEY_ENTRY, PSEUDONYM_KEY_ENTRY, TOKEN_ENTRY,
};
use crate::worker::MIN_PSEUDONYM_KEY_BYTES;
use karte_core::{Code, Error, Result};
use karte_store::vault::{write_secret, KeyringBackend};
use karte_store::{Action, Session, Store};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::Path;
use zeroize::Zeroizing;

/// Where the new credentials come from: PEM files (IT deletes them afterwards) and the token's text (from an
/// environment variable in the CLI, never from the command line).
pub struct CredentialSource<'a> {
    pub cert_file: &'a Path,
    pub key_file: &'a Path,
    pub token: &'a str,
    /// The hospital-wide pseudonym key (hex), when IT installs it in the same step.
    pub pseudonym_key_hex: Option<&'a str>,
}

/// What was installed, for the operator and the audit log: fingerprints, never secrets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Installed {
    /// SHA-256 (hex) of the client certificate (DER), as `openssl x509 -fingerprint -sha256` shows it.
    pub cert_sha256: String,
    /// The SPKI pin of the client certificate's key (what the platform may register for this workstation).
    pub client_spki_sha256: String,
    /// First 16 hex digits of SHA-256 of the pseudonym key, to compare workstations; `None` if not installed now.
    pub pseudonym_key_id: Option<String>,
}

fn unreadable(p: &Path) -> Error {
    Error::new(
        Code::InputUnreadable,
        format!(
            "{} を読めません。ファイルの場所と権限を確認してください。",
            p.display()
        ),
    )
}

fn bad_pair(why: &str) -> Error {
    Error::new(
        Code::SyncClientCertMissing,
        format!(
            "クライアント証明書と秘密鍵を登録できません（{why}）。キーリングは変更していません。\
             証明書の発行元から受け取った証明書と、その秘密鍵のファイルを指定してください。"
        ),
    )
}

/// The pseudonym key from its hex text, checked (≥ 16 bytes).
fn pseudonym_key(hex_text: &str) -> Result<Zeroizing<Vec<u8>>> {
    let key = Zeroizing::new(hex::decode(hex_text.trim()).map_err(|_| {
        Error::new(
            Code::ConfigInvalid,
            "仮名化鍵は16進で指定してください。キーリングは変更していません。",
        )
    })?);
    if key.len() < MIN_PSEUDONYM_KEY_BYTES {
        return Err(Error::new(
            Code::ConfigInvalid,
            format!(
                "仮名化鍵が短すぎます（{} バイト、{MIN_PSEUDONYM_KEY_BYTES} バイト以上が必要）。キーリングは変更していません。",
                key.len()
            ),
        ));
    }
    Ok(key)
}

fn key_id(key: &[u8]) -> String {
    hex::encode(Sha256::digest(key))[..16].to_string()
}

/// Checks that `cert_pem` holds a certificate chain and `key_pem` the private key of its first certificate.
/// Returns the leaf's DER.
pub fn check_pair(cert_pem: &str, key_pem: &str) -> Result<Vec<u8>> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| bad_pair("証明書の PEM が壊れています"))?;
    let leaf = certs
        .first()
        .ok_or_else(|| bad_pair("証明書のファイルに証明書がありません"))?
        .to_vec();
    let cert_spki = spki(&leaf).ok_or_else(|| bad_pair("証明書を解析できません"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|_| bad_pair("秘密鍵のファイルに PEM の秘密鍵がありません"))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|_| bad_pair("秘密鍵の形式に対応していません"))?;
    let key_spki = signing
        .public_key()
        .ok_or_else(|| bad_pair("秘密鍵から公開鍵を取り出せません"))?;
    if key_spki.as_ref() != cert_spki {
        return Err(bad_pair("秘密鍵がこの証明書のものではありません"));
    }
    Ok(leaf)
}

/// Installs the client certificate, its key, the bearer token (and optionally the pseudonym key) for `s`, an
/// administrator. Nothing is written unless everything checks out.
pub fn install_credentials(
    store: &Store,
    s: &Session,
    backend: KeyringBackend,
    src: &CredentialSource<'_>,
) -> Result<Installed> {
    store.authorize_for(s, &[Action::ManageUsers])?;
    let cert_pem = Zeroizing::new(
        std::fs::read_to_string(src.cert_file).map_err(|_| unreadable(src.cert_file))?,
    );
    let key_pem = Zeroizing::new(
        std::fs::read_to_string(src.key_file).map_err(|_| unreadable(src.key_file))?,
    );
    let leaf = check_pair(&cert_pem, &key_pem)?;
    let token = src.token.trim();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::new(
            Code::SyncTokenMissing,
            "アクセストークンが空か、使えない文字（空白や改行）を含んでいます。キーリングは変更していません。",
        ));
    }
    let pseudonym = src.pseudonym_key_hex.map(pseudonym_key).transpose()?;

    let installed = Installed {
        cert_sha256: hex::encode(Sha256::digest(&leaf)),
        client_spki_sha256: crate::transport::spki_pin_of_cert(&leaf).unwrap_or_default(),
        pseudonym_key_id: pseudonym.as_deref().map(|k| key_id(k)),
    };
    write_secret(backend, CLIENT_CERT_ENTRY, &cert_pem)?;
    write_secret(backend, CLIENT_KEY_ENTRY, &key_pem)?;
    write_secret(backend, TOKEN_ENTRY, token)?;
    if let Some(k) = &pseudonym {
        write_secret(backend, PSEUDONYM_KEY_ENTRY, &hex::encode(k.as_slice()))?;
    }
    store.audit_admin_event(
        s,
        format!(
            "sync credentials installed cert_sha256={} pseudonym_key_id={}",
            installed.cert_sha256,
            installed.pseudonym_key_id.as_deref().unwrap_or("-")
        ),
    )?;
    Ok(installed)
}

/// Installs (or replaces) the hospital-wide pseudonym key alone, for `s`, an administrator. Returns its id.
pub fn install_pseudonym_key(
    store: &Store,
    s: &Session,
    backend: KeyringBackend,
    hex_key: &str,
) -> Result<String> {
    store.authorize_for(s, &[Action::ManageUsers])?;
    let key = pseudonym_key(hex_key)?;
    write_secret(backend, PSEUDONYM_KEY_ENTRY, &hex::encode(key.as_slice()))?;
    let id = key_id(&key);
    store.audit_admin_event(s, format!("sync pseudonym key installed key_id={id}"))?;
    Ok(id)
}
