//! The reading dictionaries of karte-voice's near-homophone correction (`karte_voice::correct`), built once per
//! machine into a cache directory (`KARTE_DICT_DIR`, else `dict/` beside the model cache), never committed:
//!
//! - `ipadic.dic`: Debian's `mecab-ipadic` sources (IPAdic, NAIST BSD-style licence) compiled for vibrato. The
//!   package is fetched with `apt-get download` and unpacked with `dpkg-deb -x` into the cache, so no root and no
//!   maintainer script (the installed package's postinst would need mecab-utils); EUC-JP is converted to UTF-8.
//! - `kanji-on.tsv`: per-kanji on-readings from Debian's `kanjidic` (EDRDG, CC BY-SA 3.0), for the compounds
//!   Whisper invents (外騒, 調身) that no dictionary lists.
//!
//! Idempotent: present and loadable files are kept. The licences are copied next to the files.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

pub use karte_models::{dict_dir, DICT_KANJI_ON as KANJI_ON, DICT_SYSTEM_DIC as SYSTEM_DIC};

pub fn setup() -> Result<()> {
    crate::step("setup: reading dictionaries for the speech correction (mecab-ipadic, kanjidic)");
    let dir = dict_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dic = dir.join(SYSTEM_DIC);
    let kanji = dir.join(KANJI_ON);
    if dic.is_file() && kanji.is_file() {
        // Verify: the dictionary must load and know a word, the kanji table must be non-trivial.
        let ok = std::fs::File::open(&dic)
            .ok()
            .and_then(|f| vibrato::Dictionary::read(std::io::BufReader::new(f)).ok())
            .is_some_and(|d| {
                let t = vibrato::Tokenizer::new(d);
                let mut w = t.new_worker();
                w.reset_sentence("聴診");
                w.tokenize();
                w.num_tokens() == 1 && w.token(0).feature().contains("チョウシン")
            });
        let rows = std::fs::read_to_string(&kanji)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if ok && rows > 5000 {
            eprintln!("    {} present ({rows} kanji)", dir.display());
            return Ok(());
        }
        eprintln!("    {} present but unusable: rebuilding", dir.display());
    }
    let src = dir.join("src");
    std::fs::create_dir_all(&src)?;
    for pkg in ["mecab-ipadic", "kanjidic"] {
        let have = std::fs::read_dir(&src)?.flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{pkg}_"))
        });
        if !have {
            let download = || {
                crate::run(
                    Command::new("apt-get")
                        .args(["download", pkg])
                        .current_dir(&src),
                )
            };
            if download().is_err() {
                // A fresh machine may have no package lists yet.
                eprintln!("    apt-get download failed; updating the package lists once");
                let mut update = if crate::is_root() {
                    Command::new("apt-get")
                } else {
                    let mut c = Command::new("sudo");
                    c.arg("apt-get");
                    c
                };
                crate::run(update.args(["-o", "DPkg::Lock::Timeout=900", "update", "-q"]))?;
                download().with_context(|| format!("apt-get download {pkg}"))?;
            }
        }
    }
    let root = src.join("root");
    for e in std::fs::read_dir(&src)?.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "deb") {
            crate::run(Command::new("dpkg-deb").arg("-x").arg(&p).arg(&root))?;
        }
    }
    let ipadic = root.join("usr/share/mecab/dic/ipadic");
    let utf8 = |p: &Path| -> Result<Vec<u8>> {
        let out = Command::new("iconv")
            .args(["-f", "EUC-JP", "-t", "UTF-8"])
            .arg(p)
            .output()
            .context("iconv")?;
        if !out.status.success() {
            bail!(
                "iconv {}: {}",
                p.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out.stdout)
    };
    let mut csvs: Vec<PathBuf> = std::fs::read_dir(&ipadic)
        .with_context(|| format!("{}", ipadic.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    csvs.sort();
    let mut lex = Vec::new();
    for p in &csvs {
        lex.extend(utf8(p)?);
        if !lex.ends_with(b"\n") {
            lex.push(b'\n');
        }
    }
    eprintln!("    compiling {} ipadic lexicon files", csvs.len());
    let dict = vibrato::SystemDictionaryBuilder::from_readers(
        lex.as_slice(),
        utf8(&ipadic.join("matrix.def"))?.as_slice(),
        utf8(&ipadic.join("char.def"))?.as_slice(),
        utf8(&ipadic.join("unk.def"))?.as_slice(),
    )
    .map_err(|e| anyhow::anyhow!("vibrato: {e}"))?;
    let tmp = dir.join(format!("{SYSTEM_DIC}.tmp"));
    dict.write(std::io::BufWriter::new(std::fs::File::create(&tmp)?))
        .map_err(|e| anyhow::anyhow!("vibrato: {e}"))?;
    std::fs::rename(&tmp, &dic)?;

    let text = utf8(&root.join("usr/share/edict/kanjidic"))?;
    let mut table = String::new();
    for line in String::from_utf8_lossy(&text).lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let Some(k) = fields.next() else { continue };
        // On-readings are the katakana fields; name readings follow a `T1`/`T2` marker.
        let on: Vec<&str> = fields
            .take_while(|f| !f.starts_with('T') && !f.starts_with('{'))
            .filter(|f| f.chars().all(|c| ('ァ'..='ヶ').contains(&c) || c == 'ー'))
            .collect();
        if !on.is_empty() {
            table.push_str(&format!("{k}\t{}\n", on.join(" ")));
        }
    }
    std::fs::write(&kanji, table)?;
    for (pkg, to) in [
        ("mecab-ipadic", "LICENSE.ipadic"),
        ("kanjidic", "LICENSE.kanjidic"),
    ] {
        let _ = std::fs::copy(
            root.join(format!("usr/share/doc/{pkg}/copyright")),
            dir.join(to),
        );
    }
    std::fs::remove_dir_all(&root)?;
    eprintln!("    {} built", dir.display());
    Ok(())
}
