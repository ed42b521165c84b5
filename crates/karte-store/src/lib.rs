//! Karte's local record store: encrypted at rest, role-checked, append-only, audited.
//!
//! - **Encryption**: one SQLCipher database per data directory; its random 256-bit key lives only in the OS
//!   keyring ([`vault`]). Without the keyring the store refuses to start.
//! - **Who may do what**: [`auth::permits`] is the one permission matrix; every operation below checks it with the
//!   caller's [`Session`], so no front end can skip it.
//! - **真正性**: a record is a chain of immutable versions; signing locks the latest one; after that only a signed
//!   amendment with a reason can follow. Database triggers refuse UPDATE/DELETE on clinical rows.
//! - **Audit**: every sign-in attempt, every read or write of clinical text and every admin action appends to a
//!   hash chain ([`audit`]) in the same transaction as the action, so nothing happens off the record.
//!
//! All errors are `karte_core::Error` with stable codes; their messages never contain clinical text, patient
//! references or user names.

pub mod audit;
pub mod auth;
mod backup;
mod clock;
pub mod db;
pub mod feedback;
pub mod outbox;
mod recordings;
pub mod records;
pub mod vault;

pub use audit::{AuditEntry, AuditReport, BadEntry, Problem};
pub use auth::{permits, Action, Enrolment, Role, Session};
pub use backup::{BackupContents, BackupReport, RestoreReport};
pub use clock::{iso8601, today};
pub use feedback::FeedbackRecord;
pub use karte_core::ClinicalDate;
pub use karte_ipc::UserInfo;
pub use karte_ipc::{DocumentDraft, DocumentRequest, Recording};
pub use outbox::{Halt, OutboxItem, OutboxState, QueueHealth, SignedDocument};
pub use records::{
    Decision, EncounterSummary, EncounterView, ReviewView, Signature, SignedNote, SuggestionView,
    VersionKind, VersionView,
};
pub use vault::KeyringBackend;

use audit::NewEntry;
use auth::TotpCheck;
use clock::now_ms;
use db::{db_err, DbKey};
use karte_core::{Code, Document, DraftOutput, Error, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI64;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use vault::Vault;

/// The database file inside the data directory.
pub const DB_FILE: &str = "karte.db";
/// A random, non-secret id naming this data directory's keyring entries.
pub const STORE_ID_FILE: &str = "store-id";

/// Settings a deployment may change. [`StoreConfig::from_env`] gives the defaults.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub keyring: KeyringBackend,
    /// A session unused this long must sign in again (ガイドライン: 離席時の不正利用対策).
    pub idle_timeout: Duration,
    /// Consecutive failed sign-ins that lock an account…
    pub max_failed_logins: i64,
    /// …for this long (an administrator can unlock sooner).
    pub lockout: Duration,
    /// Written into every audit entry: which workstation the access came from.
    pub workstation: String,
}

impl StoreConfig {
    /// Keyring from `KARTE_KEYRING`, workstation id from `KARTE_WORKSTATION` or the host name; 15-minute idle
    /// timeout; 5 failures lock for 15 minutes.
    pub fn from_env() -> Result<Self> {
        Ok(StoreConfig {
            keyring: KeyringBackend::from_env()?,
            idle_timeout: Duration::from_secs(15 * 60),
            max_failed_logins: 5,
            lockout: Duration::from_secs(15 * 60),
            workstation: std::env::var("KARTE_WORKSTATION")
                .ok()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(host_name),
        })
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// `KARTE_DATA_DIR`, else the OS's per-user data directory (`~/.local/share/karte` on Linux,
/// `%APPDATA%\Karte\Karte\data` on Windows, `~/Library/Application Support/jp.Karte.Karte` on macOS).
pub fn default_data_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("KARTE_DATA_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    directories::ProjectDirs::from("jp", "Karte", "Karte")
        .map(|p| p.data_dir().to_path_buf())
        .ok_or_else(|| {
            Error::new(
                Code::ConfigInvalid,
                "データの保存先を決められません。KARTE_DATA_DIR を設定してください。",
            )
        })
}

/// Result of [`Store::check_integrity`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegrityReport {
    pub versions: i64,
    /// `(encounter, version)` whose stored content no longer matches its content hash.
    pub altered_versions: Vec<(String, i64)>,
}

/// The open record store of one data directory. `Send + Sync`: the desktop app shares one.
pub struct Store {
    conn: Mutex<Connection>,
    vault: Vault,
    store_id: String,
    cfg: StoreConfig,
    dir: PathBuf,
}

struct UserRow {
    id: i64,
    role: Role,
    password_hash: String,
    totp_secret: zeroize::Zeroizing<Vec<u8>>,
    totp_last_step: i64,
    disabled: bool,
}

impl Store {
    /// Opens the store in `dir`, creating the directory, the key (in the keyring) and the database on first run.
    ///
    /// A directory that ever held a store is never initialised again: once `store-id` exists, a missing, empty or
    /// cut `karte.db` is `store.corrupt` and the file is left exactly as it is (writing a fresh schema over an
    /// emptied file lost every record, with `admin init` then succeeding on top).
    pub fn open(dir: &Path, cfg: StoreConfig) -> Result<Store> {
        create_private_dir(dir)?;
        let db_path = dir.join(DB_FILE);
        if !db_path.exists() {
            create_store(dir, cfg.keyring)?;
        }
        check_db_file(dir)?;
        let store_id = store_id(dir)?;
        let vault = Vault::new(cfg.keyring, &store_id);
        let key = vault.db_key()?.ok_or_else(key_missing)?;
        let conn = db::open(&db_path, Some(&key))?;
        Ok(Store {
            conn: Mutex::new(conn),
            vault,
            store_id,
            cfg,
            dir: dir.to_path_buf(),
        })
    }

    /// [`Store::open`] on [`default_data_dir`] with [`StoreConfig::from_env`].
    pub fn open_default() -> Result<Store> {
        Store::open(&default_data_dir()?, StoreConfig::from_env()?)
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// The random id naming this store's keyring entries ([`vault::key_entry_user`]).
    pub fn store_id(&self) -> &str {
        &self.store_id
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in one IMMEDIATE transaction; audit entries it appends commit with it, and the keyring's chain
    /// head moves only after the commit (a head ahead of the database would be a false alarm).
    fn tx<T>(&self, f: impl FnOnce(&Connection, &mut Audit<'_>) -> Result<T>) -> Result<T> {
        let conn = self.conn();
        conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
        let mut log = Audit {
            workstation: &self.cfg.workstation,
            last: None,
        };
        let out = f(&conn, &mut log).and_then(|v| {
            conn.execute_batch("COMMIT").map_err(db_err)?;
            Ok(v)
        });
        match out {
            Ok(v) => {
                if let Some((seq, hash)) = log.last {
                    self.advance_head(&conn, seq, &hash);
                }
                Ok(v)
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Moves the keyring head forward, but only from a head that the database still agrees with: if the row at
    /// the head's position is gone or different, the head stays as evidence for `audit verify`.
    fn advance_head(&self, conn: &Connection, seq: i64, hash: &str) {
        let agree = match self.vault.head() {
            Ok(Some((hs, hh))) => {
                if hs >= seq {
                    return;
                }
                matches!(audit::hash_at(conn, hs), Ok(Some(h)) if h == hh)
            }
            Ok(None) => seq == 1,
            Err(_) => false,
        };
        if !agree {
            tracing::warn!(
                "audit chain head in the keyring disagrees with the database; head kept"
            );
            return;
        }
        if let Err(e) = self.vault.set_head(seq, hash) {
            tracing::warn!(code = %e.code, "audit chain head not updated");
        }
    }

    /// An audit entry on its own (failed sign-ins, denials): committed even though the caller then fails.
    fn record(&self, e: NewEntry<'_>) -> Result<()> {
        self.tx(|c, log| log.append(c, &e))
    }

    // ----- users and sign-in -----------------------------------------------------------------------------------

    /// True once the first administrator exists.
    pub fn is_initialized(&self) -> Result<bool> {
        let n: i64 = self
            .conn()
            .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
            .map_err(db_err)?;
        Ok(n > 0)
    }

    /// Creates the first administrator. Refused once any account exists, so it cannot be used to take over.
    pub fn init_admin(&self, name: &str, password: &str) -> Result<Enrolment> {
        auth::check_user_name(name)?;
        auth::check_new_password(password)?;
        let hash = auth::hash_password(password)?;
        let secret = auth::new_totp_secret()?;
        let enrol = auth::enrolment(name, Role::Admin, &secret)?;
        self.tx(|c, log| {
            let n: i64 = c
                .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
                .map_err(db_err)?;
            if n > 0 {
                return Err(Error::new(
                    Code::StoreAlreadyInitialized,
                    "最初のシステム管理者は登録済みです。利用者の追加は karte admin user add で行ってください。",
                ));
            }
            insert_user(c, name, Role::Admin, &hash, &secret)?;
            log.append(
                c,
                &NewEntry {
                    user: Some(name),
                    role: Some(Role::Admin.as_str()),
                    action: "admin_init",
                    outcome: "ok",
                    detail: format!("add user={name} role=admin"),
                    ..Default::default()
                },
            )
        })?;
        Ok(enrol)
    }

    /// Password and TOTP code, both required. Failures are audited and counted; the account locks after
    /// `max_failed_logins` in a row. A code is accepted once (RFC 6238 §5.2).
    pub fn login(&self, name: &str, password: &str, totp_code: &str) -> Result<Session> {
        if totp_code.trim().is_empty() {
            return Err(Error::new(
                Code::AuthTotpRequired,
                "認証アプリの6桁の確認コードを入力してください。",
            ));
        }
        let now = now_ms();
        let Some(u) = self.user_row(name)? else {
            if !self.is_initialized()? {
                return Err(Error::new(
                    Code::StoreNotInitialized,
                    "利用者が登録されていません。最初に karte admin init --user 名前 でシステム管理者を作ってください。",
                ));
            }
            // Same work as for a real account, so timing does not reveal which names exist.
            auth::verify_password(password, dummy_hash());
            self.record(NewEntry {
                action: "login",
                outcome: "failed",
                detail: "reason=unknown_user".into(),
                ..Default::default()
            })?;
            return Err(auth_failed());
        };
        let who = NewEntry {
            user: Some(name),
            role: Some(u.role.as_str()),
            action: "login",
            ..Default::default()
        };
        let lock_ms = self.cfg.lockout.as_millis() as i64;
        let max = self.cfg.max_failed_logins;
        // One attempt is counted, in one write transaction, *before* its password is checked: parallel attempts
        // each take their own slot, so at most `max` passwords are ever checked before the lock (a lock read from a
        // row fetched before the slow Argon2 check let 48 of 60 parallel guesses through).
        let slot = self.tx(|c, log| {
            let (failed, locked_until): (i64, i64) = c
                .query_row(
                    "SELECT failed_attempts, locked_until_ms FROM users WHERE id = ?1",
                    [u.id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(db_err)?;
            // An expired lock starts a fresh count; slots taken while attempts are still in flight count as locked.
            let failed = if locked_until != 0 && locked_until <= now {
                0
            } else {
                failed
            };
            if locked_until > now || failed >= max {
                log.append(
                    c,
                    &NewEntry {
                        outcome: "locked",
                        detail: "reason=locked".into(),
                        ..who.clone()
                    },
                )?;
                return Ok(Err(locked_out(if locked_until > now {
                    locked_until - now
                } else {
                    lock_ms
                })));
            }
            c.execute(
                "UPDATE users SET failed_attempts = ?2, locked_until_ms = 0 WHERE id = ?1",
                params![u.id, failed + 1],
            )
            .map_err(db_err)?;
            Ok(Ok(()))
        })?;
        slot?;
        let password_ok = auth::verify_password(password, &u.password_hash);
        let totp = auth::check_totp(&u.totp_secret, totp_code, now, u.totp_last_step);
        if !password_ok || matches!(totp, TotpCheck::Wrong) {
            let reason = if password_ok { "totp" } else { "password" };
            // The attempt was counted above; a failure only decides whether the count now locks. The count is not
            // reset by locking, so slots taken by attempts still in flight stay taken.
            let locked = self.tx(|c, log| {
                let locked = c
                    .execute(
                        "UPDATE users SET locked_until_ms = ?2
                         WHERE id = ?1 AND failed_attempts >= ?3 AND locked_until_ms <= ?4",
                        params![u.id, now + lock_ms, max, now],
                    )
                    .map_err(db_err)?
                    == 1;
                log.append(
                    c,
                    &NewEntry {
                        outcome: "failed",
                        detail: format!(
                            "reason={reason}{}",
                            if locked { " locked=true" } else { "" }
                        ),
                        ..who.clone()
                    },
                )?;
                Ok(locked)
            })?;
            return Err(if locked {
                locked_out(lock_ms)
            } else {
                auth_failed()
            });
        }
        // From here the lock check and the password have both passed: only now may an answer other than
        // `auth.failed` / `auth.locked_out` be given.
        let step = match totp {
            TotpCheck::Fresh(step) => step,
            _ => {
                // A replayed code with the right password is not a guess: the slot it took is given back.
                self.tx(|c, log| {
                    c.execute(
                        "UPDATE users SET failed_attempts = max(failed_attempts - 1, 0) WHERE id = ?1",
                        [u.id],
                    )
                    .map_err(db_err)?;
                    log.append(
                        c,
                        &NewEntry {
                            outcome: "failed",
                            detail: "reason=totp_reused".into(),
                            ..who.clone()
                        },
                    )
                })?;
                return Err(totp_reused());
            }
        };
        if u.disabled {
            self.record(NewEntry {
                outcome: "denied",
                detail: "reason=disabled".into(),
                ..who
            })?;
            return Err(Error::new(
                Code::AuthDisabled,
                "このアカウントは無効にされています。システム管理者に連絡してください。",
            ));
        }
        self.tx(|c, log| {
            // Conditional on the step so that two sign-ins racing with one code cannot both succeed, and on the
            // lock and the disabled flag as they are now: an attempt in flight when others locked the account
            // must not get in.
            let n = c
                .execute(
                    "UPDATE users SET totp_last_step = ?2, failed_attempts = 0
                     WHERE id = ?1 AND totp_last_step < ?2 AND locked_until_ms <= ?3 AND disabled = 0",
                    params![u.id, step, now],
                )
                .map_err(db_err)?;
            if n == 0 {
                let locked_until: i64 = c
                    .query_row(
                        "SELECT locked_until_ms FROM users WHERE id = ?1",
                        [u.id],
                        |r| r.get(0),
                    )
                    .map_err(db_err)?;
                return Err(if locked_until > now {
                    locked_out(locked_until - now)
                } else {
                    totp_reused()
                });
            }
            log.append(
                c,
                &NewEntry {
                    outcome: "ok",
                    ..who.clone()
                },
            )
            .map(|_| ())
        })?;
        Ok(Session {
            user_id: u.id,
            name: name.to_string(),
            role: u.role,
            store_id: self.store_id.clone(),
            last_active_ms: AtomicI64::new(now),
        })
    }

    fn user_row(&self, name: &str) -> Result<Option<UserRow>> {
        self.conn()
            .query_row(
                "SELECT id, role, password_hash, totp_secret, totp_last_step, disabled
                 FROM users WHERE name = ?1",
                [name],
                |r| {
                    Ok(UserRow {
                        id: r.get(0)?,
                        role: r.get::<_, String>(1)?.parse().unwrap_or(Role::Nurse),
                        password_hash: r.get(2)?,
                        totp_secret: zeroize::Zeroizing::new(r.get(3)?),
                        totp_last_step: r.get(4)?,
                        disabled: r.get::<_, i64>(5)? != 0,
                    })
                },
            )
            .optional()
            .map_err(db_err)
    }

    /// Checks, in order: the session belongs to this store, it has not been idle too long, the account is still
    /// enabled, and the matrix allows the action. A denial is audited. On success the idle clock restarts.
    fn authorize(&self, s: &Session, action: Action, encounter: Option<&str>) -> Result<()> {
        self.authorize_as(s, action, encounter, true)
    }

    /// `touch = false` for reads the window makes on its own (the upload badges' refresh): they must not count as the
    /// user's activity, or an open window would never reach the idle sign-out.
    pub(crate) fn authorize_as(
        &self,
        s: &Session,
        action: Action,
        encounter: Option<&str>,
        touch: bool,
    ) -> Result<()> {
        let who = NewEntry {
            user: Some(&s.name),
            role: Some(s.role.as_str()),
            action: action.as_str(),
            encounter,
            ..Default::default()
        };
        if s.store_id != self.store_id {
            return Err(session_expired());
        }
        let now = now_ms();
        if now - s.last_active() > self.cfg.idle_timeout.as_millis() as i64 {
            self.record(NewEntry {
                outcome: "expired",
                detail: "reason=idle".into(),
                ..who
            })?;
            return Err(session_expired());
        }
        let disabled: bool = self
            .conn()
            .query_row(
                "SELECT disabled FROM users WHERE id = ?1",
                [s.user_id],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map_err(db_err)?
            .is_none_or(|d| d != 0);
        if disabled {
            self.record(NewEntry {
                outcome: "denied",
                detail: "reason=disabled".into(),
                ..who
            })?;
            return Err(Error::new(
                Code::AuthDisabled,
                "このアカウントは無効にされています。システム管理者に連絡してください。",
            ));
        }
        if !permits(s.role, action) {
            self.record(NewEntry {
                outcome: "denied",
                ..who
            })?;
            return Err(auth::forbidden(s.role, action));
        }
        if touch {
            s.touch(now);
        }
        Ok(())
    }

    /// Adds an account; the returned enrolment (TOTP secret) is shown to the new user once.
    pub fn add_user(
        &self,
        s: &Session,
        name: &str,
        role: Role,
        password: &str,
    ) -> Result<Enrolment> {
        self.authorize(s, Action::ManageUsers, None)?;
        auth::check_user_name(name)?;
        auth::check_new_password(password)?;
        let hash = auth::hash_password(password)?;
        let secret = auth::new_totp_secret()?;
        let enrol = auth::enrolment(name, role, &secret)?;
        self.tx(|c, log| {
            let exists: bool = c
                .query_row("SELECT 1 FROM users WHERE name = ?1", [name], |_| Ok(()))
                .optional()
                .map_err(db_err)?
                .is_some();
            if exists {
                return Err(Error::new(
                    Code::UserExists,
                    "その利用者名は既に使われています。別の名前にしてください。",
                ));
            }
            insert_user(c, name, role, &hash, &secret)?;
            log.append(
                c,
                &s.entry(
                    Action::ManageUsers,
                    None,
                    None,
                    format!("add user={name} role={role}"),
                ),
            )
        })?;
        Ok(enrol)
    }

    pub fn list_users(&self, s: &Session) -> Result<Vec<UserInfo>> {
        self.authorize(s, Action::ManageUsers, None)?;
        let now = now_ms();
        self.tx(|c, log| {
            log.append(c, &s.entry(Action::ManageUsers, None, None, "list".into()))?;
            let mut st = c
                .prepare("SELECT name, role, disabled, locked_until_ms, created_at_ms FROM users ORDER BY name")
                .map_err(db_err)?;
            let rows = st
                .query_map([], |r| {
                    Ok(UserInfo {
                        name: r.get(0)?,
                        role: r.get::<_, String>(1)?.parse().unwrap_or(Role::Nurse),
                        disabled: r.get::<_, i64>(2)? != 0,
                        locked: r.get::<_, i64>(3)? > now,
                        created_at: iso8601(r.get(4)?),
                    })
                })
                .map_err(db_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
        })
    }

    /// Disables an account (it can no longer sign in, and its open sessions stop working). The last enabled
    /// administrator cannot be disabled, or nobody could manage accounts again.
    pub fn disable_user(&self, s: &Session, name: &str) -> Result<()> {
        self.authorize(s, Action::ManageUsers, None)?;
        self.tx(|c, log| {
            let role = user_role(c, name)?;
            if role == Role::Admin {
                let admins: i64 = c
                    .query_row(
                        "SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0 AND name <> ?1",
                        [name],
                        |r| r.get(0),
                    )
                    .map_err(db_err)?;
                if admins == 0 {
                    return Err(Error::new(
                        Code::UserLastAdmin,
                        "最後の有効なシステム管理者は無効にできません。先に別の管理者を追加してください。",
                    ));
                }
            }
            c.execute("UPDATE users SET disabled = 1 WHERE name = ?1", [name])
                .map_err(db_err)?;
            log.append(c, &s.entry(Action::ManageUsers, None, None, format!("disable user={name}")))
                .map(|_| ())
        })
    }

    /// Lifts a lock-out before it expires.
    pub fn unlock_user(&self, s: &Session, name: &str) -> Result<()> {
        self.authorize(s, Action::ManageUsers, None)?;
        self.tx(|c, log| {
            user_role(c, name)?;
            c.execute(
                "UPDATE users SET locked_until_ms = 0, failed_attempts = 0 WHERE name = ?1",
                [name],
            )
            .map_err(db_err)?;
            log.append(
                c,
                &s.entry(
                    Action::ManageUsers,
                    None,
                    None,
                    format!("unlock user={name}"),
                ),
            )
            .map(|_| ())
        })
    }

    // ----- records -----------------------------------------------------------------------------------------------

    /// Drafting inside the signed-in session: only a physician may send a dictation to a model, and every draft
    /// is audited (who, when, this workstation, the document kind, the engine that wrote it: `rules`, `local`
    /// (この端末) or `remote` (院内サーバー); its outcome or error code; never any text). The front ends pass the
    /// drafting call in, so the permission check, the draft and the audit entry cannot be separated.
    pub fn draft_with(
        &self,
        s: &Session,
        kind: &str,
        draft: impl FnOnce() -> Result<DraftOutput>,
    ) -> Result<DraftOutput> {
        self.authorize(s, Action::Dictate, None)?;
        let out = draft();
        let (outcome, detail) = match &out {
            Ok(d) => (
                "ok",
                format!(
                    "kind={} engine={}{}",
                    d.kind,
                    d.engine.kind,
                    if d.engine.fallback_reason.is_some() {
                        " fallback=rules"
                    } else {
                        ""
                    }
                ),
            ),
            Err(e) => (e.code.as_str(), format!("kind={kind}")),
        };
        self.record_dictation(s, outcome, detail)?;
        out
    }

    /// One `dictate` entry, whether the dictation was typed or heard.
    fn record_dictation(&self, s: &Session, outcome: &str, detail: String) -> Result<()> {
        self.record(recordings::entry(s, outcome, detail))
    }

    /// A dictation recording heard inside the signed-in session: the same permission as typing a dictation, and an
    /// audit entry (where it was heard, how long; never the words). `hear` runs only when the permission holds.
    pub fn transcribe_with(
        &self,
        s: &Session,
        hear: impl FnOnce() -> Result<karte_ipc::Dictated>,
    ) -> Result<karte_ipc::Dictated> {
        self.authorize(s, Action::Dictate, None)?;
        let out = hear();
        let (outcome, detail) = match &out {
            Ok(d) => (
                "ok",
                format!(
                    "audio engine={} speech_s={:.1}",
                    d.engine.as_str(),
                    d.speech_s
                ),
            ),
            Err(e) => (e.code.as_str(), "audio".to_string()),
        };
        self.record_dictation(s, outcome, detail)?;
        out
    }

    /// Stores a dictation and its draft as a new encounter (version 1) and returns the encounter id.
    pub fn save_draft(
        &self,
        s: &Session,
        patient_ref: &str,
        date: Option<ClinicalDate>,
        dictation: &str,
        draft: &DraftOutput,
    ) -> Result<String> {
        non_empty(dictation)?;
        self.save_new(s, patient_ref, date, Some(dictation), draft)
    }

    /// Stores a document made from signed notes (退院時サマリー, 診療情報提供書) as a new encounter of the patient,
    /// unsigned. It has no dictation: its sentences cite the note versions they came from, in the stored draft.
    pub fn save_document(
        &self,
        s: &Session,
        patient_ref: &str,
        date: ClinicalDate,
        draft: &DraftOutput,
    ) -> Result<String> {
        let kind = karte_core::document::kind(&draft.kind)?;
        if kind.sources != karte_core::document::SourceKind::Notes {
            return Err(Error::new(
                Code::DocumentInvalid,
                "口述から作成する文書は、口述と一緒に保存してください。",
            ));
        }
        self.save_new(s, patient_ref, Some(date), None, draft)
    }

    fn save_new(
        &self,
        s: &Session,
        patient_ref: &str,
        date: Option<ClinicalDate>,
        dictation: Option<&str>,
        draft: &DraftOutput,
    ) -> Result<String> {
        self.authorize(s, Action::Draft, None)?;
        let today = clock::today();
        let date = date.unwrap_or(today).not_after(today)?;
        let patient_ref = patient_ref.trim();
        if patient_ref.is_empty() {
            return Err(Error::new(
                Code::InputEmpty,
                "患者の識別子（--patient）を指定してください。",
            ));
        }
        let id = new_encounter_id()?;
        // The draft crosses IPC from the window: it must be a document of a kind this build has, and is stored
        // (sections and draft JSON alike) in that kind's section order.
        let mut draft = draft.clone();
        draft.sections = std::mem::take(&mut draft.sections)
            .conform(karte_core::document::kind(&draft.kind)?)?;
        let document = draft.document();
        let note = document.render();
        let json = serde_json::to_string(&draft)
            .map_err(|_| Error::new(Code::Internal, "下書きを保存できません。"))?;
        let sha = records::content_hash(&note, dictation, Some(&json), None);
        let now = now_ms();
        self.tx(|c, log| {
            c.execute(
                "INSERT INTO encounters (id, patient_ref, created_by, created_at_ms, clinical_date)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, patient_ref, s.user_id, now, date.to_string()],
            )
            .map_err(db_err)?;
            insert_version(
                c,
                &id,
                1,
                VersionKind::Draft,
                s.user_id,
                now,
                &note,
                &document,
                dictation,
                Some(&json),
                None,
                &sha,
            )?;
            log.append(
                c,
                &s.entry(
                    Action::Draft,
                    Some(&id),
                    Some(1),
                    format!("sha256={sha} date={date}"),
                ),
            )
        })?;
        Ok(id)
    }

    /// A new version of an unsigned record (a signed one changes only by [`Store::amend`]).
    /// `text` is the note as a physician types it: the document kind's headings (or 「S)」「【O】」), a sentence per
    /// line; it is stored as its sections and their rendering.
    pub fn edit(&self, s: &Session, encounter: &str, text: &str) -> Result<i64> {
        self.authorize(s, Action::Edit, Some(encounter))?;
        non_empty(text)?;
        let now = now_ms();
        self.tx(|c, log| {
            let (latest, signed) = latest_version(c, encounter)?;
            if signed {
                return Err(Error::new(
                    Code::RecordSigned,
                    "署名済みの記録は編集できません。karte amend で理由を添えて修正してください。",
                ));
            }
            let document = retyped(c, encounter, text)?;
            let note = document.render();
            let sha = records::content_hash(&note, None, None, None);
            let v = latest + 1;
            insert_version(
                c,
                encounter,
                v,
                VersionKind::Edit,
                s.user_id,
                now,
                &note,
                &document,
                None,
                None,
                None,
                &sha,
            )?;
            log.append(
                c,
                &s.entry(
                    Action::Edit,
                    Some(encounter),
                    Some(v),
                    format!("sha256={sha}"),
                ),
            )?;
            Ok(v)
        })
    }

    /// Signs `expected_version`, which must still be the latest: a version added meanwhile (another window, another
    /// workstation) would otherwise be signed unseen, so that is refused with `record.changed`. Signing locks the
    /// record and queues the document for upload in the same transaction. Returns the version signed.
    pub fn sign(&self, s: &Session, encounter: &str, expected_version: i64) -> Result<i64> {
        self.authorize(s, Action::Sign, Some(encounter))?;
        let now = now_ms();
        self.tx(|c, log| {
            let (latest, signed) = latest_version(c, encounter)?;
            if signed {
                return Err(Error::new(
                    Code::RecordSigned,
                    "この記録の最新版は署名済みです。修正は karte amend で行ってください。",
                ));
            }
            if latest != expected_version {
                return Err(Error::new(
                    Code::RecordChanged,
                    format!(
                        "署名しようとした版（第{expected_version}版）の後に、この記録は変更されています（最新は第{latest}版）。\
                         最新の内容を確認してから署名してください。"
                    ),
                ));
            }
            c.execute(
                "INSERT INTO signatures (encounter_id, version, signer_id, signed_at_ms) VALUES (?1, ?2, ?3, ?4)",
                params![encounter, latest, s.user_id, now],
            )
            .map_err(db_err)?;
            let sha: String = c
                .query_row(
                    "SELECT content_sha256 FROM versions WHERE encounter_id = ?1 AND version = ?2",
                    params![encounter, latest],
                    |r| r.get(0),
                )
                .map_err(db_err)?;
            outbox::enqueue(c, encounter, latest, now)?;
            log.append(c, &s.entry(Action::Sign, Some(encounter), Some(latest), format!("sha256={sha}")))?;
            Ok(latest)
        })
    }

    /// After signing: a new version with the reason, signed by its author in the same transaction.
    pub fn amend(&self, s: &Session, encounter: &str, text: &str, reason: &str) -> Result<i64> {
        self.authorize(s, Action::Amend, Some(encounter))?;
        if reason.trim().is_empty() {
            return Err(Error::new(
                Code::RecordReasonRequired,
                "署名後の修正には理由（--reason）が必要です。",
            ));
        }
        non_empty(text)?;
        let reason = reason.trim();
        let now = now_ms();
        self.tx(|c, log| {
            let (latest, signed) = latest_version(c, encounter)?;
            if !signed {
                return Err(Error::new(
                    Code::RecordNotSigned,
                    "この記録はまだ署名されていません。署名前の変更は編集で行ってください。",
                ));
            }
            let document = retyped(c, encounter, text)?;
            let note = document.render();
            let sha = records::content_hash(&note, None, None, Some(reason));
            let v = latest + 1;
            insert_version(c, encounter, v, VersionKind::Amendment, s.user_id, now, &note, &document, None, None, Some(reason), &sha)?;
            c.execute(
                "INSERT INTO signatures (encounter_id, version, signer_id, signed_at_ms) VALUES (?1, ?2, ?3, ?4)",
                params![encounter, v, s.user_id, now],
            )
            .map_err(db_err)?;
            outbox::enqueue(c, encounter, v, now)?;
            log.append(c, &s.entry(Action::Amend, Some(encounter), Some(v), format!("sha256={sha}")))?;
            Ok(v)
        })
    }

    /// Accepts or rejects one of the draft's test suggestions. A rejection needs a comment (it is the useful
    /// signal for improving the rules and the model).
    pub fn review(
        &self,
        s: &Session,
        encounter: &str,
        suggestion: i64,
        decision: Decision,
        comment: &str,
    ) -> Result<()> {
        self.authorize(s, Action::ReviewSuggestions, Some(encounter))?;
        if decision == Decision::Reject && comment.trim().is_empty() {
            return Err(Error::new(
                Code::InputEmpty,
                "却下する理由をコメント（--comment）に書いてください。",
            ));
        }
        let now = now_ms();
        self.tx(|c, log| {
            let json: Option<String> = c
                .query_row(
                    "SELECT draft_json FROM versions WHERE encounter_id = ?1 AND version = 1",
                    [encounter],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?
                .ok_or_else(not_found)?;
            let count = json
                .and_then(|j| serde_json::from_str::<DraftOutput>(&j).ok())
                .map_or(0, |d| d.suggestions.len() as i64);
            if suggestion < 1 || suggestion > count {
                return Err(Error::new(
                    Code::RecordSuggestionNotFound,
                    format!("検査提案の番号は 1〜{count} です（karte history で確認できます）。"),
                ));
            }
            c.execute(
                "INSERT INTO reviews (encounter_id, suggestion, decision, comment, reviewer_id, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![encounter, suggestion, decision.as_str(), comment.trim(), s.user_id, now],
            )
            .map_err(db_err)?;
            log.append(
                c,
                &s.entry(
                    Action::ReviewSuggestions,
                    Some(encounter),
                    None,
                    format!("suggestion={suggestion} decision={}", decision.as_str()),
                ),
            )
            .map(|_| ())
        })
    }

    /// The whole record: every version with its text, signatures, and the suggestions with their reviews.
    pub fn history(&self, s: &Session, encounter: &str) -> Result<EncounterView> {
        self.authorize(s, Action::View, Some(encounter))?;
        self.tx(|c, log| {
            let view = load_encounter(c, encounter)?;
            log.append(
                c,
                &s.entry(
                    Action::View,
                    Some(encounter),
                    Some(view.latest().version),
                    "history".into(),
                ),
            )?;
            Ok(view)
        })
    }

    /// Encounters, newest clinical date first; on one day, the last saved first.
    pub fn encounters(&self, s: &Session) -> Result<Vec<EncounterSummary>> {
        self.authorize(s, Action::View, None)?;
        self.tx(|c, log| {
            log.append(c, &s.entry(Action::View, None, None, "list".into()))?;
            let mut st = c
                .prepare(
                    "SELECT e.id, e.patient_ref, e.created_at_ms, e.clinical_date,
                            (SELECT max(version) FROM versions v WHERE v.encounter_id = e.id) AS latest,
                            (SELECT count(*) FROM signatures g WHERE g.encounter_id = e.id AND g.version =
                                (SELECT max(version) FROM versions v WHERE v.encounter_id = e.id)),
                            (SELECT draft_json FROM versions v WHERE v.encounter_id = e.id AND v.version = 1),
                            (SELECT count(DISTINCT suggestion) FROM reviews r WHERE r.encounter_id = e.id)
                     FROM encounters e ORDER BY e.clinical_date DESC, e.created_at_ms DESC, e.id",
                )
                .map_err(db_err)?;
            let rows = st
                .query_map([], |r| {
                    let json: Option<String> = r.get(6)?;
                    let first = json.and_then(|j| serde_json::from_str::<DraftOutput>(&j).ok());
                    let total = first.as_ref().map_or(0, |d| d.suggestions.len() as i64);
                    // A record kept without its draft (imported text) is a progress note, as its text is read.
                    let kind = first.map_or_else(
                        || karte_core::document::default_kind().id.clone(),
                        |d| d.kind,
                    );
                    Ok(EncounterSummary {
                        id: r.get(0)?,
                        patient_ref: r.get(1)?,
                        created_at: iso8601(r.get(2)?),
                        clinical_date: stored_date(r, 3)?,
                        kind,
                        latest_version: r.get(4)?,
                        signed: r.get::<_, i64>(5)? > 0,
                        pending_suggestions: (total - r.get::<_, i64>(7)?).max(0),
                    })
                })
                .map_err(db_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
        })
    }

    /// The floor draft of a document made from the patient's signed notes: inputs and range checked first (a typing
    /// error reads no note), then [`Store::signed_notes`] (audited per note), then `karte_core::compose`. What the
    /// CLI and the window both call.
    pub fn draft_document(&self, s: &Session, req: &DocumentRequest) -> Result<DocumentDraft> {
        use karte_core::compose;
        let kind = karte_core::document::kind(&req.kind)?;
        compose::check_inputs(kind, &req.inputs)?;
        let (from, to) = compose::notes_range(kind, &req.inputs, req.from, req.to, today())?;
        let notes = self.signed_notes(s, &req.patient, from, to)?;
        let sources: Vec<compose::SourceNote> = notes.iter().map(SignedNote::source).collect();
        let draft = compose::compose(kind, &sources, &req.inputs)?;
        Ok(DocumentDraft {
            draft,
            notes,
            date: to,
        })
    }

    /// Every signed note of the patient up to today, as [`Store::signed_notes`] reads them: what the window lists
    /// before a document is drafted, and what its dates are prefilled from (`compose::prefill_range`).
    pub fn patient_notes(&self, s: &Session, patient_ref: &str) -> Result<Vec<SignedNote>> {
        self.signed_notes(s, patient_ref, ClinicalDate::from_ymd(1900, 1, 1)?, today())
    }

    /// The sources of a document built from a patient's notes (discharge summary, referral letter): for each of
    /// the patient's encounters whose clinical date lies in `[from, to]`, its latest signed version (an amendment
    /// replaces what it amends; a note never signed does not count), in clinical-date order, then saving order.
    /// Documents made from notes themselves are not sources.
    ///
    /// Building a document from notes is drafting, so only a physician may (permission `draft`). Each note read is
    /// an audit entry on its encounter (`view`, `sources from=… to=…`), in the same transaction as the read.
    /// `from` after `to` is `input.date_invalid`; no signed note in the range, an unknown patient included, is
    /// `document.no_sources` (the two are not told apart, so the answer says nothing about who is a patient).
    pub fn signed_notes(
        &self,
        s: &Session,
        patient_ref: &str,
        from: ClinicalDate,
        to: ClinicalDate,
    ) -> Result<Vec<SignedNote>> {
        self.authorize(s, Action::Draft, None)?;
        let (from, to) = ClinicalDate::range(from, to)?;
        self.tx(|c, log| {
            let notes = signed_notes_in(c, patient_ref.trim(), from, to)?;
            if notes.is_empty() {
                return Err(Error::new(
                    Code::DocumentNoSources,
                    "指定した期間に、この患者の署名済みの記録がありません。患者 ID と期間を確認し、\
                     記録が署名されているか確かめてください。",
                ));
            }
            for n in &notes {
                let detail = format!("sources from={from} to={to}");
                log.append(
                    c,
                    &s.entry(Action::View, Some(&n.encounter), Some(n.version), detail),
                )?;
            }
            Ok(notes)
        })
    }

    // ----- audit -------------------------------------------------------------------------------------------------

    /// Every audit entry, oldest first (this read is itself recorded first).
    pub fn audit_entries(&self, s: &Session) -> Result<Vec<AuditEntry>> {
        self.authorize(s, Action::ReadAuditLog, None)?;
        self.tx(|c, log| {
            log.append(
                c,
                &s.entry(Action::ReadAuditLog, None, None, "export".into()),
            )?;
            audit::entries(c)
        })
    }

    /// Checks the whole chain against itself and against the head kept in the keyring.
    pub fn verify_audit(&self, s: &Session) -> Result<AuditReport> {
        self.authorize(s, Action::ReadAuditLog, None)?;
        self.tx(|c, log| {
            log.append(
                c,
                &s.entry(Action::ReadAuditLog, None, None, "verify".into()),
            )
        })?;
        // Entries and head under the write lock, so that no other process commits (and moves the head) between
        // the two reads: that would look like a missing entry.
        let (entries, head) = {
            let conn = self.conn();
            conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
            let read = audit::entries(&conn).and_then(|e| Ok((e, self.vault.head()?)));
            let _ = conn.execute_batch(if read.is_ok() { "COMMIT" } else { "ROLLBACK" });
            read?
        };
        Ok(audit::verify_chain(
            &entries,
            head.as_ref().map(|(s, h)| (*s, h.as_str())),
        ))
    }

    /// Page-level (SQLCipher HMAC) and structural checks of the whole file, then every version's content against
    /// its hash. Reads no text out; needs no session.
    pub fn check_integrity(&self) -> Result<IntegrityReport> {
        let c = self.conn();
        let mut st = c.prepare("PRAGMA cipher_integrity_check").map_err(db_err)?;
        let problems = st
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(db_err)?
            .count();
        drop(st);
        if problems > 0 {
            return Err(db_err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                None,
            )));
        }
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(db_err)?;
        if ok != "ok" {
            return Err(db_err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                None,
            )));
        }
        let mut st = c
            .prepare(
                "SELECT encounter_id, version, note_text, dictation, draft_json, reason, content_sha256, document
                 FROM versions ORDER BY encounter_id, version",
            )
            .map_err(db_err)?;
        let mut versions = 0;
        let mut altered = Vec::new();
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ))
            })
            .map_err(db_err)?;
        for row in rows {
            let (enc, v, note, dict, json, reason, sha, document) = row.map_err(db_err)?;
            versions += 1;
            if records::content_hash(&note, dict.as_deref(), json.as_deref(), reason.as_deref())
                != sha
                || checked_document(&note, json.as_deref(), document.as_deref()).is_none()
            {
                altered.push((enc, v));
            }
        }
        Ok(IntegrityReport {
            versions,
            altered_versions: altered,
        })
    }

    // ----- feedback ----------------------------------------------------------------------------------------------

    /// Signed records as preference data (draft vs. what the physician signed, suggestion reviews). All free text
    /// goes through `pseudonymise` first; without one the export is refused, because clinical text must not leave
    /// the store with names in it.
    pub fn export_feedback(
        &self,
        s: &Session,
        pseudonymise: Option<&dyn Fn(&str) -> String>,
    ) -> Result<Vec<FeedbackRecord>> {
        self.authorize(s, Action::Export, None)?;
        let Some(pseudonymise) = pseudonymise else {
            return Err(Error::new(
                Code::FeedbackPseudonymiserMissing,
                "個人情報の仮名化機能が組み込まれていないため、フィードバックを書き出せません。\
                 仮名化に対応した版の Karte を使ってください。",
            ));
        };
        self.tx(|c, log| {
            let ids: Vec<String> = {
                let mut st = c
                    .prepare("SELECT id FROM encounters ORDER BY created_at_ms, id")
                    .map_err(db_err)?;
                let rows = st.query_map([], |r| r.get(0)).map_err(db_err)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)?
            };
            let mut out = Vec::new();
            for id in ids {
                let view = load_encounter(c, &id)?;
                if let Some(rec) = feedback::record(&view, pseudonymise) {
                    out.push(rec);
                }
            }
            log.append(
                c,
                &s.entry(
                    Action::Export,
                    None,
                    None,
                    format!("feedback records={}", out.len()),
                ),
            )?;
            Ok(out)
        })
    }
}

/// The benchmark's handle on the store's own statements, so that SQLCipher and plain SQLite are compared on exactly
/// what a save and a read execute (Store itself always has a key, so it cannot be the baseline). Not an API.
#[doc(hidden)]
pub mod bench {
    use super::*;

    /// A physician row to author versions.
    pub fn add_author(c: &Connection) -> Result<i64> {
        insert_user(c, "bench", Role::Physician, "x", &[0u8; 20])?;
        Ok(c.last_insert_rowid())
    }

    /// What [`Store::save_draft`] writes: the encounter, version 1, one audit entry.
    pub fn save_draft(
        c: &Connection,
        id: &str,
        author: i64,
        note: &str,
        dictation: &str,
        draft_json: &str,
    ) -> Result<()> {
        let sha = records::content_hash(note, Some(dictation), Some(draft_json), None);
        let now = now_ms();
        c.execute(
            "INSERT INTO encounters (id, patient_ref, created_by, created_at_ms, clinical_date)
             VALUES (?1, 'P-bench', ?2, ?3, ?4)",
            params![id, author, now, clock::local_date(now).to_string()],
        )
        .map_err(db_err)?;
        let document = karte_core::document::recover(
            karte_core::document::default_kind(),
            note,
            Some(draft_json),
        );
        insert_version(
            c,
            id,
            1,
            VersionKind::Draft,
            author,
            now,
            note,
            &document,
            Some(dictation),
            Some(draft_json),
            None,
            &sha,
        )?;
        let mut log = Audit {
            workstation: "bench",
            last: None,
        };
        log.append(
            c,
            &NewEntry {
                action: "draft",
                outcome: "ok",
                encounter: Some(id),
                version: Some(1),
                detail: format!("sha256={sha}"),
                ..Default::default()
            },
        )
    }

    /// What [`Store::edit`] writes.
    pub fn edit(c: &Connection, id: &str, author: i64, note: &str) -> Result<i64> {
        let (latest, _) = latest_version(c, id)?;
        let document = retyped(c, id, note)?;
        let note = document.render();
        let sha = records::content_hash(&note, None, None, None);
        insert_version(
            c,
            id,
            latest + 1,
            VersionKind::Edit,
            author,
            now_ms(),
            &note,
            &document,
            None,
            None,
            None,
            &sha,
        )?;
        let mut log = Audit {
            workstation: "bench",
            last: None,
        };
        log.append(
            c,
            &NewEntry {
                action: "edit",
                outcome: "ok",
                encounter: Some(id),
                version: Some(latest + 1),
                detail: format!("sha256={sha}"),
                ..Default::default()
            },
        )?;
        Ok(latest + 1)
    }

    /// What [`Store::history`] reads.
    pub fn history(c: &Connection, id: &str) -> Result<EncounterView> {
        load_encounter(c, id)
    }

    pub fn latest(c: &Connection, id: &str) -> Result<(i64, bool)> {
        latest_version(c, id)
    }

    /// What [`Store::sign`] writes (signature, audit entry) with or without the outbox row: the benchmark's
    /// measure of what queueing for upload adds to signing. The caller commits.
    pub fn sign(c: &Connection, id: &str, version: i64, signer: i64, enqueue: bool) -> Result<()> {
        let now = now_ms();
        c.execute(
            "INSERT INTO signatures (encounter_id, version, signer_id, signed_at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![id, version, signer, now],
        )
        .map_err(db_err)?;
        let sha: String = c
            .query_row(
                "SELECT content_sha256 FROM versions WHERE encounter_id = ?1 AND version = ?2",
                params![id, version],
                |r| r.get(0),
            )
            .map_err(db_err)?;
        if enqueue {
            outbox::enqueue(c, id, version, now)?;
        }
        let mut log = Audit {
            workstation: "bench",
            last: None,
        };
        log.append(
            c,
            &NewEntry {
                action: "sign",
                outcome: "ok",
                encounter: Some(id),
                version: Some(version),
                detail: format!("sha256={sha}"),
                ..Default::default()
            },
        )
    }
}

/// Collects the newest audit entry of a transaction for the keyring head.
struct Audit<'a> {
    workstation: &'a str,
    last: Option<(i64, String)>,
}

impl Audit<'_> {
    fn append(&mut self, c: &Connection, e: &NewEntry<'_>) -> Result<()> {
        let head = audit::append(c, self.workstation, now_ms(), e)?;
        self.last = Some(head);
        Ok(())
    }
}

impl Session {
    fn entry<'a>(
        &'a self,
        action: Action,
        encounter: Option<&'a str>,
        version: Option<i64>,
        detail: String,
    ) -> NewEntry<'a> {
        NewEntry {
            user: Some(&self.name),
            role: Some(self.role.as_str()),
            action: action.as_str(),
            encounter,
            version,
            outcome: "ok",
            detail,
        }
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let io = |_| {
        Error::new(
            Code::StoreIo,
            format!(
                "データディレクトリ {} を作れません。KARTE_DATA_DIR と権限を確認してください。",
                dir.display()
            ),
        )
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

/// The database while it is being created; renamed to [`DB_FILE`] only once its schema is complete.
const CREATING_FILE: &str = "karte.db.creating";
/// Held while a store is created, so that two first runs at once (desktop and CLI) create one store.
const CREATE_LOCK_FILE: &str = "karte.db.lock";

fn dir_io(dir: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |_| {
        Error::new(
            Code::StoreIo,
            format!(
                "{} に書き込めません。権限と空き容量を確認してください。",
                dir.display()
            ),
        )
    }
}

/// First run: id, key and a complete schema, published in an order that a crash at any point can resume.
///
/// The database is built as [`CREATING_FILE`] and renamed into place last, so [`DB_FILE`] either does not exist or
/// is a whole store. `store-id` without [`DB_FILE`] therefore means a store was lost (refused), unless
/// [`CREATING_FILE`] shows that the crash was in the middle of this function (resumed).
fn create_store(dir: &Path, keyring: KeyringBackend) -> Result<()> {
    let io = dir_io(dir);
    let lock = std::fs::File::create(dir.join(CREATE_LOCK_FILE)).map_err(&io)?;
    lock.lock().map_err(&io)?;
    let db_path = dir.join(DB_FILE);
    let creating = dir.join(CREATING_FILE);
    if db_path.exists() {
        return Ok(()); // another process created it while we waited for the lock
    }
    let id_path = dir.join(STORE_ID_FILE);
    if id_path.exists() && !creating.exists() {
        return Err(Error::new(
            Code::StoreCorrupt,
            format!(
                "記録データベース {} がありません（{} があるので、ここには記録がありました）。\
                 新しく作り直すと記録が失われるため開きません。karte admin restore でバックアップから復元してください。",
                db_path.display(),
                id_path.display()
            ),
        ));
    }
    remove_db_files(&creating);
    let id = match std::fs::read_to_string(&id_path) {
        Ok(_) => store_id(dir)?,
        Err(_) => {
            let mut raw = [0u8; 16];
            getrandom::fill(&mut raw)
                .map_err(|_| Error::new(Code::Internal, "乱数を取得できません。"))?;
            hex::encode(raw)
        }
    };
    let vault = Vault::new(keyring, &id);
    let key = match vault.db_key()? {
        Some(k) => k,
        None => DbKey::generate()?,
    };
    // The marker first: from here a crash leaves CREATING_FILE, which tells the next run to resume.
    std::fs::File::create(&creating).map_err(&io)?;
    drop(db::open(&creating, Some(&key))?);
    if !id_path.exists() {
        write_synced(&id_path, id.as_bytes()).map_err(&io)?;
    }
    vault.store_db_key(&key)?;
    std::fs::File::open(&creating)
        .and_then(|f| f.sync_all())
        .map_err(&io)?;
    std::fs::rename(&creating, &db_path).map_err(&io)?;
    sync_dir(dir);
    Ok(())
}

/// Removes a database file that was never published, with its WAL and shared-memory files; absent is fine.
fn remove_db_files(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// Refuses a database file that cannot be a whole store: empty, or not a whole number of pages. Such damage is
/// `store.corrupt` with a restore hint, never a wrong key (which would send IT looking for a lost keyring entry).
fn check_db_file(dir: &Path) -> Result<()> {
    let path = dir.join(DB_FILE);
    let meta = std::fs::metadata(&path).map_err(|_| {
        Error::new(
            Code::StoreIo,
            format!(
                "記録データベース {} を読めません。権限を確認してください。",
                path.display()
            ),
        )
    })?;
    if !meta.is_file() {
        return Err(Error::new(
            Code::StoreIo,
            format!(
                "{} がファイルではありません。データディレクトリを確認してください。",
                path.display()
            ),
        ));
    }
    let damage = if meta.len() == 0 {
        "空（0 バイト）です"
    } else if meta.len() % db::PAGE_SIZE != 0 {
        "途中で切れています"
    } else {
        return Ok(());
    };
    Err(db::corrupt(&format!(
        "記録データベース {} が{damage}。コピーの失敗やディスク不足が考えられます。ファイルはそのままにしてあります。\
         karte admin restore でバックアップから復元してください。",
        path.display()
    )))
}

/// Writes a small file under a temporary name, syncs it and renames it into place: never half written.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Makes a rename in `dir` durable (a no-op where directories cannot be opened, such as Windows).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The store id of an existing store.
fn store_id(dir: &Path) -> Result<String> {
    let path = dir.join(STORE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() == 32 && s.trim().bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(s.trim().to_string())
        }
        Ok(_) => Err(Error::new(
            Code::StoreCorrupt,
            format!("{} の内容が正しくありません。システム管理者に連絡してください。", path.display()),
        )),
        Err(_) => Err(Error::new(
            Code::StoreKeyMissing,
            format!(
                "{} がないため、キーリングの鍵を特定できません。データディレクトリを丸ごと復元してください。",
                path.display()
            ),
        )),
    }
}

fn key_missing() -> Error {
    Error::new(
        Code::StoreKeyMissing,
        "この記録データベースの鍵がキーリングにありません。別の端末やアカウントからコピーしたデータは開けません。\
         この端末で作ったデータなら、キーリングが初期化されていないかシステム管理者に確認してください。",
    )
}

fn dummy_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| auth::hash_password("karte-no-such-user").unwrap_or_default())
}

fn auth_failed() -> Error {
    Error::new(
        Code::AuthFailed,
        "利用者名、パスワード、確認コードのいずれかが違います。続けて失敗するとアカウントがロックされます。",
    )
}

fn totp_reused() -> Error {
    Error::new(
        Code::AuthTotpReused,
        "この確認コードは使用済みです。認証アプリに次のコードが表示されてから入力してください。",
    )
}

fn locked_out(remaining_ms: i64) -> Error {
    let minutes = (remaining_ms + 59_999) / 60_000;
    Error::new(
        Code::AuthLockedOut,
        format!(
            "サインインの失敗が続いたため、このアカウントはロックされています。約{minutes}分後に再度試すか、システム管理者にロック解除を依頼してください。"
        ),
    )
}

fn session_expired() -> Error {
    Error::new(
        Code::AuthSessionExpired,
        "一定時間操作がなかったため、サインインの有効期限が切れました。もう一度サインインしてください。",
    )
}

fn not_found() -> Error {
    Error::new(
        Code::RecordNotFound,
        "その ID の診療記録はありません。ID を確認してください。",
    )
}

/// A stored `encounters.clinical_date`: the column's CHECK and triggers only let `YYYY-MM-DD` in, so a value
/// that does not read back is damage (reported as a conversion failure, i.e. `internal`, never with its value).
fn stored_date(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<ClinicalDate> {
    let text: String = r.get(i)?;
    text.parse().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            "clinical date".into(),
        )
    })
}

fn non_empty(text: &str) -> Result<()> {
    if text.trim().is_empty() {
        Err(Error::new(Code::InputEmpty, "本文が空です。"))
    } else {
        Ok(())
    }
}

fn new_encounter_id() -> Result<String> {
    let mut raw = [0u8; 6];
    getrandom::fill(&mut raw).map_err(|_| Error::new(Code::Internal, "乱数を取得できません。"))?;
    Ok(format!("E{}", hex::encode_upper(raw)))
}

fn insert_user(c: &Connection, name: &str, role: Role, hash: &str, secret: &[u8]) -> Result<()> {
    c.execute(
        "INSERT INTO users (name, role, password_hash, totp_secret, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![name, role.as_str(), hash, secret, now_ms()],
    )
    .map_err(db_err)?;
    Ok(())
}

fn user_role(c: &Connection, name: &str) -> Result<Role> {
    c.query_row("SELECT role FROM users WHERE name = ?1", [name], |r| {
        r.get::<_, String>(0)
    })
    .optional()
    .map_err(db_err)?
    .and_then(|r| r.parse().ok())
    .ok_or_else(|| Error::new(Code::UserNotFound, "その利用者は登録されていません。"))
}

#[allow(clippy::too_many_arguments)]
fn insert_version(
    c: &Connection,
    encounter: &str,
    version: i64,
    kind: VersionKind,
    author: i64,
    now: i64,
    note: &str,
    document: &Document,
    dictation: Option<&str>,
    draft_json: Option<&str>,
    reason: Option<&str>,
    sha: &str,
) -> Result<()> {
    debug_assert_eq!(note, document.render());
    let document = serde_json::to_string(document)
        .map_err(|_| Error::new(Code::Internal, "記録を保存できません。"))?;
    c.execute(
        "INSERT INTO versions (encounter_id, version, kind, author_id, created_at_ms, note_text, dictation,
                               draft_json, reason, content_sha256, document)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![encounter, version, kind.as_str(), author, now, note, dictation, draft_json, reason, sha, document],
    )
    .map_err(db_err)?;
    Ok(())
}

/// The document kind of an encounter's latest version: an edit or amendment keeps it.
/// An edit or amendment typed as text, read by the latest version's kind. The typed inputs (入院日, 紹介先…) carry
/// over: text edits the sentences, never the inputs they quote, and the FHIR document needs them.
fn retyped(c: &Connection, encounter: &str, text: &str) -> Result<Document> {
    let latest = latest_document(c, encounter)?;
    let mut doc = Document::from_text(latest.kind()?, text)?;
    doc.inputs = latest.inputs;
    Ok(doc)
}

fn latest_document(c: &Connection, encounter: &str) -> Result<Document> {
    let json: Option<String> = c
        .query_row(
            "SELECT document FROM versions WHERE encounter_id = ?1 ORDER BY version DESC LIMIT 1",
            [encounter],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?
        .ok_or_else(not_found)?;
    let doc: Document = json
        .and_then(|j| serde_json::from_str(&j).ok())
        .ok_or_else(|| Error::new(Code::StoreCorrupt, "記録の形式が読み取れません。"))?;
    doc.kind()?;
    Ok(doc)
}

/// A stored version's document: present, readable, and what its hashed text and draft give (see
/// `karte_core::document::recover`). `None` means it was changed outside Karte.
fn checked_document(
    note: &str,
    draft_json: Option<&str>,
    stored: Option<&str>,
) -> Option<Document> {
    let doc: Document = serde_json::from_str(stored?).ok()?;
    let kind = doc.kind().ok()?;
    // The rendered text does not show the typed inputs; a draft's hashed JSON does.
    let inputs_hashed = draft_json
        .and_then(|j| serde_json::from_str::<karte_core::DraftOutput>(j).ok())
        .is_none_or(|d| d.inputs == doc.inputs);
    ((inputs_hashed && note == doc.render())
        || karte_core::document::recover(kind, note, draft_json) == doc)
        .then_some(doc)
}

/// The query behind [`Store::signed_notes`]. Each document is checked against its hashed text, as history does
/// not need to (it shows the text): a source whose sections were changed outside Karte is `store.corrupt`, never
/// a silent input to a document.
fn signed_notes_in(
    c: &Connection,
    patient_ref: &str,
    from: ClinicalDate,
    to: ClinicalDate,
) -> Result<Vec<SignedNote>> {
    let mut st = c
        .prepare(
            "SELECT e.id, v.version, e.clinical_date, v.note_text, v.draft_json, v.document
             FROM encounters e JOIN versions v ON v.encounter_id = e.id
             WHERE e.patient_ref = ?1 AND e.clinical_date BETWEEN ?2 AND ?3
               AND v.version = (SELECT max(g.version) FROM signatures g WHERE g.encounter_id = e.id)
             ORDER BY e.clinical_date, e.created_at_ms, e.id",
        )
        .map_err(db_err)?;
    let rows = st
        .query_map(
            params![patient_ref, from.to_string(), to.to_string()],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    stored_date(r, 2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            },
        )
        .map_err(db_err)?;
    let mut notes = Vec::new();
    for row in rows {
        let (encounter, version, clinical_date, text, json, stored) = row.map_err(db_err)?;
        let document =
            checked_document(&text, json.as_deref(), stored.as_deref()).ok_or_else(|| {
                Error::new(
                    Code::StoreCorrupt,
                    "署名済みの記録の内容が保存時と一致しません。管理者に連絡してください。",
                )
            })?;
        // A document made from notes is not a note: a summary read back would repeat the notes it was made from,
        // and dated the discharge day it would stand in for the discharge-day note.
        let from_notes = document
            .kind()
            .is_ok_and(|k| k.sources == karte_core::document::SourceKind::Notes);
        if from_notes {
            continue;
        }
        notes.push(SignedNote {
            encounter,
            version,
            clinical_date,
            document,
            text,
        });
    }
    Ok(notes)
}

/// `(latest version, whether it is signed)`.
fn latest_version(c: &Connection, encounter: &str) -> Result<(i64, bool)> {
    c.query_row(
        "SELECT v.version, EXISTS (SELECT 1 FROM signatures s WHERE s.encounter_id = v.encounter_id
                                                             AND s.version = v.version)
         FROM versions v WHERE v.encounter_id = ?1 ORDER BY v.version DESC LIMIT 1",
        [encounter],
        |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)),
    )
    .optional()
    .map_err(db_err)?
    .ok_or_else(not_found)
}

fn load_encounter(c: &Connection, encounter: &str) -> Result<EncounterView> {
    let (patient_ref, created_by, created_at_ms, clinical_date): (
        String,
        String,
        i64,
        ClinicalDate,
    ) = c
        .query_row(
            "SELECT e.patient_ref, u.name, e.created_at_ms, e.clinical_date
             FROM encounters e JOIN users u ON u.id = e.created_by WHERE e.id = ?1",
            [encounter],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, stored_date(r, 3)?)),
        )
        .optional()
        .map_err(db_err)?
        .ok_or_else(not_found)?;
    let mut st = c
        .prepare(
            "SELECT v.version, v.kind, u.name, v.created_at_ms, v.note_text, v.reason, v.content_sha256,
                    su.name, s.signed_at_ms, v.dictation, v.draft_json, v.document
             FROM versions v JOIN users u ON u.id = v.author_id
             LEFT JOIN signatures s ON s.encounter_id = v.encounter_id AND s.version = v.version
             LEFT JOIN users su ON su.id = s.signer_id
             WHERE v.encounter_id = ?1 ORDER BY v.version",
        )
        .map_err(db_err)?;
    let mut dictation = String::new();
    let mut draft = None;
    let rows = st
        .query_map([encounter], |r| {
            let signer: Option<String> = r.get(7)?;
            let signed_at: Option<i64> = r.get(8)?;
            Ok((
                VersionView {
                    version: r.get(0)?,
                    kind: records::parse_version_kind(&r.get::<_, String>(1)?),
                    author: r.get(2)?,
                    created_at: iso8601(r.get(3)?),
                    text: r.get(4)?,
                    document: Document {
                        kind: String::new(),
                        sections: Default::default(),
                        inputs: Default::default(),
                    },
                    reason: r.get(5)?,
                    content_sha256: r.get(6)?,
                    signature: signer.zip(signed_at).map(|(signer, at)| Signature {
                        signer,
                        signed_at: iso8601(at),
                    }),
                },
                r.get::<_, Option<String>>(9)?,
                r.get::<_, Option<String>>(10)?,
                r.get::<_, Option<String>>(11)?,
            ))
        })
        .map_err(db_err)?;
    let mut versions = Vec::new();
    for row in rows {
        let (mut v, dict, json, document) = row.map_err(db_err)?;
        v.document = document
            .and_then(|d| serde_json::from_str(&d).ok())
            .ok_or_else(|| {
                Error::new(
                    Code::StoreCorrupt,
                    "記録の形式が読み取れません。管理者に連絡してください。",
                )
            })?;
        if let Some(d) = dict {
            dictation = d;
        }
        if let Some(j) = json {
            draft = serde_json::from_str::<DraftOutput>(&j).ok();
        }
        versions.push(v);
    }
    if versions.is_empty() {
        return Err(not_found());
    }
    let mut reviews: std::collections::BTreeMap<i64, ReviewView> = Default::default();
    let mut st = c
        .prepare(
            "SELECT r.suggestion, r.decision, r.comment, u.name, r.created_at_ms
             FROM reviews r JOIN users u ON u.id = r.reviewer_id WHERE r.encounter_id = ?1 ORDER BY r.id",
        )
        .map_err(db_err)?;
    let rows = st
        .query_map([encounter], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                ReviewView {
                    decision: records::parse_decision(&r.get::<_, String>(1)?),
                    comment: r.get(2)?,
                    reviewer: r.get(3)?,
                    reviewed_at: iso8601(r.get(4)?),
                },
            ))
        })
        .map_err(db_err)?;
    for row in rows {
        let (n, rv) = row.map_err(db_err)?;
        reviews.insert(n, rv); // later rows win: the latest review of each suggestion
    }
    let suggestions = draft
        .as_ref()
        .map(|d| {
            d.suggestions
                .iter()
                .enumerate()
                .map(|(i, g)| SuggestionView {
                    id: i as i64 + 1,
                    test: g.test.clone(),
                    reason: g.reason.clone(),
                    rule: g.rule.clone(),
                    review: reviews.get(&(i as i64 + 1)).cloned(),
                })
                .collect()
        })
        .unwrap_or_default();
    let signed = versions.last().is_some_and(|v| v.signature.is_some());
    Ok(EncounterView {
        id: encounter.to_string(),
        patient_ref,
        clinical_date,
        created_by,
        created_at: iso8601(created_at_ms),
        signed,
        dictation,
        draft,
        versions,
        suggestions,
    })
}
