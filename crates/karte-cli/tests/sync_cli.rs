//! The upload queue and FHIR export through the real `karte` binary: a real SQLCipher data directory, the kernel
//! keyring (each test re-runs itself under `keyctl session`), and the real HTTPS receiver on loopback.

mod common;

use common::*;

#[test]
fn queue_status_flush_and_fhir_export() {
    if !keyring_session("queue_status_flush_and_fhir_export") {
        return;
    }
    let w = Ward::new();
    let admin = w.init_admin("admin");
    let doc = w.add_user(&admin, "admin", "dr.sato", "physician");
    let ns = w.add_user(&admin, "admin", "ns.suzuki", "nurse");
    let out = ok(w.run_as_with(
        doc.code(),
        "dr.sato",
        &["draft", "-", "--no-llm", "--save", "--patient", "P-0001"],
        Some(DICTATION),
    ));
    let id = out
        .trim_end()
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();

    // Signing a version that is not the latest is refused; without --version the latest is signed.
    fails(
        w.run_as(&doc, "dr.sato", &["sign", &id, "--version", "2"]),
        "record.changed",
        2,
    );
    ok(w.run_as(&doc, "dr.sato", &["sign", &id]));

    // The nurse sees the document waiting (no sync.toml yet).
    let st: serde_json::Value = serde_json::from_str(&ok(w.run_as(
        &ns,
        "ns.suzuki",
        &["queue", "status", "--format", "json"],
    )))
    .unwrap();
    assert_eq!(st["health"]["pending"], 1, "{st}");
    assert_eq!(st["items"][0]["encounter"], id.as_str());
    assert_eq!(st["items"][0]["state"], "pending");

    // The Bundle that would be sent: a document, pseudonymous by default.
    let bundle = ok(w.run_as(&doc, "dr.sato", &["export", "fhir", "--encounter", &id]));
    let b: serde_json::Value = serde_json::from_str(&bundle).unwrap();
    assert_eq!(b["resourceType"], "Bundle");
    assert_eq!(b["type"], "document");
    assert_eq!(b["identifier"]["value"], st["items"][0]["bundle_id"]);
    assert!(
        !bundle.contains("P-0001"),
        "patient id in a pseudonymous Bundle"
    );

    // Flushing without settings says so, with its own code.
    fails(
        w.run_as(&doc, "dr.sato", &["queue", "flush"]),
        "sync.not_configured",
        6,
    );

    // IT installs the credentials (token from the environment) and the settings; the flush sends it once.
    let pki = karte_receiver::TestPki::new();
    let receiver =
        karte_receiver::Receiver::start(&pki, karte_receiver::ServerCert::Good, "cli-token-42");
    let cert = w.path().join("client.pem");
    let key = w.path().join("client.key");
    std::fs::write(&cert, &pki.client.cert_pem).unwrap();
    std::fs::write(&key, &pki.client.key_pem).unwrap();
    let mut c = w.karte();
    c.args(["queue", "credentials", "--cert"])
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .args(["--user", "admin"])
        .env("KARTE_PASSWORD", PASSWORD)
        .env("KARTE_TOTP", admin.code())
        .env("KARTE_SYNC_TOKEN", "cli-token-42");
    ok(run(c, None));
    let ca = pki.write_ca(w.path());
    std::fs::write(
        w.path().join("sync.toml"),
        format!(
            "endpoint = \"{}\"\nspki_sha256 = [\"{}\"]\nca_file = \"{}\"\n",
            receiver.url(),
            pki.server_pin,
            ca.display()
        ),
    )
    .unwrap();
    let out = ok(w.run_as(&doc, "dr.sato", &["queue", "flush"]));
    assert!(out.contains("送信 1 件"), "{out}");
    assert_eq!(receiver.stored().len(), 1);
    assert_eq!(
        receiver.stored()[0].bundle,
        b,
        "what was sent differs from what export printed"
    );
    let text = ok(w.run_as(&ns, "ns.suzuki", &["queue", "status"]));
    assert!(
        text.contains("送信済み 1") && text.contains("送信済み"),
        "{text}"
    );
}
