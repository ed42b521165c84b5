//! A ward's records for the desktop tests: a real encrypted store in a temporary data directory, with an
//! administrator, a physician and a nurse enrolled and one saved encounter, made through karte-store exactly as the
//! CLI would. The app under test opens the same directory with the same key, because the test runs inside its own
//! kernel keyring session and the app (started by tauri-driver and WebKitWebDriver) inherits it.

use anyhow::{ensure, Context, Result};
use karte_store::{KeyringBackend, Role, Store, StoreConfig};
use std::cell::Cell;
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;
use totp_rs::{Algorithm, Secret, TOTP};

pub const PASSWORD: &str = "e2e-ward-pass";
const IN_SESSION: &str = "KARTE_TEST_IN_KEYCTL_SESSION";

/// Re-runs `test` as `keyctl session - <this binary> <test> --exact` (its own session keyring, shared with the app it
/// starts) and fails with that run; `true` inside the re-run. Its output is passed through: screenshots and timings
/// are reported there.
pub fn keyring_session(test: &str) -> Result<bool> {
    if std::env::var_os(IN_SESSION).is_some() {
        return Ok(true);
    }
    let out = Command::new("keyctl")
        .args(["session", "-"])
        .arg(std::env::current_exe()?)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(IN_SESSION, "1")
        .output()
        .context("keyctl is missing: install keyutils (cargo xtask setup does)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    ensure!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} under keyctl session failed ({})",
        out.status
    );
    Ok(false)
}

/// An authenticator app: the current code, never the same 30-second step twice (the store accepts each once).
pub struct Phone {
    totp: TOTP,
    last: Cell<u64>,
}

impl Phone {
    fn new(base32: &str) -> Result<Phone> {
        let secret = Secret::Encoded(base32.to_string())
            .to_bytes()
            .map_err(|e| anyhow::anyhow!("TOTP secret: {e:?}"))?;
        Ok(Phone {
            totp: TOTP::new(Algorithm::SHA1, 6, 1, 30, secret, None, "e2e".into())?,
            last: Cell::new(0),
        })
    }

    pub fn code(&self) -> String {
        loop {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let step = (now / 30).max(self.last.get() + 1);
            if step <= now / 30 + 1 {
                self.last.set(step);
                return self.totp.generate(step * 30);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Ten minutes old: certainly refused.
    pub fn stale(&self) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        self.totp.generate(now - 600)
    }
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
            Phone::new(&store.init_admin("admin", PASSWORD)?.totp_secret_base32)?,
        );
        let admin = store.login("admin", PASSWORD, &phones["admin"].code())?;
        for (name, role) in [("dr.sato", Role::Physician), ("ns.suzuki", Role::Nurse)] {
            let e = store.add_user(&admin, name, role, PASSWORD)?;
            phones.insert(name, Phone::new(&e.totp_secret_base32)?);
        }
        let doc = store.login("dr.sato", PASSWORD, &phones["dr.sato"].code())?;
        let draft = karte_core::draft_floor(dictation)?;
        ensure!(
            draft.suggestions.len() >= 2,
            "the dictation must give suggestions"
        );
        let encounter = store.save_draft(&doc, "P-E2E-01", dictation, &draft)?;
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

    pub fn phone(&self, user: &str) -> &Phone {
        &self.phones[user]
    }

    /// The store as a second workstation process sees it (the app keeps it open meanwhile; WAL allows both).
    pub fn store(&self) -> Result<Store> {
        Ok(Store::open(self.dir.path(), config()?)?)
    }
}
