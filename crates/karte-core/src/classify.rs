//! What kind of statement a clause is ([`Role`]), from cue words and the facts it carries. Which section of a
//! document takes that role is the document kind's business (`document`), as are explicit headers.

use crate::document::Role;
use crate::extract::Found;
use crate::ngram::Model;
use crate::types::FactKind;
use std::cell::RefCell;
use std::sync::LazyLock;

/// Plan cues. A cue followed by 中/後/時 or a passive (投与中, 開始後6週, 安静時, 処方された) describes a state, not a plan.
const PLAN: [&str; 75] = [
    "予定",
    "開始",
    "処方",
    "継続",
    "検討",
    "施行する",
    "施行とする",
    "施行します",
    "施行した",
    "提出",
    "依頼",
    "行う",
    "行います",
    "入院",
    "経過観察",
    "フォロー",
    "再診",
    "再検",
    "中止",
    "変更",
    "増量",
    "減量",
    "指導",
    "コンサルト",
    "紹介",
    "オーダー",
    "追加",
    "とする",
    "します",
    "投与",
    "調整",
    "モニタリング",
    "モニター",
    "観察する",
    "確認する",
    "評価する",
    "測定する",
    "帰宅",
    "退院",
    "安静",
    "絶食",
    "補液",
    "方針",
    "予約",
    "加療する",
    "加療とする",
    "再開",
    "導入",
    "留置",
    "補正",
    "中和",
    "固定",
    "輸血",
    "静注した",
    "実施する",
    "実施した",
    "採取",
    "挿入",
    "ドレナージ",
    "手術",
    "検査する",
    "精査",
    "頓用",
    "頓服",
    "してもらう",
    "してもらいます",
    // Spoken orders and what the physician did for the patient (「全粥にアップしてください」「病状を説明しました」
    // 「経過をみます」「循環器内科をコール」).
    "してください",
    "説明しました",
    "説明します",
    "説明した",
    "説明する",
    "経過をみ",
    "経過を見",
    // 「ドレーンは本日抜去」; a patient's 自己抜去 is an event (see `has_plan_cue`).
    "抜去",
    // Spoken plans of what will be done from now on (「1段階上げていきます」「15分ごとに測定していきます」).
    "ていきます",
];
const NOT_A_PLAN_AFTER: [&str; 10] = [
    "中",
    "後",
    "時",
    "下",
    "された",
    "されて",
    "していた",
    "している",
    "歴",
    "されている",
];
/// English plan words as physicians abbreviate them (「CTRX 2g iv」「f/u」), matched as whole words: 「po」 must
/// not be read inside 「hypokinesis」.
const PLAN_EN: [&str; 15] = [
    "iv",
    "po",
    "prn",
    "div",
    "sc",
    "im",
    "start",
    "f/u",
    "F/U",
    "consult",
    "emergently",
    "order",
    "check",
    "continue",
    "stop",
];
/// English assessment words (「CHF exacerbation s/o」), matched as whole words.
const ASSESS_EN: [&str; 7] = [
    "s/o",
    "probable",
    "possible",
    "suspected",
    "impression",
    "DDx",
    "ddx",
];
/// Routes that make a drug named with them an order given now (「フロセミド20mg静注」「PSL 40mg po」), unless a
/// history cue says it is what the patient takes (内服中).
const DRUG_ROUTES: [&str; 12] = [
    "内服",
    "静注",
    "点滴",
    "皮下注",
    "筋注",
    "舌下",
    "貼付",
    "吸入",
    "投与",
    "頓用",
    "頓服",
    "持続",
];

/// Does `text` contain `w` as a word (no ASCII letter on either side)?
fn has_word(text: &str, w: &str) -> bool {
    text.match_indices(w).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + w.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphabetic())
            && !after.is_some_and(|c| c.is_ascii_alphabetic())
    })
}

/// Assessment cues beyond the suspicion cues that also mark a diagnosis as suspected (see `extract`).
const ASSESS_ONLY: [&str; 6] = ["診断", "判断", "印象", "否定的", "考えにくい", "疑っ"];

/// An assessment made now; 「〜と診断され」 (passive) reports a past diagnosis, which is history.
pub fn has_assess_cue(text: &str) -> bool {
    ASSESS_EN.iter().any(|w| has_word(text, w))
        || crate::extract::SUSPECT_CUES
            .iter()
            .chain(ASSESS_ONLY.iter())
            .any(|c| {
                text.match_indices(c)
                    .any(|(i, _)| !(*c == "診断" && text[i + c.len()..].starts_with("され")))
            })
}
const OBJECTIVE: [&str; 39] = [
    "(+)",
    "(-)",
    "所見",
    "聴取",
    "聴診",
    "触診",
    "触知",
    "視診",
    "打診",
    "を認め",
    "認める",
    "画像",
    "陰影",
    "意識清明",
    "心音",
    "呼吸音",
    "腹部平坦",
    "瞳孔",
    "対光反射",
    "陽性",
    "陰性",
    "異常なし",
    "著変なし",
    "検査で",
    "蠕動音",
    "拡大し",
    "縮小し",
    // What the patient could not do when examined (「日付が言えません」「名前が言えない」「質問に答えられない」).
    "が言えない",
    "が言えません",
    "答えられない",
    "答えられません",
    // Spoken negative findings (「出血傾向は見られません」「心膜摩擦音は聞こえません」「ST変化は認めません」).
    "見られません",
    "みられません",
    "見られない",
    "みられない",
    "認めません",
    "音は聞こえ",
    "音も聞こえ",
    // 「会話は成立します」: a mental state examined.
    "成立",
];
/// Phrases that carry a clause's meaning on their own; a clause with none of them takes its section from its
/// sentence (see `pipeline`).
const OTHER_CUES: [&str; 12] = [
    "あり",
    "有り",
    "なし",
    "無し",
    "ない",
    "出現",
    "持続",
    "増悪",
    "自覚",
    "訴え",
    "せず",
    "認めず",
];

fn has_plan_cue(text: &str) -> bool {
    // 「胸部X線撮影」 at the end of a ward entry is an order; 「胸部X線撮影で…」 reports what it showed.
    ["撮影", "採血"]
        .iter()
        .any(|w| text.trim_end().ends_with(w))
        // 「循環器内科をコール」 calls a colleague; a patient's 「ナースコール」 is not an order.
        || (text.trim_end().ends_with("コール") && !text.contains("ナースコール"))
        || PLAN_EN.iter().any(|w| has_word(text, w))
        || PLAN.iter().any(|cue| {
            text.match_indices(cue).any(|(i, _)| {
                let after = &text[i + cue.len()..];
                let finding_verb = GENERIC_PLAN.contains(cue)
                    && NOT_A_PLAN_BEFORE.iter().any(|v| text[..i].ends_with(v));
                let by_patient = *cue == "抜去" && text[..i].ends_with("自己");
                !NOT_A_PLAN_AFTER.iter().any(|n| after.starts_with(n)) && !finding_verb && !by_patient
            })
        })
}

/// Plan cues that are only a verb ending: what they end says whether anything is ordered.
const GENERIC_PLAN: [&str; 2] = ["します", "とする"];
/// Verbs of finding and judging: 「クラックルを聴取します」 reports a finding and 「リスクが高いと判断します」 a
/// judgement, in the same polite form as 「開始します」.
const NOT_A_PLAN_BEFORE: [&str; 8] = [
    "聴取", "触知", "判断", "診断", "推定", "想定", "予想", "成立",
];

/// Does the clause have any cue of its own? A clause without one (「胸部X線」「セフトリアキソン 2g 1日1回 点滴静注」) is
/// part of a list whose predicate comes later in the sentence.
pub fn has_cue(text: &str) -> bool {
    has_plan_cue(text)
        || has_assess_cue(text)
        || [
            &OBJECTIVE[..],
            &OTHER_CUES[..],
            &crate::extract::HISTORY_CUES[..],
        ]
        .iter()
        .any(|cues| cues.iter().any(|c| text.contains(c)))
}

/// A clause ending in a continuative form (「評価し」「行い」「採取後」「留置の上」) leads into the next clause and
/// shares its section, unless it carries an assessment of its own.
pub fn is_connective(text: &str) -> bool {
    let t = text.trim_end();
    ["し", "して", "行い", "後", "の上", "上", "ため"]
        .iter()
        .any(|e| t.ends_with(e))
        && !has_assess_cue(t)
}

/// Classify one clause given the facts found in it.
pub fn classify(text: &str, facts: &[&Found]) -> Role {
    let has = |k: FactKind| facts.iter().any(|f| f.fact.kind == k);
    let objective_cue = OBJECTIVE.iter().any(|c| text.contains(c));
    if has_plan_cue(text) {
        return Role::Planned;
    }
    if has_assess_cue(text) {
        return Role::Assessed;
    }
    // A complaint told with its onset (「昨晩から38度台の発熱が続いて」) is history even when it carries a number.
    let onset = ONSET.iter().any(|o| text.contains(o));
    if has(FactKind::Symptom) && onset && !has(FactKind::Exam) {
        return Role::Reported;
    }
    if has(FactKind::Vital) || has(FactKind::Lab) || has(FactKind::Exam) {
        return Role::Observed;
    }
    let subjective = has(FactKind::Symptom) || has(FactKind::History) || has(FactKind::Demographic);
    let historic = crate::extract::HISTORY_CUES
        .iter()
        .any(|c| text.contains(c));
    // A drug with its route and no history cue is an order (ward records and English notes write no 「開始する」).
    if has(FactKind::Drug)
        && !historic
        && !subjective
        && DRUG_ROUTES.iter().any(|r| {
            text.match_indices(r).any(|(i, _)| {
                // 「内服: アムロジピン 5mg」 lists what the patient takes; 「内服薬」 names them.
                let after = &text[i + r.len()..];
                !NOT_A_PLAN_AFTER.iter().any(|n| after.starts_with(n))
                    && !after.starts_with([':', '薬'])
            })
        })
    {
        return Role::Planned;
    }
    // A measured quantity with nothing else (「導尿にて400mL」「左より3cm太い」) is an observation.
    let told = TOLD.iter().any(|w| text.contains(w));
    if !subjective
        && !has(FactKind::Drug)
        && (measured_quantity(text) || (stated_value(text) && !told))
    {
        return Role::Observed;
    }
    if facts
        .iter()
        .any(|f| f.fact.kind == FactKind::Diagnosis && !f.fact.negated)
    {
        // 「心電図で心房細動を認める」 reports a finding; a diagnosis named on its own is an assessment.
        return if objective_cue || has(FactKind::Test) {
            Role::Observed
        } else {
            Role::Assessed
        };
    }
    // 「頭部打撲なし」: an injury or disease looked for and not found is a finding, not something the patient told.
    // 「低血糖症状はなしとのこと」 is still what the patient says.
    let ruled_out = facts
        .iter()
        .any(|f| f.fact.kind == FactKind::Diagnosis && f.fact.negated)
        && !told;
    // 「口腔内の衛生状態は不良」 grades what was examined; appetite and sleep are what the patient tells.
    let graded_poor = text.contains("は不良")
        && !["食欲", "睡眠", "眠り", "寝つき", "気分", "調子"]
            .iter()
            .any(|w| text.contains(w));
    if !subjective && (has(FactKind::Test) || objective_cue || ruled_out || graded_poor) {
        return Role::Observed;
    }
    // Something the patient or family told, history, or a drug that the route rule above did not call an order
    // (「内服: アムロジピン 5mg」 lists what the patient takes): the rules know it is S.
    if subjective || told || historic || has(FactKind::Drug) || onset || clock_time(text) {
        return Role::Reported;
    }
    // No rule decided. S was the old default; the learned model has seen how wards phrase findings, judgements and
    // orders that name no cue word (「創部はきれい」「2時間ごとにチェック」) and answers where it is confident.
    learned(text).unwrap_or(Role::Reported)
}

/// A time of day (「10時20分」「三時頃」, not 「2時間」): when something happened, which the patient or the family
/// tells; a measurement is said with what it measures.
fn clock_time(text: &str) -> bool {
    let c: Vec<char> = text.chars().collect();
    c.windows(3).any(|w| {
        (w[0].is_ascii_digit() || "〇一二三四五六七八九十".contains(w[0]))
            && w[1] == '時'
            && w[2] != '間'
    })
}

/// The role names the clause model's classes carry, as `Role` serialises.
pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Reported => "reported",
        Role::Observed => "observed",
        Role::Assessed => "assessed",
        Role::Planned => "planned",
    }
}

/// The shipped clause-role model (`assets/rules/clause_roles.bin`, trained on the development set by
/// `cargo run --release -p karte-core --example train_clauses`); `None` while the file is empty.
fn shipped() -> Option<&'static Model> {
    static M: LazyLock<Option<Model>> = LazyLock::new(|| {
        let bytes = include_bytes!("../../../assets/rules/clause_roles.bin");
        (!bytes.is_empty()).then(|| {
            Model::from_bytes(bytes)
                .unwrap_or_else(|e| panic!("assets/rules/clause_roles.bin: {e}"))
        })
    });
    M.as_ref()
}

thread_local! {
    /// A model the trainer scores in place of the shipped one (a cross-validation fold's); `Some(None)`: no model.
    static TRIAL: RefCell<Option<Option<Model>>> = const { RefCell::new(None) };
}

/// Run `f` with `model` in place of the shipped clause model on this thread: how the trainer measures a model on
/// the quality sets before it is shipped.
pub fn with_trial_model<T>(model: Option<Model>, f: impl FnOnce() -> T) -> T {
    let before = TRIAL.with(|t| t.replace(Some(model)));
    let out = f();
    TRIAL.with(|t| *t.borrow_mut() = before);
    out
}

fn learned(text: &str) -> Option<Role> {
    let pick = |m: &Model| {
        let (class, p) = m.best(text);
        (p >= m.threshold)
            .then(|| Role::ALL.into_iter().find(|r| role_name(*r) == class))
            .flatten()
    };
    TRIAL.with(|t| match &*t.borrow() {
        Some(trial) => trial.as_ref().and_then(pick),
        None => shipped().and_then(pick),
    })
}

/// Words that mark a statement as the patient's account or a complaint.
const TOLD: [&str; 6] = ["症状", "訴え", "とのこと", "そうです", "と言って", "自覚"];

/// When a complaint began: 「3日前から」「昨晩から」.
const ONSET: [&str; 14] = [
    "日前から",
    "週間前から",
    "か月前から",
    "ヶ月前から",
    "昨日から",
    "昨晩から",
    "昨夜から",
    "今朝から",
    "先週から",
    "先月から",
    "夕方から",
    "夜間から",
    "朝から",
    "頃から",
];

/// A value said after what it measures (「体重は62.4キロ」「水飲みテストは4点」「脈拍は百二十」「体温三十七度八分」): a
/// transcript names the measurement in words the extractor does not know as a vital or a lab, and spells numbers in
/// kanji. Only digits follow a bare topic particle; kanji numerals only a measurement's name, since 「は一時」 is
/// not a value.
fn stated_value(text: &str) -> bool {
    let c: Vec<char> = text.chars().collect();
    let kanji_digit = |ch: char| "〇一二三四五六七八九十百".contains(ch);
    // 「最終健常確認は10時20分」「発症は3日前」: a time or an age is when, not what was measured.
    let when = |i: usize| {
        let mut k = i;
        while k < c.len() && (c[k].is_ascii_digit() || c[k] == '.' || kanji_digit(c[k])) {
            k += 1;
        }
        c.get(k).is_some_and(|u| "時日月年歳週ヶか".contains(*u))
    };
    (1..c.len()).any(|i| {
        if when(i) {
            return false;
        }
        let before: String = c[..i].iter().collect();
        let label = |b: &str| crate::clause::JA_LABELS.iter().any(|l| b.ends_with(l));
        (c[i].is_ascii_digit() && matches!(c[i - 1], 'は' | 'が' | 'で'))
            // 「アンモニアは百八十」: two kanji numerals in a row are a number (「は十分」「は一度」 are not).
            || (kanji_digit(c[i])
                && matches!(c[i - 1], 'は' | 'が')
                && c.get(i + 1).is_some_and(|&n| kanji_digit(n)))
            || ((c[i].is_ascii_digit() || kanji_digit(c[i]))
                && (label(&before)
                    || before.strip_suffix(['は', 'が']).is_some_and(label)
                    // 「エスピーオーツー99」「ピーエイチ7.21」「ラクテート6.8」
                    || crate::clause::spoken_label_before(&c, i)))
    })
}

/// A number with a unit of amount or size (mL, L, kg, cm, mm, g): what a nurse measured.
fn measured_quantity(text: &str) -> bool {
    let c: Vec<char> = text.chars().collect();
    (0..c.len()).any(|i| {
        c[i].is_ascii_digit()
            && ["mL", "ml", "L", "cm", "mm", "kg"].iter().any(|u| {
                let rest: String = c[i + 1..].iter().take(u.len()).collect();
                rest == *u
                    && c.get(i + 1 + u.len())
                        .is_none_or(|n| !n.is_ascii_alphabetic())
            })
    })
}

/// 「肺炎を疑い抗菌薬を開始する」 carries an assessment and a plan: the char index after the assessment part, if the
/// clause should be split there.
pub fn mixed_split(text: &str) -> Option<usize> {
    const JOINTS: [&str; 8] = [
        "を疑い",
        "と考え",
        "と判断し",
        "疑いにて",
        "疑いで",
        "の診断で",
        "の診断にて",
        "を疑って",
    ];
    for j in JOINTS {
        if let Some(i) = text.find(j) {
            let mut cut = i + j.len();
            for suffix in [
                "られ",
                "る",
                "ます",
                "て",
                "おりますので",
                "いますので",
                "ますので",
                "おり",
                "、",
                " ",
            ] {
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
    fn mixed() {
        let t = "肺炎を疑い抗菌薬を開始する";
        let cut = mixed_split(t).unwrap();
        assert_eq!(t.chars().take(cut).collect::<String>(), "肺炎を疑い");
        assert_eq!(mixed_split("肺炎を疑う"), None);
    }

    #[test]
    fn spoken_forms() {
        // A finding or a judgement in the polite form is not an order.
        assert_eq!(
            classify("右下肺野でクラックルを聴取します", &[]),
            Role::Observed
        );
        assert_eq!(
            classify("誤嚥のリスクが高いと判断します", &[]),
            Role::Assessed
        );
        assert_eq!(
            classify("弾性ストッキングを着用してもらいます", &[]),
            Role::Planned
        );
        // A value said after what it measures is observed; a time or the patient's account is not.
        assert_eq!(
            classify("体重は62.4キロで昨日より減です", &[]),
            Role::Observed
        );
        assert_eq!(classify("脈拍は百二十で頻脈です", &[]), Role::Observed);
        assert_eq!(classify("最終健常確認は10時20分", &[]), Role::Reported);
        assert_eq!(
            classify("痛みは5段階で2くらいとのことで", &[]),
            Role::Reported
        );
        assert_eq!(classify("アンモニアは百八十", &[]), Role::Observed);
        assert_eq!(classify("口腔内の衛生状態は不良", &[]), Role::Observed);
        assert_eq!(classify("睡眠は不良とのこと", &[]), Role::Reported);
        assert_eq!(classify("日付が言えません", &[]), Role::Observed);
        // Spoken orders.
        for t in [
            "明日から全粥にアップしてください",
            "ご家族には病状を説明しました",
            "分娩室に移動して経過をみます",
            "循環器内科をコール",
        ] {
            assert_eq!(classify(t, &[]), Role::Planned, "{t}");
        }
        // No cue word: the clause model answers, as the ward case dev-ward-10 labels it (what staff saw), not an
        // order for all its コール.
        assert_eq!(classify("頻回のナースコール", &[]), Role::Observed);
        assert_eq!(classify("ドレーンは本日抜去", &[]), Role::Planned);
        assert_eq!(classify("点滴を自己抜去しようとした", &[]), Role::Reported);
        assert_eq!(classify("出血傾向は見られません", &[]), Role::Observed);
        assert_eq!(classify("会話は成立します", &[]), Role::Observed);
        assert_eq!(
            classify("エスピーオーツー99パーセント", &[]),
            Role::Observed
        );
    }
}
