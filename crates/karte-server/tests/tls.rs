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

/// The PEM files a server and a client are started with.
struct Files {
    cert: String,
    key: String,
    ca: String,
    ccert: String,
    ckey: String,
}

fn files(dir: &std::path::Path, pki: &Pki) -> Files {
    let w = |name: &str, body: &str| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p.to_string_lossy().into_owned()
    };
    Files {
        cert: w("server.pem", &pki.server.0),
        key: w("server.key", &pki.server.1),
        ca: w("ca.pem", &pki.ca_pem),
        ccert: w("client.pem", &pki.client.0),
        ckey: w("client.key", &pki.client.1),
    }
}

/// Waits (up to 120 s) until the TLS server behind `e` has its model loaded.
fn wait_ready(e: &HttpEngine) {
    let t = Instant::now();
    while !e.health(Duration::from_secs(2)).is_ok_and(|h| h.ready) {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "TLS server not ready"
        );
        std::thread::sleep(Duration::from_millis(200));
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
    let Files {
        cert,
        key,
        ca,
        ccert,
        ckey,
    } = files(dir.path(), &pki);
    let srv = Server::start_on(
        "127.0.0.1:0",
        dir.path(),
        &["--tls-cert", &cert, "--tls-key", &key, "--client-ca", &ca],
        "https",
    );
    let good = engine(&srv.base, &pki.ca_pem, Some(&pki.client));
    wait_ready(&good);
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

/// Upstream mode against an engine behind mutual TLS and a bearer token (here a karte-server with the hospital CA's
/// certificates): the gateway reaches it only with the credentials `karte serve credentials` put in the keyring
/// (a real kernel keyring, this test's own session), and its audit trail says which credentials it loaded and who
/// asked, without the prompt, and breaks visibly when edited.
#[test]
fn gateway_reaches_a_mutual_tls_upstream_with_keyring_credentials_and_audits_who_asked() {
    use karte_server::credentials::{CA_ENTRY, CLIENT_CERT_ENTRY, CLIENT_KEY_ENTRY, TOKEN_ENTRY};
    use karte_store::vault::{delete_secret, KeyringBackend};
    if !karte_testkit::keyring_session_in_turn(
        "gateway_reaches_a_mutual_tls_upstream_with_keyring_credentials_and_audits_who_asked",
    ) {
        return;
    }
    let _g = serial();
    let entries = [TOKEN_ENTRY, CLIENT_CERT_ENTRY, CLIENT_KEY_ENTRY, CA_ENTRY];
    // The kernel keyring's persistent part outlives a run: start and end without these entries.
    let clear = || {
        for e in entries {
            delete_secret(KeyringBackend::KernelKeyutils, e).unwrap();
        }
    };
    clear();
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let Files {
        cert,
        key,
        ca,
        ccert,
        ckey,
    } = files(dir.path(), &pki);
    let inner_dir = dir.path().join("engine");
    std::fs::create_dir(&inner_dir).unwrap();
    let inner = Server::start_on(
        "127.0.0.1:0",
        &inner_dir,
        &["--tls-cert", &cert, "--tls-key", &key, "--client-ca", &ca],
        "https",
    );
    let direct = engine(&inner.base, &pki.ca_pem, Some(&pki.client));
    wait_ready(&direct);

    // Installed through the real command; the token comes from an environment variable, and only fingerprints
    // are shown.
    let gw_dir = dir.path().join("gateway");
    std::fs::create_dir(&gw_dir).unwrap();
    let o = std::process::Command::new(common::server_bin())
        .args(["credentials", "--token-env", "UPSTREAM_TOKEN_FOR_TEST"])
        .args(["--client-cert", &ccert, "--client-key", &ckey, "--ca", &ca])
        .env("UPSTREAM_TOKEN_FOR_TEST", CLIENT)
        .env("KARTE_SETTINGS", gw_dir.join("no-settings.toml"))
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(shown.contains("SHA-256"), "{shown}");
    assert!(
        !shown.contains(CLIENT) && !shown.contains("PRIVATE KEY"),
        "{shown}"
    );

    let gw = Server::start_upstream(&gw_dir, &["--upstream", &inner.base]);
    let prompt = "発熱が続いています。経過を一文で。";
    let body = serde_json::json!({"model": "", "max_tokens": 8, "temperature": 0,
        "messages": [{"role": "user", "content": prompt}]});
    let (st, v) = common::curl_json(
        "POST",
        &format!("{}/v1/chat/completions", gw.base),
        CLIENT,
        Some(&body.to_string()),
    );
    assert_eq!(st, 200, "{v}");
    assert!(v["choices"][0]["message"]["content"].is_string(), "{v}");
    drop(gw);

    let audit_path = gw_dir.join("audit.jsonl");
    let trail = std::fs::read_to_string(&audit_path).unwrap();
    let lines: Vec<serde_json::Value> = trail
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let start = lines.iter().find(|l| l["event"] == "server").unwrap();
    let creds = start["credentials"].as_str().unwrap();
    for part in ["token(keyring)", "client_cert_sha256=", "ca_sha256="] {
        assert!(creds.contains(part), "{creds}");
    }
    let chat = lines.iter().find(|l| l["event"] == "chat").unwrap();
    assert!(
        chat["caller"].is_string() && chat["caller_name"].is_string(),
        "{chat}"
    );
    assert!(chat["generated_tokens"].as_u64().unwrap() >= 1, "{chat}");
    assert!(
        !trail.contains("発熱") && !trail.contains(CLIENT),
        "{trail}"
    );

    let verify = || {
        std::process::Command::new(common::server_bin())
            .args(["verify-audit", "--data-dir"])
            .arg(&gw_dir)
            .env("KARTE_SETTINGS", gw_dir.join("no-settings.toml"))
            .output()
            .unwrap()
    };
    let o = verify();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(&audit_path, trail.replacen("\"chat\"", "\"admin\"", 1)).unwrap();
    let o = verify();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("audit.tampered"));
    clear();
}
