//! Shared by the store's integration tests: a real kernel keyring, real SQLCipher files in temporary directories,
//! and an authenticator that computes TOTP codes the way a phone app does.
#![allow(dead_code)]

use karte_store::{Enrolment, KeyringBackend, Session, Store, StoreConfig};
use std::path::Path;
use std::time::Duration;

#[allow(unused_imports)]
pub use karte_testkit::{keyring_session, keyring_session_with_env, Phone};

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

/// The phone on which `e`'s user scanned the enrolment QR code.
pub fn phone(e: &Enrolment) -> Phone {
    Phone::from_base32(&e.totp_secret_base32)
}

/// A store with an admin, a physician and a nurse enrolled.
pub struct Ward {
    pub store: Store,
    pub admin: Phone,
    pub physician: Phone,
    pub nurse: Phone,
}

impl Ward {
    pub fn new(dir: &Path, cfg: StoreConfig) -> Ward {
        let store = Store::open(dir, cfg).unwrap();
        let admin = phone(&store.init_admin("admin", PASSWORD).unwrap());
        let s = store.login("admin", PASSWORD, &admin.code()).unwrap();
        let physician = phone(
            &store
                .add_user(&s, "dr.sato", karte_store::Role::Physician, PASSWORD)
                .unwrap(),
        );
        let nurse = phone(
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
    karte_core::draft_floor(dictation, karte_core::document::default_kind()).unwrap()
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
