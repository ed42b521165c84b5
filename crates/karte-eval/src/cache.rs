//! Resumable cache of per-item results: one JSON line per measured item, appended and flushed as soon as the item
//! is done, so a run that is interrupted (Ctrl-C, a crash, a reboot) continues where it stopped.
//!
//! The key is the sha256 of (candidate identity, suite, item id, settings, data version): the candidate identity is
//! the model file's sha256 or the endpoint URL and model, so a retrained model or a changed data set is measured
//! again, never mixed with old results. Only measured items are cached; an item that failed is tried again.

use crate::suites::{Measured, Settings};
use karte_core::{Code, Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    suite: String,
    item: String,
    result: Measured,
}

pub struct Cache {
    path: PathBuf,
    map: HashMap<String, Measured>,
    file: File,
}

pub fn key(
    identity: &str,
    suite: &str,
    item: &str,
    settings: &Settings,
    data_version: &str,
) -> String {
    let s =
        serde_json::json!([identity, suite, item, settings, data_version, pipeline()]).to_string();
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The pipeline's own identity: the SHA-256 of the running program. Pipeline results depend on the guard's rules
/// (regexes in code, dose table, policy), so a run resumed after a rebuild must measure again rather than mix
/// results of two guards in one report; an interrupted run of the same binary still resumes.
fn pipeline() -> &'static str {
    static ID: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        std::env::current_exe()
            .and_then(std::fs::read)
            .map_or_else(|_| "unknown".into(), |b| hex::encode(Sha256::digest(&b)))
    });
    &ID
}

fn io_err(path: &Path, e: &std::io::Error) -> Error {
    Error::new(
        Code::OutputUnwritable,
        format!(
            "評価結果のキャッシュ {} に書き込めません（{}）。出力先フォルダを確認してください。",
            path.display(),
            e.kind()
        ),
    )
}

impl Cache {
    /// Open (or create) `DIR/cache.jsonl`. A torn last line from an interrupted write is ignored.
    pub fn open(dir: &Path) -> Result<Cache> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, &e))?;
        let path = dir.join("cache.jsonl");
        let mut map = HashMap::new();
        if let Ok(f) = File::open(&path) {
            for line in BufReader::new(f).lines().map_while(|l| l.ok()) {
                if let Ok(e) = serde_json::from_str::<Entry>(&line) {
                    map.insert(e.key, e.result);
                }
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_err(&path, &e))?;
        // A torn line (no newline at the end) must not swallow the next entry.
        if std::fs::read(&path)
            .map(|b| b.last().is_some_and(|c| *c != b'\n'))
            .unwrap_or(false)
        {
            file.write_all(b"\n").map_err(|e| io_err(&path, &e))?;
        }
        Ok(Cache { path, map, file })
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&Measured> {
        self.map.get(key)
    }

    pub fn put(&mut self, key: &str, suite: &str, item: &str, result: &Measured) -> Result<()> {
        let line = serde_json::to_string(&Entry {
            key: key.to_string(),
            suite: suite.to_string(),
            item: item.to_string(),
            result: result.clone(),
        })
        .map_err(|_| Error::new(Code::Internal, "評価結果を書き出せませんでした。"))?;
        writeln!(self.file, "{line}")
            .and_then(|_| self.file.flush())
            .map_err(|e| io_err(&self.path, &e))?;
        self.map.insert(key.to_string(), result.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_reopen_and_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings::default();
        let k1 = key("sha256:aa", "safety", "safe-01", &s, "1+abc");
        let k2 = key("sha256:aa", "safety", "safe-02", &s, "1+abc");
        let m = Measured {
            badness: 1.0,
            ..Default::default()
        };
        {
            let mut c = Cache::open(dir.path()).unwrap();
            c.put(&k1, "safety", "safe-01", &m).unwrap();
        }
        // An interrupted write leaves half a line.
        let p = dir.path().join("cache.jsonl");
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"key\":\"zz\",\"sui").unwrap();
        drop(f);
        let mut c = Cache::open(dir.path()).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(&k1), Some(&m));
        c.put(&k2, "safety", "safe-02", &m).unwrap();
        let c = Cache::open(dir.path()).unwrap();
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn key_changes_with_every_part() {
        let s = Settings::default();
        let base = key("sha256:aa", "safety", "x", &s, "1");
        let s2 = Settings {
            seed: 7,
            ..Settings::default()
        };
        assert_ne!(base, key("sha256:bb", "safety", "x", &s, "1"));
        assert_ne!(base, key("sha256:aa", "privacy", "x", &s, "1"));
        assert_ne!(base, key("sha256:aa", "safety", "y", &s, "1"));
        assert_ne!(base, key("sha256:aa", "safety", "x", &s2, "1"));
        assert_ne!(base, key("sha256:aa", "safety", "x", &s, "2"));
    }
}
