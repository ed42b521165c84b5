//! Roles (the type is karte-ipc's: the window receives it), the permission matrix, password hashing and TOTP.
//!
//! The matrix lives here, in the library, so that the CLI, the desktop app and a future server cannot disagree:
//! every [`crate::Store`] operation that touches a record or a user asks [`permits`] first.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use karte_core::{Code, Error, Result};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicI64, Ordering};
use totp_rs::{Algorithm, TOTP};
use zeroize::Zeroizing;

pub use karte_ipc::Role;

/// Everything the matrix decides. `as_str` values are written to the audit log: stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Create an encounter from a dictation and its draft.
    Draft,
    /// Read clinical text: versions, dictation, suggestions, history.
    View,
    /// Accept or reject a test suggestion with a comment.
    ReviewSuggestions,
    /// Add a new version to an unsigned record.
    Edit,
    /// Sign the latest version (locks the record).
    Sign,
    /// Add a signed amendment to a signed record.
    Amend,
    /// Take clinical text off the record store (feedback export; later uploads).
    Export,
    ManageUsers,
    ReadAuditLog,
    /// Copy the whole store to a backup file, or put one back (IT's recovery from damage).
    Backup,
    /// Send a dictation to be drafted (to this workstation's model or the clinic server's).
    Dictate,
}

impl Action {
    pub const ALL: [Action; 11] = [
        Action::Draft,
        Action::View,
        Action::ReviewSuggestions,
        Action::Edit,
        Action::Sign,
        Action::Amend,
        Action::Export,
        Action::ManageUsers,
        Action::ReadAuditLog,
        Action::Backup,
        Action::Dictate,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Draft => "draft",
            Action::View => "view",
            Action::ReviewSuggestions => "review_suggestions",
            Action::Edit => "edit",
            Action::Sign => "sign",
            Action::Amend => "amend",
            Action::Export => "export",
            Action::ManageUsers => "manage_users",
            Action::ReadAuditLog => "read_audit_log",
            Action::Backup => "backup",
            Action::Dictate => "dictate",
        }
    }
    fn label_ja(self) -> &'static str {
        match self {
            Action::Draft => "下書きの作成",
            Action::View => "診療記録の閲覧",
            Action::ReviewSuggestions => "検査提案のレビュー",
            Action::Edit => "診療記録の編集",
            Action::Sign => "署名",
            Action::Amend => "署名後の修正",
            Action::Export => "記録の書き出し",
            Action::ManageUsers => "利用者の管理",
            Action::ReadAuditLog => "監査ログの閲覧",
            Action::Backup => "バックアップと復元",
            Action::Dictate => "口述からの下書き作成",
        }
    }
}

/// The permission matrix. Physicians own the clinical record; nurses read it and review test suggestions but do
/// not sign; administrators manage accounts and read the audit log but never clinical text (least privilege: IT
/// staff need neither).
pub fn permits(role: Role, action: Action) -> bool {
    use Action::*;
    match role {
        Role::Physician => matches!(
            action,
            Draft | View | ReviewSuggestions | Edit | Sign | Amend | Export | Dictate
        ),
        Role::Nurse => matches!(action, View | ReviewSuggestions),
        Role::Admin => matches!(action, ManageUsers | ReadAuditLog | Backup),
    }
}

pub(crate) fn forbidden(role: Role, action: Action) -> Error {
    Error::new(
        Code::AuthForbidden,
        format!(
            "{}には「{}」の権限がありません。",
            role.label_ja(),
            action.label_ja()
        ),
    )
}

/// A signed-in user. Only [`crate::Store::login`] makes one; it is bound to the store that made it and expires after
/// the configured idle time (checked and renewed on every use).
#[derive(Debug)]
pub struct Session {
    pub(crate) user_id: i64,
    pub(crate) name: String,
    pub(crate) role: Role,
    pub(crate) store_id: String,
    pub(crate) last_active_ms: AtomicI64,
}

impl Session {
    pub fn user(&self) -> &str {
        &self.name
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub(crate) fn touch(&self, now: i64) {
        self.last_active_ms.store(now, Ordering::Relaxed);
    }
    pub(crate) fn last_active(&self) -> i64 {
        self.last_active_ms.load(Ordering::Relaxed)
    }
}

/// What a new user needs once, at enrolment: the TOTP secret for their authenticator app. Shown once, never
/// retrievable afterwards.
#[derive(Debug, Clone, Serialize)]
pub struct Enrolment {
    pub user: String,
    pub role: Role,
    /// RFC 4648 base32, no padding (what authenticator apps accept typed in).
    pub totp_secret_base32: String,
    /// `otpauth://totp/Karte:NAME?secret=…&issuer=Karte` (render as a QR code for the app).
    pub otpauth_uri: String,
}

pub(crate) const TOTP_ISSUER: &str = "Karte";
const TOTP_STEP: u64 = 30;
const TOTP_DIGITS: usize = 6;

pub(crate) fn new_totp_secret() -> Result<Zeroizing<Vec<u8>>> {
    let mut s = Zeroizing::new(vec![0u8; 20]);
    getrandom::fill(&mut s[..])
        .map_err(|_| Error::new(Code::Internal, "乱数を取得できません。"))?;
    Ok(s)
}

fn totp(secret: &[u8], account: &str) -> Result<TOTP> {
    TOTP::new(
        Algorithm::SHA1,
        TOTP_DIGITS,
        1,
        TOTP_STEP,
        secret.to_vec(),
        Some(TOTP_ISSUER.to_string()),
        account.to_string(),
    )
    .map_err(|_| Error::new(Code::Internal, "TOTP の設定を作れません。"))
}

pub(crate) fn enrolment(name: &str, role: Role, secret: &[u8]) -> Result<Enrolment> {
    let t = totp(secret, name)?;
    Ok(Enrolment {
        user: name.to_string(),
        role,
        totp_secret_base32: t.get_secret_base32(),
        otpauth_uri: t.get_url(),
    })
}

pub(crate) enum TotpCheck {
    /// The code matched this time step, which is newer than any accepted before.
    Fresh(i64),
    /// The code matched a step already used: a replay (or a second command within 30 s).
    Reused,
    Wrong,
}

/// Accepts the current step and one either side (clock drift), each at most once.
pub(crate) fn check_totp(secret: &[u8], code: &str, now_ms: i64, last_step: i64) -> TotpCheck {
    let Ok(t) = totp(secret, "x") else {
        return TotpCheck::Wrong;
    };
    let code = code.trim();
    if code.len() != TOTP_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return TotpCheck::Wrong;
    }
    let now_step = (now_ms.max(0) as u64) / 1000 / TOTP_STEP;
    let mut result = TotpCheck::Wrong;
    for step in [now_step.saturating_sub(1), now_step, now_step + 1] {
        let expected = t.generate(step * TOTP_STEP);
        // Compare every candidate in full so the time taken does not say which step matched.
        let same = expected
            .bytes()
            .zip(code.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        if same && matches!(result, TotpCheck::Wrong | TotpCheck::Reused) {
            result = if step as i64 > last_step {
                TotpCheck::Fresh(step as i64)
            } else {
                TotpCheck::Reused
            };
        }
    }
    result
}

/// Argon2id with the crate's defaults (19 MiB, t=2, p=1: OWASP's recommended floor), PHC string format so that
/// parameters can be raised later without a migration.
pub(crate) fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|_| Error::new(Code::Internal, "乱数を取得できません。"))?;
    let salt = SaltString::encode_b64(&salt)
        .map_err(|_| Error::new(Code::Internal, "パスワードを保存できません。"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| Error::new(Code::Internal, "パスワードを保存できません。"))
}

pub(crate) fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// 厚生労働省ガイドライン第6.0版: with two factors, at least 8 characters.
pub(crate) const MIN_PASSWORD_CHARS: usize = 8;

pub(crate) fn check_new_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::new(
            Code::UserInvalid,
            format!("パスワードは{MIN_PASSWORD_CHARS}文字以上にしてください。"),
        ));
    }
    Ok(())
}

/// ASCII letters, digits, `.`, `_`, `-`, 1–64 characters: safe in an otpauth URI, a CSV cell and a log line.
pub(crate) fn check_user_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            Code::UserInvalid,
            "利用者名は半角英数字と . _ - の64文字以内にしてください。",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_accepts_each_step_once_and_rejects_others() {
        let secret = [7u8; 20];
        let t = totp(&secret, "x").unwrap();
        let now_ms = 1_795_511_702_123i64;
        let step = now_ms / 1000 / 30;
        let code = t.generate((step * 30) as u64);
        assert!(matches!(check_totp(&secret, &code, now_ms, 0), TotpCheck::Fresh(s) if s == step));
        assert!(matches!(
            check_totp(&secret, &code, now_ms, step),
            TotpCheck::Reused
        ));
        let next = t.generate(((step + 1) * 30) as u64);
        assert!(
            matches!(check_totp(&secret, &next, now_ms, step), TotpCheck::Fresh(s) if s == step + 1)
        );
        let far = t.generate(((step + 2) * 30) as u64);
        assert!(matches!(
            check_totp(&secret, &far, now_ms, 0),
            TotpCheck::Wrong
        ));
        assert!(matches!(
            check_totp(&secret, "12345", now_ms, 0),
            TotpCheck::Wrong
        ));
    }

    #[test]
    fn password_hash_round_trip() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct hors", &h));
    }
}
