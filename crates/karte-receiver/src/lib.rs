//! Test support: a real HTTPS FHIR receiver on loopback, standing in for the hospital's cloud platform in
//! karte-sync's tests and benchmark.
//!
//! - TLS by rustls (ring) with certificates from a throw-away test CA made by rcgen ([`TestPki`]); it can serve its
//!   good certificate, an expired one (same key), one not valid yet (same key), one with another key (same CA:
//!   passes validation, fails the pin) or one from an unknown CA.
//! - It requires a client certificate from the test CA (mTLS) and a bearer token.
//! - `POST /fhir/Bundle` is a FHIR conditional create: the `Idempotency-Key` header, the `If-None-Exist:
//!   identifier=…` search and the Bundle's own identifier must agree; a known key answers 200 with the stored
//!   copy, a new one 201. It stores what it accepts, in arrival order, and can be stopped and restarted on the same
//!   port (outage tests), told to fail transiently (503), to refuse (422 with an OperationOutcome), or to answer any
//!   status it is given (a redirect, 404, 405, 415, 202…: a wrong or unusual endpoint).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use axum_server::Handle;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A certificate and its private key, PEM.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
}

/// A test CA and every certificate the tests need from it (and from a second, unknown CA).
pub struct TestPki {
    pub ca_pem: String,
    /// The server's certificate for 127.0.0.1 and localhost.
    pub server: Leaf,
    /// Same key as `server`, validity 2020–2021.
    pub server_expired: Leaf,
    /// Same key as `server`, valid only from 10 days from now: what a workstation whose clock is behind sees.
    pub server_not_yet_valid: Leaf,
    /// Same CA, another key: valid, but not the pinned key.
    pub server_other_key: Leaf,
    /// Same key as `server`, issued by a CA the client does not trust.
    pub server_untrusted: Leaf,
    /// The workstation's client certificate.
    pub client: Leaf,
    /// A client certificate from the unknown CA: the receiver refuses it.
    pub client_other_ca: Leaf,
    /// base64 SHA-256 of the server key's SubjectPublicKeyInfo: what `[sync] spki_sha256` in the settings file holds.
    pub server_pin: String,
}

fn make_ca(name: &str) -> (Issuer<'static, KeyPair>, String) {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().expect("key");
    let cert = p.self_signed(&key).expect("CA cert");
    (Issuer::new(p, key), cert.pem())
}

/// A leaf certificate's validity period.
#[derive(Clone, Copy)]
enum Validity {
    /// From a year's 1 January to another's.
    Years(i32, i32),
    /// Yesterday to 30 days from now.
    Current,
    /// 10 to 40 days from now.
    Future,
}

fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    key: &KeyPair,
    name: &str,
    server: bool,
    validity: Validity,
) -> Leaf {
    let sans = if server {
        vec!["127.0.0.1".to_string(), "localhost".to_string()]
    } else {
        vec![]
    };
    let mut p = CertificateParams::new(sans).expect("params");
    p.distinguished_name.push(DnType::CommonName, name);
    p.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let now = time::OffsetDateTime::now_utc();
    match validity {
        Validity::Years(from, to) => {
            p.not_before = rcgen::date_time_ymd(from, 1, 1);
            p.not_after = rcgen::date_time_ymd(to, 1, 1);
        }
        Validity::Current => {
            p.not_before = now - time::Duration::days(1);
            p.not_after = now + time::Duration::days(30);
        }
        Validity::Future => {
            p.not_before = now + time::Duration::days(10);
            p.not_after = now + time::Duration::days(40);
        }
    }
    let cert = p.signed_by(key, issuer).expect("leaf cert");
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().to_vec(),
    }
}

impl TestPki {
    pub fn new() -> TestPki {
        use base64::Engine;
        let (ca, ca_pem) = make_ca("Karte Test Platform CA");
        let (other_ca, _) = make_ca("Unknown CA");
        let server_key = KeyPair::generate().expect("key");
        let other_key = KeyPair::generate().expect("key");
        let client_key = KeyPair::generate().expect("key");
        let server_pin = base64::engine::general_purpose::STANDARD
            .encode(Sha256::digest(server_key.subject_public_key_info()));
        TestPki {
            server: leaf(&ca, &server_key, "platform.test", true, Validity::Current),
            server_expired: leaf(
                &ca,
                &server_key,
                "platform.test",
                true,
                Validity::Years(2020, 2021),
            ),
            server_not_yet_valid: leaf(&ca, &server_key, "platform.test", true, Validity::Future),
            server_other_key: leaf(&ca, &other_key, "platform.test", true, Validity::Current),
            server_untrusted: leaf(
                &other_ca,
                &server_key,
                "platform.test",
                true,
                Validity::Current,
            ),
            client: leaf(&ca, &client_key, "ws-test-01", false, Validity::Current),
            client_other_ca: leaf(
                &other_ca,
                &client_key,
                "ws-test-01",
                false,
                Validity::Current,
            ),
            ca_pem,
            server_pin,
        }
    }

    /// Writes the CA certificate to `dir/ca.pem` (the settings file's `[sync] ca_file`) and returns its path.
    pub fn write_ca(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let p = dir.join("ca.pem");
        std::fs::write(&p, &self.ca_pem).expect("write ca.pem");
        p
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

/// Which certificate the receiver presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerCert {
    Good,
    Expired,
    NotYetValid,
    OtherKey,
    Untrusted,
}

/// A Bundle the receiver accepted.
#[derive(Debug, Clone)]
pub struct Stored {
    pub key: String,
    pub bundle: Value,
}

#[derive(Default)]
struct Inner {
    stored: Vec<Stored>,
    index: HashMap<String, usize>,
    posts: usize,
    duplicates: usize,
    refuse: Option<String>,
    fail_next: usize,
    /// Answer every authenticated POST with this status, as a wrong or moved endpoint would.
    answer: Option<u16>,
}

struct Shared {
    token: String,
    inner: Mutex<Inner>,
    requests: AtomicUsize,
}

fn outcome(status: StatusCode, code: &str, diagnostics: &str) -> Response {
    (
        status,
        [("content-type", "application/fhir+json")],
        json!({"resourceType": "OperationOutcome",
               "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}]})
        .to_string(),
    )
        .into_response()
}

async fn create_bundle(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    s.requests.fetch_add(1, Ordering::SeqCst);
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    if header("authorization") != format!("Bearer {}", s.token) {
        return outcome(
            StatusCode::UNAUTHORIZED,
            "login",
            "bearer token missing or wrong",
        );
    }
    {
        let mut g = s.inner.lock().unwrap();
        g.posts += 1;
        if let Some(status) = g.answer {
            let status = StatusCode::from_u16(status).expect("a valid status");
            if status.is_redirection() {
                return (
                    status,
                    [("location", "https://elsewhere.invalid/fhir/Bundle")],
                )
                    .into_response();
            }
            if status.is_success() {
                return status.into_response();
            }
            return outcome(status, "not-supported", "no FHIR Bundle endpoint here");
        }
        if g.fail_next > 0 {
            g.fail_next -= 1;
            return outcome(StatusCode::SERVICE_UNAVAILABLE, "transient", "maintenance");
        }
    }
    let key = header("idempotency-key").to_string();
    let Ok(bundle) = serde_json::from_slice::<Value>(&body) else {
        return outcome(StatusCode::BAD_REQUEST, "structure", "body is not JSON");
    };
    let id = bundle["identifier"]["value"].as_str().unwrap_or("");
    let system = bundle["identifier"]["system"].as_str().unwrap_or("");
    if bundle["resourceType"] != "Bundle" || bundle["type"] != "document" {
        return outcome(
            StatusCode::BAD_REQUEST,
            "structure",
            "expected a document Bundle",
        );
    }
    // The key is the document's UUID: the whole identifier, or the serial of a JP-CLINS Bundle-ID (…^…^<uuid>).
    if key.is_empty() || (id != format!("urn:uuid:{key}") && !id.ends_with(&format!("^{key}"))) {
        return outcome(
            StatusCode::BAD_REQUEST,
            "invalid",
            "Idempotency-Key does not match Bundle.identifier",
        );
    }
    if header("if-none-exist") != format!("identifier={system}|{id}") {
        return outcome(
            StatusCode::BAD_REQUEST,
            "invalid",
            "If-None-Exist does not name Bundle.identifier",
        );
    }
    if bundle["entry"][0]["resource"]["resourceType"] != "Composition" {
        return outcome(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invariant",
            "bdl-11: a document must have a Composition as the first resource",
        );
    }
    let mut g = s.inner.lock().unwrap();
    if let Some(why) = g.refuse.clone() {
        return outcome(StatusCode::UNPROCESSABLE_ENTITY, "business-rule", &why);
    }
    if let Some(&i) = g.index.get(&key) {
        g.duplicates += 1;
        let existing = g.stored[i].bundle.to_string();
        return (
            StatusCode::OK,
            [("content-type", "application/fhir+json")],
            existing,
        )
            .into_response();
    }
    let n = g.stored.len();
    g.index.insert(key.clone(), n);
    g.stored.push(Stored { key, bundle });
    (
        StatusCode::CREATED,
        [("content-type", "application/fhir+json")],
        body,
    )
        .into_response()
}

/// The running (or stopped) receiver. Owns its tokio runtime, so plain `#[test]`s can use it.
pub struct Receiver {
    rt: tokio::runtime::Runtime,
    shared: Arc<Shared>,
    port: u16,
    cert: ServerCert,
    server: Option<(Handle<SocketAddr>, tokio::task::JoinHandle<()>)>,
    config: (String, Leaf, Leaf, Leaf, Leaf, Leaf),
}

fn server_config(ca_pem: &str, leaf: &Leaf) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("CA PEM")).expect("CA cert");
    }
    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .expect("client verifier");
    let chain = vec![CertificateDer::from(leaf.cert_der.clone())];
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("server key");
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(chain, key)
        .expect("server config");
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

impl Receiver {
    /// Starts on a free loopback port, presenting `cert`, accepting `token`.
    pub fn start(pki: &TestPki, cert: ServerCert, token: &str) -> Receiver {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let mut r = Receiver {
            rt,
            shared: Arc::new(Shared {
                token: token.to_string(),
                inner: Mutex::new(Inner::default()),
                requests: AtomicUsize::new(0),
            }),
            port: 0,
            cert,
            server: None,
            config: (
                pki.ca_pem.clone(),
                pki.server.clone(),
                pki.server_expired.clone(),
                pki.server_not_yet_valid.clone(),
                pki.server_other_key.clone(),
                pki.server_untrusted.clone(),
            ),
        };
        r.up();
        r
    }

    fn up(&mut self) {
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", self.port)).expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        self.port = listener.local_addr().expect("addr").port();
        let (ca, good, expired, not_yet, other, untrusted) = &self.config;
        let leaf = match self.cert {
            ServerCert::Good => good,
            ServerCert::Expired => expired,
            ServerCert::NotYetValid => not_yet,
            ServerCert::OtherKey => other,
            ServerCert::Untrusted => untrusted,
        };
        let tls = RustlsConfig::from_config(server_config(ca, leaf));
        let app = Router::new()
            .route("/fhir/Bundle", post(create_bundle))
            .with_state(self.shared.clone());
        let handle = Handle::new();
        let h = handle.clone();
        let _guard = self.rt.enter();
        let server = axum_server::from_tcp_rustls(listener, tls).expect("server");
        let task = self.rt.spawn(async move {
            let _ = server.handle(h).serve(app.into_make_service()).await;
        });
        self.rt.block_on(handle.listening());
        self.server = Some((handle, task));
    }

    /// The FHIR base URL (the settings file's `[sync] endpoint`).
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/fhir", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes the port and every connection at once: the platform is down.
    pub fn stop(&mut self) {
        if let Some((h, task)) = self.server.take() {
            h.shutdown();
            let _ = self.rt.block_on(task);
        }
    }

    /// Up again on the same port, with everything stored so far.
    pub fn restart(&mut self) {
        self.stop();
        self.up();
    }

    /// Restarts presenting another certificate.
    pub fn serve_cert(&mut self, cert: ServerCert) {
        self.cert = cert;
        self.restart();
    }

    /// Accepted Bundles, first accepted first.
    pub fn stored(&self) -> Vec<Stored> {
        self.shared.inner.lock().unwrap().stored.clone()
    }

    /// Authenticated POSTs that reached the handler (including duplicates and refusals).
    pub fn posts(&self) -> usize {
        self.shared.inner.lock().unwrap().posts
    }

    /// Every request that reached the handler, authenticated or not: 0 means nothing got past TLS.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// POSTs answered "already have it".
    pub fn duplicates(&self) -> usize {
        self.shared.inner.lock().unwrap().duplicates
    }

    /// Answers the next `n` POSTs 503.
    pub fn fail_next(&self, n: usize) {
        self.shared.inner.lock().unwrap().fail_next = n;
    }

    /// Answers every authenticated POST with `status` (a redirect with a Location, a 2xx without a body, or an
    /// OperationOutcome), until `None`: a moved, mistyped or unusual endpoint. Nothing is stored meanwhile.
    pub fn answer(&self, status: Option<u16>) {
        self.shared.inner.lock().unwrap().answer = status;
    }

    /// Refuses every POST with 422 and this reason, until `None`.
    pub fn refuse(&self, why: Option<&str>) {
        self.shared.inner.lock().unwrap().refuse = why.map(str::to_string);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}
