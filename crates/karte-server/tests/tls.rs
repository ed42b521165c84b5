//! TLS with rustls: the server requires client certificates signed by the hospital CA (made here with rcgen), and
//! karte-llm's client trusts only the pinned CA.

mod common;

use std::time::{Duration, Instant};

use common::{serial, Server, CLIENT};
use karte_llm::{
    CancelToken, ChatEngine, ChatMessage, ChatRequest, HttpEngine, HttpEngineConfig, TlsSettings,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

struct Pki {
    ca_pem: String,
    other_ca_pem: String,
    server: (String, String),
    client: (String, String),
    stranger: (String, String),
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let cert = p.self_signed(&key).unwrap();
    (p, key, cert.pem())
}

fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.extended_key_usages = vec![usage];
    p.distinguished_name.push(DnType::CommonName, names[0]);
    let cert = p.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn pki() -> Pki {
    let (ca_params, ca_key, ca_pem) = ca("Karte Test Hospital CA");
    let (other_params, other_key, other_ca_pem) = ca("Some Other CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let other = Issuer::new(other_params, other_key);
    Pki {
        ca_pem,
        other_ca_pem,
        server: leaf(
            &issuer,
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        client: leaf(
            &issuer,
            &["ward3-pc07"],
            ExtendedKeyUsagePurpose::ClientAuth,
        ),
        stranger: leaf(&other, &["stranger"], ExtendedKeyUsagePurpose::ClientAuth),
    }
}

fn engine(base: &str, pinned: &str, client: Option<&(String, String)>) -> HttpEngine {
    let mut c = HttpEngineConfig::new(base, Some(CLIENT.into()));
    c.connect_timeout = Duration::from_secs(3);
    c.tls = TlsSettings {
        pinned_cert_pem: Some(pinned.as_bytes().to_vec()),
        client_cert_pem: client.map(|c| c.0.as_bytes().to_vec()),
        client_key_pem: client.map(|c| c.1.as_bytes().to_vec()),
    };
    HttpEngine::new(c).unwrap()
}

#[test]
fn mutual_tls_with_pinned_ca_and_client_certificates() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let w = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.to_string_lossy().into_owned()
    };
    let (cert, key, ca) = (
        w("server.pem", &pki.server.0),
        w("server.key", &pki.server.1),
        w("ca.pem", &pki.ca_pem),
    );
    let (ccert, ckey) = (
        w("client.pem", &pki.client.0),
        w("client.key", &pki.client.1),
    );
    let srv = Server::start_on(
        "127.0.0.1:0",
        dir.path(),
        &["--tls-cert", &cert, "--tls-key", &key, "--client-ca", &ca],
        "https",
    );
    let good = engine(&srv.base, &pki.ca_pem, Some(&pki.client));
    let t = Instant::now();
    while !good.health(Duration::from_secs(2)).is_ok_and(|h| h.ready) {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "TLS server not ready"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut req = ChatRequest::new(vec![ChatMessage::user("Say hi.")]);
    req.max_tokens = 4;
    let r = good.chat(&req, &CancelToken::new(), &mut |_| {}).unwrap();
    assert!(r.stats.generated_tokens >= 1);

    // No client certificate, or one from another CA: refused in the handshake.
    for client in [None, Some(&pki.stranger)] {
        let e = engine(&srv.base, &pki.ca_pem, client)
            .health(Duration::from_secs(3))
            .unwrap_err();
        assert_eq!(e.code, karte_core::Code::LlmUnreachable, "{e:?}");
    }
    // Pinned to another CA: the client refuses the server.
    let e = engine(&srv.base, &pki.other_ca_pem, Some(&pki.client))
        .health(Duration::from_secs(3))
        .unwrap_err();
    assert_eq!(e.code, karte_core::Code::LlmUnreachable, "{e:?}");
    // curl with the CA and the client certificate works; without the certificate it does not.
    let health = format!("{}/health", srv.base);
    let (s, b) = common::curl(&["--cacert", &ca, "--cert", &ccert, "--key", &ckey, &health]);
    assert_eq!(s, 200, "{b}");
    let (s, _) = common::curl(&["--cacert", &ca, &health]);
    assert_eq!(s, 0, "no response without a client certificate");
}

/// F3 for TLS: a connection that never starts (or never finishes) its handshake is closed after
/// `tls_handshake_timeout_s` (here 1 s; before the fix it was axum-server's fixed 10 s and not configurable), and
/// one that finished it but sends no request after `idle_timeout_s`.
#[test]
fn stalled_tls_handshakes_and_idle_tls_connections_are_closed() {
    use std::io::Read;
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let w = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.to_string_lossy().into_owned()
    };
    let (cert, key, ca) = (
        w("server.pem", &pki.server.0),
        w("server.key", &pki.server.1),
        w("ca.pem", &pki.ca_pem),
    );
    std::fs::write(
        dir.path().join("no-settings.toml"),
        "[serve]\ntls_handshake_timeout_s = 1\nidle_timeout_s = 2\n",
    )
    .unwrap();
    let srv = Server::start_on(
        "127.0.0.1:0",
        dir.path(),
        &["--tls-cert", &cert, "--tls-key", &key],
        "https",
    );
    let closed_after = |mut s: std::net::TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let t = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return t.elapsed(),
                Ok(_) => {}
            }
        }
    };
    // Nothing sent: the handshake never starts.
    let took = closed_after(std::net::TcpStream::connect(&srv.addr).unwrap());
    assert!(
        took < Duration::from_secs(5),
        "stalled handshake held {took:?}"
    );
    // A finished handshake and no request: `openssl s_client -quiet` (which implies -ign_eof) keeps the connection
    // open until the server closes it.
    let t = Instant::now();
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-CAfile", &ca, "-connect", &srv.addr])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output();
    let took = t.elapsed();
    let out = out.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("verify return:1"),
        "handshake completed: {err}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "idle TLS connection closed after {took:?} (idle timeout 2 s)"
    );
}
