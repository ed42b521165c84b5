//! Deterministic extraction of clinical facts from normalised clauses, with Japanese rules and the lexicons.
//!
//! Rules, not a model, because every fact must be traceable to the characters it came from and must never invent a
//! value; recall gaps are fixed by adding spellings to the lexicons, which the data-driven tests pin down.

use crate::clause::Clause;
use crate::lexicon::{Lexicon, DIAGNOSES, DRUGS, FINDINGS, LABS, SYMPTOMS, TESTS};
use crate::normalize::{CharIndex, Normalized};
use crate::types::{Certainty, Fact, FactKind};
use regex::Regex;
use std::sync::LazyLock;

/// A fact together with the clause it was found in and its normalised char range.
#[derive(Debug, Clone)]
pub struct Found {
    pub clause: usize,
    pub start: usize,
    pub end: usize,
    pub fact: Fact,
}

/// A lexicon compiled to one leftmost-first alternation (longest spelling first).
struct Matcher {
    re: Regex,
    names: Vec<(String, String)>,
}

impl Matcher {
    fn new(lx: &Lexicon) -> Matcher {
        let sp = lx.spellings();
        let alt: Vec<String> = sp.iter().map(|(s, _)| regex::escape(s)).collect();
        Matcher {
            re: Regex::new(&format!("(?:{})", alt.join("|"))).unwrap(),
            names: sp
                .iter()
                .map(|(s, n)| (s.to_string(), n.to_string()))
                .collect(),
        }
    }
    /// (start byte, end byte, canonical name) of each match whose ASCII ends are word boundaries.
    fn find(&self, text: &str) -> Vec<(usize, usize, &str)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < text.len() {
            let Some(m) = self.re.find_at(text, pos) else {
                break;
            };
            let before = text[..m.start()].chars().next_back();
            let after = text[m.end()..].chars().next();
            let first = m.as_str().chars().next().unwrap();
            let last = m.as_str().chars().next_back().unwrap();
            let bad = (first.is_ascii_alphanumeric()
                && before.is_some_and(|c| c.is_ascii_alphanumeric()))
                || (last.is_ascii_alphabetic() && after.is_some_and(|c| c.is_ascii_alphabetic()));
            if !bad {
                let name = self
                    .names
                    .iter()
                    .find(|(s, _)| s == m.as_str())
                    .map(|(_, n)| n.as_str())
                    .unwrap();
                out.push((m.start(), m.end(), name));
                pos = m.end();
            } else {
                pos = m.start() + first.len_utf8();
            }
        }
        out
    }
}

static M_SYMPTOM: LazyLock<Matcher> = LazyLock::new(|| Matcher::new(&SYMPTOMS));
static M_FINDING: LazyLock<Matcher> = LazyLock::new(|| Matcher::new(&FINDINGS));
static M_DX: LazyLock<Matcher> = LazyLock::new(|| Matcher::new(&DIAGNOSES));
static M_DRUG: LazyLock<Matcher> = LazyLock::new(|| Matcher::new(&DRUGS));
static M_LAB: LazyLock<Matcher> = LazyLock::new(|| Matcher::new(&LABS));
static M_TEST: LazyLock<Matcher> = LazyLock::new(|| Matcher::new(&TESTS));

const SEP: &str = r"\s*(?:[:=]|は|が|:)?\s*";

struct VitalPat {
    name: &'static str,
    re: Regex,
}

static VITALS: LazyLock<Vec<VitalPat>> = LazyLock::new(|| {
    let v = |name, pat: &str| VitalPat {
        name,
        re: Regex::new(pat).unwrap(),
    };
    vec![
        v(
            "体温",
            &format!(
                r"(?:BT|KT|体温|Temp|T){SEP}(?P<v>[0-9]{{2}}(?:\.[0-9]{{1,2}})?)\s*(?P<u>℃|度)?"
            ),
        ),
        v(
            "体温",
            r"(?P<v>[0-9]{2}(?:\.[0-9]{1,2})?)\s*(?P<u>℃|度)(?:台)?(?:の)?(?:発熱|熱|$|[、。,\s)])",
        ),
        v(
            "血圧",
            &format!(
                r"(?:sBP|BP|血圧){SEP}(?P<v>[0-9]{{2,3}}\s*(?:/|の)\s*[0-9]{{2,3}})\s*(?P<u>mmHg)?"
            ),
        ),
        v("血圧", r"(?P<v>[0-9]{2,3}/[0-9]{2,3})\s*(?P<u>mmHg)"),
        v(
            "脈拍",
            &format!(
                r"(?:HR|PR|脈拍数|脈拍|心拍数|心拍|脈|P){SEP}(?:(?:整|不整)(?:で|,)?\s*)?(?P<v>[0-9]{{2,3}})\s*(?P<u>回/分|/分|bpm|/min)?"
            ),
        ),
        v(
            "呼吸数",
            &format!(r"(?:RR|呼吸数){SEP}(?P<v>[0-9]{{1,2}})\s*(?P<u>回/分|/分|/min)?"),
        ),
        v(
            "SpO2",
            &format!(
                r"(?:SpO2|SPO2|SaO2|SAT|サチュレーション|酸素飽和度){SEP}(?P<v>[0-9]{{2,3}})\s*(?P<u>%)?"
            ),
        ),
        v(
            "体重",
            &format!(r"体重{SEP}(?P<v>[0-9]{{1,3}}(?:\.[0-9])?)\s*(?P<u>kg)"),
        ),
        v(
            "GCS",
            &format!(r"GCS{SEP}(?P<v>E[0-9]V[0-9T]M[0-9]|[0-9]{{1,2}})"),
        ),
        v("GCS", r"(?P<v>E[1-4]V[1-5T]M[1-6])"),
        v(
            "JCS",
            &format!(r"JCS{SEP}(?P<v>I{{1,3}}-[0-9]{{1,3}}|[0-9]{{1,3}})"),
        ),
    ]
});

static LAB_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"^(?:値)?{SEP}(?P<v>[<>≦≧]?[0-9]+(?:,[0-9]{{3}})*(?:\.[0-9]+)?)(?:\s*(?P<u>mg/dL|g/dL|mEq/L|mmol/L|IU/L|U/L|μg/mL|μg/dL|ng/mL|ng/dL|pg/mL|μIU/mL|μU/mL|mL/min/1\.73m2|万/μL|/μL|/mm3|fL|Torr|mmHg|mg/L|%))?"
    ))
    .unwrap()
});

static DOSE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\s*(?:を|は|錠)?\s*)(?P<v>[0-9]+(?:\.[0-9]+)?)\s*(?P<u>mg|g|μg|mcg|mL|ml|単位|IU|U|mEq|錠|カプセル|包|アンプル|バイアル|A|V|L/分|L)")
        .unwrap()
});
static ROUTE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"点滴静注|点滴|静注|静脈注射|経口|内服|皮下注射|皮下注|筋注|筋肉注射|舌下|吸入|貼付|外用|div|DIV|iv|IV|po|PO|sc|SC|im|IM").unwrap()
});
static FREQ: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"1日[0-9]回|[0-9]回/日|分[0-9]|毎食後|朝食後|夕食後|朝夕食後|就寝前|眠前|頓用|頓服|q[0-9]+h|[0-9]+時間(?:毎|ごと)|単回|BID|TID|QID|bid|tid|qid")
        .unwrap()
});
static ONSET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:約)?(?:[0-9]+|数|半|一昨|昨|先|今)(?:日|週間|週|か月|ヶ月|カ月|ケ月|年|時間|分)(?:前|間)(?:から|より)?|昨日(?:から|より)?|昨夜(?:から|より)?|一昨日(?:から|より)?|今朝(?:から|より)?|本日(?:から|より)?|今日(?:から|より)?|昨晩(?:から|より)?|先週(?:から|より)?|起床時(?:から|より)?")
        .unwrap()
});
static AGE_SEX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?P<age>[0-9]{1,3})\s*(?P<y>歳|才)\s*(?:の)?(?P<sex>男性|女性|男児|女児|男|女)?")
        .unwrap()
});
static LATERAL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"両側|両|右|左").unwrap());

const NEG_CUES: [&str; 17] = [
    "なし",
    "無し",
    "ない",
    "なく",
    "なかった",
    "認めず",
    "認めない",
    "認められない",
    "聴取せず",
    "せず",
    "陰性",
    "(-)",
    "否定的",
    "は否定",
    "否定され",
    "考えにくい",
    "消失",
];
const POS_CUES: [&str; 11] = [
    "あり",
    "有り",
    "を認め",
    "認める",
    "出現",
    "持続",
    "増悪",
    "続く",
    "(+)",
    "陽性",
    "聴取",
];
pub(crate) const SUSPECT_CUES: [&str; 16] = [
    "否定できず",
    "疑い",
    "疑う",
    "疑わ",
    "疑診",
    "可能性",
    "否定できない",
    "否定はできない",
    "考え",
    "示唆",
    "鑑別",
    "r/o",
    "R/O",
    "懸念",
    "推定",
    "と思われ",
];
/// Cues that make a diagnosis named just before them a past illness (「糖尿病で内服中」「心房細動の既往」).
pub(crate) const HISTORY_CUES: [&str; 16] = [
    "既往",
    "治療中",
    "加療中",
    "通院中",
    "内服中",
    "療法中",
    "入所中",
    "罹患",
    "術後",
    "フォロー中",
    "歴あり",
    "にて当院",
    "指摘され",
    "の病歴",
    "外来通院",
    "診断され",
];

/// How far around a term its clause is read for negation, laterality, history and dose cues. The cues sit next to
/// what they qualify; reading the whole rest of the clause for every term made a clause of thousands of findings
/// (a pasted log) quadratic.
const CONTEXT_CHARS: usize = 120;

/// At most [`CONTEXT_CHARS`] characters of `text` from byte `e`.
fn after(text: &str, e: usize) -> &str {
    let rest = &text[e..];
    let end = rest
        .char_indices()
        .nth(CONTEXT_CHARS)
        .map_or(rest.len(), |(i, _)| i);
    &rest[..end]
}

/// At most [`CONTEXT_CHARS`] characters of `text` before byte `s`.
fn before(text: &str, s: usize) -> &str {
    let head = &text[..s];
    let start = head
        .char_indices()
        .rev()
        .nth(CONTEXT_CHARS - 1)
        .map_or(0, |(i, _)| i);
    &head[start..]
}

/// Is the finding that ends at `tail` (the rest of its clause) negated? The nearest cue wins, so 「発熱ありで咳嗽なし」
/// keeps 発熱 positive.
fn negated_tail(tail: &str) -> bool {
    // Negation does not reach past a new phrase: in 「発熱と下痢で食事が摂れていない」 the ない is about eating.
    let mut end = tail.len();
    for b in ["ため", "により", "による", "ので"] {
        if let Some(i) = tail.find(b) {
            end = end.min(i);
        }
    }
    for (i, _) in tail.match_indices('で') {
        if !tail[i + 'で'.len_utf8()..].starts_with(['は', 'も']) {
            end = end.min(i);
            break;
        }
    }
    let tail = &tail[..end];
    if tail.contains("否定できない") || tail.contains("否定はできない") {
        return false;
    }
    let first = |cues: &[&str]| cues.iter().filter_map(|c| tail.find(c)).min();
    match (first(&NEG_CUES), first(&POS_CUES)) {
        // At the same position the negative cue is the longer one (聴取せず over 聴取).
        (Some(n), Some(p)) => n <= p,
        (Some(_), None) => true,
        _ => false,
    }
}

/// A diagnosis is history when 既往 comes before it, or a history cue follows it closely (「糖尿病で内服中」), but not
/// when the cue belongs to something else (「抗凝固薬内服中の頭部外傷」).
fn is_history(head: &str, tail: &str) -> bool {
    if head.contains("既往") {
        return true;
    }
    // The cue may follow the drug list: 「高血圧症でアムロジピン 5mg 1日1回 を内服中」.
    HISTORY_CUES.iter().any(|c| tail.contains(c))
}

fn has_any(text: &str, cues: &[&str]) -> bool {
    cues.iter().any(|c| text.contains(c))
}

/// Extract every fact of every clause. Offsets in `Found` are normalised char offsets; `fact.span` is original.
/// The facts of a short text read as one clause: a draft sentence being checked against the dictation.
pub fn extract_sentence(norm: &Normalized) -> Vec<Found> {
    let clause = Clause {
        start: 0,
        end: norm.len(),
        text: norm.text.clone(),
        sentence: 0,
    };
    extract(norm, std::slice::from_ref(&clause))
}

pub fn extract(norm: &Normalized, clauses: &[Clause]) -> Vec<Found> {
    let mut out: Vec<Found> = Vec::new();
    for (ci, cl) in clauses.iter().enumerate() {
        extract_clause(norm, ci, cl, &mut out);
    }
    drop_nested_terms(&mut out);
    inherit_enumeration_negation(clauses, &mut out);
    for d in crate::wareki::find_dates(&norm.text) {
        // Clauses are in text order: the last one starting at or before the date holds it.
        let clause = clauses
            .partition_point(|c| c.start <= d.start)
            .checked_sub(1)
            .filter(|&i| d.start < clauses[i].end)
            .unwrap_or(0);
        let mut f = Fact::new(FactKind::Date, "日付", norm.orig_span(d.start, d.end));
        f.value = Some(d.iso);
        out.push(Found {
            clause,
            start: d.start,
            end: d.end,
            fact: f,
        });
    }
    out.sort_by_key(|f| (f.start, f.end));
    out
}

fn extract_clause(norm: &Normalized, ci: usize, cl: &Clause, out: &mut Vec<Found>) {
    let text = cl.text.as_str();
    let idx = CharIndex::new(text);
    let base = cl.start;
    let mut taken: Vec<(usize, usize)> = Vec::new(); // byte ranges already used by a numeric fact
    let overlaps =
        |taken: &[(usize, usize)], s: usize, e: usize| taken.iter().any(|&(a, b)| s < b && a < e);
    let push = |out: &mut Vec<Found>, s: usize, e: usize, fact_fn: &dyn Fn(crate::Span) -> Fact| {
        let (cs, ce) = (base + idx.char_at(s), base + idx.char_at(e));
        out.push(Found {
            clause: ci,
            start: cs,
            end: ce,
            fact: fact_fn(norm.orig_span(cs, ce)),
        });
    };

    // Dates first, so that 2024/4/1 is never read as a blood pressure.
    for d in crate::wareki::find_dates(text) {
        let b = |c: usize| {
            text.char_indices()
                .nth(c)
                .map(|(b, _)| b)
                .unwrap_or(text.len())
        };
        taken.push((b(d.start), b(d.end)));
    }

    for vp in VITALS.iter() {
        for c in vp.re.captures_iter(text) {
            let m = c.get(0).unwrap();
            let v = c.name("v").unwrap();
            if overlaps(&taken, m.start(), m.end()) {
                continue;
            }
            if m.as_str().starts_with(|ch: char| ch.is_ascii_alphabetic())
                && text[..m.start()]
                    .chars()
                    .next_back()
                    .is_some_and(|ch| ch.is_ascii_alphanumeric())
            {
                continue;
            }
            let value: String = v.as_str().chars().filter(|c| !c.is_whitespace()).collect();
            // 「体重が5kg減少」 is a change, not a weight.
            let after = text[m.end()..].trim_start();
            if vp.name == "体重"
                && ["減少", "増加", "減", "増", "の減少", "の増加"]
                    .iter()
                    .any(|w| after.starts_with(w))
            {
                continue;
            }
            if vp.name == "体温"
                && !value
                    .parse::<f64>()
                    .is_ok_and(|t| (30.0..=44.0).contains(&t))
            {
                continue;
            }
            taken.push((m.start(), m.end()));
            let unit = c.name("u").map(|u| {
                if u.as_str() == "度" {
                    "℃".to_string()
                } else {
                    u.as_str().to_string()
                }
            });
            let oxygen = if vp.name == "SpO2" {
                oxygen_note(&text[m.end()..])
            } else {
                None
            };
            let end = c.name("u").map(|u| u.end()).unwrap_or(v.end());
            push(out, m.start(), end, &|span| {
                let mut f = Fact::new(crate::FactKind::Vital, vp.name, span);
                f.value = Some(value.clone());
                f.unit = unit.clone();
                if let Some(o) = &oxygen {
                    f.attrs.insert("oxygen".into(), o.clone());
                }
                f
            });
        }
    }

    for (s, e, name) in M_LAB.find(text) {
        if overlaps(&taken, s, e) {
            continue;
        }
        let qualitative =
            |c: &regex::Captures| text[e + c.get(0).unwrap().end()..].starts_with(['+', '-', '±']);
        if let Some(c) = LAB_VALUE.captures(&text[e..]).filter(|c| !qualitative(c)) {
            let v = c.name("v").unwrap();
            let end = e + c.name("u").map(|u| u.end()).unwrap_or(v.end());
            taken.push((s, end));
            let value = v.as_str().replace(',', "");
            let unit = c.name("u").map(|u| u.as_str().to_string());
            push(out, s, end, &|span| {
                let mut f = Fact::new(FactKind::Lab, name, span);
                f.value = Some(value.clone());
                f.unit = unit.clone();
                f
            });
        } else {
            // A lab named without a value (「CRPを提出」「CRP上昇」): it is ordered or known, so not suggested again.
            push(out, s, e, &|span| Fact::new(FactKind::Test, name, span));
        }
    }

    let onset = ONSET.find(text).map(|m| m.as_str().to_string());
    for (s, e, name) in M_SYMPTOM.find(text) {
        // 「疼痛時」「発熱時」 are the condition of a PRN order, not a symptom.
        if text[e..].starts_with('時') {
            continue;
        }
        let neg = negated_tail(after(text, e));
        push(out, s, e, &|span| {
            let mut f = Fact::new(FactKind::Symptom, name, span);
            f.negated = neg;
            if let Some(o) = &onset {
                f.attrs.insert("onset".into(), o.clone());
            }
            f
        });
    }

    let finding_hits = M_FINDING.find(text);
    for &(s, e, name) in &finding_hits {
        // 浮腫 is both a symptom word (むくみ) and a sign; when the symptom matcher took this very span, skip.
        let neg = negated_tail(after(text, e));
        let head = before(text, s);
        let lat = LATERAL.find_iter(head).last();
        let mut attrs = Vec::new();
        if let Some(l) = lat {
            let lat_name = if l.as_str() == "両" {
                "両側"
            } else {
                l.as_str()
            };
            attrs.push(("laterality", lat_name.to_string()));
            let site = head[l.end()..]
                .trim_end_matches(['で', 'に', 'の', 'は', 'を', 'て', 'か', 'ら', ' ']);
            let n = site.chars().count();
            if (1..=8).contains(&n)
                && !site
                    .chars()
                    .any(|c| c.is_ascii_digit() || "、。,".contains(c))
            {
                attrs.push(("site", site.to_string()));
            }
        }
        push(out, s, e, &|span| {
            let mut f = Fact::new(FactKind::Exam, name, span);
            f.negated = neg;
            for (k, v) in &attrs {
                f.attrs.insert((*k).into(), v.clone());
            }
            f
        });
    }

    let suspected = has_any(text, &SUSPECT_CUES);
    for (s, e, name) in M_DX.find(text) {
        let neg = negated_tail(after(text, e));
        let history = is_history(before(text, s), after(text, e));
        push(out, s, e, &|span| {
            let kind = if history {
                FactKind::History
            } else {
                FactKind::Diagnosis
            };
            let mut f = Fact::new(kind, name, span);
            f.negated = neg;
            if !history {
                f.certainty = Some(if suspected {
                    Certainty::Suspected
                } else {
                    Certainty::Confirmed
                });
            }
            f
        });
    }

    for (s, e, name) in M_DRUG.find(text) {
        let tail = after(text, e);
        let dose = DOSE.captures(tail);
        let route = ROUTE.find(tail).map(|m| m.as_str().to_string());
        let freq = FREQ.find(tail).map(|m| m.as_str().to_string());
        let end = dose
            .as_ref()
            .map(|c| e + c.get(0).unwrap().end())
            .unwrap_or(e);
        if dose.is_some() {
            taken.push((s, end));
        }
        push(out, s, end, &|span| {
            let mut f = Fact::new(FactKind::Drug, name, span);
            if let Some(c) = &dose {
                f.value = Some(c["v"].to_string());
                f.unit = Some(c["u"].to_string());
            }
            if let Some(r) = &route {
                f.attrs.insert("route".into(), r.clone());
            }
            if let Some(q) = &freq {
                f.attrs.insert("frequency".into(), q.clone());
            }
            f
        });
    }

    for (s, e, name) in M_TEST.find(text) {
        push(out, s, e, &|span| Fact::new(FactKind::Test, name, span));
    }

    for c in AGE_SEX.captures_iter(text) {
        let a = c.name("age").unwrap();
        let after = &text[c.name("y").unwrap().end()..];
        let at_an_age = [
            "で", "時", "頃", "から", "まで", "より", "以降", "以上", "未満", "代", "の時",
        ]
        .iter()
        .any(|w| after.starts_with(w));
        if overlaps(&taken, a.start(), a.end()) || (c.name("sex").is_none() && at_an_age) {
            continue;
        }
        let age = a.as_str().to_string();
        push(out, a.start(), c.name("y").unwrap().end(), &|span| {
            let mut f = Fact::new(FactKind::Demographic, "年齢", span);
            f.value = Some(age.clone());
            f.unit = Some("歳".into());
            f
        });
        if let Some(sx) = c.name("sex") {
            let sex = if sx.as_str().starts_with('男') {
                "男性"
            } else {
                "女性"
            };
            push(out, sx.start(), sx.end(), &|span| {
                let mut f = Fact::new(FactKind::Demographic, "性別", span);
                f.value = Some(sex.to_string());
                f
            });
        }
    }
}

/// Each lexicon is matched on its own, so 「インフルエンザ迅速検査」 also yields インフルエンザ: keep only the longest
/// of nested lexicon terms.
fn drop_nested_terms(found: &mut Vec<Found>) {
    let term = |k: FactKind| {
        matches!(
            k,
            FactKind::Symptom
                | FactKind::Exam
                | FactKind::Diagnosis
                | FactKind::History
                | FactKind::Test
                | FactKind::Drug
        )
    };
    // One sweep in (start, longest first) order instead of comparing every pair: a pasted log of 10,000 repeated
    // findings made the pairwise check take seconds. A term is nested when an earlier span of the order, other
    // than its own bounds, reaches at least as far: that span starts no later and is strictly longer.
    let mut spans: Vec<(usize, usize)> = found
        .iter()
        .filter(|f| term(f.fact.kind))
        .map(|f| (f.start, f.end))
        .collect();
    spans.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    spans.dedup();
    let mut nested = std::collections::HashSet::new();
    let mut reach: Option<usize> = None;
    for &(s, e) in &spans {
        if reach.is_some_and(|r| r >= e) {
            nested.insert((s, e));
        }
        reach = Some(reach.map_or(e, |r| r.max(e)));
    }
    found.retain(|f| !term(f.fact.kind) || !nested.contains(&(f.start, f.end)));
}

fn oxygen_note(after: &str) -> Option<String> {
    static O2: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\s*\(?\s*(室内気|room air|RA|(?:酸素|O2)\s*[0-9]+(?:\.[0-9]+)?\s*L(?:/分)?(?:\s*(?:鼻カヌラ|マスク|リザーバー))?|(?:鼻カヌラ|マスク|リザーバー)\s*[0-9]+\s*L(?:/分)?)").unwrap()
    });
    O2.captures(after).map(|c| c[1].to_string())
}

/// 「咽頭痛、鼻汁なし」: a clause that only lists findings takes the polarity of the next clause of its sentence.
fn inherit_enumeration_negation(clauses: &[Clause], found: &mut [Found]) {
    let findings =
        |k: FactKind| matches!(k, FactKind::Symptom | FactKind::Exam | FactKind::Diagnosis);
    // Each clause's facts, gathered once (filtering all facts per clause was quadratic in long inputs).
    let by_clause = indices_by_clause(clauses.len(), found);
    let lists_only = |ci: usize, found: &[Found]| -> bool {
        let cl = &clauses[ci];
        let mut rest: Vec<bool> = vec![true; cl.end - cl.start];
        for &fi in &by_clause[ci] {
            for i in found[fi].start..found[fi].end {
                rest[i - cl.start] = false;
            }
        }
        let leftover: String = cl
            .text
            .chars()
            .zip(rest)
            .filter(|(_, keep)| *keep)
            .map(|(c, _)| c)
            .collect();
        let leftover = leftover.replace("及び", "");
        !by_clause[ci].is_empty()
            && leftover
                .chars()
                .all(|c| c.is_whitespace() || "やと・/,、".contains(c))
    };
    for ci in (0..clauses.len()).rev() {
        let next = ci + 1;
        if next >= clauses.len()
            || clauses[next].sentence != clauses[ci].sentence
            || !lists_only(ci, found)
        {
            continue;
        }
        let negate = by_clause[next]
            .iter()
            .any(|&fi| findings(found[fi].fact.kind) && found[fi].fact.negated);
        if negate {
            for &fi in &by_clause[ci] {
                if findings(found[fi].fact.kind) {
                    found[fi].fact.negated = true;
                }
            }
        }
    }
}

/// `out[clause]` = the positions in `found` of that clause's facts.
pub(crate) fn indices_by_clause(clauses: usize, found: &[Found]) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); clauses];
    for (i, f) in found.iter().enumerate() {
        if let Some(v) = out.get_mut(f.clause) {
            v.push(i);
        }
    }
    out
}
