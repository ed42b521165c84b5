//! What every test that signs in for real needs, in one place so that the store, sync, CLI and desktop tests cannot
//! drift apart: a private kernel keyring for each test, and the authenticator app on a staff member's phone.
//!
//! Only tests depend on this crate (as a dev-dependency, or from the end-to-end test package).

use std::cell::Cell;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use totp_rs::{Algorithm, Secret, TOTP};

/// Set in the environment of a test process that already runs inside its own `keyctl session`.
pub const IN_SESSION: &str = "KARTE_TEST_IN_KEYCTL_SESSION";

/// Keyring tests need a session keyring, which a plain process (CI, `cargo test` from an IDE) may not have. So each
/// such test re-runs itself as `keyctl session - <this test binary> <test> --exact` with `KARTE_KEYRING=keyutils`,
/// and passes or fails with that child; inside the child this returns `true` and the test body runs. Each run gets
/// a fresh, private session keyring, so tests never see each other's database keys; programs the test starts
/// (the `karte` binary, the desktop app) inherit it. The child's output is passed on, so that timings and
/// screenshot paths it prints show with `--nocapture` and on failure.
pub fn keyring_session(test: &str) -> bool {
    keyring_session_with_env(test, &[])
}

/// [`keyring_session`] with extra environment for the child, e.g. `("TZ", "Asia/Tokyo")`: a test of the
/// workstation's local calendar day sets its time zone this way, in a process of its own, rather than by changing
/// the environment of a running test binary (which other threads read).
pub fn keyring_session_with_env(test: &str, env: &[(&str, &str)]) -> bool {
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
        .envs(env.iter().copied())
        .output()
        .expect("keyctl is missing: install keyutils (cargo xtask setup does)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} under keyctl session failed ({}); the child's last words:\n{}",
        out.status,
        last_lines(&format!("{stdout}{stderr}"), 25)
    );
    false
}

/// The end of a child's output, without its backtrace frames: a CI log keeps only the tail of a run, which is this
/// panic message, so the reason must be in it, not in the child's output printed minutes earlier.
fn last_lines(output: &str, n: usize) -> String {
    let lines: Vec<&str> = output
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("at ")
                || t.split_once(": ")
                    .is_some_and(|(k, _)| k.parse::<u32>().is_ok()))
        })
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// [`keyring_session`] for tests that install or remove workstation-wide keyring entries (the upload credentials):
/// the kernel keyring's persistent part is shared by every session of the user, so one test's delete or re-install
/// would pull them from under another. These tests take turns; the others still run side by side.
pub fn keyring_session_in_turn(test: &str) -> bool {
    static TURNS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = TURNS.lock().unwrap_or_else(|p| p.into_inner());
    keyring_session(test)
}

/// A staff member's authenticator app. The store accepts each 30-second step once, so the phone never gives the
/// same step twice and waits for the next one when the window is used up: a test can sign in many times a minute.
pub struct Phone {
    totp: TOTP,
    last_step: Cell<u64>,
    /// How long a code must stay valid after it is given: the time the test needs to enter it.
    margin_s: u64,
}

impl Phone {
    /// From the secret in an enrolment (`Enrolment::totp_secret_base32`).
    pub fn from_base32(b32: &str) -> Phone {
        let secret = Secret::Encoded(b32.to_string())
            .to_bytes()
            .unwrap_or_else(|e| panic!("TOTP secret is not base32: {e:?}"));
        Phone {
            totp: TOTP::new(Algorithm::SHA1, 6, 1, 30, secret, None, "test".into())
                .expect("TOTP parameters"),
            last_step: Cell::new(0),
            margin_s: 5,
        }
    }

    /// For a test that types the code into a window, which takes seconds on a loaded machine: every code stays
    /// valid for at least `seconds` after it is given (the default, 5 s, suits a direct call or a CLI run).
    pub fn with_margin(mut self, seconds: u64) -> Phone {
        self.margin_s = seconds;
        self
    }

    /// From the `otpauth://totp/Karte:NAME?secret=…&issuer=Karte` line that `karte admin user add` prints once.
    pub fn from_enrolment_output(stdout: &str) -> Phone {
        let uri = stdout
            .lines()
            .find(|l| l.starts_with("otpauth://totp/"))
            .unwrap_or_else(|| panic!("no otpauth URI in {stdout}"));
        assert!(uri.contains("issuer=Karte"), "{uri}");
        let secret = uri
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix("secret="))
            .unwrap_or_else(|| panic!("no secret in {uri}"));
        Phone::from_base32(secret)
    }

    /// A code the store accepts now. The previous step is used only while the current window has the margin left
    /// (the store accepts the previous step until the current one ends), so it cannot expire on the way.
    pub fn code(&self) -> String {
        loop {
            let secs = unix_now();
            let (now, into) = (secs / 30, secs % 30);
            let earliest = if into + self.margin_s < 30 {
                now - 1
            } else {
                now
            };
            let step = earliest.max(self.last_step.get() + 1);
            if step <= now + 1 {
                self.last_step.set(step);
                return self.totp.generate(step * 30);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Ten minutes old: certainly refused.
    pub fn stale(&self) -> String {
        self.totp.generate(unix_now() - 600)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

    #[test]
    fn never_the_same_step_twice_and_always_within_the_accepted_window() {
        let phone = Phone::from_base32(SECRET);
        let totp = TOTP::new(
            Algorithm::SHA1,
            6,
            1,
            30,
            Secret::Encoded(SECRET.into()).to_bytes().unwrap(),
            None,
            "x".into(),
        )
        .unwrap();
        let before = unix_now() / 30;
        let (a, b) = (phone.code(), phone.code());
        let after = unix_now() / 30;
        assert_ne!(a, b, "two sign-ins in a row need two steps");
        // The store's window is the previous, current and next step of the moment it checks.
        let accepted: Vec<String> = (before - 1..=after + 1)
            .map(|s| totp.generate(s * 30))
            .collect();
        for c in [&a, &b] {
            assert!(accepted.contains(c), "{c} is outside the ±1 step window");
        }
        assert!(!accepted.contains(&phone.stale()));
    }

    #[test]
    fn reads_the_enrolment_that_the_cli_prints() {
        let out =
            format!("登録しました\notpauth://totp/Karte:dr.sato?secret={SECRET}&issuer=Karte\n");
        let phone = Phone::from_enrolment_output(&out);
        assert_eq!(phone.code().len(), 6);
    }

    #[test]
    fn a_failed_childs_reason_survives_and_its_backtrace_frames_do_not() {
        let out = "running 1 test\nError: the clinic server never became ready\n\nStack backtrace:\n   0: <unknown>\n  12: __libc_start_main_impl\n             at ./csu/../csu/libc-start.c:360:3\ntest x ... FAILED\n";
        let tail = last_lines(out, 4);
        assert_eq!(
            tail,
            "Error: the clinic server never became ready\n\nStack backtrace:\ntest x ... FAILED"
        );
    }
}
