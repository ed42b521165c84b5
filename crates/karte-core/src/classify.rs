//! Which SOAP section a clause belongs to, from explicit headers, cue words and the facts it carries.

use crate::extract::Found;
use crate::types::{FactKind, Section};
use regex::Regex;
use std::sync::LazyLock;

/// Plan cues. A cue followed by 中 (投与中, 継続中) describes the current state, not a plan.
const PLAN: [&str; 44] = [
    "予定", "開始", "処方", "継続", "検討", "施行する", "施行とする", "施行します", "提出", "依頼", "行う", "行います", "入院",
    "経過観察", "フォロー", "再診", "再検", "中止", "変更", "増量", "減量", "指導", "コンサルト", "紹介", "オーダー", "追加", "とする",
    "します", "投与する", "投与開始", "調整", "モニタリング", "モニター", "観察する", "確認する", "評価する", "測定する", "帰宅",
    "退院", "安静", "絶食", "補液", "方針", "予約",
];
const ASSESS: [&str; 17] = [
    "疑い", "疑う", "疑わ", "疑診", "可能性", "否定できない", "考え", "診断", "示唆", "鑑別", "判断", "印象", "と思われ", "否定的",
    "考えにくい", "r/o", "R/O",
];
const OBJECTIVE: [&str; 22] = [
    "所見", "聴取", "聴診", "触診", "を認め", "認める", "画像", "陰影", "意識清明", "心音", "呼吸音", "腹部平坦", "瞳孔", "対光反射",
    "上昇", "低下", "陽性", "陰性", "異常なし", "著変なし", "検査で", "採血で",
];

/// A header at the start of a clause: 「S)」「【O】」「A:」「主訴:」 … Returns the section and the header's length in chars.
static HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(?:【\s*(?P<a>[SOAP])\s*】|\[(?P<b>[SOAP])\]|(?P<c>[SOAP])\s*[):>]|#?\s*(?P<w>主訴|現病歴|自覚症状|身体所見|検査所見|所見|バイタル|評価|アセスメント|計画|方針|プラン)\s*[:)】])\s*").unwrap()
});

pub fn header(text: &str) -> Option<(Section, usize)> {
    let c = HEADER.captures(text)?;
    let sec = if let Some(l) = c.name("a").or(c.name("b")).or(c.name("c")) {
        match l.as_str() {
            "S" => Section::Subjective,
            "O" => Section::Objective,
            "A" => Section::Assessment,
            _ => Section::Plan,
        }
    } else {
        match &c["w"] {
            "主訴" | "現病歴" | "自覚症状" => Section::Subjective,
            "身体所見" | "検査所見" | "所見" | "バイタル" => Section::Objective,
            "評価" | "アセスメント" => Section::Assessment,
            _ => Section::Plan,
        }
    };
    Some((sec, c.get(0).unwrap().as_str().chars().count()))
}

fn has_plan_cue(text: &str) -> bool {
    PLAN.iter().any(|cue| {
        text.match_indices(cue).any(|(i, _)| !text[i + cue.len()..].starts_with('中') && !text[i + cue.len()..].starts_with("していた"))
    })
}

/// Classify one clause given the facts found in it.
pub fn classify(text: &str, facts: &[&Found]) -> Section {
    let has = |k: FactKind| facts.iter().any(|f| f.fact.kind == k);
    if has_plan_cue(text) {
        return Section::Plan;
    }
    if ASSESS.iter().any(|c| text.contains(c)) {
        return Section::Assessment;
    }
    if facts.iter().any(|f| f.fact.kind == FactKind::Diagnosis && !f.fact.negated) {
        return Section::Assessment;
    }
    if has(FactKind::Vital) || has(FactKind::Lab) || has(FactKind::Exam) {
        return Section::Objective;
    }
    let symptom_only = has(FactKind::Symptom) || has(FactKind::History) || has(FactKind::Demographic);
    if !symptom_only && (has(FactKind::Test) || OBJECTIVE.iter().any(|c| text.contains(c))) {
        return Section::Objective;
    }
    Section::Subjective
}

/// 「肺炎を疑い抗菌薬を開始する」 carries an assessment and a plan: the char index after the assessment part, if the
/// clause should be split there.
pub fn mixed_split(text: &str) -> Option<usize> {
    const JOINTS: [&str; 8] = ["を疑い", "と考え", "と判断し", "疑いにて", "疑いで", "の診断で", "の診断にて", "を疑って"];
    for j in JOINTS {
        if let Some(i) = text.find(j) {
            let mut cut = i + j.len();
            for suffix in ["られ", "て", "、", " "] {
                if text[cut..].starts_with(suffix) {
                    cut += suffix.len();
                }
            }
            if cut < text.len() && has_plan_cue(&text[cut..]) {
                return Some(text[..cut].chars().count());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert_eq!(header("S) 頭痛"), Some((Section::Subjective, 3)));
        assert_eq!(header("【P】入院"), Some((Section::Plan, 3)));
        assert_eq!(header("主訴: 胸痛").map(|h| h.0), Some(Section::Subjective));
        assert_eq!(header("SpO2 93%"), None);
    }

    #[test]
    fn mixed() {
        let t = "肺炎を疑い抗菌薬を開始する";
        let cut = mixed_split(t).unwrap();
        assert_eq!(t.chars().take(cut).collect::<String>(), "肺炎を疑い");
        assert_eq!(mixed_split("肺炎を疑う"), None);
    }
}
