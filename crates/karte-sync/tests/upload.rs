//! The uploader against a real HTTPS receiver on loopback (mTLS with a test CA, pinned server key, bearer token),
//! over a real SQLCipher store in a real kernel keyring. Each test runs in its own `keyctl session`.

mod common;

use common::*;
use karte_core::Code;
use karte_receiver::ServerCert;
use karte_store::vault::delete_secret;
use karte_store::OutboxState;
use karte_sync::transport::{CLIENT_CERT_ENTRY, CLIENT_KEY_ENTRY};
use karte_sync::{SendOutcome, Uploader};
use std::time::{Duration, Instant};

fn uploader(w: &Ward) -> Uploader {
    Uploader::from_store(w.store.clone(), BACKEND).unwrap()
}

#[test]
fn signed_documents_arrive_once_with_idempotency_key() {
    if !keyring_session("signed_documents_arrive_once_with_idempotency_key") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let w = Ward::new(dir.path());
    let (_pki, receiver) = platform(dir.path());
    let ids: Vec<String> = DICTATIONS
        .iter()
        .enumerate()
        .map(|(i, d)| w.sign(&format!("P-{i:04}"), d))
        .collect();
    // Signing queued every document in the same transaction.
    let h = w.store.outbox_health().unwrap();
    assert_eq!((h.pending, h.sent, h.failed), (4, 0, 0));
    let rt = rt();
    let up = uploader(&w);
    let report = rt.block_on(up.flush()).unwrap();
    assert_eq!(report.sent, 4);
    let stored = receiver.stored();
    assert_eq!(stored.len(), 4);
    // Arrival order is signing order, and each Bundle carries its own identifier as the idempotency key.
    let items = w.store.queue_items(&w.doctor).unwrap();
    for ((it, st), id) in items.iter().zip(&stored).zip(&ids) {
        assert_eq!(&it.encounter, id);
        assert_eq!(it.state, OutboxState::Sent);
        assert_eq!(it.http_status, Some(201));
        assert_eq!(format!("urn:uuid:{}", st.key), it.bundle_id);
        assert_eq!(st.bundle["identifier"]["value"], it.bundle_id.as_str());
    }
    // Nothing left: a second flush sends nothing.
    assert_eq!(rt.block_on(up.flush()).unwrap().sent, 0);
    assert_eq!(receiver.posts(), 4);

    // A retry of a document the server already has (a crash after the server stored it) is answered 200 and
    // stored once.
    let doc = w.store.outbox_document(&w.doctor, &ids[0]).unwrap();
    let t = karte_sync::Transport::new(
        &karte_sync::SyncSettings::load(dir.path()).unwrap(),
        &karte_sync::Credentials::from_keyring(BACKEND).unwrap(),
    )
    .unwrap();
    let body = karte_sync::fhir::to_json(&up.policy().bundle(&doc));
    assert_eq!(
        rt.block_on(t.send(&doc.item.bundle_id, body)),
        SendOutcome::Stored(200)
    );
    assert_eq!(receiver.stored().len(), 4);
    assert_eq!(receiver.duplicates(), 1);

    // An amendment is a new signed document: a new Bundle that replaces the first one.
    let v = w
        .store
        .amend(
            &w.doctor,
            &ids[0],
            "S）発熱と咳嗽。\nO）BT 38.4℃。",
            "体温の誤記",
        )
        .unwrap();
    assert_eq!(v, 2);
    assert_eq!(rt.block_on(up.flush()).unwrap().sent, 1);
    let stored = receiver.stored();
    assert_eq!(stored.len(), 5);
    let comp = &stored[4].bundle["entry"][0]["resource"];
    assert_eq!(comp["status"], "amended");
    assert_eq!(comp["relatesTo"][0]["code"], "replaces");
    assert_eq!(
        comp["relatesTo"][0]["targetIdentifier"]["value"],
        stored[0].bundle["identifier"]["value"]
    );
    let status = w.store.upload_status(&w.nurse, &ids[0]).unwrap();
    assert_eq!(status.len(), 2);
    assert!(status.iter().all(|i| i.state == OutboxState::Sent));
    assert!(w.store.verify_audit(&w.admin).unwrap().intact());
}

#[test]
fn outage_piles_up_then_drains_in_order_without_operator() {
    if !keyring_session("outage_piles_up_then_drains_in_order_without_operator") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let w = Ward::new(dir.path());
    let (_pki, mut receiver) = platform(dir.path());
    let rt = rt();
    let up = uploader(&w);
    receiver.stop();
    let mut signed = Vec::new();
    for i in 0..8 {
        signed.push(w.sign(&format!("P-{i:04}"), DICTATIONS[i % DICTATIONS.len()]));
        let report = rt.block_on(up.flush()).unwrap();
        assert_eq!(report.sent, 0);
        let (code, _) = report.retry.expect("a down server is retried later");
        assert!(
            matches!(code, Code::SyncUnreachable),
            "down server gives {code}"
        );
    }
    let h = w.store.outbox_health().unwrap();
    assert_eq!(h.pending, 8);
    assert_eq!(h.last_error.as_deref(), Some("sync.unreachable"));
    // Head-of-line: only the oldest document is tried (with backoff); the others wait behind it, in order.
    let items = w.store.queue_items(&w.doctor).unwrap();
    assert!(items[0].attempts >= 1);
    assert!(items[1..].iter().all(|i| i.attempts == 0));

    // The platform comes back; the background worker (as the desktop runs it) drains the queue by itself.
    receiver.restart();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let nudge = std::sync::Arc::new(tokio::sync::Notify::new());
    let store = w.store.clone();
    let started = Instant::now();
    rt.block_on(async {
        let worker = up.run(nudge, stop_rx, Duration::from_millis(100), |_| {});
        let watch = async {
            while store.outbox_health().unwrap().pending > 0 {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "queue never drained"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            stop_tx.send(true).unwrap();
        };
        tokio::join!(worker, watch);
    });
    let stored = receiver.stored();
    assert_eq!(stored.len(), 8);
    let items = w.store.queue_items(&w.doctor).unwrap();
    for (st, it) in stored.iter().zip(&items) {
        assert_eq!(format!("urn:uuid:{}", st.key), it.bundle_id, "out of order");
    }
    assert_eq!(
        items
            .iter()
            .map(|i| i.encounter.clone())
            .collect::<Vec<_>>(),
        signed
    );
}

#[test]
fn certificate_problems_each_have_their_own_status_and_send_nothing() {
    if !keyring_session("certificate_problems_each_have_their_own_status_and_send_nothing") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let w = Ward::new(dir.path());
    let (pki, mut receiver) = platform(dir.path());
    let rt = rt();
    w.sign("P-0001", DICTATIONS[0]);
    let table = [
        (ServerCert::OtherKey, Code::SyncPinMismatch),
        (ServerCert::Expired, Code::SyncCertExpired),
        (ServerCert::Untrusted, Code::SyncCertUntrusted),
    ];
    for (cert, want) in table {
        receiver.serve_cert(cert);
        let up = uploader(&w);
        let err = rt.block_on(up.flush()).unwrap_err();
        assert_eq!(err.code, want, "{cert:?}: {err}");
        assert!(!err.message.is_empty());
        assert_eq!(receiver.requests(), 0, "{cert:?}: a request got through");
        // The queue stopped and says why; the document is still waiting.
        let h = w.store.queue_health(&w.admin).unwrap();
        assert_eq!(
            h.halted.as_ref().map(|h| h.code.as_str()),
            Some(want.as_str())
        );
        assert_eq!(h.pending, 1);
        // Halted means halted: even with the right server back, nothing moves until a person resumes.
        receiver.serve_cert(ServerCert::Good);
        assert_eq!(rt.block_on(up.flush()).unwrap_err().code, Code::SyncHalted);
        assert_eq!(receiver.requests(), 0);
        w.store.resume_uploads(&w.admin).unwrap();
        receiver.serve_cert(cert);
    }

    // A client certificate the platform does not accept (another CA): refused in the handshake.
    receiver.serve_cert(ServerCert::Good);
    install_credentials(&pki.client_other_ca.cert_pem, &pki.client_other_ca.key_pem);
    let err = rt.block_on(uploader(&w).flush()).unwrap_err();
    assert_eq!(err.code, Code::SyncClientCertRejected, "{err}");
    assert_eq!(receiver.requests(), 0);
    w.store.resume_uploads(&w.admin).unwrap();

    // No client certificate in the keyring: refused before any connection.
    delete_secret(BACKEND, CLIENT_CERT_ENTRY).unwrap();
    delete_secret(BACKEND, CLIENT_KEY_ENTRY).unwrap();
    let err = Uploader::from_store(w.store.clone(), BACKEND)
        .err()
        .expect("no client certificate");
    assert_eq!(err.code, Code::SyncClientCertMissing);
    assert_eq!(receiver.requests(), 0);

    // With everything right again, the waiting document goes out exactly once.
    install_credentials(&pki.client.cert_pem, &pki.client.key_pem);
    assert_eq!(rt.block_on(uploader(&w).flush()).unwrap().sent, 1);
    assert_eq!(receiver.stored().len(), 1);
}

#[test]
fn refused_document_waits_with_reason_then_retry_sends_it() {
    if !keyring_session("refused_document_waits_with_reason_then_retry_sends_it") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let w = Ward::new(dir.path());
    let (_pki, receiver) = platform(dir.path());
    let rt = rt();
    let up = uploader(&w);
    let first = w.sign("P-0001", DICTATIONS[0]);
    receiver.refuse(Some("Composition.subject: 患者参照が登録されていません"));
    let report = rt.block_on(up.flush()).unwrap();
    assert_eq!(report.refused, 1);
    let st = w.store.upload_status(&w.doctor, &first).unwrap();
    assert_eq!(st[0].state, OutboxState::Failed);
    assert_eq!(st[0].last_code.as_deref(), Some("sync.rejected"));
    assert_eq!(st[0].http_status, Some(422));
    let reason = st[0].last_reason.clone().unwrap();
    assert!(reason.contains("患者参照が登録されていません"), "{reason}");
    assert!(reason.contains("再送"), "{reason}");

    // A refused document does not block the ones signed after it.
    receiver.refuse(None);
    let second = w.sign("P-0002", DICTATIONS[1]);
    assert_eq!(rt.block_on(up.flush()).unwrap().sent, 1);
    assert_eq!(
        receiver.stored()[0].bundle["identifier"]["value"],
        w.store.upload_status(&w.doctor, &second).unwrap()[0]
            .bundle_id
            .as_str()
    );

    // Nurses may see the state but not retry; the physician retries after fixing the cause.
    let id = st[0].id;
    assert_eq!(
        w.store.retry_upload(&w.nurse, id).unwrap_err().code,
        Code::AuthForbidden
    );
    w.store.retry_upload(&w.doctor, id).unwrap();
    assert_eq!(rt.block_on(up.flush()).unwrap().sent, 1);
    assert_eq!(receiver.stored().len(), 2);
    assert_eq!(
        w.store.retry_upload(&w.doctor, id).unwrap_err().code,
        Code::SyncItemNotFound
    );
}

#[test]
fn transient_server_errors_back_off_then_succeed_once() {
    if !keyring_session("transient_server_errors_back_off_then_succeed_once") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let w = Ward::new(dir.path());
    let (_pki, receiver) = platform(dir.path());
    let rt = rt();
    let up = uploader(&w);
    w.sign("P-0001", DICTATIONS[2]);
    receiver.fail_next(3);
    let mut retries = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = rt.block_on(up.flush()).unwrap();
        if r.sent == 1 {
            break;
        }
        let (code, at) = r.retry.unwrap();
        assert_eq!(code, Code::SyncServerError);
        retries.push(at);
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    // Three 503s were answered; the document was stored once.
    assert_eq!(receiver.posts(), 4);
    assert_eq!(receiver.stored().len(), 1);
    let it = &w.store.queue_items(&w.doctor).unwrap()[0];
    assert_eq!(it.attempts, 4);
    // A wrong bearer token stops the queue (the workstation is refused, not the document).
    karte_store::vault::write_secret(BACKEND, karte_sync::transport::TOKEN_ENTRY, "wrong").unwrap();
    w.sign("P-0002", DICTATIONS[3]);
    let err = rt.block_on(uploader(&w).flush()).unwrap_err();
    assert_eq!(err.code, Code::SyncUnauthorized);
    assert_eq!(receiver.stored().len(), 1);
}

#[test]
fn backoff_grows_with_jitter_and_is_capped() {
    use karte_sync::worker::backoff_ms;
    for attempts in 0..40 {
        let want = (2_000u64 << attempts.min(30)).min(900_000);
        for _ in 0..20 {
            let d = backoff_ms(attempts, 2_000, 900_000);
            assert!(
                d >= want / 2 && d <= want,
                "attempt {attempts}: {d} not in [{}, {want}]",
                want / 2
            );
        }
    }
}

#[test]
fn reviews_after_signing_do_not_change_the_signed_document() {
    if !keyring_session("reviews_after_signing_do_not_change_the_signed_document") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let w = Ward::new(dir.path());
    // DICTATIONS[0] (pneumonia) suggests several tests; the nurse accepted the first before signing.
    let id = w.sign("P-0100", DICTATIONS[0]);
    let tests = |d: &karte_store::SignedDocument| -> Vec<i64> {
        d.accepted_tests.iter().map(|g| g.id).collect()
    };
    let before = w.store.outbox_document(&w.doctor, &id).unwrap();
    assert_eq!(tests(&before), vec![1]);
    // After signing: the first is rejected and the second accepted. The signed document must not change.
    std::thread::sleep(Duration::from_millis(5));
    w.store
        .review(
            &w.nurse,
            &id,
            1,
            karte_store::Decision::Reject,
            "不要と判断",
        )
        .unwrap();
    w.store
        .review(&w.nurse, &id, 2, karte_store::Decision::Accept, "")
        .unwrap();
    let after = w.store.outbox_document(&w.doctor, &id).unwrap();
    assert_eq!(
        tests(&after),
        vec![1],
        "a review after signing changed the signed document"
    );
    assert_eq!(after.item.bundle_id, before.item.bundle_id);
}

#[test]
fn bundle_ids_are_random_uuid_v4() {
    let a = karte_store::outbox::new_bundle_id().unwrap();
    let b = karte_store::outbox::new_bundle_id().unwrap();
    assert_ne!(a, b);
    let hexpart = a.strip_prefix("urn:uuid:").unwrap();
    assert_eq!(hexpart.len(), 36);
    assert_eq!(&hexpart[14..15], "4", "version nibble");
    assert!(matches!(&hexpart[19..20], "8" | "9" | "a" | "b"), "variant");
}
