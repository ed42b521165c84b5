//! Opening the SQLCipher database and migrating its schema.
//!
//! Order matters on open: key first, then prove the key by reading the schema, then refuse a newer schema
//! *before* anything that writes (journal mode, migrations), so that a database from a newer Karte is never touched.

use karte_core::{Code, Error, Result};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::path::Path;
use zeroize::Zeroizing;

/// The schema this build writes: one per migration. Append to [`MIGRATIONS`]; never edit a shipped migration.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// SQLCipher 4's page size, which Karte never changes: a whole database file is a multiple of it.
pub const PAGE_SIZE: u64 = 4096;

/// `store.corrupt` with a message that says what is damaged and how to recover.
pub(crate) fn corrupt(message: &str) -> Error {
    Error::new(Code::StoreCorrupt, message)
}

/// A migration's data step, run after its DDL in the same transaction.
type DataStep = fn(&Connection) -> Result<()>;

/// `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`: its DDL, then (optionally) a data step in Rust
/// inside the same transaction as the DDL and the `user_version` bump.
const MIGRATIONS: &[(&str, Option<DataStep>)] = &[
    (include_str!("schema_v1.sql"), None),
    // Documents signed before the outbox existed must still reach the platform: queue them at the upgrade.
    (
        include_str!("schema_v2.sql"),
        Some(crate::outbox::queue_signed_before_outbox),
    ),
    // Versions written before documents were structured get theirs, recovered once from their text and draft.
    (
        include_str!("schema_v3.sql"),
        Some(crate::records::migrate_documents),
    ),
    // Every encounter keeps its clinical date; those written before get their creation's local calendar day.
    (
        include_str!("schema_v4.sql"),
        Some(crate::records::migrate_clinical_dates),
    ),
    // Recordings kept while the physician speaks into the window.
    (include_str!("schema_v5.sql"), None),
];

/// A 256-bit SQLCipher key. Zeroed on drop; never `Debug`-printed.
pub struct DbKey(Zeroizing<[u8; 32]>);

impl DbKey {
    pub fn generate() -> Result<Self> {
        let mut k = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut k[..]).map_err(|_| {
            Error::new(
                Code::Internal,
                "乱数を取得できません（OS の乱数源が使えません）。",
            )
        })?;
        Ok(DbKey(k))
    }
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut k = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(s.trim(), &mut k[..]).ok()?;
        Some(DbKey(k))
    }
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(&self.0[..]))
    }
    /// `PRAGMA key` with a raw key: SQLCipher uses it directly instead of deriving one from a passphrase.
    fn pragma(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("PRAGMA key = \"x'{}'\";", self.to_hex().as_str()))
    }
}

/// Maps SQLite failures to stable codes. The message names the condition only: SQLite's own text can quote SQL, and
/// nothing from a row may reach an error.
pub(crate) fn db_err(e: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        let (code, msg) = match f.code {
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => (
                Code::StoreCorrupt,
                "記録データベースが壊れています（暗号化ページの検証に失敗）。バックアップから復元するか、システム管理者に連絡してください。",
            ),
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => (
                Code::StoreLocked,
                "記録データベースを別の処理が使用中です。しばらく待ってからやり直してください。",
            ),
            ErrorCode::DiskFull => (
                Code::StoreIo,
                "ディスクの空きがないため記録を保存できません。空き容量を確保してください。",
            ),
            ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::SystemIoFailure => (
                Code::StoreIo,
                "記録データベースを読み書きできません。データディレクトリの場所と権限を確認してください。",
            ),
            _ => (Code::Internal, ""),
        };
        if code != Code::Internal {
            return Error::new(code, msg);
        }
    }
    tracing::error!(kind = ?std::mem::discriminant(&e), "sqlite error");
    Error::new(
        Code::Internal,
        "記録データベースで予期しないエラーが発生しました。システム管理者に連絡してください。",
    )
}

/// Opens (creating if needed) and migrates. `key: None` opens an unencrypted database with the *same* library and
/// schema: only the benchmark uses it, as the plain-SQLite baseline.
pub fn open(path: &Path, key: Option<&DbKey>) -> Result<Connection> {
    let conn = connect(path, key, OpenFlags::SQLITE_OPEN_CREATE)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err)?;
    if version > SCHEMA_VERSION {
        return Err(Error::new(
            Code::StoreNewerVersion,
            format!(
                "この記録データベースは新しい版の Karte で作られています（形式 {version}、この版は {SCHEMA_VERSION} まで）。\
                 データを守るため開きません。Karte を更新してください。"
            ),
        ));
    }
    // A 16 MiB page cache (SQLite's default is 2 MiB): with SQLCipher every page fetched from the OS is
    // decrypted and its HMAC checked, so keeping decrypted pages costs little memory and saves most of that work.
    // WAL: readers never block the writer, and a commit is one append. synchronous=FULL fsyncs the WAL at every
    // commit, so a signed note survives power loss, not only a crash of the process (NORMAL would only promise
    // the latter); a save is a few milliseconds either way.
    conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
        .map_err(db_err)?;
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -16000;
         PRAGMA busy_timeout = 5000;",
    )
    .map_err(db_err)?;
    migrate(&conn, version)?;
    Ok(conn)
}

/// Opens an existing database file without creating, migrating or changing its journal mode: for checking a
/// backup, which must not become an empty database when it is missing nor be written to before it is accepted.
pub fn open_existing(path: &Path, key: &DbKey) -> Result<Connection> {
    connect(path, Some(key), OpenFlags::empty())
}

/// Opens and keys, then proves the key by reading the schema.
fn connect(path: &Path, key: Option<&DbKey>, extra: OpenFlags) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | extra,
    )
    .map_err(db_err)?;
    // SQLCipher writes its own diagnostics ("ERROR CORE … hmac check failed") to stderr by default; Karte reports
    // damage once, as a code and a message, so the library's lines are switched off before the key is applied.
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")
        .map_err(db_err)?;
    if let Some(key) = key {
        conn.execute_batch(&key.pragma()).map_err(db_err)?;
    }
    // The first read decrypts page 1. Its HMAC failing (NotADatabase) is a wrong key or a damaged first page;
    // anything else SQLite calls corruption here (a file shorter than its header says) is damage, not the key.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|e| match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => Error::new(
            Code::StoreWrongKey,
            "記録データベースを開けません。キーリングの鍵がこのデータベースのものではないか、ファイルの先頭が壊れています。\
             別の端末のデータディレクトリを使っていないか確認し、解決しなければシステム管理者に連絡してください。",
        ),
        Some(ErrorCode::DatabaseCorrupt) => corrupt(
            "記録データベースのファイルが途中で切れているか壊れています。ファイルはそのままにしてあります。\
             karte admin restore でバックアップから復元してください。",
        ),
        _ => db_err(e),
    })?;
    Ok(conn)
}

fn migrate(conn: &Connection, from: i64) -> Result<()> {
    for (i, (sql, data)) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        let to = i as i64 + 1;
        // One transaction per step, data step and user_version included: a crash leaves the old or the new schema,
        // never a mix (nor a new schema with its data step half done). The version is read again under the write
        // lock, because another process may have migrated meanwhile.
        conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
        let step = (|| -> Result<()> {
            let now: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(db_err)?;
            if now == i as i64 {
                conn.execute_batch(sql).map_err(db_err)?;
                if let Some(data) = data {
                    data(conn)?;
                }
                conn.execute_batch(&format!("PRAGMA user_version = {to}"))
                    .map_err(db_err)?;
            }
            conn.execute_batch("COMMIT").map_err(db_err)
        })();
        if let Err(e) = step {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    Ok(())
}
