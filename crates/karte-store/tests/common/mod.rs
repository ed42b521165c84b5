//! Shared by the store's integration tests: a real kernel keyring, real SQLCipher files in temporary directories,
//! and an authenticator that computes TOTP codes the way a phone app does.
#![allow(dead_code)]

use karte_store::{Enrolment, KeyringBackend, Session, Store, StoreConfig};
use std::cell::Cell;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use totp_rs::{Algorithm, Secret, TOTP};

/// Set in the environment of a test process that already runs inside its own `keyctl session`.
pub const IN_SESSION: &str = "KARTE_TEST_IN_KEYCTL_SESSION";

/// Keyring tests need a session keyring, which a plain process (CI, `cargo test` from an IDE) may not have. So
/// each such test re-runs itself as `keyctl session - <this test binary> <test> --exact` and passes or fails with
/// that child; inside the child this returns `true` and the test body runs. Each test gets a fresh, private
/// session keyring, so tests never see each other's keys.
pub fn keyring_session(test: &str) -> bool {
    if std::env::var_os(IN_SESSION).is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new("keyctl")
        .args(["session", "-"])
        .arg(&exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(IN_SESSION, "1")
        .env("KARTE_KEYRING", "keyutils")
        .output()
        .expect("keyctl is missing: install keyutils (cargo xtask setup does)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} under keyctl session failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    false
}

pub fn config() -> StoreConfig {
    StoreConfig {
        keyring: KeyringBackend::KernelKeyutils,
        idle_timeout: Duration::from_secs(15 * 60),
        max_failed_logins: 5,
        lockout: Duration::from_secs(15 * 60),
        workstation: "ws-test-01".into(),
    }
}

pub const PASSWORD: &str = "pass-word-123";

/// A user's phone: computes the current code, never the same time step twice (the store accepts each step
/// once), waiting for the next step when the window is used up.
pub struct Authenticator {
    totp: TOTP,
    last_step: Cell<u64>,
}

impl Authenticator {
    pub fn new(e: &Enrolment) -> Self {
        Self::from_base32(&e.totp_secret_base32)
    }
    pub fn from_base32(b32: &str) -> Self {
        let secret = Secret::Encoded(b32.to_string()).to_bytes().unwrap();
        Authenticator {
            totp: TOTP::new(Algorithm::SHA1, 6, 1, 30, secret, None, "test".into()).unwrap(),
            last_step: Cell::new(0),
        }
    }
    pub fn code(&self) -> String {
        loop {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let now = secs / 30;
            // The store accepts the previous, current and next step, each once. The previous one only while
            // well inside the current window, so it cannot expire on the way.
            let into = secs % 30;
            let earliest = if into < 25 { now - 1 } else { now };
            let step = earliest.max(self.last_step.get() + 1);
            if step <= now + 1 {
                self.last_step.set(step);
                return self.totp.generate(step * 30);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    /// A code that is certainly wrong now (the one for ten minutes ago).
    pub fn stale_code(&self) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        self.totp.generate(now - 600)
    }
}

/// A store with an admin, a physician and a nurse enrolled.
pub struct Ward {
    pub store: Store,
    pub admin: Authenticator,
    pub physician: Authenticator,
    pub nurse: Authenticator,
}

impl Ward {
    pub fn new(dir: &Path, cfg: StoreConfig) -> Ward {
        let store = Store::open(dir, cfg).unwrap();
        let admin = Authenticator::new(&store.init_admin("admin", PASSWORD).unwrap());
        let s = store.login("admin", PASSWORD, &admin.code()).unwrap();
        let physician = Authenticator::new(
            &store
                .add_user(&s, "dr.sato", karte_store::Role::Physician, PASSWORD)
                .unwrap(),
        );
        let nurse = Authenticator::new(
            &store
                .add_user(&s, "ns.suzuki", karte_store::Role::Nurse, PASSWORD)
                .unwrap(),
        );
        Ward {
            store,
            admin,
            physician,
            nurse,
        }
    }
    pub fn login_admin(&self) -> Session {
        self.store
            .login("admin", PASSWORD, &self.admin.code())
            .unwrap()
    }
    pub fn login_physician(&self) -> Session {
        self.store
            .login("dr.sato", PASSWORD, &self.physician.code())
            .unwrap()
    }
    pub fn login_nurse(&self) -> Session {
        self.store
            .login("ns.suzuki", PASSWORD, &self.nurse.code())
            .unwrap()
    }
}

pub const DICTATION: &str = "65歳男性。3日前から発熱と咳嗽あり、昨日から呼吸困難も出現。BT 38.6℃、SpO2 93%（室内気）。右下肺野で湿性ラ音を聴取。CRP 12.3mg/dL。市中肺炎を疑う。胸部X線を施行予定。";

/// A real rules-only draft of `dictation` (karte-core's floor), as `karte draft --no-llm` makes it.
pub fn draft(dictation: &str) -> karte_core::DraftOutput {
    karte_core::draft_floor(dictation).unwrap()
}

/// The raw key from the kernel keyring, for tests that act as an attacker who has it.
pub fn raw_key(store_id: &str) -> String {
    let cred = keyring::keyutils::KeyutilsCredential::new_with_target(
        None,
        karte_store::vault::KEYRING_SERVICE,
        &karte_store::vault::key_entry_user(store_id),
    )
    .unwrap();
    keyring::Entry::new_with_credential(Box::new(cred))
        .get_password()
        .unwrap()
}

pub fn set_raw_key(store_id: &str, hex: &str) {
    let cred = keyring::keyutils::KeyutilsCredential::new_with_target(
        None,
        karte_store::vault::KEYRING_SERVICE,
        &karte_store::vault::key_entry_user(store_id),
    )
    .unwrap();
    keyring::Entry::new_with_credential(Box::new(cred))
        .set_password(hex)
        .unwrap();
}

/// A plain rusqlite connection to the store's database, keyed: what someone with the key could do to the file.
pub fn raw_conn(dir: &Path, store_id: &str) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(dir.join(karte_store::DB_FILE)).unwrap();
    c.execute_batch(&format!("PRAGMA key = \"x'{}'\";", raw_key(store_id)))
        .unwrap();
    c.execute_batch("PRAGMA busy_timeout = 5000;").unwrap();
    c
}

pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    u64::from_le_bytes(b)
}
