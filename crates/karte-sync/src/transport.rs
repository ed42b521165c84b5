//! HTTPS to the platform: rustls only (ring), the server certificate validated normally *and* pinned to an SPKI
//! SHA-256 from the settings, a client certificate (mTLS) and a bearer token from the keyring, and an idempotency
//! key per document sent both as `Idempotency-Key` and as a FHIR conditional create (`If-None-Exist`).
//!
//! There is no fallback: a certificate that fails validation or the pin fails the handshake, before a byte of the
//! document is written, and the outcome tells the queue to stop ([`SendOutcome::Halt`]).

use crate::fhir::{Bundle, Identifier};
use crate::settings::SyncSettings;
use karte_core::{Code, Error, Result};
use karte_store::vault::{read_secret, KeyringBackend};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

/// Keyring entries (service `karte`), shared by every data directory of the workstation: the workstation is
/// what the platform authenticates.
pub const CLIENT_CERT_ENTRY: &str = "sync:client-cert";
pub const CLIENT_KEY_ENTRY: &str = "sync:client-key";
pub const TOKEN_ENTRY: &str = "sync:token";
pub const PSEUDONYM_KEY_ENTRY: &str = "sync:pseudonym-key";

/// The workstation's secrets for the platform, read from the keyring.
pub struct Credentials {
    pub cert_pem: Zeroizing<String>,
    pub key_pem: Zeroizing<String>,
    pub token: Zeroizing<String>,
}

impl Credentials {
    pub fn from_keyring(backend: KeyringBackend) -> Result<Credentials> {
        let cert = read_secret(backend, CLIENT_CERT_ENTRY)?;
        let key = read_secret(backend, CLIENT_KEY_ENTRY)?;
        let (Some(cert_pem), Some(key_pem)) = (cert, key) else {
            return Err(client_cert_missing());
        };
        let token = read_secret(backend, TOKEN_ENTRY)?.ok_or_else(|| {
            Error::new(
                Code::SyncTokenMissing,
                "クラウド送信用のアクセストークンがキーリングにありません。送信待ちの記録は端末に保存されています。\
                 システム管理者に karte queue credentials でトークンの登録を依頼してください。",
            )
        })?;
        Ok(Credentials {
            cert_pem,
            key_pem,
            token,
        })
    }
}

fn client_cert_missing() -> Error {
    Error::new(
        Code::SyncClientCertMissing,
        "この端末のクライアント証明書（または秘密鍵）がキーリングにありません。送信は行っていません。\
         送信待ちの記録は端末に保存されています。システム管理者に証明書の登録（karte queue credentials）を依頼してください。",
    )
}

/// Why the last handshake's server certificate was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertFailure {
    PinMismatch,
    Expired,
    /// Not valid yet: nearly always the workstation's clock running behind, not the server.
    NotValidYet,
    Untrusted,
}

/// webpki validation first (chain to the configured roots, name, validity), then the SPKI pin on the leaf.
#[derive(Debug)]
pub struct PinnedVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pins: Vec<[u8; 32]>,
    last: Mutex<Option<CertFailure>>,
}

impl PinnedVerifier {
    fn fail(&self, f: CertFailure) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }
    pub fn take_failure(&self) -> Option<CertFailure> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(e) => {
                self.fail(match &e {
                    rustls::Error::InvalidCertificate(
                        CertificateError::Expired | CertificateError::ExpiredContext { .. },
                    ) => CertFailure::Expired,
                    rustls::Error::InvalidCertificate(
                        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
                    ) => CertFailure::NotValidYet,
                    _ => CertFailure::Untrusted,
                });
                Err(e)
            }
            Ok(ok) => {
                let pinned = spki(end_entity)
                    .map(|k| <[u8; 32]>::from(Sha256::digest(k)))
                    .is_some_and(|h| self.pins.contains(&h));
                if pinned {
                    Ok(ok)
                } else {
                    self.fail(CertFailure::PinMismatch);
                    Err(rustls::Error::InvalidCertificate(
                        CertificateError::ApplicationVerificationFailure,
                    ))
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// One DER element and what follows it.
struct Der<'a> {
    tag: u8,
    whole: &'a [u8],
    contents: &'a [u8],
    rest: &'a [u8],
}

fn der(input: &[u8]) -> Option<Der<'_>> {
    let tag = *input.first()?;
    let first = *input.get(1)? as usize;
    let (len, hdr) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *input.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    let whole = input.get(..end)?;
    Some(Der {
        tag,
        whole,
        contents: &input[hdr..end],
        rest: &input[end..],
    })
}

/// The SubjectPublicKeyInfo of an X.509 certificate (RFC 5280 §4.1): the 7th field of tbsCertificate, counting
/// the optional `[0] version`.
pub fn spki(cert: &[u8]) -> Option<&[u8]> {
    let tbs = der(der(cert)?.contents)?.contents;
    let first = der(tbs)?;
    let mut rest = if first.tag == 0xa0 { first.rest } else { tbs }; // optional [0] version
    for _ in 0..5 {
        // serialNumber, signature, issuer, validity, subject
        rest = der(rest)?.rest;
    }
    let spki = der(rest)?;
    (spki.tag == 0x30).then_some(spki.whole)
}

/// The pin of a certificate as the settings write it (base64 SHA-256 of its SPKI).
pub fn spki_pin_of_cert(cert_der: &[u8]) -> Option<String> {
    use base64::Engine;
    spki(cert_der).map(|k| base64::engine::general_purpose::STANDARD.encode(Sha256::digest(k)))
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum SendOutcome {
    /// Any 2xx: 201 Created, 200 OK (the server already had this identifier), 202 Accepted, 204…
    Stored(u16),
    /// 5xx, 408, 429, a timeout or no connection: try again later.
    Retry(Error, Option<u16>),
    /// Any other 4xx: the document itself was refused; a person must look at it.
    Refused(Error, Option<u16>),
    /// The server is not the one pinned (or its certificate is invalid), it refuses the workstation itself
    /// (client certificate, token), or the endpoint is not a FHIR Bundle endpoint at all (3xx, 404, 405, 406,
    /// 415): stop the whole queue rather than refuse every document one by one.
    Halt(Error),
}

pub struct Transport {
    client: reqwest::Client,
    url: String,
    token: Zeroizing<String>,
    verifier: Arc<PinnedVerifier>,
}

fn config_err(why: &str) -> Error {
    Error::new(
        Code::ConfigInvalid,
        format!("送信の設定を使えません（{why}）。システム管理者に連絡してください。"),
    )
}

impl Transport {
    pub fn new(settings: &SyncSettings, creds: &Credentials) -> Result<Transport> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        match &settings.ca_file {
            Some(path) => {
                let p = path.display();
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|_| config_err(&format!("ca_file {p} を読めません")))?
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|_| config_err(&format!("ca_file {p} の PEM が壊れています")))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(config_err(&format!("ca_file {p} に CA 証明書がありません")));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|_| config_err("CA 証明書"))?;
        let verifier = Arc::new(PinnedVerifier {
            inner,
            pins: settings.pins().ok_or_else(|| config_err("spki_sha256"))?,
            last: Mutex::new(None),
        });
        let certs = CertificateDer::pem_slice_iter(creds.cert_pem.as_bytes())
            .collect::<std::result::Result<Vec<_>, _>>()
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(client_cert_missing)?;
        let key = PrivateKeyDer::from_pem_slice(creds.key_pem.as_bytes())
            .map_err(|_| client_cert_missing())?;
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|_| config_err("TLS"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_client_auth_cert(certs, key)
            .map_err(|_| {
                Error::new(
                    Code::SyncClientCertMissing,
                    "キーリングのクライアント証明書と秘密鍵が対になっていないか、形式が正しくありません。\
                     システム管理者に証明書の再登録を依頼してください。",
                )
            })?;
        // No redirects (a 307 to another place would carry the document there) and https only.
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true)
            .timeout(settings.timeout())
            .connect_timeout(settings.timeout())
            .pool_max_idle_per_host(1)
            .build()
            .map_err(|_| config_err("HTTP クライアント"))?;
        Ok(Transport {
            client,
            url: settings.bundle_url(),
            token: creds.token.clone(),
            verifier,
        })
    }

    /// The conditional create of one Bundle. The token goes through `bearer_auth`, which marks the header
    /// sensitive: it never appears in a `Debug` print of the request, and HTTP/2 keeps it out of header compression.
    fn request(&self, bundle_id: &str, bundle: &Bundle) -> reqwest::RequestBuilder {
        let key = bundle_id.strip_prefix("urn:uuid:").unwrap_or(bundle_id);
        // The search names the Bundle's own identifier: the queue's UUID, or the JP-CLINS form built around it.
        let Identifier { system, value } = &bundle.identifier;
        self.client
            .post(&self.url)
            .bearer_auth(self.token.as_str())
            .header("Content-Type", "application/fhir+json")
            .header("Accept", "application/fhir+json")
            .header("Idempotency-Key", key)
            .header("If-None-Exist", format!("identifier={system}|{value}"))
            .body(crate::fhir::to_json(bundle))
    }

    /// One attempt to create `bundle`, queued as `bundle_id` (a `urn:uuid:`, the idempotency key).
    pub async fn send(&self, bundle_id: &str, bundle: &Bundle) -> SendOutcome {
        self.verifier.take_failure();
        let res = self.request(bundle_id, bundle).send().await;
        let resp = match res {
            Ok(r) => r,
            Err(e) => return self.transport_failure(&e),
        };
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return SendOutcome::Stored(status);
        }
        if matches!(status, 300..=399 | 404 | 405 | 406 | 415) {
            // Not an answer about this document: the address is not a FHIR Bundle endpoint (a moved or mistyped
            // endpoint, a proxy's page). Refusing each document would dead-letter the whole queue one by one.
            return SendOutcome::Halt(Error::new(
                Code::SyncEndpointInvalid,
                format!(
                    "送信先のアドレスが正しくないようです（HTTP {status}）。送信を停止しました。記録は端末に保存されています。\
                     システム管理者に設定ファイルの [sync] endpoint の確認を依頼し、直した後で「送信再開」（karte queue resume）を押してください。"
                ),
            ));
        }
        let body = resp.bytes().await.unwrap_or_default();
        let reason = server_reason(&body);
        match status {
            401 | 403 => SendOutcome::Halt(Error::new(
                Code::SyncUnauthorized,
                format!(
                    "クラウドがこの端末の認証を拒否しました（HTTP {status}: {reason}）。送信を停止しています。\
                     システム管理者にアクセストークンと証明書の確認を依頼してください。"
                ),
            )),
            408 | 429 | 500..=599 => SendOutcome::Retry(
                Error::new(
                    Code::SyncServerError,
                    format!(
                        "クラウド側の一時的なエラーです（HTTP {status}）。自動で再送します。操作は不要です。"
                    ),
                ),
                Some(status),
            ),
            _ => SendOutcome::Refused(
                Error::new(
                    Code::SyncRejected,
                    format!(
                        "クラウドがこの文書を受け付けませんでした（HTTP {status}: {reason}）。\
                         内容を確認・修正してから「再送」を押してください。"
                    ),
                ),
                Some(status),
            ),
        }
    }

    fn transport_failure(&self, e: &reqwest::Error) -> SendOutcome {
        if let Some(f) = self.verifier.take_failure() {
            return SendOutcome::Halt(match f {
                CertFailure::PinMismatch => Error::new(
                    Code::SyncPinMismatch,
                    "送信先サーバーの証明書が登録された公開鍵（ピン）と一致しません。なりすましの恐れがあるため送信を停止しました。\
                     記録は端末に保存されています。すぐにシステム管理者に連絡してください。",
                ),
                CertFailure::NotValidYet => Error::new(
                    Code::SyncCertNotYetValid,
                    "送信先サーバーの証明書がまだ有効期間に入っていません。この端末の時計（日付と時刻）が遅れている可能性が高いので、\
                     まず時計を確認してください。送信を停止しました。記録は端末に保存されています。\
                     時計が正しければシステム管理者に連絡してください。",
                ),
                CertFailure::Expired => Error::new(
                    Code::SyncCertExpired,
                    "送信先サーバーの証明書の有効期限が切れています（または端末の時計がずれています）。送信を停止しました。\
                     記録は端末に保存されています。システム管理者に連絡してください。",
                ),
                CertFailure::Untrusted => Error::new(
                    Code::SyncCertUntrusted,
                    "送信先サーバーの証明書を検証できません（発行元が不明か、名前が一致しません）。送信を停止しました。\
                     記録は端末に保存されています。システム管理者に連絡してください。",
                ),
            });
        }
        if let Some(rustls::Error::AlertReceived(a)) = find_rustls_error(e) {
            use rustls::AlertDescription as A;
            {
                if matches!(
                    a,
                    A::CertificateRequired
                        | A::BadCertificate
                        | A::UnknownCA
                        | A::CertificateExpired
                        | A::CertificateRevoked
                        | A::CertificateUnknown
                        | A::AccessDenied
                        // The client certificate's signature does not verify under the CA of that name (a re-keyed
                        // or look-alike CA): rustls answers decrypt_error. Retrying would never help.
                        | A::DecryptError
                ) {
                    return SendOutcome::Halt(Error::new(
                        Code::SyncClientCertRejected,
                        "送信先サーバーがこの端末のクライアント証明書を受け付けませんでした。送信を停止しました。\
                         記録は端末に保存されています。システム管理者に証明書の更新を依頼してください。",
                    ));
                }
            }
        }
        if e.is_timeout() {
            return SendOutcome::Retry(
                Error::new(
                    Code::SyncTimeout,
                    "送信先サーバーの応答が時間内にありませんでした。自動で再送します。",
                ),
                None,
            );
        }
        SendOutcome::Retry(
            Error::new(
                Code::SyncUnreachable,
                "送信先サーバーに接続できません（ネットワークの切断やサーバーの停止）。記録は端末に保存され、つながり次第自動で送信します。",
            ),
            None,
        )
    }
}

/// Finds a rustls error anywhere in the chain (io::Error hides its payload from `source()`).
fn find_rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(t) = inner.downcast_ref::<rustls::Error>() {
                    return Some(t);
                }
            }
        }
        cur = err.source();
    }
    None
}

/// The server's reason from an OperationOutcome (`issue[].diagnostics`, else `details.text`, else `code`),
/// pseudonymised and clipped, because it is stored in the queue and shown, and a validator's diagnostics may echo
/// the patient's name or id from the document; a non-FHIR body gives its size only (it could hold anything).
pub fn server_reason(body: &[u8]) -> String {
    let reasons: Vec<String> = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .filter(|v| v["resourceType"] == "OperationOutcome")
        .and_then(|v| v["issue"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|i| {
            i["diagnostics"]
                .as_str()
                .or_else(|| i["details"]["text"].as_str())
                .or_else(|| i["code"].as_str())
                .map(str::to_string)
        })
        .collect();
    if reasons.is_empty() {
        return format!("理由の記載なし、応答 {} バイト", body.len());
    }
    let text = karte_guard::pseudonymise(&reasons.join("; ")).text;
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport(dir: &std::path::Path, ca_file: Option<std::path::PathBuf>) -> Result<Transport> {
        let pki = karte_receiver::TestPki::new();
        let settings = SyncSettings {
            endpoint: "https://127.0.0.1:9/fhir".into(),
            spki_sha256: vec![pki.server_pin.clone()],
            ca_file: Some(ca_file.unwrap_or_else(|| pki.write_ca(dir))),
            include_identifying_data: false,
            facility_code: None,
            facility_name: None,
            timeout_secs: 5,
            retry_base_ms: 50,
            retry_max_ms: 400,
        };
        let creds = Credentials {
            cert_pem: Zeroizing::new(pki.client.cert_pem.clone()),
            key_pem: Zeroizing::new(pki.client.key_pem.clone()),
            token: Zeroizing::new("secret-bearer-0123456789".into()),
        };
        Transport::new(&settings, &creds)
    }

    /// The bearer token is a sensitive header: never in a `Debug` print of the request (logs, panics).
    #[test]
    fn the_token_header_is_sensitive() {
        let dir = tempfile::tempdir().unwrap();
        let t = transport(dir.path(), None).unwrap();
        let id = "urn:uuid:00000000-0000-4000-8000-000000000001";
        let bundle = Bundle {
            resource_type: "Bundle",
            meta: None,
            identifier: Identifier {
                system: "urn:ietf:rfc:3986".into(),
                value: id.into(),
            },
            kind: "document",
            timestamp: "2026-12-06T00:00:00.000Z".into(),
            entry: vec![],
        };
        let req = t.request(id, &bundle).build().unwrap();
        let auth = &req.headers()[reqwest::header::AUTHORIZATION];
        assert!(auth.is_sensitive());
        assert_eq!(auth.to_str().unwrap(), "Bearer secret-bearer-0123456789");
        let printed = format!("{req:?} {:?}", req.headers());
        assert!(!printed.contains("secret-bearer"), "{printed}");
        assert_eq!(
            req.headers()["idempotency-key"],
            "00000000-0000-4000-8000-000000000001"
        );
        assert_eq!(
            req.headers()["if-none-exist"],
            format!("identifier=urn:ietf:rfc:3986|{id}").as_str()
        );
    }

    /// A `ca_file` problem names the file, so IT knows which one to fix.
    #[test]
    fn ca_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("platform-ca.pem");
        let empty = dir.path().join("empty-ca.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        for path in [missing, empty] {
            let e = transport(dir.path(), Some(path.clone())).err().unwrap();
            assert_eq!(e.code, Code::ConfigInvalid);
            assert!(e.message.contains(&path.display().to_string()), "{e}");
        }
    }

    /// A server's diagnostics are stored and shown: pseudonymised and clipped, since a validator may echo the
    /// patient's name or id from the document.
    #[test]
    fn server_reasons_are_pseudonymised_and_clipped() {
        let table: &[(&str, &[&str], &str)] = &[
            (
                "Patient.name: 山田太郎さん（患者ID: P-0001）は登録済みの患者と一致しません",
                &["山田太郎", "P-0001"],
                "登録済みの患者と一致しません",
            ),
            (
                "連絡先 090-1234-5678 の形式が正しくありません",
                &["090-1234-5678"],
                "の形式が正しくありません",
            ),
        ];
        for (diag, hidden, kept) in table {
            let body = serde_json::json!({"resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "invalid", "diagnostics": diag}]});
            let r = server_reason(body.to_string().as_bytes());
            for h in *hidden {
                assert!(!r.contains(h), "{h} kept in {r}");
            }
            assert!(r.contains(kept), "{r}");
        }
        let long = serde_json::json!({"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "invalid", "diagnostics": "あ".repeat(1000)}]});
        assert_eq!(
            server_reason(long.to_string().as_bytes()).chars().count(),
            300
        );
        assert!(server_reason(b"<html>secret</html>").contains("バイト"));
    }
}
