//! Upload throughput and the cost of queueing at signing: `cargo bench -p karte-sync --bench sync`.
//!
//! 1. Signing with and without the outbox row, interleaved one by one on the same SQLCipher database (each sign
//!    its own transaction, `synchronous=FULL`: one WAL fsync, as the 署名 button does). karte-store's own
//!    statements (`karte_store::bench::sign`), so the difference is exactly the enqueue.
//! 2. Documents per second to the loopback receiver (HTTPS, mTLS, pinned): the real uploader with durability on
//!    (read the due document from SQLCipher, build the Bundle, POST, mark it sent — two audited, fsynced
//!    transactions per document), against a reference in the same run: the same Bundles, already built, serialised
//!    and POSTed by the same transport with no store at all.
//!
//! Runs itself inside a `keyctl session` (the store's key lives in the kernel keyring).

use karte_receiver::{Receiver, ServerCert, TestPki};
use karte_store::vault::{write_secret, KeyringBackend};
use karte_store::{db, Role, Store, StoreConfig};
use karte_sync::settings::Settings;
use karte_sync::transport::{
    CLIENT_CERT_ENTRY, CLIENT_KEY_ENTRY, PSEUDONYM_KEY_ENTRY, TOKEN_ENTRY,
};
use karte_sync::{Credentials, Transport, Uploader};
use std::sync::Arc;
use std::time::{Duration, Instant};

const IN_SESSION: &str = "KARTE_BENCH_IN_KEYCTL_SESSION";
const TOKEN: &str = "bench-token";
const PASSWORD: &str = "bench-pass-123";
const DICTATION: &str = "65歳男性。3日前から発熱と咳嗽あり、昨日から呼吸困難も出現。BT 38.6℃、SpO2 93%（室内気）。右下肺野で湿性ラ音を聴取。CRP 12.3mg/dL。市中肺炎を疑う。胸部X線を施行予定。";

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn totp(b32: &str) -> impl FnMut() -> String {
    let secret = totp_rs::Secret::Encoded(b32.to_string())
        .to_bytes()
        .unwrap();
    let t =
        totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, secret, None, "b".into()).unwrap();
    let mut step = 0u64;
    move || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 30;
        step = step.max(now - 1) + 1;
        t.generate(step * 30)
    }
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    if std::env::var_os(IN_SESSION).is_none() {
        let status = std::process::Command::new("keyctl")
            .args(["session", "-"])
            .arg(std::env::current_exe().unwrap())
            .args(std::env::args().skip(1))
            .env(IN_SESSION, "1")
            .status()
            .expect("keyctl (keyutils) is needed");
        std::process::exit(status.code().unwrap_or(1));
    }
    let (signs, docs, rounds) = if quick { (20, 10, 1) } else { (300, 150, 3) };

    // ----- 1. signing with vs without the outbox row -----
    let dir = tempfile::tempdir().unwrap();
    let key = db::DbKey::generate().unwrap();
    let c = db::open(&dir.path().join("bench.db"), Some(&key)).unwrap();
    let author = karte_store::bench::add_author(&c).unwrap();
    let draft = karte_core::draft_floor(DICTATION, karte_core::document::default_kind()).unwrap();
    let json = serde_json::to_string(&draft).unwrap();
    let note = draft.document().render();
    c.execute_batch("BEGIN").unwrap();
    for i in 0..signs * 2 {
        karte_store::bench::save_draft(&c, &format!("E{i:012}"), author, &note, DICTATION, &json)
            .unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for i in 0..signs * 2 {
        let enqueue = i % 2 == 0;
        let t = Instant::now();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        karte_store::bench::sign(&c, &format!("E{i:012}"), 1, author, enqueue).unwrap();
        c.execute_batch("COMMIT").unwrap();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if enqueue {
            with.push(ms)
        } else {
            without.push(ms)
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (mw, mo) = (mean(&with), mean(&without));
    let (dw, d0) = (median(&mut with), median(&mut without));
    drop(c);

    // ----- 2. documents per second to the loopback receiver -----
    let pki = TestPki::new();
    let durable_rx = Receiver::start(&pki, ServerCert::Good, TOKEN);
    let reference_rx = Receiver::start(&pki, ServerCert::Good, TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let ca = pki.write_ca(dir.path());
    let settings_for = |r: &Receiver| {
        format!(
            "[sync]\nendpoint = \"{}\"\nspki_sha256 = [\"{}\"]\nca_file = \"{}\"\n",
            r.url(),
            pki.server_pin,
            ca.display()
        )
    };
    let settings_file = dir.path().join("settings.toml");
    std::fs::write(&settings_file, settings_for(&durable_rx)).unwrap();
    let backend = KeyringBackend::KernelKeyutils;
    write_secret(backend, CLIENT_CERT_ENTRY, &pki.client.cert_pem).unwrap();
    write_secret(backend, CLIENT_KEY_ENTRY, &pki.client.key_pem).unwrap();
    write_secret(backend, TOKEN_ENTRY, TOKEN).unwrap();
    write_secret(
        backend,
        PSEUDONYM_KEY_ENTRY,
        "6b617274652d62656e63682d70736575646f6e796d2d6b6579",
    )
    .unwrap();
    let cfg = StoreConfig {
        keyring: backend,
        idle_timeout: Duration::from_secs(3600),
        max_failed_logins: 5,
        lockout: Duration::from_secs(60),
        workstation: "bench".into(),
    };
    let store = Arc::new(Store::open(dir.path(), cfg).unwrap());
    let mut admin_code = totp(
        &store
            .init_admin("admin", PASSWORD)
            .unwrap()
            .totp_secret_base32,
    );
    let admin = store.login("admin", PASSWORD, &admin_code()).unwrap();
    let e = store
        .add_user(&admin, "dr.bench", Role::Physician, PASSWORD)
        .unwrap();
    let doctor = store
        .login("dr.bench", PASSWORD, &totp(&e.totp_secret_base32)())
        .unwrap();
    let up = Uploader::open(store.clone(), &settings_file, backend).unwrap();
    let reference = Transport::new(
        &Settings::parse(&settings_for(&reference_rx))
            .unwrap()
            .sync
            .unwrap(),
        &Credentials::from_keyring(backend).unwrap(),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut durable, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let mut bodies = Vec::new();
        for i in 0..docs {
            let id = store
                .save_draft(&doctor, &format!("P-{i:05}"), None, DICTATION, &draft)
                .unwrap();
            store.sign(&doctor, &id, 1).unwrap();
            let doc = store.outbox_document(&doctor, &id).unwrap();
            bodies.push((doc.item.bundle_id.clone(), up.policy().bundle(&doc)));
        }
        let t = Instant::now();
        for (id, bundle) in &bodies {
            assert!(matches!(
                rt.block_on(reference.send(id, bundle)),
                karte_sync::SendOutcome::Stored(201)
            ));
        }
        raw.push(docs as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let r = rt.block_on(up.flush()).unwrap();
        assert_eq!(r.sent, docs);
        durable.push(docs as f64 / t.elapsed().as_secs_f64());
    }
    assert_eq!(durable_rx.stored().len(), docs * rounds);
    let per_round: Vec<String> = durable
        .iter()
        .zip(&raw)
        .map(|(d, r)| format!("{d:.0} / {r:.0}"))
        .collect();
    let (d, r) = (median(&mut durable), median(&mut raw));

    println!("| measure | ours | reference | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| sign, median ms ({signs} each, interleaved) | {dw:.2} with outbox | {d0:.2} without | {:.2} |",
        dw / d0
    );
    println!(
        "| sign, mean ms | {mw:.2} with outbox | {mo:.2} without | {:.2} |",
        mw / mo
    );
    println!(
        "| upload, documents/s ({docs} per round, median of {rounds}) | {d:.1} durable uploader | {r:.1} POST only | {:.2} |",
        d / r
    );
    println!(
        "\nper round, documents/s durable / POST only: {}",
        per_round.join(" · ")
    );
}
