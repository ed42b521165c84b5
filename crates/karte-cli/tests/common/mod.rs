//! What the CLI tests that run the real `karte` binary on a real SQLCipher data directory share: the
//! `keyctl session` re-exec, TOTP codes from the printed enrolment, a ward's data directory and its users.
#![allow(dead_code, unused_imports)] // each test binary uses its own part of this module

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub use karte_testkit::{keyring_session, keyring_session_with_env, Phone};

pub const PASSWORD: &str = "ward-pass-2026";
/// The amended text names the wife and her phone: the feedback export must not.
pub const AMENDED: &str =
    "S）発熱と咳嗽。\nO）BT 38.4℃。\nP）妻の山田 花子さん（090-1234-5678）に説明。";
pub const DICTATION: &str = "65歳男性。3日前から発熱と咳嗽あり、昨日から呼吸困難も出現。BT 38.6℃、SpO2 93%（室内気）。右下肺野で湿性ラ音を聴取。CRP 12.3mg/dL。市中肺炎を疑う。胸部X線を施行予定。";

pub struct Ward {
    pub dir: tempfile::TempDir,
}

impl Ward {
    pub fn new() -> Ward {
        Ward {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn karte(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_karte"));
        c.env("KARTE_DATA_DIR", self.dir.path())
            // The machine-wide settings file, per test: absent unless the test writes it.
            .env("KARTE_SETTINGS", self.settings_file())
            .env("KARTE_KEYRING", "keyutils")
            .env("KARTE_WORKSTATION", "ward3-ws07")
            .env_remove("KARTE_PASSWORD")
            .env_remove("KARTE_TOTP")
            .env_remove("KARTE_NEW_PASSWORD")
            .stdin(Stdio::null());
        c
    }
    /// `karte ARGS` signed in as `user` with a fresh code from `phone`.
    pub fn run_as(&self, phone: &Phone, user: &str, args: &[&str]) -> Output {
        self.run_as_with(phone.code(), user, args, None)
    }
    pub fn run_as_with(
        &self,
        code: String,
        user: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Output {
        let mut c = self.karte();
        c.args(args)
            .args(["--user", user])
            .env("KARTE_PASSWORD", PASSWORD)
            .env("KARTE_TOTP", code)
            .env("KARTE_NEW_PASSWORD", PASSWORD);
        run(c, stdin)
    }
    pub fn init_admin(&self, name: &str) -> Phone {
        let mut c = self.karte();
        c.args(["admin", "init", "--user", name])
            .env("KARTE_NEW_PASSWORD", PASSWORD);
        Phone::from_enrolment_output(&ok(run(c, None)))
    }
    pub fn add_user(&self, admin: &Phone, admin_name: &str, name: &str, role: &str) -> Phone {
        let o = self.run_as(
            admin,
            admin_name,
            &["admin", "user", "add", name, "--role", role],
        );
        Phone::from_enrolment_output(&ok(o))
    }
    /// `karte draft - --no-llm --save` of [`DICTATION`] as `user`: the output, and the encounter id that ends it.
    pub fn save_draft(&self, phone: &Phone, user: &str, patient: &str) -> (String, String) {
        let out = ok(self.run_as_with(
            phone.code(),
            user,
            &["draft", "-", "--no-llm", "--save", "--patient", patient],
            Some(DICTATION),
        ));
        let id = out
            .split_whitespace()
            .last()
            .unwrap_or_else(|| panic!("no encounter id in {out}"))
            .to_string();
        (out, id)
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    /// What `KARTE_SETTINGS` names for this ward's commands.
    pub fn settings_file(&self) -> PathBuf {
        self.dir.path().join("settings.toml")
    }
}

pub fn run(mut c: Command, stdin: Option<&str>) -> Output {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        c.stdin(Stdio::piped());
    }
    let mut child = c.spawn().unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Asserts the failure's code (`エラー [code]: …` on stderr) and exit status; returns stderr.
pub fn fails(o: Output, code: &str, exit: i32) -> String {
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        stderr.contains(&format!("エラー [{code}]")) && o.status.code() == Some(exit),
        "expected {code} / exit {exit}, got exit {:?}\nstdout: {}\nstderr: {stderr}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout)
    );
    stderr
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}
