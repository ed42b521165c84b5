//! A ward's records for the desktop tests: a real encrypted store in a temporary data directory, with an
//! administrator, a physician and a nurse enrolled and one saved encounter, made through karte-store exactly as the
//! CLI would. The app under test opens the same directory with the same key, because the test runs inside its own
//! kernel keyring session and the app (started by tauri-driver and WebKitWebDriver) inherits it.

use anyhow::{ensure, Result};
use karte_store::{KeyringBackend, Role, Store, StoreConfig};
use std::collections::HashMap;

pub const PASSWORD: &str = "e2e-ward-pass";

pub use karte_testkit::{keyring_session, Phone};

/// Typing a code through WebDriver into the window takes seconds: each code stays valid for a whole step.
fn phone(base32: &str) -> Phone {
    Phone::from_base32(base32).with_margin(30)
}

pub struct Ward {
    pub dir: tempfile::TempDir,
    /// The encounter the physician saved while seeding (with test suggestions to review).
    pub encounter: String,
    phones: HashMap<&'static str, Phone>,
}

fn config() -> Result<StoreConfig> {
    Ok(StoreConfig {
        keyring: KeyringBackend::KernelKeyutils,
        workstation: "e2e-ws".into(),
        ..StoreConfig::from_env()?
    })
}

impl Ward {
    /// `dictation`'s rules-only draft is saved for the physician, as `karte draft --no-llm --save` would.
    pub fn seed(dictation: &str) -> Result<Ward> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path(), config()?)?;
        let mut phones = HashMap::new();
        phones.insert(
            "admin",
            phone(&store.init_admin("admin", PASSWORD)?.totp_secret_base32),
        );
        let admin = store.login("admin", PASSWORD, &phones["admin"].code())?;
        for (name, role) in [("dr.sato", Role::Physician), ("ns.suzuki", Role::Nurse)] {
            let e = store.add_user(&admin, name, role, PASSWORD)?;
            phones.insert(name, phone(&e.totp_secret_base32));
        }
        let doc = store.login("dr.sato", PASSWORD, &phones["dr.sato"].code())?;
        let draft = karte_core::draft_floor(dictation, karte_core::document::default_kind())?;
        ensure!(
            draft.suggestions.len() >= 2,
            "the dictation must give suggestions"
        );
        let encounter = store.save_draft(&doc, "P-E2E-01", None, dictation, &draft)?;
        // Where the app finds the records and its key.
        std::env::set_var("KARTE_DATA_DIR", dir.path());
        std::env::set_var("KARTE_KEYRING", "keyutils");
        std::env::set_var("KARTE_WORKSTATION", "e2e-ws");
        Ok(Ward {
            dir,
            encounter,
            phones,
        })
    }

    /// The physician's notes of one patient, each saved on its clinical date (`YYYY-MM-DD`) and signed: the
    /// sources of a discharge summary. Signs in through the store, as a second workstation would.
    pub fn sign_notes(&self, patient: &str, notes: &[(&str, &str)]) -> Result<()> {
        let store = self.store()?;
        let doc = store.login("dr.sato", PASSWORD, &self.phone("dr.sato").code())?;
        for (date, text) in notes {
            let draft = karte_core::draft_floor(text, karte_core::document::default_kind())?;
            let date = karte_store::ClinicalDate::parse(date)?;
            let id = store.save_draft(&doc, patient, Some(date), text, &draft)?;
            store.sign(&doc, &id, 1)?;
        }
        Ok(())
    }

    pub fn phone(&self, user: &str) -> &Phone {
        &self.phones[user]
    }

    /// The store as a second workstation process sees it (the app keeps it open meanwhile; WAL allows both).
    pub fn store(&self) -> Result<Store> {
        Ok(Store::open(self.dir.path(), config()?)?)
    }
}
