//! The upload queue and FHIR export through the real `karte` binary: a real SQLCipher data directory, the kernel
//! keyring (each test re-runs itself under `keyctl session`), and the real HTTPS receiver on loopback.

mod common;

use common::*;

#[test]
fn queue_status_flush_and_fhir_export() {
    if !karte_testkit::keyring_session_in_turn("queue_status_flush_and_fhir_export") {
        return;
    }
    let w = Ward::new();
    let admin = w.init_admin("admin");
    let doc = w.add_user(&admin, "admin", "dr.sato", "physician");
    let ns = w.add_user(&admin, "admin", "ns.suzuki", "nurse");
    let (_, id) = w.save_draft(&doc, "dr.sato", "P-0001");

    // Signing a version that is not the latest is refused; without --version the latest is signed.
    fails(
        w.run_as(&doc, "dr.sato", &["sign", &id, "--version", "2"]),
        "record.changed",
        2,
    );
    ok(w.run_as(&doc, "dr.sato", &["sign", &id]));

    // The nurse sees the document waiting (no settings file yet).
    let st: serde_json::Value = serde_json::from_str(&ok(w.run_as(
        &ns,
        "ns.suzuki",
        &["queue", "status", "--format", "json"],
    )))
    .unwrap();
    assert_eq!(st["health"]["pending"], 1, "{st}");
    assert_eq!(st["items"][0]["encounter"], id.as_str());
    assert_eq!(st["items"][0]["state"], "pending");

    // No pseudonym key installed (the kernel keyring's persistent part may keep one from an earlier run: remove
    // it): the export does not make one up.
    karte_store::vault::delete_secret(
        karte_store::KeyringBackend::KernelKeyutils,
        karte_sync::transport::PSEUDONYM_KEY_ENTRY,
    )
    .unwrap();
    fails(
        w.run_as(&doc, "dr.sato", &["export", "fhir", "--encounter", &id]),
        "sync.pseudonym_key_missing",
        6,
    );
    // IT installs the hospital's key, from the environment. (Too short a key, or a physician trying, are refused:
    // karte-sync's tests cover those; each sign-in here costs a TOTP step.)
    let install_key = |phone: &Phone, user: &str, key: &str| {
        let mut c = w.karte();
        c.args(["queue", "pseudonym-key", "--user", user])
            .env("KARTE_PASSWORD", PASSWORD)
            .env("KARTE_TOTP", phone.code())
            .env("KARTE_PSEUDONYM_KEY", key);
        run(c, None)
    };
    let out = ok(install_key(&admin, "admin", PSEUDONYM_KEY));
    assert!(out.contains("鍵 ID"), "{out}");
    assert!(!out.contains(PSEUDONYM_KEY), "{out}");

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
        w.run_as(&admin, "admin", &["queue", "flush"]),
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
    let installed = ok(run(c, None));
    assert!(installed.contains("証明書 SHA-256"), "{installed}");
    assert!(!installed.contains("cli-token-42"), "{installed}");
    let ca = pki.write_ca(w.path());
    std::fs::write(
        w.settings_file(),
        format!(
            "[model]\nthreads = 2\n\n[sync]\nendpoint = \"{}\"\nspki_sha256 = [\"{}\"]\nca_file = \"{}\"\n",
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

const PSEUDONYM_KEY: &str = "6b617274652d636c692d70736575646f6e796d2d6b6579";

/// `queue credentials` refuses a certificate with another certificate's key before writing anything, and `queue
/// retry --all-failed` puts every refused document back. (`sync.already_sent` and the other refusals are covered
/// by karte-sync's tests: each sign-in here costs a TOTP step, 30 s once a user's first three are used.)
#[test]
fn credentials_are_checked_and_all_failed_are_retried() {
    if !karte_testkit::keyring_session_in_turn("credentials_are_checked_and_all_failed_are_retried")
    {
        return;
    }
    let w = Ward::new();
    let admin = w.init_admin("admin");
    let doc = w.add_user(&admin, "admin", "dr.sato", "physician");
    let pki = karte_receiver::TestPki::new();
    let receiver =
        karte_receiver::Receiver::start(&pki, karte_receiver::ServerCert::Good, "cli-token-42");
    let write = |name: &str, text: &str| {
        let p = w.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let cert = write("client.pem", &pki.client.cert_pem);
    let key = write("client.key", &pki.client.key_pem);
    let wrong_key = write("server.key", &pki.server.key_pem);
    let credentials = |key: &std::path::Path| {
        let mut c = w.karte();
        c.args(["queue", "credentials", "--cert"])
            .arg(&cert)
            .arg("--key")
            .arg(key)
            .args(["--pseudonym-key-env", "KEY_FROM_IT", "--user", "admin"])
            .env("KARTE_PASSWORD", PASSWORD)
            .env("KARTE_TOTP", admin.code())
            .env("KARTE_SYNC_TOKEN", "cli-token-42")
            .env("KEY_FROM_IT", PSEUDONYM_KEY);
        run(c, None)
    };
    let err = fails(credentials(&wrong_key), "sync.client_cert_missing", 6);
    assert!(err.contains("秘密鍵がこの証明書のもの"), "{err}");
    ok(credentials(&key));
    std::fs::write(
        w.settings_file(),
        format!(
            "[sync]\nendpoint = \"{}\"\nspki_sha256 = [\"{}\"]\nca_file = \"{}\"\n",
            receiver.url(),
            pki.server_pin,
            pki.write_ca(w.path()).display()
        ),
    )
    .unwrap();
    // TOTP steps are the test's clock (each sign-in uses one, three per user at once, then one per 30 s): the
    // physician signs and flushes, the administrator retries.
    let (_, id) = w.save_draft(&doc, "dr.sato", "P-0001");
    ok(w.run_as(&doc, "dr.sato", &["sign", &id]));
    receiver.refuse(Some("Bundle.meta: 送信元が登録されていません"));
    let out = ok(w.run_as(&doc, "dr.sato", &["queue", "flush"]));
    assert!(out.contains("送信失敗 1 件"), "{out}");
    receiver.refuse(None);
    // Neither an id nor --all-failed: a usage error from the argument parser (before any sign-in).
    let mut c = w.karte();
    c.args(["queue", "retry", "--user", "admin"]);
    let usage = run(c, None);
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("<ID>"));
    let out = ok(w.run_as(&admin, "admin", &["queue", "retry", "--all-failed"]));
    assert!(out.contains("送信失敗 1 件を再送に戻しました"), "{out}");
    let out = ok(w.run_as(&doc, "dr.sato", &["queue", "flush"]));
    assert!(out.contains("送信 1 件"), "{out}");
    assert_eq!(receiver.stored().len(), 1);
}
