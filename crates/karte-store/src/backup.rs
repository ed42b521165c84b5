//! Backup and restore of a whole store: what IT does when `store.corrupt` says "restore from backup".
//!
//! - **Backup** copies the live database with SQLCipher's `sqlcipher_export` inside one read transaction: a
//!   consistent snapshot while the app keeps writing (WAL lets writers go on), encrypted with the same key (the
//!   file is as safe as the database and only this store's key opens it). The copy is opened again and checked
//!   (page HMACs, SQLite's structure check, the audit chain up to the snapshot) before it gets its final name.
//! - **Restore** opens the file with this store's key, so a backup of another store is refused before anything is
//!   changed; the administrator signs in against the *backup's* accounts (the live database may be unreadable);
//!   the replaced file is kept beside it, never deleted. Work done after the backup is gone, so the restore is
//!   written into the restored audit chain (with how far back it went and the keyring head it replaces) and the
//!   keyring head moves to that entry: `audit verify` then checks an intact chain whose gap is on the record.

use crate::auth::Action;
use crate::db::{self, db_err, DbKey};
use crate::vault::Vault;
use crate::{iso8601, now_ms, Session, Store, StoreConfig, DB_FILE};
use karte_core::{Code, Error, Result};
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What a backup file holds: how far back a restore from it would go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupContents {
    /// The newest audit entry in the file; everything after it is not in the backup.
    pub last_audit_seq: i64,
    /// When that entry was written (ISO 8601, UTC).
    pub last_audit_at: Option<String>,
    /// Record versions (drafts, edits, amendments) in the file.
    pub versions: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupReport {
    pub bytes: u64,
    pub contents: BackupContents,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreReport {
    pub contents: BackupContents,
    /// Audit entries the keyring knew of that the backup lacks: actions after the backup, now lost. `None` when
    /// the keyring had no head.
    pub lost_audit_entries: Option<i64>,
    /// Where the database file that was replaced now is (kept for investigation), if there was one.
    pub replaced: Option<PathBuf>,
}

/// The file being restored, inside the data directory until it is renamed into place.
const RESTORING_FILE: &str = "karte.db.restoring";

fn contents(c: &Connection) -> Result<(BackupContents, Option<String>)> {
    let last: Option<(i64, i64, String)> = c
        .query_row(
            "SELECT seq, ts_ms, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(db_err)?;
    let versions: i64 = c
        .query_row("SELECT count(*) FROM versions", [], |r| r.get(0))
        .map_err(db_err)?;
    Ok((
        BackupContents {
            last_audit_seq: last.as_ref().map_or(0, |l| l.0),
            last_audit_at: last.as_ref().map(|l| iso8601(l.1)),
            versions,
        },
        last.map(|l| l.2),
    ))
}

fn invalid_backup(what: &str) -> Error {
    Error::new(
        Code::StoreBackupInvalid,
        format!(
            "{what}。この端末のこのデータディレクトリで作ったバックアップファイルを指定してください。現在の記録は変更していません。"
        ),
    )
}

/// Opens a backup file with `key` and checks every page's HMAC and SQLite's structure.
fn open_checked(path: &Path, key: &DbKey) -> Result<Connection> {
    let conn = db::open_existing(path, key).map_err(|e| match e.code {
        Code::StoreWrongKey => invalid_backup(
            "このファイルはこの記録データベースの鍵で開けません（別の端末・別のデータディレクトリのバックアップか、先頭が壊れています）",
        ),
        Code::StoreCorrupt => invalid_backup("バックアップファイルが壊れています"),
        _ => e,
    })?;
    let damaged = || invalid_backup("バックアップファイルが壊れています（整合性の検査に失敗）");
    let cipher_errors: Vec<String> = conn
        .prepare("PRAGMA cipher_integrity_check")
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(|_| damaged())?;
    let quick: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|_| damaged())?;
    if !cipher_errors.is_empty() || quick != "ok" {
        return Err(damaged());
    }
    Ok(conn)
}

fn io_error(path: &Path) -> Error {
    Error::new(
        Code::OutputUnwritable,
        format!(
            "{} に書き込めません。場所、権限、空き容量を確認してください。",
            path.display()
        ),
    )
}

impl Store {
    /// Writes a checked, encrypted copy of the store to `to` (administrators). Refuses to overwrite a file.
    pub fn backup(&self, s: &Session, to: &Path) -> Result<BackupReport> {
        self.authorize(s, Action::Backup, None)?;
        if to.exists() {
            return Err(Error::new(
                Code::OutputUnwritable,
                format!(
                    "{} は既にあります。上書きしないので、別のファイル名を指定してください。",
                    to.display()
                ),
            ));
        }
        let name = to
            .file_name()
            .ok_or_else(|| io_error(to))?
            .to_string_lossy();
        let partial = to.with_file_name(format!(".{name}.partial"));
        let _ = std::fs::remove_file(&partial);
        let key = self.vault.db_key()?.ok_or_else(crate::key_missing)?;
        let (snapshot, hash) = {
            let conn = self.conn();
            conn.execute(
                "ATTACH DATABASE ?1 AS backup KEY ?2",
                rusqlite::params![
                    partial.to_string_lossy(),
                    format!("x'{}'", key.to_hex().as_str())
                ],
            )
            .map_err(|_| io_error(to))?;
            let copied = (|| -> Result<_> {
                // One read transaction: the snapshot read below and the copy see the same commit.
                conn.execute_batch("BEGIN").map_err(db_err)?;
                let out = contents(&conn).and_then(|snap| {
                    conn.query_row("SELECT sqlcipher_export('backup')", [], |_| Ok(()))
                        .map_err(|_| io_error(to))?;
                    conn.execute_batch(&format!(
                        "PRAGMA backup.user_version = {};",
                        db::SCHEMA_VERSION
                    ))
                    .map_err(db_err)?;
                    Ok(snap)
                });
                let end = if out.is_ok() { "COMMIT" } else { "ROLLBACK" };
                conn.execute_batch(end).map_err(db_err)?;
                out
            })();
            let _ = conn.execute_batch("DETACH DATABASE backup");
            copied
        }
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&partial);
        })?;
        // Read back with a fresh connection: what is on disk, not what the writer believes it wrote.
        let check = open_checked(&partial, &key).and_then(|c| {
            let (on_disk, on_disk_hash) = contents(&c)?;
            if on_disk != snapshot || on_disk_hash != hash {
                return Err(invalid_backup(
                    "書き出したバックアップが元の記録と一致しません",
                ));
            }
            Ok(())
        });
        if let Err(e) = check {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
        let bytes = std::fs::metadata(&partial).map_err(|_| io_error(to))?.len();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o600))
                .map_err(|_| io_error(to))?;
        }
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .and_then(|_| std::fs::rename(&partial, to))
            .map_err(|_| io_error(to))?;
        self.record(s.entry(
            Action::Backup,
            None,
            None,
            format!(
                "backup last_seq={} versions={} bytes={bytes}",
                snapshot.last_audit_seq, snapshot.versions
            ),
        ))?;
        Ok(BackupReport {
            bytes,
            contents: snapshot,
        })
    }

    /// Puts a backup made by [`Store::backup`] back in place of this data directory's database, signed in as an
    /// administrator *of the backup*. Works when the live database is damaged, empty or missing; the app must be
    /// closed on this workstation (its open connection would keep writing to the replaced file).
    pub fn restore(
        dir: &Path,
        cfg: StoreConfig,
        from: &Path,
        admin: &str,
        password: &str,
        totp_code: &str,
    ) -> Result<RestoreReport> {
        let store_id = crate::store_id(dir)?;
        let vault = Vault::new(cfg.keyring, &store_id);
        let key = vault.db_key()?.ok_or_else(crate::key_missing)?;
        let head_before = vault.head()?;
        let restoring = dir.join(RESTORING_FILE);
        crate::remove_db_files(&restoring);
        std::fs::copy(from, &restoring).map_err(|_| {
            Error::new(
                Code::InputUnreadable,
                format!(
                    "{} を読めません。ファイルの場所と権限を確認してください。",
                    from.display()
                ),
            )
        })?;
        let staged = (|| -> Result<(BackupContents, i64, String)> {
            let (contents, _) = contents(&open_checked(&restoring, &key)?)?;
            // The backup's own accounts decide who may restore it: the live database may be unreadable.
            let staged = Store {
                conn: Mutex::new(db::open(&restoring, Some(&key))?),
                vault: Vault::new(cfg.keyring, &store_id),
                store_id: store_id.clone(),
                cfg: cfg.clone(),
                dir: dir.to_path_buf(),
            };
            let s = staged.login(admin, password, totp_code)?;
            staged.authorize(&s, Action::Backup, None)?;
            let detail = format!(
                "restore backup_last_seq={} backup_last_at={} head_before={}",
                contents.last_audit_seq,
                contents.last_audit_at.as_deref().unwrap_or("-"),
                head_before
                    .as_ref()
                    .map_or("-".to_string(), |(seq, _)| seq.to_string()),
            );
            let (seq, hash) = staged
                .tx(|c, log| {
                    log.append(c, &s.entry(Action::Backup, None, None, detail))?;
                    Ok(log.last.clone())
                })?
                .ok_or_else(|| Error::new(Code::Internal, "監査ログに書き込めませんでした。"))?;
            Ok((contents, seq, hash))
        })();
        let (contents, seq, hash) = match staged {
            Ok(v) => v,
            Err(e) => {
                crate::remove_db_files(&restoring);
                return Err(e);
            }
        };
        let io = crate::dir_io(dir);
        // The replaced database (and its WAL) is kept under a dated name, never deleted.
        let live = dir.join(DB_FILE);
        let replaced = if live.exists() {
            let aside = dir.join(format!("{DB_FILE}.before-restore-{}", now_ms()));
            for suffix in ["-wal", "-shm"] {
                let from = dir.join(format!("{DB_FILE}{suffix}"));
                if from.exists() {
                    std::fs::rename(&from, format!("{}{suffix}", aside.display())).map_err(&io)?;
                }
            }
            std::fs::rename(&live, &aside).map_err(&io)?;
            Some(aside)
        } else {
            None
        };
        std::fs::rename(&restoring, &live).map_err(&io)?;
        crate::sync_dir(dir);
        vault.set_head(seq, &hash)?;
        Ok(RestoreReport {
            lost_audit_entries: head_before.map(|(s, _)| s - contents.last_audit_seq),
            contents,
            replaced,
        })
    }
}
