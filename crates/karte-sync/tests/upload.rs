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
use std::path::Path;
use std::time::{Duration, Instant};

fn uploader(w: &Ward) -> Uploader {
    uploader_for(&w.store)
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
        &karte_sync::settings::load(&settings_path(dir.path())).unwrap(),
        &karte_sync::Credentials::from_keyring(BACKEND).unwrap(),
    )
    .unwrap();
    let bundle = up.policy().bundle(&doc);
    assert_eq!(
        rt.block_on(t.send(&doc.item.bundle_id, &bundle)),
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
    // The reason for the amendment travels with it.
    assert_eq!(
        comp["relatesTo"][0]["extension"][0]["url"],
        karte_sync::fhir::AMENDMENT_REASON_URL
    );
    assert_eq!(
        comp["relatesTo"][0]["extension"][0]["valueString"],
        "体温の誤記"
    );
    assert!(
        stored[0].bundle["entry"][0]["resource"]["relatesTo"].is_null(),
        "an original has no relatesTo"
    );
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
    let bg = karte_sync::Background::default();
    let store = w.store.clone();
    let started = Instant::now();
    let build_store = w.store.clone();
    let build: karte_sync::worker::Build = std::sync::Arc::new(move || {
        Uploader::open(
            build_store.clone(),
            &settings_path(build_store.data_dir()),
            BACKEND,
        )
    });
    rt.block_on(async {
        let worker = bg.run(build, stop_rx, Duration::from_millis(100));
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
        (ServerCert::NotYetValid, Code::SyncCertNotYetValid),
        (ServerCert::Untrusted, Code::SyncCertUntrusted),
    ];
    for (cert, want) in table {
        receiver.serve_cert(cert);
        let up = uploader(&w);
        let err = rt.block_on(up.flush()).unwrap_err();
        assert_eq!(err.code, want, "{cert:?}: {err}");
        assert!(!err.message.is_empty());
        if want == Code::SyncCertNotYetValid {
            assert!(err.message.contains("時計"), "the clock advice: {err}");
        }
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
    // …or one from a CA with the same name but another key (a re-keyed CA): its signature does not verify.
    let look_alike = karte_receiver::TestPki::new();
    install_credentials(&look_alike.client.cert_pem, &look_alike.client.key_pem);
    let err = rt.block_on(uploader(&w).flush()).unwrap_err();
    assert_eq!(err.code, Code::SyncClientCertRejected, "{err}");
    assert_eq!(receiver.requests(), 0);
    w.store.resume_uploads(&w.admin).unwrap();

    // No client certificate in the keyring: refused before any connection.
    delete_secret(BACKEND, CLIENT_CERT_ENTRY).unwrap();
    delete_secret(BACKEND, CLIENT_KEY_ENTRY).unwrap();
    let err = Uploader::open(w.store.clone(), &settings_path(dir.path()), BACKEND)
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
    // The platform's validator echoes personal data from the document in its diagnostics.
    receiver.refuse(Some(
        "Composition.subject: 山田太郎さん（患者ID: P-0001）の患者参照が登録されていません",
    ));
    let report = rt.block_on(up.flush()).unwrap();
    assert_eq!(report.refused, 1);
    let st = w.store.upload_status(&w.doctor, &first).unwrap();
    assert_eq!(st[0].state, OutboxState::Failed);
    assert_eq!(st[0].last_code.as_deref(), Some("sync.rejected"));
    assert_eq!(st[0].http_status, Some(422));
    let reason = st[0].last_reason.clone().unwrap();
    assert!(reason.contains("患者参照が登録されていません"), "{reason}");
    assert!(reason.contains("再送"), "{reason}");
    // …which is pseudonymised before it is stored and shown.
    assert!(
        !reason.contains("山田太郎") && !reason.contains("P-0001"),
        "{reason}"
    );

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
    let requeued = w.store.retry_upload(&w.doctor, id).unwrap();
    // The retried item starts afresh: no stale failure shown, attempts counted from zero.
    assert_eq!(requeued.state, OutboxState::Pending);
    assert_eq!(
        (
            requeued.attempts,
            requeued.last_code.as_deref(),
            requeued.http_status
        ),
        (0, None, None)
    );
    assert_eq!(requeued.last_reason, None);
    assert_eq!(rt.block_on(up.flush()).unwrap().sent, 1);
    assert_eq!(receiver.stored().len(), 2);
    let again = w.store.retry_upload(&w.doctor, id).unwrap_err();
    assert_eq!(again.code, Code::SyncAlreadySent, "{again}");
    assert_eq!(
        w.store.retry_upload(&w.doctor, 9_999).unwrap_err().code,
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

#[test]
fn a_wrong_endpoint_halts_the_queue_instead_of_refusing_every_document() {
    if !keyring_session("a_wrong_endpoint_halts_the_queue_instead_of_refusing_every_document") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let w = Ward::new(dir.path());
    let (pki, receiver) = platform(dir.path());
    let rt = rt();
    for (i, d) in DICTATIONS.iter().enumerate() {
        w.sign(&format!("P-{i:04}"), d);
    }
    // Answers that say "this is not a FHIR Bundle endpoint", not "this document is wrong".
    for status in [301u16, 302, 307, 308, 404, 405, 406, 415] {
        receiver.answer(Some(status));
        let err = rt.block_on(uploader(&w).flush()).unwrap_err();
        assert_eq!(err.code, Code::SyncEndpointInvalid, "HTTP {status}: {err}");
        assert!(err.message.contains("[sync] endpoint"), "{err}");
        let h = w.store.outbox_health().unwrap();
        assert_eq!(
            (h.pending, h.failed, h.sent),
            (4, 0, 0),
            "HTTP {status} dead-lettered documents"
        );
        assert_eq!(
            h.halted.as_ref().map(|h| h.code.as_str()),
            Some("sync.endpoint_invalid")
        );
        w.store.resume_uploads(&w.admin).unwrap();
    }
    // A real wrong path on the right server: axum's own 404.
    receiver.answer(None);
    write_sync_section(
        dir.path(),
        &pki,
        &format!("https://127.0.0.1:{}/not-fhir", receiver.port()),
        &pki.server_pin,
        "",
    );
    let err = rt.block_on(uploader(&w).flush()).unwrap_err();
    assert_eq!(err.code, Code::SyncEndpointInvalid, "{err}");
    assert_eq!(w.store.outbox_health().unwrap().failed, 0);
    w.store.resume_uploads(&w.admin).unwrap();
    write_settings(dir.path(), &pki, &receiver, "");

    // Any 2xx means stored.
    for status in [202u16, 204] {
        receiver.answer(Some(status));
        let up = uploader(&w);
        let before = w.store.outbox_health().unwrap().sent;
        // One document per status: a single step.
        assert_eq!(
            rt.block_on(up.step()).unwrap(),
            karte_sync::worker::Step::Sent
        );
        assert_eq!(w.store.outbox_health().unwrap().sent, before + 1);
        let items = w.store.queue_items(&w.admin).unwrap();
        assert!(
            items.iter().any(|i| i.http_status == Some(status as i64)),
            "HTTP {status} not recorded"
        );
    }
    receiver.answer(None);
    assert_eq!(rt.block_on(uploader(&w).flush()).unwrap().sent, 2);
    assert_eq!(w.store.outbox_health().unwrap().sent, 4);
}

#[test]
fn an_amendment_never_overtakes_a_failed_original() {
    if !keyring_session("an_amendment_never_overtakes_a_failed_original") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let w = Ward::new(dir.path());
    let (_pki, receiver) = platform(dir.path());
    let rt = rt();
    let up = uploader(&w);
    // v1 is refused by the platform…
    let id = w.sign("P-0001", DICTATIONS[0]);
    receiver.refuse(Some("Composition.section: 必須項目がありません"));
    assert_eq!(rt.block_on(up.flush()).unwrap().refused, 1);
    receiver.refuse(None);
    // …then amended (v2), and another patient's note is signed after it.
    w.store
        .amend(
            &w.doctor,
            &id,
            "S）発熱と咳嗽。\nO）BT 38.4℃。",
            "体温の誤記",
        )
        .unwrap();
    let other = w.sign("P-0002", DICTATIONS[1]);
    let report = rt.block_on(up.flush()).unwrap();
    // The other patient's note goes; v2 does not overtake the failed v1.
    assert_eq!((report.sent, report.refused), (1, 0));
    let stored = receiver.stored();
    assert_eq!(stored.len(), 1);
    let other_bundle = w.store.upload_status(&w.doctor, &other).unwrap()[0]
        .bundle_id
        .clone();
    assert_eq!(
        stored[0].bundle["identifier"]["value"],
        other_bundle.as_str()
    );
    // The window can say why v2 waits.
    let st = w.store.upload_status(&w.doctor, &id).unwrap();
    assert_eq!(st[0].state, OutboxState::Failed);
    assert_eq!(st[1].state, OutboxState::Pending);
    assert_eq!(st[1].held_by, Some(st[0].id));
    assert_eq!(st[0].held_by, None);
    assert_eq!(w.store.outbox_health().unwrap().held, 1);

    // Fixed and retried: v1 goes out, then v2, in that order.
    w.store.retry_upload(&w.doctor, st[0].id).unwrap();
    assert_eq!(rt.block_on(up.flush()).unwrap().sent, 2);
    let stored = receiver.stored();
    assert_eq!(stored.len(), 3);
    assert_eq!(
        stored[1].bundle["identifier"]["value"],
        st[0].bundle_id.as_str()
    );
    assert_eq!(
        stored[2].bundle["identifier"]["value"],
        st[1].bundle_id.as_str()
    );
    assert_eq!(
        stored[2].bundle["entry"][0]["resource"]["relatesTo"][0]["targetIdentifier"]["value"],
        st[0].bundle_id.as_str()
    );
    assert_eq!(w.store.outbox_health().unwrap().held, 0);
}

#[test]
fn retry_all_failed_requeues_every_refused_document() {
    if !keyring_session("retry_all_failed_requeues_every_refused_document") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let w = Ward::new(dir.path());
    let (_pki, receiver) = platform(dir.path());
    let rt = rt();
    let up = uploader(&w);
    receiver.refuse(Some("Bundle.meta: 送信元が登録されていません"));
    for (i, d) in DICTATIONS.iter().enumerate().take(3) {
        w.sign(&format!("P-{i:04}"), d);
    }
    assert_eq!(rt.block_on(up.flush()).unwrap().refused, 3);
    receiver.refuse(None);
    assert_eq!(
        w.store.retry_all_failed(&w.nurse).unwrap_err().code,
        Code::AuthForbidden
    );
    let again = w.store.retry_all_failed(&w.admin).unwrap();
    assert_eq!(again.len(), 3);
    assert!(again
        .iter()
        .all(|i| i.state == OutboxState::Pending && i.attempts == 0 && i.last_code.is_none()));
    assert_eq!(rt.block_on(up.flush()).unwrap().sent, 3);
    assert!(w.store.retry_all_failed(&w.admin).unwrap().is_empty());
    assert!(w.store.verify_audit(&w.admin).unwrap().intact());
}

#[test]
fn resume_rebuilds_the_transport_from_the_current_settings_without_restart() {
    if !keyring_session("resume_rebuilds_the_transport_from_the_current_settings_without_restart") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let w = Ward::new(dir.path());
    let (pki, receiver) = platform(dir.path());
    // IT typed a wrong pin: the running app's uploader halts on it.
    let wrong_pin =
        karte_sync::transport::spki_pin_of_cert(&pki.server_other_key.cert_der).unwrap();
    write_sync_section(dir.path(), &pki, &receiver.url(), &wrong_pin, "");
    w.sign("P-0001", DICTATIONS[0]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let bg = std::sync::Arc::new(karte_sync::Background::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let store = w.store.clone();
    let build: karte_sync::worker::Build = std::sync::Arc::new(move || {
        Uploader::open(store.clone(), &settings_path(store.data_dir()), BACKEND)
    });
    // A long poll: only a nudge or a reload moves the worker within this test.
    let worker = rt.spawn({
        let bg = bg.clone();
        async move { bg.run(build, stop_rx, Duration::from_secs(600)).await }
    });
    let wait_for = |what: &str, f: &dyn Fn() -> bool| {
        let t = Instant::now();
        while !f() {
            assert!(t.elapsed() < Duration::from_secs(30), "timed out: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("halt on the wrong pin", &|| {
        w.store.outbox_health().unwrap().halted.is_some()
    });
    assert_eq!(
        w.store.outbox_health().unwrap().halted.unwrap().code,
        "sync.pin_mismatch"
    );
    assert_eq!(receiver.requests(), 0);

    // IT fixes the settings file and presses 送信再開: the same running worker picks the new pin up.
    write_settings(dir.path(), &pki, &receiver, "");
    w.store.resume_uploads(&w.admin).unwrap();
    bg.reload();
    // (Marked sent just after the receiver stored it: wait for the mark, not for the receiver.)
    wait_for("delivery after resume", &|| {
        w.store.outbox_health().unwrap().sent == 1
    });
    assert_eq!(receiver.stored().len(), 1);

    // Credentials too: without a client certificate the worker reports why; once IT installs it, the next
    // signature goes out from the same worker.
    delete_secret(BACKEND, CLIENT_CERT_ENTRY).unwrap();
    bg.reload();
    wait_for("missing certificate reported", &|| {
        bg.problem().map(|e| e.code) == Some(Code::SyncClientCertMissing)
    });
    install_credentials(&pki.client.cert_pem, &pki.client.key_pem);
    w.sign("P-0002", DICTATIONS[1]);
    bg.nudge();
    wait_for("delivery with the new certificate", &|| {
        receiver.stored().len() == 2
    });
    wait_for("problem cleared", &|| bg.problem().is_none());
    stop_tx.send(true).unwrap();
    rt.block_on(worker).unwrap();
}

#[test]
fn the_pseudonym_key_is_installed_by_it_never_created() {
    if !keyring_session("the_pseudonym_key_is_installed_by_it_never_created") {
        return;
    }
    use karte_store::vault::read_secret;
    use karte_sync::transport::PSEUDONYM_KEY_ENTRY;
    let dir = tempfile::tempdir().unwrap();
    let w = Ward::new(dir.path());
    let (_pki, _receiver) = platform(dir.path());
    let id = w.sign("P-0001", DICTATIONS[0]);
    let settings = settings_path(dir.path());
    delete_secret(BACKEND, PSEUDONYM_KEY_ENTRY).unwrap();
    // Neither the uploader nor the export makes one up.
    let e = Uploader::open(w.store.clone(), &settings, BACKEND)
        .err()
        .unwrap();
    assert_eq!(e.code, Code::SyncPseudonymKeyMissing, "{e}");
    assert!(e.message.contains("karte queue pseudonym-key"), "{e}");
    let e = karte_sync::PatientPolicy::for_settings_file(&settings, BACKEND)
        .err()
        .unwrap();
    assert_eq!(e.code, Code::SyncPseudonymKeyMissing);
    let e = karte_sync::PatientPolicy::for_settings_file(&dir.path().join("none.toml"), BACKEND)
        .err()
        .unwrap();
    assert_eq!(e.code, Code::SyncPseudonymKeyMissing);
    assert!(read_secret(BACKEND, PSEUDONYM_KEY_ENTRY).unwrap().is_none());

    // Too short or not hex: refused by the installer, and by the reader if put there some other way.
    for bad in [
        "00112233445566778899aabbccddee",
        "not-hex-at-all-not-hex-at-all-00",
    ] {
        let e = karte_sync::install_pseudonym_key(&w.store, &w.admin, BACKEND, bad).unwrap_err();
        assert_eq!(e.code, Code::ConfigInvalid, "{bad}: {e}");
        karte_store::vault::write_secret(BACKEND, PSEUDONYM_KEY_ENTRY, bad).unwrap();
        assert_eq!(
            Uploader::open(w.store.clone(), &settings, BACKEND)
                .err()
                .unwrap()
                .code,
            Code::SyncPseudonymKeyMissing
        );
    }
    // Only an administrator installs it; then pseudonyms are the HMAC under that key.
    assert_eq!(
        karte_sync::install_pseudonym_key(&w.store, &w.doctor, BACKEND, PSEUDONYM_KEY_HEX)
            .unwrap_err()
            .code,
        Code::AuthForbidden
    );
    let key_id =
        karte_sync::install_pseudonym_key(&w.store, &w.admin, BACKEND, PSEUDONYM_KEY_HEX).unwrap();
    assert_eq!(key_id.len(), 16);
    let up = Uploader::open(w.store.clone(), &settings, BACKEND).unwrap();
    let doc = w.store.outbox_document(&w.doctor, &id).unwrap();
    let want = karte_sync::fhir::pseudonym(&hex::decode(PSEUDONYM_KEY_HEX).unwrap(), "P-0001");
    assert_eq!(
        up.policy().patient_ref("P-0001"),
        karte_sync::fhir::PatientRef::Pseudonym(want.clone())
    );
    assert!(
        String::from_utf8(karte_sync::fhir::to_json(&up.policy().bundle(&doc)))
            .unwrap()
            .contains(&want)
    );
    let audit = w.store.audit_entries(&w.admin).unwrap();
    assert!(audit
        .iter()
        .any(|a| a.detail == format!("sync pseudonym key installed key_id={key_id}")));
    assert!(!audit.iter().any(|a| a.detail.contains(PSEUDONYM_KEY_HEX)));
}

#[test]
fn credentials_are_checked_before_anything_is_written_and_audited() {
    if !keyring_session("credentials_are_checked_before_anything_is_written_and_audited") {
        return;
    }
    use karte_store::vault::read_secret;
    use karte_sync::transport::TOKEN_ENTRY;
    use karte_sync::CredentialSource;
    let dir = tempfile::tempdir().unwrap();
    let w = Ward::new(dir.path());
    let (pki, receiver) = platform(dir.path());
    let other = karte_receiver::TestPki::new();
    let files = |name: &str, cert: &str, key: &str| {
        let c = dir.path().join(format!("{name}.crt"));
        let k = dir.path().join(format!("{name}.key"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    };
    let (good_c, good_k) = files("good", &other.client.cert_pem, &other.client.key_pem);
    let (mix_c, mix_k) = files("mixed", &other.client.cert_pem, &other.server.key_pem);
    let (junk_c, junk_k) = files(
        "junk",
        "-----BEGIN CERTIFICATE-----\nnot base64\n",
        "no key",
    );
    let missing = dir.path().join("missing.pem");
    let before = read_secret(BACKEND, CLIENT_CERT_ENTRY).unwrap().unwrap();
    // (cert, key, token, pseudonym key, the code, a word of the message)
    type Case<'a> = (&'a Path, &'a Path, &'a str, Option<&'a str>, Code, &'a str);
    let table: &[Case] = &[
        (
            mix_c.as_path(),
            mix_k.as_path(),
            "tok-1",
            None,
            Code::SyncClientCertMissing,
            "秘密鍵がこの証明書のもの",
        ),
        (
            junk_c.as_path(),
            junk_k.as_path(),
            "tok-1",
            None,
            Code::SyncClientCertMissing,
            "キーリングは変更していません",
        ),
        (
            missing.as_path(),
            good_k.as_path(),
            "tok-1",
            None,
            Code::InputUnreadable,
            "missing.pem",
        ),
        (
            good_c.as_path(),
            good_k.as_path(),
            "  ",
            None,
            Code::SyncTokenMissing,
            "アクセストークン",
        ),
        (
            good_c.as_path(),
            good_k.as_path(),
            "tok en",
            None,
            Code::SyncTokenMissing,
            "アクセストークン",
        ),
        (
            good_c.as_path(),
            good_k.as_path(),
            "tok-1",
            Some("abcd"),
            Code::ConfigInvalid,
            "短すぎます",
        ),
    ];
    for (cert, key, token, pk, code, word) in table {
        let src = CredentialSource {
            cert_file: cert,
            key_file: key,
            token,
            pseudonym_key_hex: *pk,
        };
        let e = karte_sync::install_credentials(&w.store, &w.admin, BACKEND, &src).unwrap_err();
        assert_eq!(e.code, *code, "{}: {e}", cert.display());
        assert!(e.message.contains(word), "{e}");
        // Nothing was written: the old identity is intact.
        assert_eq!(
            read_secret(BACKEND, CLIENT_CERT_ENTRY)
                .unwrap()
                .unwrap()
                .as_str(),
            before.as_str()
        );
        assert_eq!(
            read_secret(BACKEND, TOKEN_ENTRY).unwrap().unwrap().as_str(),
            TOKEN
        );
    }
    let good = CredentialSource {
        cert_file: &good_c,
        key_file: &good_k,
        token: "new-token-42",
        pseudonym_key_hex: Some(PSEUDONYM_KEY_HEX),
    };
    assert_eq!(
        karte_sync::install_credentials(&w.store, &w.doctor, BACKEND, &good)
            .unwrap_err()
            .code,
        Code::AuthForbidden
    );
    let installed = karte_sync::install_credentials(&w.store, &w.admin, BACKEND, &good).unwrap();
    assert_eq!(
        read_secret(BACKEND, CLIENT_CERT_ENTRY)
            .unwrap()
            .unwrap()
            .as_str(),
        other.client.cert_pem
    );
    assert_eq!(
        read_secret(BACKEND, TOKEN_ENTRY).unwrap().unwrap().as_str(),
        "new-token-42"
    );
    assert_eq!(installed.cert_sha256.len(), 64);
    // Audited with fingerprints only.
    let audit = w.store.audit_entries(&w.admin).unwrap();
    let entry = audit
        .iter()
        .find(|a| a.detail.starts_with("sync credentials installed"))
        .expect("the installation is audited");
    assert!(entry.detail.contains(&installed.cert_sha256));
    for secret in [
        "new-token-42",
        "PRIVATE KEY",
        "CERTIFICATE",
        PSEUDONYM_KEY_HEX,
    ] {
        assert!(
            !audit.iter().any(|a| a.detail.contains(secret)),
            "{secret} in the audit log"
        );
    }
    assert!(w.store.verify_audit(&w.admin).unwrap().intact());
    // The new identity is the one used: the platform that issued it (its CA, its token) accepts the workstation.
    let new_platform = karte_receiver::Receiver::start(&other, ServerCert::Good, "new-token-42");
    write_settings(dir.path(), &other, &new_platform, "");
    w.sign("P-0001", DICTATIONS[0]);
    assert_eq!(rt().block_on(uploader(&w).flush()).unwrap().sent, 1);
    assert_eq!(new_platform.stored().len(), 1);
    assert_eq!(receiver.stored().len(), 0);
    let _ = pki;
}
