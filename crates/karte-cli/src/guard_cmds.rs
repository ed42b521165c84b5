//! `karte scan`, `karte redact`, `karte guard check|eval`: thin wrappers over karte-guard.

use crate::{read_input, Format};
use karte_core::{Code, Error, Result};
use karte_guard::pseudo::{pseudonymise, restore, Mapping};
use std::io::Write;
use std::path::{Path, PathBuf};

fn read_checked(file: Option<PathBuf>) -> Result<String> {
    let input = read_input(file)?;
    karte_core::pipeline::validate(&input)?;
    Ok(input)
}

fn out(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")
        .map_err(|e| Error::new(Code::Internal, format!("出力できません: {e}")))
}

pub fn scan(file: Option<PathBuf>, format: Format) -> Result<()> {
    let input = read_checked(file)?;
    let findings = karte_guard::scan(&input);
    match format {
        Format::Json => out(&serde_json::json!({ "findings": findings }).to_string()),
        Format::Text => {
            let mut s = String::new();
            for f in &findings {
                s.push_str(&format!(
                    "{}\t{}-{}\t{}\n",
                    f.kind.as_str(),
                    f.start,
                    f.end,
                    f.text
                ));
            }
            s.push_str(&format!("個人情報 {} 件", findings.len()));
            out(&s)
        }
    }
}

pub fn redact(
    file: Option<PathBuf>,
    map: Option<PathBuf>,
    restore_from: Option<PathBuf>,
) -> Result<()> {
    let input = read_checked(file)?;
    if let Some(path) = restore_from {
        let mapping = read_mapping(&path)?;
        // print! not println!: a restored text must be byte-identical to the original.
        return write_raw(&restore(&input, &mapping));
    }
    let p = pseudonymise(&input);
    if let Some(path) = map {
        write_mapping(&path, &p.mapping)?;
    }
    write_raw(&p.text)
}

fn write_raw(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
        .map_err(|e| Error::new(Code::Internal, format!("出力できません: {e}")))
}

fn read_mapping(path: &Path) -> Result<Mapping> {
    let bytes = std::fs::read(path).map_err(|e| {
        Error::new(
            Code::InputUnreadable,
            format!("対応表ファイル {} を読めません: {e}", path.display()),
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|_| {
        Error::new(
            Code::MappingInvalid,
            format!(
                "対応表ファイル {} の形式が正しくありません。`karte redact --map` で作成したファイルを指定してください。",
                path.display()
            ),
        )
    })
}

/// The mapping holds the personal data itself: owner-only permissions, written whole or not at all.
fn write_mapping(path: &Path, m: &Mapping) -> Result<()> {
    let fail = |e: std::io::Error| {
        Error::new(
            Code::OutputUnwritable,
            format!("対応表ファイル {} に書き込めません: {e}", path.display()),
        )
    };
    let json = serde_json::to_string_pretty(m).expect("mapping serialises");
    crate::write_private(path, json.as_bytes()).map_err(fail)
}

pub fn check(file: Option<PathBuf>, format: Format) -> Result<()> {
    let input = read_checked(file)?;
    let v = karte_guard::Policy::embedded().check(&input);
    match format {
        Format::Json => out(&serde_json::json!({
            "verdict": v.verdict,
            "categories": v.categories,
            "reasons": v.reasons,
        })
        .to_string()),
        Format::Text => {
            let head = match v.verdict {
                karte_guard::Level::Allow => "allow（問題は見つかりませんでした）",
                karte_guard::Level::Flag => "flag（確認が必要です）",
                karte_guard::Level::Block => "block（表示・保存できない内容です）",
            };
            let mut s = head.to_string();
            for (c, r) in v.categories.iter().zip(&v.reasons) {
                s.push_str(&format!("\n  {c}: {r}"));
            }
            out(&s)
        }
    }
}

/// Exit status 1 when a target of a development set is missed, so CI can run it; the held-out sets (sentences and
/// report documents) are reported beside them, never gated, since nothing is tuned on them.
pub fn eval(show_misses: bool) -> Result<()> {
    use karte_guard::eval::{run_on, run_reports, Report, HOLDOUT, REPORTS_DEV, REPORTS_HOLDOUT};
    let r = karte_guard::eval::run();
    let holdout = run_on(&HOLDOUT);
    let reports_dev = run_reports(&REPORTS_DEV);
    let reports_holdout = run_reports(&REPORTS_HOLDOUT);
    let mut s = String::new();
    let section = |s: &mut String, rep: &Report, table: String| {
        s.push_str(&table);
        if show_misses {
            s.push_str("\nmistakes (synthetic data):\n");
            for m in &rep.misses {
                s.push_str(&format!("  {}: {}\n", m.what, m.text.replace('\n', "⏎")));
            }
        }
        s.push('\n');
    };
    section(&mut s, &r, r.table());
    section(&mut s, &holdout, holdout.table());
    section(&mut s, &reports_dev, reports_dev.report_table());
    section(&mut s, &reports_holdout, reports_holdout.report_table());
    out(&s)?;
    let missed: Vec<String> = r
        .targets()
        .into_iter()
        .chain(reports_dev.report_targets())
        .filter(|t| !t.3)
        .map(|t| t.0)
        .collect();
    if missed.is_empty() {
        Ok(())
    } else {
        Err(Error::new(
            Code::TargetMissed,
            format!("目標に届かない指標があります: {}", missed.join(", ")),
        ))
    }
}
