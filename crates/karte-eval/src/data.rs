//! The suites' data sets (crates/karte-eval/data, compiled in; `--data DIR` reads another copy, e.g. a larger
//! private set). One JSON object per line, so a bad line is one bad item, reported with its line number, and the rest
//! of the file still runs.

use karte_core::{Code, Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Declared version of the bundled data sets (data/VERSION); the report also names each file's content hash.
pub fn declared_version() -> &'static str {
    include_str!("../data/VERSION").trim()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuiteId {
    Faithfulness,
    Safety,
    Refusal,
    Privacy,
    Speed,
}

impl SuiteId {
    pub const ALL: [SuiteId; 5] = [
        SuiteId::Faithfulness,
        SuiteId::Safety,
        SuiteId::Refusal,
        SuiteId::Privacy,
        SuiteId::Speed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            SuiteId::Faithfulness => "faithfulness",
            SuiteId::Safety => "safety",
            SuiteId::Refusal => "refusal",
            SuiteId::Privacy => "privacy",
            SuiteId::Speed => "speed",
        }
    }
    pub fn parse(s: &str) -> Result<SuiteId> {
        SuiteId::ALL
            .into_iter()
            .find(|x| x.as_str() == s.trim())
            .ok_or_else(|| {
                Error::new(
                    Code::EvalSuiteUnknown,
                    format!(
                        "評価スイート「{}」はありません。faithfulness, safety, refusal, privacy, speed から選んでください。",
                        s.trim()
                    ),
                )
            })
    }
    /// Comma-separated list, e.g. `faithfulness,safety`.
    pub fn parse_list(s: &str) -> Result<Vec<SuiteId>> {
        let mut v: Vec<SuiteId> = s
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(SuiteId::parse)
            .collect::<Result<_>>()?;
        v.sort();
        v.dedup();
        Ok(v)
    }
    fn embedded(self) -> &'static str {
        match self {
            SuiteId::Faithfulness => include_str!("../data/faithfulness.jsonl"),
            SuiteId::Safety => include_str!("../data/safety.jsonl"),
            SuiteId::Refusal => include_str!("../data/refusal.jsonl"),
            SuiteId::Privacy => include_str!("../data/privacy.jsonl"),
            SuiteId::Speed => include_str!("../data/speed.jsonl"),
        }
    }
}

/// One item of a suite. The body's shape depends on the suite (see data/README.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    /// In the CI smoke subset.
    #[serde(default)]
    pub smoke: bool,
    #[serde(flatten)]
    pub body: Body,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Body {
    /// faithfulness: gold facts per SOAP section (`S`, `O`, `A`, `P`), each a phrase the section must contain.
    Faithfulness {
        dictation: String,
        gold: BTreeMap<String, Vec<String>>,
    },
    /// safety: `kind` is `request`, `injection` or `dictation`; `harm` are phrases whose presence means the harmful
    /// content got in.
    Safety {
        kind: String,
        dictation: String,
        harm: Vec<String>,
    },
    /// speed: a prompt and how many tokens to generate.
    Speed { prompt: String, max_tokens: u32 },
    /// refusal: a legitimate but sensitive clinical task.
    Refusal { task: String },
    /// privacy (emission): a prompt inviting personal data.
    Privacy { prompt: String },
}

impl Body {
    fn suite(&self) -> SuiteId {
        match self {
            Body::Faithfulness { .. } => SuiteId::Faithfulness,
            Body::Safety { .. } => SuiteId::Safety,
            Body::Refusal { .. } => SuiteId::Refusal,
            Body::Privacy { .. } => SuiteId::Privacy,
            Body::Speed { .. } => SuiteId::Speed,
        }
    }
}

/// A line that could not be read as an item of its suite: it stays in the results as "not measured".
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BadLine {
    /// `file:line`, stable across runs.
    pub id: String,
    pub error: Error,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuiteData {
    pub suite: SuiteId,
    /// `VERSION+sha256[..12]` of the file's bytes: what the cache and the report key on.
    pub version: String,
    pub source: String,
    pub items: Vec<Item>,
    pub bad: Vec<BadLine>,
}

/// The suite's data: the bundled file, or `DIR/<suite>.jsonl`.
pub fn load(suite: SuiteId, dir: Option<&Path>) -> Result<SuiteData> {
    match dir {
        None => Ok(parse(
            suite,
            suite.embedded(),
            &format!("data/{}.jsonl (bundled)", suite.as_str()),
        )),
        Some(d) => {
            let path = d.join(format!("{}.jsonl", suite.as_str()));
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Error::new(
                    Code::InputUnreadable,
                    format!(
                        "評価データ {} を読めません（{}）。--data のフォルダを確認してください。",
                        path.display(),
                        e.kind()
                    ),
                )
            })?;
            Ok(parse(suite, &text, &path.display().to_string()))
        }
    }
}

/// Parse a JSONL data set; bad lines are collected, never fatal.
pub fn parse(suite: SuiteId, text: &str, source: &str) -> SuiteData {
    let hash = hex::encode(Sha256::digest(text.as_bytes()));
    let file = format!("{}.jsonl", suite.as_str());
    let mut items = Vec::new();
    let mut bad = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let id = format!("{file}:{n}");
        let err = |why: String| {
            BadLine {
            id: id.clone(),
            error: Error::new(
                Code::EvalDataMalformed,
                format!("評価データ {file} の {n} 行目が読めません（{why}）。この項目は測定していません。"),
            ),
        }
        };
        match serde_json::from_str::<Item>(line) {
            Ok(item) if item.body.suite() != suite => bad.push(err(format!(
                "{} スイートの形式ではありません",
                suite.as_str()
            ))),
            Ok(item) if item.id.trim().is_empty() || !seen.insert(item.id.clone()) => {
                bad.push(err("id が空か重複しています".into()))
            }
            Ok(item) => items.push(item),
            // serde's message names the position and the field, never the line's text.
            Err(e) => bad.push(err(format!("列 {}: {}", e.column(), e.classify_name()))),
        }
    }
    SuiteData {
        suite,
        version: format!("{}+{}", declared_version(), &hash[..12]),
        source: source.to_string(),
        items,
        bad,
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}
impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "入出力エラー",
            serde_json::error::Category::Syntax => "JSON の構文エラー",
            serde_json::error::Category::Data => "項目の形式が違います",
            serde_json::error::Category::Eof => "行が途中で切れています",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_sets_parse_without_bad_lines() {
        for s in SuiteId::ALL {
            let d = load(s, None).unwrap();
            assert!(d.bad.is_empty(), "{:?}: {:?}", s, d.bad);
            assert!(d.items.len() >= 3, "{s:?}");
            assert!(d.items.iter().any(|i| i.smoke), "{s:?} has no smoke item");
        }
    }

    #[test]
    fn malformed_lines_are_reported_with_line_numbers() {
        let text = "{\"id\":\"a\",\"task\":\"終末期の鎮静について説明した。\"}\n{\"id\":\"b\",\"task\":\n\n{\"id\":\"c\",\"prompt\":\"x\"}\n{\"id\":\"a\",\"task\":\"重複\"}\n";
        let d = parse(SuiteId::Refusal, text, "t");
        assert_eq!(d.items.len(), 1);
        let ids: Vec<&str> = d.bad.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(
            ids,
            ["refusal.jsonl:2", "refusal.jsonl:4", "refusal.jsonl:5"]
        );
        assert!(d
            .bad
            .iter()
            .all(|b| b.error.code == Code::EvalDataMalformed));
        assert!(!d.bad[0].error.message.contains("task"));
    }

    #[test]
    fn suite_lists_parse_and_unknown_is_an_error() {
        assert_eq!(
            SuiteId::parse_list("safety,faithfulness").unwrap(),
            vec![SuiteId::Faithfulness, SuiteId::Safety]
        );
        assert_eq!(
            SuiteId::parse_list("safety,spead").unwrap_err().code,
            Code::EvalSuiteUnknown
        );
    }
}
