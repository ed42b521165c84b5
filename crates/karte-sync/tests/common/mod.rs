//! Shared by karte-sync's integration tests: a real kernel keyring (each test re-runs itself under `keyctl
//! session`), a real SQLCipher store with enrolled staff, real signed documents from karte-core's rules, the real
//! HTTPS receiver from karte-receiver, and the sync settings and keyring credentials wired to it.
#![allow(dead_code)]

use karte_receiver::{Receiver, ServerCert, TestPki};
use karte_store::vault::{write_secret, KeyringBackend};
use karte_store::{Decision, Role, Session, Store, StoreConfig};
use karte_sync::transport::{
    CLIENT_CERT_ENTRY, CLIENT_KEY_ENTRY, PSEUDONYM_KEY_ENTRY, TOKEN_ENTRY,
};
use karte_sync::Uploader;
use karte_testkit::Phone;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

pub const TOKEN: &str = "test-bearer-token-0123456789";
pub const PASSWORD: &str = "pass-word-123";
pub const BACKEND: KeyringBackend = KeyringBackend::KernelKeyutils;
/// The hospital's pseudonym key as IT installs it (hex, 32 bytes).
pub const PSEUDONYM_KEY_HEX: &str =
    "6b617274652d746573742d70736575646f6e796d2d6b65792d33322d62797465";

/// The sync tests install and remove the workstation-wide upload credentials: they take turns.
pub use karte_testkit::keyring_session_in_turn as keyring_session;

pub fn config() -> StoreConfig {
    StoreConfig {
        keyring: BACKEND,
        idle_timeout: Duration::from_secs(15 * 60),
        max_failed_logins: 5,
        lockout: Duration::from_secs(15 * 60),
        workstation: "ws-test-01".into(),
    }
}

/// A store with an administrator, a physician and a nurse signed in.
pub struct Ward {
    pub store: Arc<Store>,
    pub admin: Session,
    pub doctor: Session,
    pub nurse: Session,
}

impl Ward {
    pub fn new(dir: &Path) -> Ward {
        let store = Store::open(dir, config()).unwrap();
        let a = Phone::from_base32(
            &store
                .init_admin("admin", PASSWORD)
                .unwrap()
                .totp_secret_base32,
        );
        let admin = store.login("admin", PASSWORD, &a.code()).unwrap();
        let d = store
            .add_user(&admin, "dr.sato", Role::Physician, PASSWORD)
            .unwrap();
        let n = store
            .add_user(&admin, "ns.suzuki", Role::Nurse, PASSWORD)
            .unwrap();
        let doctor = store
            .login(
                "dr.sato",
                PASSWORD,
                &Phone::from_base32(&d.totp_secret_base32).code(),
            )
            .unwrap();
        let nurse = store
            .login(
                "ns.suzuki",
                PASSWORD,
                &Phone::from_base32(&n.totp_secret_base32).code(),
            )
            .unwrap();
        Ward {
            store: Arc::new(store),
            admin,
            doctor,
            nurse,
        }
    }

    /// Saves a rules-only draft of `dictation` for `patient`, has the nurse accept the first test suggestion
    /// (if any) and signs it. Returns the encounter id.
    pub fn sign(&self, patient: &str, dictation: &str) -> String {
        sign_with(&self.store, &self.doctor, &self.nurse, patient, dictation)
    }
}

/// [`Ward::sign`] with the sessions passed in (for a signing thread).
pub fn sign_with(
    store: &Store,
    doctor: &Session,
    nurse: &Session,
    patient: &str,
    dictation: &str,
) -> String {
    let draft = karte_core::draft_floor(dictation, karte_core::document::default_kind()).unwrap();
    let id = store
        .save_draft(doctor, patient, None, dictation, &draft)
        .unwrap();
    if !draft.suggestions.is_empty() {
        store.review(nurse, &id, 1, Decision::Accept, "").unwrap();
    }
    store.sign(doctor, &id, 1).unwrap();
    id
}

/// Synthetic dictations (no real patients), each with a name that must never reach the cloud unpseudonymised.
pub const DICTATIONS: &[&str] = &[
    "山田太郎さん、65歳男性。3日前から発熱と咳嗽あり、昨日から呼吸困難も出現。BT 38.6℃、SpO2 93%（室内気）。右下肺野で湿性ラ音を聴取。CRP 12.3mg/dL。市中肺炎を疑う。胸部X線を施行予定。",
    "佐藤花子さん、78歳女性。2日前から排尿時痛と頻尿。BT 37.9℃。CVA叩打痛なし。尿混濁あり。膀胱炎を疑う。尿培養を提出予定。",
    "鈴木一郎さん、52歳男性。30分前からの胸部圧迫感。冷汗あり。BP 158/96mmHg、HR 102/分。心電図でII、III、aVFのST上昇。急性下壁心筋梗塞を疑う。",
    "高橋美咲さん、24歳女性。昨日から口渇と多尿、嘔吐あり。血糖 486mg/dL。尿ケトン3+。糖尿病性ケトアシドーシスを疑う。",
];

/// The test's machine-wide settings file (what `KARTE_SETTINGS` names for a CLI or a child process): in the data
/// directory, so that every test has its own.
pub fn settings_path(dir: &Path) -> PathBuf {
    dir.join("settings.toml")
}

/// The settings file with a `[sync]` section for `receiver`, trusting the test CA and pinning the test server's
/// key; `extra` lines go into `[sync]`.
pub fn write_settings(dir: &Path, pki: &TestPki, receiver: &Receiver, extra: &str) {
    write_sync_section(dir, pki, &receiver.url(), &pki.server_pin, extra);
}

/// The same with any endpoint and pin (a wrong one, for the tests of what IT may get wrong).
pub fn write_sync_section(dir: &Path, pki: &TestPki, endpoint: &str, pin: &str, extra: &str) {
    let ca = pki.write_ca(dir);
    std::fs::write(
        settings_path(dir),
        format!(
            "[model]\nthreads = 2\n\n[sync]\nendpoint = \"{endpoint}\"\nspki_sha256 = [\"{pin}\"]\nca_file = \"{}\"\ntimeout_secs = 5\nretry_base_ms = 50\nretry_max_ms = 400\n{extra}",
            ca.display()
        ),
    )
    .unwrap();
}

/// The workstation's client certificate, key, bearer token and the hospital's pseudonym key, into the (test's
/// own) kernel keyring.
pub fn install_credentials(cert_pem: &str, key_pem: &str) {
    write_secret(BACKEND, CLIENT_CERT_ENTRY, cert_pem).unwrap();
    write_secret(BACKEND, CLIENT_KEY_ENTRY, key_pem).unwrap();
    write_secret(BACKEND, TOKEN_ENTRY, TOKEN).unwrap();
    write_secret(BACKEND, PSEUDONYM_KEY_ENTRY, PSEUDONYM_KEY_HEX).unwrap();
}

/// An uploader for the store, reading the test's settings file and keyring now.
pub fn uploader_for(store: &Arc<Store>) -> Uploader {
    Uploader::open(store.clone(), &settings_path(store.data_dir()), BACKEND).unwrap()
}

/// Receiver + settings + credentials: everything an uploader in `dir` needs.
pub fn platform(dir: &Path) -> (TestPki, Receiver) {
    let pki = TestPki::new();
    let receiver = Receiver::start(&pki, ServerCert::Good, TOKEN);
    write_settings(dir, &pki, &receiver, "");
    install_credentials(&pki.client.cert_pem, &pki.client.key_pem);
    (pki, receiver)
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn python() -> PathBuf {
    let venv = std::env::var_os("KARTE_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/karte/venv"));
    let py = venv.join("bin/python");
    assert!(
        py.exists(),
        "{} is missing: run `cargo xtask venv` (or `cargo xtask setup`) to install fhir.resources",
        py.display()
    );
    py
}

/// Runs the FHIR R4 validator (`fhir.resources`, tests/validate_r4.py) on `files`; returns its per-file lines.
pub fn validate(files: &[PathBuf]) -> (bool, String) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/validate_r4.py");
    let out = Command::new(python())
        .arg(script)
        .args(files)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError") && !stderr.contains("not R4"),
        "validator unavailable: {stderr}\nrun `cargo xtask venv`"
    );
    (out.status.success(), format!("{stdout}{stderr}"))
}
