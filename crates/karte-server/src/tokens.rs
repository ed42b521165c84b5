//! Bearer tokens for users and workstations: create, list, revoke, roles and rate limits.
//!
//! Storage: `<data_dir>/tokens.json` (mode 0600, written atomically: temp file + rename), holding only SHA-256
//! hashes of the tokens. A plain fast hash is adequate here, unlike for passwords: every token is 256 random bits
//! made by this server, so there is nothing to guess from a leaked hash and no need for a slow, salted KDF. Lookup
//! is by hash, so comparing a presented token never walks the stored secrets byte by byte.
//!
//! In local-worker mode the store lives only in memory (`path: None`): the one token comes from the parent process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use karte_core::{Code, Error, Result};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May draft: `/v1/*`.
    Client,
    /// May manage tokens, read load, change the log level; may also draft.
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Holder {
    User,
    Workstation,
}

/// What the store keeps about a token; `hash` never leaves the server (not even to admins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    /// The user's or workstation's name (e.g. `ward3-pc07`); an id, not a person's full name.
    pub name: String,
    pub holder: Holder,
    pub role: Role,
    /// Requests per minute; `None` = unlimited.
    pub rate_limit_per_min: Option<u32>,
    pub created_unix: u64,
    pub revoked_unix: Option<u64>,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    hash: String,
}

/// A token as admins see it: everything but the hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub holder: Holder,
    pub role: Role,
    pub rate_limit_per_min: Option<u32>,
    pub created_unix: u64,
    pub revoked_unix: Option<u64>,
}

impl From<&TokenRecord> for TokenInfo {
    fn from(r: &TokenRecord) -> Self {
        Self {
            id: r.id.clone(),
            name: r.name.clone(),
            holder: r.holder,
            role: r.role,
            rate_limit_per_min: r.rate_limit_per_min,
            created_unix: r.created_unix,
            revoked_unix: r.revoked_unix,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewToken {
    pub name: String,
    #[serde(default = "default_holder")]
    pub holder: Holder,
    #[serde(default = "default_role")]
    pub role: Role,
    #[serde(default)]
    pub rate_limit_per_min: Option<u32>,
}

fn default_holder() -> Holder {
    Holder::Workstation
}
fn default_role() -> Role {
    Role::Client
}

/// Cost units charged to a rate-limited token for one chat request beyond its base count, to be settled when it
/// ends ([`TokenStore::settle`]).
#[derive(Debug)]
pub struct Charge {
    id: String,
    /// The minute window it was charged in: a refund after the window turned over has nothing to give back.
    window: Instant,
    units: u32,
}

/// The caller a valid token identifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub id: String,
    /// The name the administrator gave the token (a workstation or user id), for the audit trail.
    pub name: String,
    pub role: Role,
    pub rate_limit_per_min: Option<u32>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    tokens: Vec<TokenRecord>,
}

pub struct TokenStore {
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    tokens: Vec<TokenRecord>,
    /// Request times per token id in the current minute window, for rate limits.
    windows: BTreeMap<String, (Instant, u32)>,
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// 256 random bits from the OS generator, hex with a recognisable prefix (secret scanners can find leaked ones).
pub fn generate_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("kt_{}", hex::encode(b))
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn store_error() -> Error {
    Error::new(
        Code::ServerStoreFailed,
        "トークンの保存先に書き込めません。サーバーのデータフォルダの権限と空き容量を確認してください。",
    )
}

fn bad_rate_limit() -> Error {
    Error::new(
        Code::ServerBadRequest,
        "要求の形式が正しくありません（rate_limit_per_min は 1 以上にしてください。制限なしは null）。",
    )
}

fn last_admin() -> Error {
    Error::new(
        Code::ServerLastAdmin,
        "有効な管理者トークンがこれしか残っていないため、失効・変更できません。先に別の管理者トークンを作ってください。",
    )
}

fn not_found() -> Error {
    Error::new(
        Code::ServerTokenNotFound,
        "指定されたトークンは登録されていません。",
    )
}

impl TokenStore {
    /// In memory only (the local worker).
    pub fn memory() -> Self {
        Self {
            path: None,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Opens (or starts) `<dir>/tokens.json`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|_| store_error())?;
        let path = dir.join("tokens.json");
        let tokens = match std::fs::read(&path) {
            Ok(b) => {
                serde_json::from_slice::<FileFormat>(&b)
                    .map_err(|_| {
                        Error::new(
                            Code::ServerStoreFailed,
                            "トークンの保存ファイル（tokens.json）が壊れています。バックアップから戻してください。",
                        )
                    })?
                    .tokens
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(_) => return Err(store_error()),
        };
        Ok(Self {
            path: Some(path),
            inner: Mutex::new(Inner {
                tokens,
                windows: BTreeMap::new(),
            }),
        })
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, inner: &Inner) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let body = serde_json::to_vec_pretty(&FileFormat {
            version: 1,
            tokens: inner.tokens.clone(),
        })
        .map_err(|_| store_error())?;
        let tmp = path.with_extension("json.tmp");
        {
            use std::io::Write;
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                o.mode(0o600);
            }
            let mut f = o.open(&tmp).map_err(|_| store_error())?;
            f.write_all(&body).map_err(|_| store_error())?;
            f.sync_all().map_err(|_| store_error())?;
        }
        std::fs::rename(&tmp, path).map_err(|_| store_error())
    }

    /// Makes a token and returns it in clear, once: only its hash is kept.
    pub fn create(&self, new: &NewToken) -> Result<(TokenInfo, String)> {
        let token = generate_token();
        let info = self.insert(new, &token)?;
        Ok((info, token))
    }

    /// Registers a token chosen elsewhere (`KARTE_SERVER_TOKEN`, the local worker's one-time token). Registering the
    /// same token again is a no-op, so a restart with the same environment does not pile up entries.
    pub fn insert(&self, new: &NewToken, token: &str) -> Result<TokenInfo> {
        if new.name.trim().is_empty() || new.name.chars().count() > 64 {
            return Err(Error::new(
                Code::ServerBadRequest,
                "名前は 1〜64 文字で指定してください。",
            ));
        }
        if new.rate_limit_per_min == Some(0) {
            return Err(bad_rate_limit());
        }
        let hash = hash_token(token);
        let mut inner = self.lock();
        if let Some(r) = inner.tokens.iter().find(|r| r.hash == hash) {
            return Ok(TokenInfo::from(r));
        }
        let mut idb = [0u8; 6];
        rand::rngs::OsRng.fill_bytes(&mut idb);
        let rec = TokenRecord {
            id: format!("tok_{}", hex::encode(idb)),
            name: new.name.trim().to_string(),
            holder: new.holder,
            role: new.role,
            rate_limit_per_min: new.rate_limit_per_min,
            created_unix: now_unix(),
            revoked_unix: None,
            hash,
        };
        let info = TokenInfo::from(&rec);
        inner.tokens.push(rec);
        if let Err(e) = self.save(&inner) {
            inner.tokens.pop();
            return Err(e);
        }
        Ok(info)
    }

    pub fn list(&self) -> Vec<TokenInfo> {
        self.lock().tokens.iter().map(TokenInfo::from).collect()
    }

    /// Revokes a token. The last active admin token is refused (`server.last_admin`), as the store refuses to
    /// remove its last administrator: without it nobody could manage tokens, and restarting with the same
    /// `KARTE_ADMIN_TOKEN` would not bring it back.
    pub fn revoke(&self, id: &str) -> Result<TokenInfo> {
        self.update(id, |r, others_admins| {
            if r.revoked_unix.is_none() && r.role == Role::Admin && others_admins == 0 {
                return Err(last_admin());
            }
            r.revoked_unix.get_or_insert_with(now_unix);
            Ok(())
        })
    }

    /// Changes a token's role or rate limit. A revoked token is refused (`server.token_revoked`: the change could
    /// never take effect), so is demoting the last active admin and a limit of 0.
    pub fn set_limits(
        &self,
        id: &str,
        role: Option<Role>,
        rate_limit_per_min: Option<Option<u32>>,
    ) -> Result<TokenInfo> {
        if rate_limit_per_min == Some(Some(0)) {
            return Err(bad_rate_limit());
        }
        self.update(id, |r, other_admins| {
            if r.revoked_unix.is_some() {
                return Err(Error::new(
                    Code::ServerTokenRevoked,
                    "このトークンは失効しているため変更できません。必要なら新しいトークンを作ってください。",
                ));
            }
            if let Some(role) = role {
                if r.role == Role::Admin && role != Role::Admin && other_admins == 0 {
                    return Err(last_admin());
                }
                r.role = role;
            }
            if let Some(l) = rate_limit_per_min {
                r.rate_limit_per_min = l;
            }
            Ok(())
        })
    }

    /// Applies `f` to the token `id`, with the number of *other* active admin tokens; saved, or rolled back on error.
    fn update(
        &self,
        id: &str,
        f: impl FnOnce(&mut TokenRecord, usize) -> Result<()>,
    ) -> Result<TokenInfo> {
        let mut inner = self.lock();
        let idx = inner
            .tokens
            .iter()
            .position(|r| r.id == id)
            .ok_or_else(not_found)?;
        let other_admins = inner
            .tokens
            .iter()
            .enumerate()
            .filter(|(i, r)| *i != idx && r.role == Role::Admin && r.revoked_unix.is_none())
            .count();
        let before = inner.tokens[idx].clone();
        if let Err(e) = f(&mut inner.tokens[idx], other_admins) {
            inner.tokens[idx] = before;
            return Err(e);
        }
        if let Err(e) = self.save(&inner) {
            inner.tokens[idx] = before;
            return Err(e);
        }
        Ok(TokenInfo::from(&inner.tokens[idx]))
    }

    /// The caller for a presented token; `None` for unknown and revoked ones alike (the client learns nothing
    /// about which).
    pub fn authenticate(&self, token: &str) -> Option<Caller> {
        let hash = hash_token(token);
        let inner = self.lock();
        inner
            .tokens
            .iter()
            .find(|r| r.hash == hash && r.revoked_unix.is_none())
            .map(|r| Caller {
                id: r.id.clone(),
                name: r.name.clone(),
                role: r.role,
                rate_limit_per_min: r.rate_limit_per_min,
            })
    }

    /// Counts a request against the caller's per-minute limit; `Err(seconds)` to wait when over it.
    pub fn check_rate(&self, caller: &Caller) -> std::result::Result<(), u64> {
        let Some(limit) = caller.rate_limit_per_min else {
            return Ok(());
        };
        let mut inner = self.lock();
        let now = Instant::now();
        let w = inner.windows.entry(caller.id.clone()).or_insert((now, 0));
        let elapsed = now.duration_since(w.0).as_secs();
        if elapsed >= 60 {
            *w = (now, 0);
        }
        if w.1 >= limit {
            return Err(60u64
                .saturating_sub(now.duration_since(w.0).as_secs())
                .max(1));
        }
        w.1 += 1;
        Ok(())
    }

    /// Charges `units` more against the caller's per-minute limit, for a request's cost beyond its base count (one
    /// unit per `serve.rate_limit_unit_tokens` tokens of prompt + `max_tokens`). At most the whole minute's
    /// allowance less the base count, so a single large request can still run once a minute. `Err(seconds)` when
    /// the rest of this minute's allowance is too small; `Ok(None)` when nothing is charged (no limit, no units).
    pub fn charge(&self, caller: &Caller, units: u32) -> std::result::Result<Option<Charge>, u64> {
        let Some(limit) = caller.rate_limit_per_min else {
            return Ok(None);
        };
        let units = units.min(limit.saturating_sub(1));
        if units == 0 {
            return Ok(None);
        }
        let mut inner = self.lock();
        let now = Instant::now();
        let w = inner.windows.entry(caller.id.clone()).or_insert((now, 0));
        if now.duration_since(w.0).as_secs() >= 60 {
            *w = (now, 0);
        }
        if w.1 + units > limit {
            return Err(60u64
                .saturating_sub(now.duration_since(w.0).as_secs())
                .max(1));
        }
        w.1 += units;
        Ok(Some(Charge {
            id: caller.id.clone(),
            window: w.0,
            units,
        }))
    }

    /// Settles a charge to what the request really cost (`spent` units: prompt + generated tokens): the rest of the
    /// worst case is given back, if its minute is still running.
    pub fn settle(&self, charge: Charge, spent: u32) {
        let refund = charge.units.saturating_sub(spent);
        if refund == 0 {
            return;
        }
        let mut inner = self.lock();
        if let Some(w) = inner.windows.get_mut(&charge.id) {
            if w.0 == charge.window {
                w.1 = w.1.saturating_sub(refund);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(name: &str, role: Role) -> NewToken {
        NewToken {
            name: name.into(),
            holder: Holder::Workstation,
            role,
            rate_limit_per_min: None,
        }
    }

    #[test]
    fn tokens_persist_hashed_and_revocation_sticks() {
        let d = tempfile::tempdir().unwrap();
        let (info, tok) = {
            let s = TokenStore::open(d.path()).unwrap();
            s.create(&new("ward3-pc07", Role::Client)).unwrap()
        };
        let raw = std::fs::read_to_string(d.path().join("tokens.json")).unwrap();
        assert!(!raw.contains(&tok), "the clear token must not be stored");
        assert!(raw.contains(&hash_token(&tok)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d.path().join("tokens.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let s = TokenStore::open(d.path()).unwrap();
        assert_eq!(s.authenticate(&tok).unwrap().id, info.id);
        assert!(s.authenticate("kt_wrong").is_none());
        s.revoke(&info.id).unwrap();
        let s = TokenStore::open(d.path()).unwrap();
        assert!(s.authenticate(&tok).is_none());
        assert!(s.list()[0].revoked_unix.is_some());
        assert_eq!(
            s.revoke("tok_none").unwrap_err().code,
            Code::ServerTokenNotFound
        );
    }

    #[test]
    fn generated_tokens_are_256_bit_and_distinct() {
        let a = generate_token();
        assert_eq!(a.len(), 3 + 64);
        assert_ne!(a, generate_token());
    }

    #[test]
    fn rate_limit_counts_per_minute() {
        let s = TokenStore::memory();
        let mut n = new("pc", Role::Client);
        n.rate_limit_per_min = Some(3);
        let (_, tok) = s.create(&n).unwrap();
        let c = s.authenticate(&tok).unwrap();
        for _ in 0..3 {
            assert!(s.check_rate(&c).is_ok());
        }
        let wait = s.check_rate(&c).unwrap_err();
        assert!((1..=60).contains(&wait));
    }

    #[test]
    fn cost_counts_against_the_limit_and_unused_worst_case_is_given_back() {
        let s = TokenStore::memory();
        let mut n = new("pc", Role::Client);
        n.rate_limit_per_min = Some(6);
        let (_, tok) = s.create(&n).unwrap();
        let c = s.authenticate(&tok).unwrap();
        // A large request: its base count plus 3 units of tokens.
        s.check_rate(&c).unwrap();
        let big = s.charge(&c, 3).unwrap().unwrap();
        // Another one does not fit in what is left (6 - 4 = 2).
        s.check_rate(&c).unwrap();
        assert!(s.charge(&c, 3).is_err());
        // The first ends having used 1 unit: 2 come back, and a request of 2 units fits again.
        s.settle(big, 1);
        assert!(s.charge(&c, 2).unwrap().is_some());
        // A request larger than the whole minute is charged at most the minute less its base count.
        let s = TokenStore::memory();
        let (_, tok) = s.create(&n).unwrap();
        let c = s.authenticate(&tok).unwrap();
        s.check_rate(&c).unwrap();
        assert_eq!(s.charge(&c, 1000).unwrap().unwrap().units, 5);
        // No limit: nothing charged.
        let (_, free) = s.create(&new("free", Role::Client)).unwrap();
        assert!(s
            .charge(&s.authenticate(&free).unwrap(), 50)
            .unwrap()
            .is_none());
    }

    #[test]
    fn last_admin_cannot_be_revoked_or_demoted_and_revoked_tokens_do_not_change() {
        let d = tempfile::tempdir().unwrap();
        let s = TokenStore::open(d.path()).unwrap();
        let (a, _) = s.create(&new("admin-a", Role::Admin)).unwrap();
        let (client, _) = s.create(&new("pc", Role::Client)).unwrap();
        assert_eq!(s.revoke(&a.id).unwrap_err().code, Code::ServerLastAdmin);
        assert_eq!(
            s.set_limits(&a.id, Some(Role::Client), None)
                .unwrap_err()
                .code,
            Code::ServerLastAdmin
        );
        assert!(s.authenticate_id(&a.id), "still active after the refusals");
        // With a second admin, the first can go; then the second is the last.
        let (b, _) = s.create(&new("admin-b", Role::Admin)).unwrap();
        s.revoke(&a.id).unwrap();
        assert_eq!(s.revoke(&b.id).unwrap_err().code, Code::ServerLastAdmin);
        // Revoking an already revoked token stays a no-op; changing it is refused.
        s.revoke(&a.id).unwrap();
        assert_eq!(
            s.set_limits(&a.id, Some(Role::Client), None)
                .unwrap_err()
                .code,
            Code::ServerTokenRevoked
        );
        s.revoke(&client.id).unwrap();
        assert_eq!(
            s.set_limits(&client.id, None, Some(Some(5)))
                .unwrap_err()
                .code,
            Code::ServerTokenRevoked
        );
        // The refusals were not saved: the file agrees after a reopen.
        let s = TokenStore::open(d.path()).unwrap();
        assert!(s.authenticate_id(&b.id));
        // A limit of 0 would block a token entirely: refused.
        let mut zero = new("z", Role::Client);
        zero.rate_limit_per_min = Some(0);
        assert_eq!(s.create(&zero).unwrap_err().code, Code::ServerBadRequest);
        assert_eq!(
            s.set_limits(&b.id, None, Some(Some(0))).unwrap_err().code,
            Code::ServerBadRequest
        );
    }

    impl TokenStore {
        fn authenticate_id(&self, id: &str) -> bool {
            self.list()
                .iter()
                .any(|t| t.id == id && t.revoked_unix.is_none())
        }
    }

    #[test]
    fn same_env_token_registers_once() {
        let s = TokenStore::memory();
        s.insert(&new("env", Role::Client), "kt_x").unwrap();
        s.insert(&new("env", Role::Client), "kt_x").unwrap();
        assert_eq!(s.list().len(), 1);
    }
}
