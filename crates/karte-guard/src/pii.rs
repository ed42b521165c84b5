//! Personal data (個人情報) in Japanese clinical text, found by format, check digit and context.
//!
//! Structured identifiers are matched by format after width folding (全角 digits, every dash), then kept or dropped
//! by the words around them: a 12-digit run is a マイナンバー when a label says so or its check digit holds, a date
//! is a birth date only after 生年月日 or before 生. Names have no format, so they come from context: a label
//! (氏名：, 担当医), an honorific (様, さん, 氏, 殿, くん, ちゃん), or a family name from the lexicon followed by the
//! header of a record (78歳, （男）). Clinical numbers (vitals, labs, doses, scores, dates of events) never match,
//! because every identifier pattern needs a format or a context that clinical numbers do not have.

use crate::checkdigit::{insurer_number_valid, my_number_valid};
use karte_core::normalize::{normalize, CharIndex, Normalized};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    PersonName,
    MyNumber,
    InsurerNumber,
    InsuredId,
    Phone,
    PostalCode,
    Address,
    BirthDate,
    PatientId,
    Email,
}

impl PiiKind {
    pub const ALL: [PiiKind; 10] = [
        PiiKind::PersonName,
        PiiKind::MyNumber,
        PiiKind::InsurerNumber,
        PiiKind::InsuredId,
        PiiKind::Phone,
        PiiKind::PostalCode,
        PiiKind::Address,
        PiiKind::BirthDate,
        PiiKind::PatientId,
        PiiKind::Email,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PiiKind::PersonName => "person_name",
            PiiKind::MyNumber => "my_number",
            PiiKind::InsurerNumber => "insurer_number",
            PiiKind::InsuredId => "insured_id",
            PiiKind::Phone => "phone",
            PiiKind::PostalCode => "postal_code",
            PiiKind::Address => "address",
            PiiKind::BirthDate => "birth_date",
            PiiKind::PatientId => "patient_id",
            PiiKind::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<PiiKind> {
        PiiKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The word inside a placeholder (【氏名1】): Japanese, so a model reading pseudonymised text keeps the grammar.
    pub fn label_ja(self) -> &'static str {
        match self {
            PiiKind::PersonName => "氏名",
            PiiKind::MyNumber => "個人番号",
            PiiKind::InsurerNumber => "保険者番号",
            PiiKind::InsuredId => "被保険者番号",
            PiiKind::Phone => "電話",
            PiiKind::PostalCode => "郵便番号",
            PiiKind::Address => "住所",
            PiiKind::BirthDate => "生年月日",
            PiiKind::PatientId => "患者ID",
            PiiKind::Email => "メール",
        }
    }

    /// Structured identifiers have a format and (mostly) a check digit; names and addresses do not.
    pub fn is_structured(self) -> bool {
        !matches!(self, PiiKind::PersonName | PiiKind::Address)
    }
}

/// One piece of personal data: character offsets into the scanned text and the text itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: PiiKind,
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// A candidate in normalised character offsets. Higher `rank` wins an overlap: a labelled identifier beats a bare
/// format match, and every format beats a name (a name is the weakest evidence).
#[derive(Debug, Clone, Copy)]
struct Cand {
    kind: PiiKind,
    start: usize,
    end: usize,
    rank: u8,
}

/// Find all personal data in `text`. Offsets are characters of `text` itself.
pub fn scan(text: &str) -> Vec<Finding> {
    scan_normalized(text, &normalize(text))
}

/// As [`scan`], for a text whose normalisation the caller already holds (a dictation, normalised once for all
/// checks). `norm` must be `normalize(text)`.
pub fn scan_normalized(text: &str, norm: &Normalized) -> Vec<Finding> {
    let cands = candidates(norm);
    let mut out: Vec<Finding> = cands
        .into_iter()
        .map(|c| {
            let sp = norm.orig_span(c.start, c.end);
            Finding {
                kind: c.kind,
                start: sp.start,
                end: sp.end,
                text: sp.slice(text).to_string(),
            }
        })
        .filter(|f| f.start < f.end)
        .collect();
    out.sort_by_key(|f| (f.start, f.end));
    out
}

fn candidates(n: &Normalized) -> Vec<Cand> {
    let t = &n.text;
    let chars = n.chars();
    let ci = CharIndex::new(t);
    let mut v: Vec<Cand> = Vec::new();
    let span = |m: regex::Match| (ci.char_at(m.start()), ci.char_at(m.end()));
    let push = |v: &mut Vec<Cand>, kind, (start, end): (usize, usize), rank| {
        if start < end {
            v.push(Cand {
                kind,
                start,
                end,
                rank,
            })
        }
    };

    for m in EMAIL.find_iter(t) {
        push(&mut v, PiiKind::Email, span(m), 90);
    }
    for c in PATIENT_ID.captures_iter(t) {
        let label = c.get(1).unwrap();
        let (ls, _) = span(label);
        if label
            .as_str()
            .starts_with(|c: char| c.is_ascii_alphabetic())
            && ls > 0
            && chars[ls - 1].is_ascii_alphabetic()
        {
            continue; // COVID-19, HCV-ID...
        }
        push(&mut v, PiiKind::PatientId, span(c.get(2).unwrap()), 80);
    }
    for c in INSURER.captures_iter(t) {
        let (ls, _) = span(c.get(0).unwrap());
        if ls > 0 && chars[ls - 1] == '被' {
            continue;
        }
        push(&mut v, PiiKind::InsurerNumber, span(c.get(1).unwrap()), 80);
    }
    // A bare 8-digit number near 保険 is an insurer number when its check digit holds.
    for m in DIGITS8.find_iter(t) {
        let (s, e) = span(m);
        if digit_bounded(chars, s, e)
            && window_before(chars, s, 16).contains("保険")
            && insurer_number_valid(m.as_str())
        {
            push(&mut v, PiiKind::InsurerNumber, (s, e), 60);
        }
    }
    insured_ids(t, &ci, chars, &mut v);
    for m in DIGITS12.find_iter(t) {
        let (s, e) = span(m);
        if !digit_bounded(chars, s, e) {
            continue;
        }
        let digits: String = m.as_str().chars().filter(char::is_ascii_digit).collect();
        let labelled = window_before(chars, s, 24).contains("マイナンバー")
            || window_before(chars, s, 24).contains("個人番号")
            || window_before(chars, s, 24).contains("マイナ");
        if labelled {
            push(&mut v, PiiKind::MyNumber, (s, e), 80);
        } else if my_number_valid(&digits) {
            push(&mut v, PiiKind::MyNumber, (s, e), 40);
        }
    }
    for m in find_overlapping(&PHONE, t) {
        let (s, e) = span(m);
        if !digit_bounded(chars, s, e) || (s > 0 && chars[s - 1] == '+') {
            continue;
        }
        if phone_digits_ok(m.as_str()) {
            push(&mut v, PiiKind::Phone, (s, e), 60);
        }
    }
    for c in POSTAL.captures_iter(t) {
        let g = c.get(1).unwrap();
        let (s, e) = span(g);
        if digit_bounded(chars, s, e) {
            push(&mut v, PiiKind::PostalCode, (s, e), 70);
        }
    }
    for m in DATE.find_iter(t) {
        let (s, e) = span(m);
        if !digit_bounded(chars, s, e) {
            continue;
        }
        if is_birth_context(chars, s, e) {
            push(&mut v, PiiKind::BirthDate, (s, e), 70);
        }
    }
    let addrs = addresses(t, &ci, chars);
    for &(s, e) in &addrs {
        push(&mut v, PiiKind::Address, (s, e), 50);
    }
    // A bare NNN-NNNN right before an address is its postal code.
    for m in BARE_POSTAL.find_iter(t) {
        let (s, e) = span(m);
        if digit_bounded(chars, s, e) && addrs.iter().any(|&(a, _)| a >= e && a <= e + 2) {
            push(&mut v, PiiKind::PostalCode, (s, e), 65);
        }
    }
    // Labelled fields before names, so that a reading in brackets after a field's name is found as its alias.
    fields(t, &ci, chars, &mut v);
    names(t, &ci, chars, &mut v);
    // 岩本 節子（S13.9.9）: a date in brackets right after a name is the birth date.
    for m in DATE.find_iter(t) {
        let (s, e) = span(m);
        if s >= 1
            && chars[s - 1] == '('
            && digit_bounded(chars, s, e)
            && v.iter().any(|c| {
                c.kind == PiiKind::PersonName
                    && (c.end + 1 == s || (c.end + 2 == s && chars[c.end] == ' '))
            })
        {
            push(&mut v, PiiKind::BirthDate, (s, e), 70);
        }
    }
    resolve(v)
}

/// Keep the strongest candidate of each overlapping group: by rank, then by length.
fn resolve(v: Vec<Cand>) -> Vec<Cand> {
    // Overlapping name candidates (さくら before さん, 西村 さくら as a spaced name) are one name: take the union.
    let (mut names, mut v): (Vec<Cand>, Vec<Cand>) =
        v.into_iter().partition(|c| c.kind == PiiKind::PersonName);
    names.sort_by_key(|c| c.start);
    let mut merged: Vec<Cand> = Vec::new();
    for c in names {
        match merged.last_mut() {
            Some(m) if c.start < m.end => {
                m.end = m.end.max(c.end);
                m.rank = m.rank.max(c.rank);
            }
            _ => merged.push(c),
        }
    }
    v.extend(merged);
    v.sort_by(|a, b| {
        b.rank
            .cmp(&a.rank)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    let mut kept: Vec<Cand> = Vec::new();
    for c in v {
        if kept.iter().all(|k| c.end <= k.start || k.end <= c.start) {
            kept.push(c);
        }
    }
    kept.sort_by_key(|c| c.start);
    kept
}

/// Matches of `re`, retrying one character later after each match, so that a rejected candidate
/// (00 090-1234: too few digits) cannot hide a real number that starts inside it.
fn find_overlapping<'t>(re: &Regex, t: &'t str) -> Vec<regex::Match<'t>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(m) = re.find_at(t, at) {
        out.push(m);
        at = m.start() + t[m.start()..].chars().next().map_or(1, char::len_utf8);
    }
    out
}

fn digit_bounded(chars: &[char], s: usize, e: usize) -> bool {
    let before = s.checked_sub(1).map(|i| chars[i]);
    let after = chars.get(e).copied();
    !before.is_some_and(|c| c.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit())
}

fn window_before(chars: &[char], s: usize, n: usize) -> String {
    chars[s.saturating_sub(n)..s].iter().collect()
}

fn window_after(chars: &[char], e: usize, n: usize) -> String {
    chars[e..(e + n).min(chars.len())].iter().collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Structured identifiers

const DASH: &str = "[-ー―]";

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}").unwrap()
});

/// An identifier after one of the labels of assets/guard/labels.toml, with a few words between allowed
/// (診察券の番号は 12345): the value starts with a digit or up to four letters and a digit.
static PATIENT_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"({})[^0-9A-Za-z\n。、]{{0,8}}?(?:No\.?\s*)?([A-Za-z]{{0,4}}-?\d[0-9A-Za-z\-]{{2,}}(?:\s\d{{3,}})?)",
        id_label_alternation()
    ))
    .unwrap()
});

static INSURER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?:保険者番号|保険者No\.?|保険者|国保番号)[^0-9。\n]{0,6}?(\d{8}|\d{6})(?:[^0-9]|$)",
    )
    .unwrap()
});

static DIGITS8: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d{8}").unwrap());

static DIGITS12: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"\d{{4}}(?:{DASH}|\s)?\d{{4}}(?:{DASH}|\s)?\d{{4}}"
    ))
    .unwrap()
});

static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"\+81[ -]?(?:\(0\))?[ -]?\d{{1,4}}[ -]?\d{{1,4}}[ -]?\d{{3,4}}|\(0\d{{1,4}}\) ?\d{{1,4}}(?:{DASH}| )?\d{{3,4}}|0\d{{1,4}}\(\d{{1,4}}\)\d{{3,4}}|0\d{{1,4}}(?:{DASH}| |\.)\d{{1,4}}(?:{DASH}| |\.)\d{{3,4}}|0\d{{9,10}}|\+(?:[1-79]\d{{0,2}}|8[02-9]\d?)(?:[ -]?\d{{1,4}}){{2,5}}"
    ))
    .unwrap()
});

/// Japanese numbers are 10 digits (fixed, 0120) or 11 (070/080/090 mobiles, 050 IP, 0800 free dial, 020).
fn phone_digits_ok(s: &str) -> bool {
    let d: String = s.chars().filter(char::is_ascii_digit).collect();
    if s.starts_with('+') && !s.starts_with("+81") {
        // Abroad: E.164 allows 8 to 15 digits with the country code.
        return (8..=15).contains(&d.len());
    }
    let national = if let Some(rest) = s.strip_prefix("+81") {
        let rd: String = rest.chars().filter(char::is_ascii_digit).collect();
        if rd.starts_with('0') {
            rd
        } else {
            format!("0{rd}")
        }
    } else {
        d
    };
    if !national.starts_with('0') || national.starts_with("00") {
        return false;
    }
    match national.len() {
        10 => true,
        11 => ["070", "080", "090", "050", "0800", "020", "060"]
            .iter()
            .any(|p| national.starts_with(p)),
        _ => false,
    }
}

static POSTAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?:〒|郵便番号|郵便|ZIP|Zip)[^0-9\n]{{0,4}}?(\d{{3}}(?:{DASH})?\d{{4}})"
    ))
    .unwrap()
});

static BARE_POSTAL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"\d{{3}}{DASH}\d{{4}}")).unwrap());

static DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?:19|20)\d{2}年\s*\((?:明治|大正|昭和|平成|令和)[^)]{1,4}\)\s*\d{1,2}月\s*\d{1,2}日|\d{1,2}\s+(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?\s+(?:19|20)\d{2}|(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?\s+\d{1,2},?\s+(?:19|20)\d{2}|(?:明治|大正|昭和|平成|令和|[MTSHR]\.?)\s*(?:元|\d{1,2})\s*(?:年|[./-])\s*(?:\d{1,2}\s*(?:月|[./-])\s*(?:\d{1,2}\s*日?)?)?|(?:18|19|20)\d{2}\s*(?:年|[./-])\s*\d{1,2}\s*(?:月|[./-])\s*\d{1,2}\s*日?|(?:18|19|20)\d{2}\s*年(?:\s*\d{1,2}\s*月)?|(?:明治|大正|昭和|平成|令和)(?:元|[一二三四五六七八九十]{1,3})年(?:[一二三四五六七八九十]{1,3}月(?:[一二三四五六七八九十]{1,3}日)?)?",
    )
    .unwrap()
});

const BIRTH_LABELS: &[&str] = &[
    "生年月日",
    "誕生日",
    "DOB",
    "D.O.B",
    "生年",
    "出生",
    "生まれ年",
    "Birth",
    "birth",
];

fn is_birth_context(chars: &[char], s: usize, e: usize) -> bool {
    // An abbreviated era letter must not be the end of a word (e.g. "PHS1.2.3").
    if chars[s].is_ascii_alphabetic() && s > 0 && chars[s - 1].is_ascii_alphabetic() {
        return false;
    }
    let before = window_before(chars, s, 12);
    let before = before.rsplit(['。', '\n']).next().unwrap_or("");
    if BIRTH_LABELS.iter().any(|l| before.contains(l)) {
        return true;
    }
    let mut i = e;
    while i < chars.len() && matches!(chars[i], ' ' | ')' | '(' | '）') {
        i += 1;
    }
    let after = window_after(chars, i, 3);
    if after.starts_with("生まれ") || after.starts_with("うまれ") || after.starts_with("出生")
    {
        return true;
    }
    if let Some(rest) = after.strip_prefix('生') {
        // 生検, 生化学, 生食 are clinical: 生 followed by kanji is never a birth.
        return !rest
            .chars()
            .next()
            .is_some_and(|c| is_han(c) || matches!(c, 'き' | 'じ' | 'え' | 'か'));
    }
    false
}

fn insured_ids(t: &str, ci: &CharIndex, chars: &[char], v: &mut Vec<Cand>) {
    // Only in a sentence that is about an insurance card: 番号 alone is far too common.
    for sent in sentences(chars) {
        let s_text: String = chars[sent.0..sent.1].iter().collect();
        if !["被保険者", "保険証", "記号", "国保", "保険者番号"]
            .iter()
            .any(|w| s_text.contains(w))
        {
            continue;
        }
        let base = t.char_indices().nth(sent.0).map_or(t.len(), |(b, _)| b);
        let end = t.char_indices().nth(sent.1).map_or(t.len(), |(b, _)| b);
        let sub = &t[base..end];
        let off = |m: regex::Match| span_in(m, base, ci);
        for c in INSURED_PAIR.captures_iter(sub) {
            for g in [c.get(1), c.get(2)].into_iter().flatten() {
                let (s, e) = off(g);
                v.push(Cand {
                    kind: PiiKind::InsuredId,
                    start: s,
                    end: e,
                    rank: 75,
                });
            }
        }
        for c in INSURED_FIELD.captures_iter(sub) {
            let label = c.get(1).or(c.get(3)).unwrap();
            let (ls, _) = off(label);
            let prev2: String = chars[ls.saturating_sub(3)..ls].iter().collect();
            if label.as_str().ends_with("番号")
                && !label.as_str().starts_with("被保険者")
                && !label.as_str().starts_with("記号")
                && [
                    "保険者",
                    "個人",
                    "患者",
                    "電話",
                    "郵便",
                    "カルテ",
                    "診察券",
                    "病歴",
                    "登録",
                    "部屋",
                    "病室",
                    "旧",
                    "外来",
                    "受付",
                    "券の",
                ]
                .iter()
                .any(|p| prev2.ends_with(p))
            {
                continue;
            }
            let value = c.get(2).or(c.get(4)).unwrap();
            // 記号番号は…, 長音記号で記載: the "value" is the next word, not an identifier.
            if value.as_str().starts_with("番号")
                || value
                    .as_str()
                    .starts_with(|c: char| "でがはをにのとへも".contains(c))
            {
                continue;
            }
            let (s, e) = off(value);
            v.push(Cand {
                kind: PiiKind::InsuredId,
                start: s,
                end: e,
                rank: 72,
            });
        }
    }
}

fn span_in(m: regex::Match, base: usize, ci: &CharIndex) -> (usize, usize) {
    (ci.char_at(base + m.start()), ci.char_at(base + m.end()))
}

static INSURED_PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"記号\s*[・･/]?\s*番号(?:欄)?[^0-9A-Za-z\p{Han}\p{Hiragana}\p{Katakana}\n]{0,4}?(?:は\s*)?([0-9A-Za-z\p{Han}\p{Hiragana}\p{Katakana}][0-9A-Za-z\p{Han}\p{Hiragana}\p{Katakana}]{0,7}?)\s*[・･/,、\sー\-]\s*([0-9][0-9A-Za-z\-]*)")
        .unwrap()
});

static INSURED_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(被保険者番号|被保険者証番号|番号|枝番|枝番号)(?:\s*(?:[:：]|は|が))?[^0-9A-Za-z。\n・]{0,12}?([0-9A-Za-z][0-9A-Za-z\-]*(?:\s[0-9]{3,})?)|(記号)(?:\s*(?:[:：]|は|が))?[\s:]{0,3}([0-9A-Za-z\p{Han}\p{Hiragana}\p{Katakana}][0-9A-Za-z\p{Han}\p{Hiragana}\p{Katakana}ー\-]{0,9}(?:\s[0-9][0-9\-]*)?)")
        .unwrap()
});

/// Sentence ranges (normalised chars), split after 。 and newlines.
fn sentences(chars: &[char]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut s = 0;
    for (i, &c) in chars.iter().enumerate() {
        if matches!(c, '。' | '\n') {
            out.push((s, i + 1));
            s = i + 1;
        }
    }
    if s < chars.len() {
        out.push((s, chars.len()));
    }
    out
}

// ---------------------------------------------------------------------------------------------------------------
// Addresses

const PREFECTURES: &[&str] = &[
    "北海道",
    "青森県",
    "岩手県",
    "宮城県",
    "秋田県",
    "山形県",
    "福島県",
    "茨城県",
    "栃木県",
    "群馬県",
    "埼玉県",
    "千葉県",
    "東京都",
    "神奈川県",
    "新潟県",
    "富山県",
    "石川県",
    "福井県",
    "山梨県",
    "長野県",
    "岐阜県",
    "静岡県",
    "愛知県",
    "三重県",
    "滋賀県",
    "京都府",
    "大阪府",
    "兵庫県",
    "奈良県",
    "和歌山県",
    "鳥取県",
    "島根県",
    "岡山県",
    "広島県",
    "山口県",
    "徳島県",
    "香川県",
    "愛媛県",
    "高知県",
    "福岡県",
    "佐賀県",
    "長崎県",
    "熊本県",
    "大分県",
    "宮崎県",
    "鹿児島県",
    "沖縄県",
];

/// The block part of an address: 1丁目2番3号, 2-4-9, 123番地, 三丁目.
/// Block numbers are written in digits or in kanji (二丁目七番十号).
const N: &str = "(?:[0-9]+|[一二三四五六七八九十〇百]+)";

static BLOCK: LazyLock<Regex> = LazyLock::new(|| {
    // A bare number counts only right after 町/村/字 (殿町391, 字野田95).
    // 番地 may be followed by its sub-number with or without の (長倉2140番地13, 上市1823番地の2).
    let core = format!(
        r"(?:{N}丁目(?:\s*{N}\s*(?:番地?|{DASH}))?(?:\s*{N}\s*号?)?(?:の\d+)?|{N}番地(?:の?\d+)?(?:{DASH}\d+)?|{N}番{N}号|\d+(?:{DASH}\d+){{1,3}}|\d+番)"
    );
    #[allow(non_snake_case)]
    let CORE = core;
    // After 字 a lot number may be in kanji numerals (字渡慶次二〇五): two numerals at least, so that a place
    // name with one numeral in it (字三ツ矢) is not read as a number.
    Regex::new(&format!(
        r"{CORE}|[町村字][\p{{Han}}]{{0,4}}(?:{CORE}|\d{{1,5}}(?:番地)?)|字[\p{{Han}}]{{1,4}}?[一二三四五六七八九][〇一二三四五六七八九十百]{{1,4}}(?:番地)?"
    ))
    .unwrap()
});

/// A building and room after the block: 梅田ハイツ305号室, 3階, A棟201. A name with kana in it (あざみ野ガーデンズ
/// B棟405号室, ひまわり荘105) counts only before a room word or after a building word, since hiragana after a block
/// is otherwise the sentence going on.
static BUILDING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\s?[\p{Han}\p{Katakana}ぁ-んーA-Za-z・]{0,16}\s?[A-Za-z]?(?:棟\s?)?\d{1,4}(?:号室|号|階)|\s?[ぁ-ん][\p{Han}\p{Katakana}ぁ-んー・]{0,12}(?:荘|館|寮|ハイツ|コーポ|マンション|レジデンス|ハウス|ビル|棟)\s?\d{1,4}(?:号室|号|階|F)?|-\d{1,4}|\s?[\p{Han}\p{Katakana}ーA-Za-z・][\p{Han}\p{Katakana}ーA-Za-z・0-9]{0,15}\s?\d{1,4}(?:号室|号|階|F|[A-Z])?)")
        .unwrap()
});

static PREF_CITY: LazyLock<Regex> = LazyLock::new(|| {
    let prefs = PREFECTURES.join("|");
    Regex::new(&format!(
        r"(?:{prefs})[\p{{Han}}\p{{Katakana}}ぁ-んヶケ]{{1,8}}?[市区町村郡](?:[\p{{Han}}\p{{Katakana}}ヶケ]{{1,6}}?[区町村])?"
    ))
    .unwrap()
});

/// The address labels of assets/guard/labels.toml, width-folded, longest first so that a compound label
/// (連絡先住所) is stripped whole rather than leaving 住所 in front of the address.
static ADDRESS_LABELS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut v: Vec<String> = LABEL_FILE
        .address
        .labels
        .iter()
        .map(|l| normalize(l).text)
        .collect();
    v.sort_by_key(|l| std::cmp::Reverse(l.chars().count()));
    v
});

fn is_han(c: char) -> bool {
    ('\u{4E00}'..='\u{9FFF}').contains(&c)
        || ('\u{3400}'..='\u{4DBF}').contains(&c)
        || ('\u{F900}'..='\u{FAFF}').contains(&c)
        || matches!(c, '々' | '〆' | 'ヶ' | 'ケ')
}
fn is_katakana(c: char) -> bool {
    ('\u{30A1}'..='\u{30FA}').contains(&c) || c == 'ー' || c == '・'
}
fn is_hiragana(c: char) -> bool {
    ('\u{3041}'..='\u{3096}').contains(&c)
}

fn addresses(t: &str, ci: &CharIndex, chars: &[char]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    // Blocks alone on a line with no unit before them (相模大野7-22-14, 2丁目4番18号): an address only when the
    // line above ends with one, as when a form wraps a long address after its municipality.
    let mut line_starts: Vec<(usize, usize)> = Vec::new();
    for m in BLOCK.find_iter(t) {
        let (bs, be) = (ci.char_at(m.start()), ci.char_at(m.end()));
        if !digit_bounded(chars, bs, be) {
            continue;
        }
        // Walk left over the place names before the block.
        let mut s = bs;
        while s > 0 {
            let c = chars[s - 1];
            if is_han(c) || is_katakana(c) || c.is_ascii_digit() || c == '-' {
                s -= 1;
                continue;
            }
            if c == ' ' && s >= 2 && is_han(chars[s - 2]) && is_han(chars[s]) {
                s -= 1;
                continue;
            }
            // 京都の通り名: 烏丸通今出川上る.
            if c == 'る' && s >= 2 && matches!(chars[s - 2], '上' | '下' | '入') && is_han(chars[s])
            {
                s -= 1;
                continue;
            }
            if is_hiragana(c) {
                // さいたま市, つくば市, ひたちなか市: a kana place name right before an administrative unit.
                let mut k = s - 1;
                while k > 0 && is_hiragana(chars[k - 1]) {
                    k -= 1;
                }
                let run = s - k;
                let next = chars[s];
                if (run >= 3 && is_han(next))
                    || (run >= 2 && matches!(next, '市' | '町' | '村' | '郡'))
                {
                    s = k;
                    continue;
                }
                // 〇〇町字△△ / 〇〇の森: a single の inside a place name.
                if run == 1 && c == 'の' && s >= 2 && is_han(chars[s - 2]) && is_han(next) {
                    s -= 1;
                    continue;
                }
            }
            break;
        }
        let place: String = chars[s..bs].iter().collect();
        // Start at a prefecture when there is one; drop a label stuck to the front (住所東京都…).
        if let Some(p) = PREFECTURES.iter().filter_map(|p| place.find(p)).min() {
            s += place[..p].chars().count();
        } else {
            for l in ADDRESS_LABELS.iter() {
                if let Some(rest) = place.strip_prefix(l.as_str()) {
                    s += place.chars().count() - rest.chars().count();
                    break;
                }
            }
        }
        let place: String = chars[s..bs].iter().collect();
        // 本人自宅 名古屋市…: words before a space are not part of the address when the rest has its own units.
        if let Some(sp) = place.rfind(' ') {
            let tail = &place[sp + 1..];
            if tail.chars().any(is_admin_unit)
                && !place[..sp]
                    .chars()
                    .any(|c| matches!(c, '都' | '府' | '県' | '市' | '区' | '郡'))
            {
                s += place[..sp + 1].chars().count();
            }
        }
        let place: String = chars[s..bs].iter().collect();
        let units = place
            .chars()
            .filter(|&c| is_admin_unit(c) || c == '字')
            .count();
        let line_start = chars[..s]
            .iter()
            .rev()
            .take_while(|&&c| c != '\n')
            .all(|&c| is_blank(c));
        let continues = units == 0 && line_start && s > 0;
        if continues {
            // Only a whole line: 2-3日前から… under an address line is not its block.
            let mut e = be;
            let rest: String = chars[e..(e + 24).min(chars.len())]
                .iter()
                .take_while(|&&c| c != '\n')
                .collect();
            if let Some(b) = BUILDING.find(&rest) {
                e += rest[..b.end()].chars().count();
            }
            if !chars[e..]
                .iter()
                .take_while(|&&c| c != '\n')
                .all(|&c| is_blank(c))
            {
                continue;
            }
        }
        if !continues && (units == 0 || place.chars().count() < 2) {
            continue;
        }
        // 市中, 区域 etc. are not units when the "place" is a clinical word: require the unit not to be first.
        if matches!(place.chars().next(), Some('市' | '区' | '町' | '村' | '郡')) {
            continue;
        }
        let mut e = be;
        // A building is on the address's own line and field: a header block's next line (電話 047…) is not one.
        let rest: String = chars[e..(e + 24).min(chars.len())]
            .iter()
            .take_while(|&&c| c != '\n' && c != '\t')
            .collect();
        if let Some(b) = BUILDING.find(&rest) {
            e += rest[..b.end()].chars().count();
        }
        while e > be && chars[e - 1] == ' ' {
            e -= 1;
        }
        if continues {
            line_starts.push((s, e));
        } else {
            out.push((s, e));
        }
    }
    // Prefecture + municipality without a block number, when a label or 在住 says it is where someone lives.
    for m in PREF_CITY.find_iter(t) {
        let (s, e) = (ci.char_at(m.start()), ci.char_at(m.end()));
        if out.iter().any(|&(a, b)| s < b && a < e) {
            continue;
        }
        let after = window_after(chars, e, 3);
        let before = window_before(chars, s, 6);
        let labelled = ADDRESS_LABELS.iter().any(|l| before.contains(l.as_str()));
        if labelled {
            // 住所：大阪府豊中市上野東⏎2丁目4番18号: in a labelled field the town name after the city is part of the
            // address up to the end of its line (kanji and katakana only: kana would be the sentence going on).
            // Bounded, so that a text of one long line costs no more per city than a short one.
            let rest: String = chars[e..]
                .iter()
                .take(16)
                .take_while(|&&c| c != '\n')
                .collect();
            let town = rest.trim_end();
            let n = town.chars().count();
            if n <= 12 && town.chars().all(|c| is_han(c) || is_katakana(c)) {
                out.push((s, e + n));
                continue;
            }
        }
        if labelled
            || after.starts_with("在住")
            || after.starts_with("に住")
            || after.starts_with("に在住")
        {
            out.push((s, e));
        }
    }
    for (s, e) in line_starts {
        let mut p = s;
        while p > 0 && chars[p - 1] != '\n' {
            p -= 1;
        }
        // p is the start of the block's line; the line above must end with an address.
        if p == 0 {
            continue;
        }
        let mut above = p - 1;
        while above > 0 && matches!(chars[above - 1], ' ' | '\t') {
            above -= 1;
        }
        if out.iter().any(|&(_, b)| b == above) {
            out.push((s, e));
        } else if let Some(head) = labelled_place_line(chars, above) {
            // 住所：横浜市港北区⏎日吉本町4-12-3: no prefecture, so only the block below makes the line an address.
            out.push((head, above));
            out.push((s, e));
        }
    }
    out
}

/// 都道府県 and 市区町村郡: the units whose presence makes a run of place-name characters an address rather than a
/// clinical word.
fn is_admin_unit(c: char) -> bool {
    matches!(
        c,
        '都' | '道' | '府' | '県' | '市' | '区' | '町' | '村' | '郡'
    )
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// The start of a place name that fills the rest of an address-labelled line ending at `end` (住所：横浜市港北区):
/// kanji, katakana and the の of place names only, with an administrative unit after its first character.
fn labelled_place_line(chars: &[char], end: usize) -> Option<usize> {
    let mut s = end;
    while s > 0 && (is_han(chars[s - 1]) || is_katakana(chars[s - 1]) || chars[s - 1] == 'の') {
        s -= 1;
    }
    let place: String = chars[s..end].iter().collect();
    let n = place.chars().count();
    if !(2..=16).contains(&n) || !place.chars().skip(1).any(is_admin_unit) {
        return None;
    }
    // The label may be stuck to the place (住所横浜市…) or set off by a colon, bar or spaces.
    let mut label_end = s;
    let place_start = if let Some(l) = ADDRESS_LABELS
        .iter()
        .find(|l| place.starts_with(l.as_str()))
    {
        s + l.chars().count()
    } else {
        while label_end > 0 && matches!(chars[label_end - 1], ' ' | '\t' | ':' | '|') {
            label_end -= 1;
        }
        if label_end == s {
            return None;
        }
        let line: String = chars[..label_end]
            .iter()
            .rev()
            .take_while(|&&c| c != '\n')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if !ADDRESS_LABELS.iter().any(|l| line.ends_with(l.as_str())) {
            return None;
        }
        s
    };
    (place_start < end).then_some(place_start)
}

// ---------------------------------------------------------------------------------------------------------------
// Names

static SURNAMES: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../../assets/guard/surnames.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect()
});
static ONE_CHAR_SURNAMES: LazyLock<HashSet<char>> = LazyLock::new(|| {
    include_str!("../../../assets/guard/surnames_one_char.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.chars().next())
        .collect()
});
/// (family, given) occurrence counts per kanji, for names whose family name is not in the lexicon.
static NAME_KANJI: LazyLock<std::collections::HashMap<char, (u32, u32)>> = LazyLock::new(|| {
    include_str!("../../../assets/guard/name_kanji.tsv")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut it = l.split('\t');
            let k = it.next()?.chars().next()?;
            Some((k, (it.next()?.parse().ok()?, it.next()?.parse().ok()?)))
        })
        .collect()
});

/// Every kanji is common in family names (and more so than in given names).
fn family_like(cs: &[char]) -> bool {
    cs.iter()
        .all(|c| NAME_KANJI.get(c).is_some_and(|&(f, g)| f >= 50 && f > g))
}
/// Every kanji is common in given names (and more so than in family names).
fn given_like(cs: &[char]) -> bool {
    cs.iter()
        .all(|c| NAME_KANJI.get(c).is_some_and(|&(f, g)| g >= 50 && g > f))
}

static GIVEN: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../../assets/guard/given_names.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect()
});

/// Honorifics and titles after a name. Role titles (医師, 先生, 看護師) need a family name from the lexicon before
/// them, since 研修医師 or 当直の先生 are not names.
const HONORIFICS: &[&str] = &[
    "さま",
    "さん",
    "ちゃん",
    "くん",
    "様",
    "氏",
    "殿",
    "君",
    "先生",
    "医師",
    "看護師",
    "Dr",
    "Ns",
    "師長",
];
const TITLES: &[&str] = &["先生", "医師", "看護師", "Dr", "Ns", "師長", "君"];

/// Words that stand before an honorific but are not names: kin, roles, and 同様 / 模様-type words.
const NOT_NAMES: &[&str] = &[
    "患者",
    "奥",
    "娘",
    "息子",
    "子",
    "お子",
    "親御",
    "旦那",
    "主人",
    "母",
    "父",
    "兄",
    "姉",
    "弟",
    "妹",
    "祖母",
    "祖父",
    "婆",
    "爺",
    "赤",
    "皆",
    "看護師",
    "医師",
    "先生",
    "担当",
    "家族",
    "本人",
    "利用者",
    "相手",
    "隣",
    "同室",
    "業者",
    "薬剤師",
    "技師",
    "主治医",
    "師長",
    "院長",
    "部長",
    "課長",
    "社長",
    "上司",
    "友人",
    "知人",
    "客",
    "彼",
    "同",
    "両",
    "各",
    "貴",
    "御",
    "嫁",
    "婿",
    "孫",
    "叔父",
    "叔母",
    "伯父",
    "伯母",
    "甥",
    "姪",
    "義母",
    "義父",
    "夫",
    "妻",
    "長男",
    "長女",
    "次男",
    "次女",
    "三男",
    "三女",
    "兄弟",
    "姉妹",
    "先輩",
    "後輩",
    "同僚",
    "担当者",
    "警察",
    "大家",
    "管理人",
    "近所",
    "運転手",
    "救急隊",
    "救急隊員",
    "保健師",
    "民生委員",
    "介護士",
    "介護者",
    "保護者",
    "相談員",
    "通訳",
    "ケアマネ",
    "ケアマネージャー",
    "ヘルパー",
    "ナース",
    "ドクター",
    "ママ",
    "パパ",
    "ワーカー",
    "ソーシャルワーカー",
    "スタッフ",
    "セラピスト",
    "ドライバー",
    "新人",
    "研修医",
    "当直医",
    "主任",
    "模",
    "仕",
    "多",
    "異",
    "有",
    "王",
    "神",
    "外",
    "一",
    "今",
    "左",
    "右",
    "当",
    "前医",
    "紹介医",
    "担当医",
    "先方",
    "他",
    "全員",
    "患児",
    "児",
    "乳児",
    "お兄",
    "お姉",
    "母親",
    "父親",
    "両親",
    "ご家族",
    "親族",
    "親戚",
    "奥方",
    "旦那様",
    "配偶者",
    "上記",
    "下記",
    "同氏",
    "本",
    "皆様",
    "利用",
    "お客",
    "看護",
    "介護",
    "病棟",
    "薬局",
    "受付",
    "事務",
    "医事",
    "検査",
    "放射線",
    "栄養",
    "リハ",
    "PT",
    "OT",
    "ST",
    "MSW",
    "Ns",
    "Dr",
    "主",
    "ご主人",
    "奥様",
];

/// Role and kin words that may be glued to the front of a name (担当看護師佐藤さん): stripped before the look-up.
const PREFIX_WORDS: &[&str] = &[
    "担当看護師",
    "担当医師",
    "担当医",
    "主治医",
    "看護師",
    "医師",
    "患者",
    "担当",
    "本日",
    "昨日",
    "今朝",
    "妻",
    "夫",
    "長男",
    "長女",
    "次男",
    "次女",
    "三男",
    "三女",
    "息子",
    "娘",
    "母",
    "父",
    "祖母",
    "祖父",
    "兄",
    "姉",
    "弟",
    "妹",
    "孫",
    "家族",
    "友人",
    "同室者",
    "隣人",
    "紹介元",
    "前医",
    "当院",
    "記録者",
    "担当者",
    "介護者",
    "保護者",
    "キーパーソン",
    "師長",
    "薬剤師",
    "主任",
    "研修医",
    "当直医",
    "紹介医",
    "病棟",
    "看護",
    "同室",
    "元夫",
    "元妻",
    "義母",
    "義父",
    "叔父",
    "叔母",
    "内縁の夫",
    "内縁の妻",
];

/// Labels after which a name follows.
static NAME_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?:(?:患者|傷病者|対象者|世帯主|組合員|被保険者|保証人|申請者|利用者|研修医|面会者|受診者|相談者|依頼者|漢字|カナ|Name|NAME|Patient|Pt|本名)\s*:|本名\s|患者氏名|患者名|氏名欄|氏名|お名前|名前|姓名|フリガナ|ふりがな|カナ氏名|担当医師|担当医|主治医|担当看護師|担当Ns|記載者|記録者|紹介医|紹介元医師|依頼医|執刀医|麻酔科医|キーパーソン|KP|Dr\.|Dr|Ns\.|Ns|署名|申込者|代諾者|同意者|説明者|立会人|連絡者|届出者|保護者|緊急連絡先)\s*(?:[:：]|は|\(|【|\[)?\s*",
    )
    .unwrap()
});

/// A record header after a bare full name: 78歳, （男）, （昭和…生）.
static HEADER_AFTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(?:[(、,]\s*)?(?:\d{1,3}\s*(?:歳|才)|[男女](?:性)?[)\s、,]|[MF][)\s]|(?:明治|大正|昭和|平成|令和)\s*(?:元|\d)|(?:19|20)\d{2}[年/.-])")
        .unwrap()
});

fn is_name_char(c: char) -> bool {
    is_han(c) || is_katakana(c)
}

fn names(t: &str, ci: &CharIndex, chars: &[char], v: &mut Vec<Cand>) {
    let first = v.len();
    // 1. After a label.
    for m in NAME_LABEL.find_iter(t) {
        let (ls, e) = (ci.char_at(m.start()), ci.char_at(m.end()));
        if ls > 0 && chars[ls - 1].is_ascii_alphabetic() && m.as_str().starts_with(['D', 'N', 'K'])
        {
            continue;
        }
        // A label glued to the next word (主治医了承, 氏名不詳) is a compound, not a label, unless a family name
        // from the lexicon follows.
        let separated = m
            .as_str()
            .ends_with([':', ' ', '\t', '(', '【', '[', 'は', '.']);
        if !separated && !starts_with_surname(chars, e) {
            continue;
        }
        if role_fills_value(chars, e) {
            continue; // 担当医：医療ソーシャルワーカー names a role, not a person.
        }
        if let Some((s, end)) = name_after(chars, skip_roles(chars, e)) {
            v.push(Cand {
                kind: PiiKind::PersonName,
                start: s,
                end,
                rank: 30,
            });
        }
    }
    // 2. Before an honorific (and 3. bare names, below).
    for h in HONORIFICS {
        for (b, _) in t.match_indices(h) {
            let hs = ci.char_at(b);
            let he = hs + h.chars().count();
            if !honorific_ok(chars, h, hs, he) {
                continue;
            }
            let latin = || {
                (!h.is_ascii())
                    .then(|| latin_name_before(chars, hs))
                    .flatten()
            };
            if let Some((s, e)) = name_before(chars, hs, TITLES.contains(h)).or_else(latin) {
                v.push(Cand {
                    kind: PiiKind::PersonName,
                    start: s,
                    end: e,
                    rank: 30,
                });
            }
        }
    }
    // 3. A bare full name from the lexicons: 姓 名 with a space (the way records write names), 姓名 at the head of
    //    a record, or a lone family name set off by spaces and punctuation (夜勤 森 → 日勤 菊地 へ申し送り).
    let mut i = 0;
    while i < chars.len() {
        if (i == 0 || !is_name_letter(chars[i - 1])) && is_han(chars[i]) {
            let found = spaced_name(chars, i)
                .or_else(|| bare_name(chars, i))
                .map(|se| (se, 25))
                .or_else(|| lone_surname(chars, i).map(|se| (se, 24)));
            if let Some(((s, e), rank)) = found {
                v.push(Cand {
                    kind: PiiKind::PersonName,
                    start: s,
                    end: e,
                    rank,
                });
                i = e;
                continue;
            }
        }
        i += 1;
    }
    for c in v.iter_mut().skip(first) {
        if c.kind == PiiKind::PersonName {
            if let Some((s, e)) =
                clean_name(chars, c.start, c.end).and_then(|(s, e)| strip_roles(chars, s, e))
            {
                c.start = s;
                c.end = e;
            } else {
                c.end = c.start;
            }
        }
    }
    v.retain(|c| c.start < c.end);
    aliases(chars, v);
}

/// A reading or alias in brackets right after a name is the same person: 高木 紀子（たかぎ のりこ）, ヤン（楊 志明）,
/// Maria Santos（マリア・サントス）. Kin and remarks in brackets (長男, 故人, 自称) are not names.
fn aliases(chars: &[char], v: &mut Vec<Cand>) {
    // Not after a lone family name: 川上（ベッドサイド） is a remark, not a reading.
    let names: Vec<(usize, usize)> = v
        .iter()
        .filter(|c| c.kind == PiiKind::PersonName && c.rank >= 25)
        .map(|c| (c.start, c.end))
        .collect();
    for (_, e) in names {
        let mut k = e;
        while k < chars.len() && chars[k] == ' ' {
            k += 1;
        }
        if chars.get(k) != Some(&'(') {
            continue;
        }
        let s = k + 1;
        let mut z = s;
        while z < chars.len()
            && z - s <= 24
            && (is_name_letter(chars[z])
                || is_hiragana(chars[z])
                || chars[z].is_ascii_alphabetic()
                || matches!(chars[z], ' ' | '・' | '-'))
        {
            z += 1;
        }
        if chars.get(z) != Some(&')') && chars.get(z) != Some(&',') && chars.get(z) != Some(&'、')
        {
            continue;
        }
        let inner: String = chars[s..z].iter().collect();
        let inner = inner.trim();
        if inner.chars().count() < 2
            || NOT_NAMES.contains(&inner)
            || ALIAS_NOT_NAMES.iter().any(|w| inner.contains(w))
        {
            continue;
        }
        v.push(Cand {
            kind: PiiKind::PersonName,
            start: s,
            end: s + inner.chars().count(),
            rank: 28,
        });
    }
}

const ALIAS_NOT_NAMES: &[&str] = &[
    "故人",
    "自称",
    "本人",
    "長男",
    "長女",
    "次男",
    "次女",
    "三男",
    "三女",
    "夫",
    "妻",
    "父",
    "母",
    "兄",
    "姉",
    "弟",
    "妹",
    "祖",
    "孫",
    "叔",
    "伯",
    "甥",
    "姪",
    "義",
    "嫁",
    "婿",
    "歳",
    "才",
    "男",
    "女",
    "代理",
    "家族",
    "親族",
    "同居",
    "別居",
    "近居",
    "独居",
    "知人",
    "友人",
    "保護者",
    "通称",
    "旧姓",
    "担当",
    "主治医",
    "医師",
    "看護師",
    "先生",
    "在住",
    "入力",
    "登録",
    "のみ",
    "出身",
    "国籍",
];

fn starts_with_surname(chars: &[char], i: usize) -> bool {
    surname_lengths(chars, i).next().is_some()
}

/// Trim a role or kin word in front (長男 水谷 洋平 → 水谷 洋平) and a particle and what follows after a space
/// (岡崎 が実施 → 岡崎); `None` when nothing name-like is left.
fn clean_name(chars: &[char], mut s: usize, mut e: usize) -> Option<(usize, usize)> {
    loop {
        let text: String = chars[s..e].iter().collect();
        let Some(sp) = text.find(' ') else { break };
        let head = &text[..sp];
        if NOT_NAMES.contains(&head) || PREFIX_WORDS.contains(&head) {
            s += head.chars().count() + 1;
        } else {
            break;
        }
    }
    let text: String = chars[s..e].iter().collect();
    if let Some(sp) = text.find(' ') {
        let tail = &text[sp + 1..];
        if tail.starts_with(|c: char| "がはをにのとへでも".contains(c)) {
            e = s + text[..sp].chars().count();
        }
    }
    let text: String = chars[s..e].iter().collect();
    (!text.trim().is_empty() && !NOT_NAMES.contains(&text.trim())).then_some((s, e))
}

fn is_name_letter(c: char) -> bool {
    is_han(c) || (is_katakana(c) && c != '・')
}

/// 姓 名: a family name from the lexicon, one space, then a given name of kanji or kana ending at a boundary.
fn spaced_name(chars: &[char], i: usize) -> Option<(usize, usize)> {
    for l in (1..=4).rev() {
        if i + l >= chars.len() || chars[i + l] != ' ' {
            continue;
        }
        let fam: String = chars[i..i + l].iter().collect();
        let known = if l == 1 {
            ONE_CHAR_SURNAMES.contains(&chars[i])
        } else {
            SURNAMES.contains(fam.as_str())
        };
        // A family name the lexicon lacks: 2–3 kanji that are family-name kanji, then a given name of given-name
        // kanji (矢吹 昭, 野々村 智子). Clinical words fail this: their kanji are not name kanji.
        let by_kanji = !known
            && (2..=3).contains(&l)
            && chars[i..i + l].iter().all(|&c| is_han(c) || c == '々')
            && family_like(
                &chars[i..i + l]
                    .iter()
                    .copied()
                    .filter(|&c| c != '々')
                    .collect::<Vec<_>>(),
            )
            && {
                let gs = i + l + 1;
                let mut j = gs;
                while j < chars.len() && is_han(chars[j]) && j - gs < 4 {
                    j += 1;
                }
                (1..=3).contains(&(j - gs))
                    && chars.get(j).is_none_or(|&c| !is_name_letter(c))
                    && given_like(&chars[gs..j])
            };
        let known = known || by_kanji;
        if !known {
            continue;
        }
        let gs = i + l + 1;
        let mut j = gs;
        let bounded;
        if chars.get(gs).is_some_and(|&c| is_han(c)) {
            // 茂, 恵美子: kanji only; a particle may follow (福田 茂の入院先).
            while j < chars.len() && is_han(chars[j]) && j - gs < 4 {
                j += 1;
            }
            bounded = chars.get(j).is_none_or(|&c| !is_name_letter(c));
        } else {
            // さくら, スミ子, はると(くん): kana, perhaps ending in 子, perhaps glued to an honorific.
            while j < chars.len()
                && (is_katakana(chars[j]) || is_hiragana(chars[j]))
                && chars[j] != '・'
                && j - gs < 8
            {
                j += 1;
            }
            let run: String = chars[gs..j].iter().collect();
            for h in ["ちゃん", "くん", "さん", "さま"] {
                if let Some(r) = run.strip_suffix(h) {
                    j = gs + r.chars().count();
                    break;
                }
            }
            if chars.get(j) == Some(&'子') {
                j += 1;
            }
            bounded = chars.get(j).is_none_or(|&c| !is_name_letter(c)) && j - gs <= 5;
        }
        let given: String = chars[gs..j].iter().collect();
        let n = j - gs;
        if n == 0 || !bounded || NOT_NAMES.contains(&given.as_str()) {
            continue;
        }
        // A given name in kana is 2–4 characters; in kanji 1–3 (with a kana tail such as 恵美子, ちえ子).
        let kana = given
            .chars()
            .filter(|&c| is_hiragana(c) || is_katakana(c))
            .count();
        let han = n - kana;
        let ok = (han == 0 && (2..=5).contains(&kana)) || ((1..=3).contains(&han) && kana <= 2);
        let particle = ["さん", "くん", "ちゃん", "さま", "から", "より", "まで"]
            .iter()
            .any(|p| given.starts_with(p))
            // 岡崎 が実施: a kana start followed by kanji is a particle and a word, not a given name (ちえ子 is).
            || (given.starts_with(is_hiragana)
                && given.chars().filter(|&c| is_han(c)).any(|c| c != '子'));
        if ok && !particle {
            return Some((i, j));
        }
    }
    None
}

/// A lone family name set off by spaces or punctuation, as staff are named in ward notes (夜勤 森 → 日勤 菊地 へ).
fn lone_surname(chars: &[char], i: usize) -> Option<(usize, usize)> {
    let before_ok = i == 0
        || matches!(
            chars[i - 1],
            ' ' | ':' | '、' | '(' | '・' | '/' | '|' | '>' | '→'
        );
    if !before_ok {
        return None;
    }
    for l in surname_lengths(chars, i) {
        let e = i + l;
        let rest: String = chars[e..(e + 4).min(chars.len())].iter().collect();
        let after_ok = e == chars.len()
            || matches!(chars[e], '、' | ')' | '(' | '→' | '/' | '。' | '|' | ',')
            || (chars[e] == ' '
                && chars.get(e + 1).is_none_or(|&c| {
                    !is_han(c) || STAFF_TITLES.iter().any(|t| rest[1..].starts_with(t))
                }))
            || STAFF_TITLES.iter().any(|t| rest.starts_with(t));
        if after_ok {
            return Some((i, e));
        }
    }
    None
}

const STAFF_TITLES: &[&str] = &[
    "課長",
    "部長",
    "係長",
    "主任",
    "師長",
    "院長",
    "CW",
    "MSW",
    "Dr",
    "Ns",
    "PT",
    "OT",
    "ST",
    "医師",
    "先生",
    "看護師",
    "事務",
    "薬剤師",
];

fn honorific_ok(chars: &[char], h: &str, hs: usize, he: usize) -> bool {
    let next = chars.get(he).copied();
    match h {
        // 様子, 様々, 様式, 同様; 氏名; 殿堂; 君臨.
        // 様子, 様式, 凍瘡様皮疹: 様 followed by kanji is "-like", not an honorific; 同様 / 前回同様 likewise.
        "様" => {
            let like = next.is_some_and(|c| is_han(c) || c == '々');
            let same = hs > 0 && matches!(chars[hs - 1], '同' | '異' | '多' | '模' | '仕');
            !like && !same
        }
        "氏" => !next.is_some_and(|c| matches!(c, '名' | '族')),
        "殿" => !next.is_some_and(is_han),
        "君" => !next.is_some_and(is_han),
        "さん" => {
            !next.is_some_and(|c| matches!(c, 'そ' | 'か' | 'ぽ' | 'ま'))
                && !prev_is(chars, hs, &['お', 'ち', 'か', 'た', 'ろ'])
        }
        "先生" | "医師" | "看護師" | "師長" => true,
        "Dr" | "Ns" => {
            !next.is_some_and(|c| c.is_ascii_alphabetic()) && !prev_is_ascii_alpha(chars, hs)
        }
        _ => true,
    }
}

fn prev_is(chars: &[char], i: usize, set: &[char]) -> bool {
    i > 0
        && set.contains(&chars[i - 1])
        && (i < 2 || !is_hiragana(chars[i - 2]) || chars[i - 1] == 'お')
}
fn prev_is_ascii_alpha(chars: &[char], i: usize) -> bool {
    i > 0 && chars[i - 1].is_ascii_alphabetic()
}

/// The name right before an honorific starting at `h`.
fn name_before(chars: &[char], h: usize, title: bool) -> Option<(usize, usize)> {
    let mut e = h;
    if e > 0 && chars[e - 1] == ' ' {
        e -= 1;
    }
    let mut s = e;
    let mut spaces = 0;
    while s > 0 {
        let c = chars[s - 1];
        if is_name_char(c) {
            s -= 1;
        } else if c == ' ' && spaces == 0 && s >= 2 && is_name_char(chars[s - 2]) && e - s <= 4 {
            spaces += 1;
            s -= 1;
        } else {
            break;
        }
    }
    if s == e {
        if title {
            return None;
        }
        // 「いとう しゅん」くん: a quoted name right before the honorific.
        if e > 0 && chars[e - 1] == '」' {
            let close = e - 1;
            let open = (close.saturating_sub(14)..close)
                .rev()
                .find(|&k| chars[k] == '「')?;
            let inner = &chars[open + 1..close];
            let ok = !inner.is_empty()
                && inner
                    .iter()
                    .all(|&c| is_name_char(c) || is_hiragana(c) || c == ' ');
            return ok.then_some((open + 1, close));
        }
        // A given name in kana: ゆいちゃん, さくらさん.
        let mut k = e;
        while k > 0 && is_hiragana(chars[k - 1]) {
            k -= 1;
        }
        let run: String = chars[k..e].iter().collect();
        let n = e - k;
        if !(2..=4).contains(&n)
            || NOT_NAMES.contains(&run.as_str())
            || KANA_NOT_NAMES.iter().any(|w| run.ends_with(w))
        {
            return None;
        }
        return Some((k, e));
    }
    let run: String = chars[s..e].iter().collect();
    if NOT_NAMES.contains(&run.as_str()) {
        return None;
    }
    let (skip, core) = strip_prefix_words(&run);
    if skip > 0 && core.chars().count() < 2 {
        return None;
    }
    let s = s + skip;
    let core = core.trim_start();
    let s = s + (run.chars().count() - skip - core.chars().count());
    if core.is_empty() || NOT_NAMES.contains(&core) || core.chars().all(|c| c == 'ー' || c == '・')
    {
        return None;
    }
    // Start at a known family name inside the run when there is one (本日山田さん → 山田).
    let cs: Vec<char> = core.chars().collect();
    for p in 0..cs.len() {
        for l in (2..=4).rev() {
            if p + l <= cs.len() {
                let cand: String = cs[p..p + l].iter().collect();
                if SURNAMES.contains(cand.as_str()) && cs.len() - p - l <= 4 {
                    return Some((s + p, e));
                }
            }
        }
    }
    if title {
        return None;
    }
    let n = cs.len();
    if n <= 6 || cs.iter().all(|&c| is_katakana(c)) {
        Some((s, e))
    } else {
        None
    }
}

const KANA_NOT_NAMES: &[&str] = &[
    "おばあ",
    "おじい",
    "おかあ",
    "おとう",
    "おにい",
    "おねえ",
    "おじょう",
    "みな",
    "おく",
    "おこ",
    "おば",
    "おじ",
    "あか",
    "ばあ",
    "じい",
    "かあ",
    "とう",
    "にい",
    "ねえ",
    "むすめ",
    "むすこ",
    "だんな",
    "おまわり",
    "おいしゃ",
    "かんごし",
    "おきゃく",
    "ごしゅじん",
    "おくさん",
    "よめ",
    "まご",
    "あに",
    "あね",
    "いもうと",
    "おとうと",
];

fn strip_prefix_words(run: &str) -> (usize, &str) {
    let mut rest = run;
    let mut skipped = 0;
    loop {
        let mut hit = false;
        for p in PREFIX_WORDS {
            if let Some(r) = rest.strip_prefix(p) {
                if !r.is_empty() {
                    skipped += p.chars().count();
                    rest = r;
                    hit = true;
                    break;
                }
            }
        }
        if !hit {
            return (skipped, rest);
        }
    }
}

/// The name right after a label ending at `e`.
fn name_after(chars: &[char], e: usize) -> Option<(usize, usize)> {
    let mut s = e;
    while s < chars.len() && chars[s] == ' ' {
        s += 1;
    }
    // A Latin-script name: up to four capitalised words (Maria Santos, Nguyen Thi Lan).
    if chars.get(s).is_some_and(|c| c.is_ascii_uppercase()) {
        let mut k = s;
        let mut words = 0;
        while k < chars.len() && chars[k].is_ascii_uppercase() && words < 4 {
            let mut z = k + 1;
            while z < chars.len() && (chars[z].is_ascii_alphabetic() || chars[z] == '-') {
                z += 1;
            }
            words += 1;
            if chars.get(z) == Some(&' ')
                && chars.get(z + 1).is_some_and(|c| c.is_ascii_uppercase())
            {
                k = z + 1;
            } else {
                k = z;
                break;
            }
        }
        return (k - s >= 2).then_some((s, k));
    }
    let katakana = chars.get(s).is_some_and(|&c| is_katakana(c));
    let limit = if katakana { 16 } else { 8 };
    let mut k = s;
    while k < chars.len() && is_name_char(chars[k]) && k - s < limit {
        k += 1;
    }
    if k == s {
        return None;
    }
    // A given name after one space: 山田 太郎, 秋山 さくら (at most 5 characters, then a boundary).
    if k < chars.len() && chars[k] == ' ' {
        let mut j = k + 1;
        while j < chars.len() && (is_name_char(chars[j]) || is_hiragana(chars[j])) {
            j += 1;
        }
        let given: String = chars[k + 1..j].iter().collect();
        let honorific = HONORIFICS.iter().any(|h| given.starts_with(h));
        if j > k + 1 && j - k - 1 <= 5 && !honorific {
            k = j;
        }
    }
    let mut run: String = chars[s..k].iter().collect();
    // 技師長, 放射線科医長: a title whose end looks like an honorific is still only a title.
    if is_role_words(&run) {
        return None;
    }
    // Drop an honorific or title glued to the end (山田太郎様 is covered by the honorific pass).
    for h in HONORIFICS {
        if let Some(r) = run.strip_suffix(h) {
            if !r.is_empty() {
                run = r.to_string();
                break;
            }
        }
    }
    let run = run.trim_end();
    let k = s + run.chars().count();
    if NOT_NAMES.contains(&run) || run.chars().count() < 2 && !run.chars().all(is_han) {
        return None;
    }
    if run.chars().all(|c| c == 'ー' || c == '・') {
        return None;
    }
    Some((s, k))
}

/// Lengths (longest first) of the lexicon family names that start at `i`.
fn surname_lengths(chars: &[char], i: usize) -> impl Iterator<Item = usize> + '_ {
    (2..=4).rev().filter(move |&l| {
        i + l <= chars.len()
            && SURNAMES.contains(chars[i..i + l].iter().collect::<String>().as_str())
    })
}

fn bare_name(chars: &[char], i: usize) -> Option<(usize, usize)> {
    for l in surname_lengths(chars, i) {
        let mut j = i + l;
        if j < chars.len() && chars[j] == ' ' {
            j += 1;
        }
        let gs = j;
        while j < chars.len() && (is_name_char(chars[j]) || is_hiragana(chars[j])) && j - gs < 4 {
            j += 1;
        }
        // Try the longest given name that either is a known given name or is followed by a record header.
        for ge in (gs + 1..=j).rev() {
            let given: String = chars[gs..ge].iter().collect();
            if given.chars().any(is_hiragana) && !GIVEN.contains(given.as_str()) {
                continue;
            }
            let after: String = chars[ge..(ge + 12).min(chars.len())].iter().collect();
            let bounded = chars
                .get(ge)
                .is_none_or(|&c| !is_name_char(c) && !is_hiragana(c));
            if bounded
                && (HEADER_AFTER.is_match(&after)
                    || (GIVEN.contains(given.as_str()) && ge - gs >= 2))
            {
                return Some((i, ge));
            }
            // 佐藤健一より: a lexicon family name glued to 2–3 given-name kanji, then a particle or punctuation.
            let gcs: Vec<char> = given.chars().collect();
            if (2..=3).contains(&gcs.len())
                && gcs.iter().all(|&c| is_han(c))
                && given_like(&gcs)
                && chars.get(ge).is_none_or(|&c| !is_name_letter(c))
            {
                return Some((i, ge));
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------------------------
// Departments, titles, ranks and facility words (assets/guard/clinical_roles.txt)

/// The lexicon of words that are never a name by themselves: whole words, and suffixes (〜専門医) that make a word
/// of any run of at least two name-script characters before them.
struct RoleLexicon {
    words: HashSet<&'static str>,
    suffixes: Vec<&'static str>,
    /// The last character of every word and suffix: a run ending in any other cannot be a role word, which lets
    /// the segmentation skip almost every candidate without a look-up (the scan is on every sentence).
    last_chars: HashSet<char>,
}

/// The longest role word considered (日本乳癌検診精度管理中央機構認定読影医 is 19).
const ROLE_MAX: usize = 24;

static ROLES: LazyLock<RoleLexicon> = LazyLock::new(|| {
    let mut words = HashSet::new();
    let mut suffixes = Vec::new();
    for l in include_str!("../../../assets/guard/clinical_roles.txt").lines() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        match l.strip_prefix('〜') {
            Some(s) => suffixes.push(s),
            None => {
                words.insert(l);
            }
        }
    }
    let last_chars = words
        .iter()
        .chain(&suffixes)
        .filter_map(|w| w.chars().last())
        .collect();
    RoleLexicon {
        words,
        suffixes,
        last_chars,
    }
});

/// A character that may stand before a role suffix (放射線診断 in 放射線診断専門医, IVR in IVR専門医).
fn role_prefix_char(c: char) -> bool {
    is_han(c) || (is_katakana(c) && c != '・') || c.is_ascii_alphanumeric()
}

/// Is `w` (of characters that may all stand before a suffix) one role word: a lexicon word, or a suffix with at
/// least two characters before it?
fn is_role_word(w: &str) -> bool {
    ROLES.words.contains(w)
        || ROLES
            .suffixes
            .iter()
            .any(|s| w.strip_suffix(s).is_some_and(|p| p.chars().count() >= 2))
}

/// Lengths of the role-word runs that start at `cs[0]` and cover a prefix of `cs` whole (several words may be glued:
/// 放射線科副部長), longest first. Separators (space, ・, 、) may stand between words.
fn role_run_ends(cs: &[char]) -> Vec<usize> {
    // reach[i]: cs[..i] splits into role words and separators.
    let n = cs.len();
    let mut reach = vec![false; n + 1];
    reach[0] = true;
    let mut ends = Vec::new();
    for i in 0..n {
        if !reach[i] {
            continue;
        }
        if i > 0 && matches!(cs[i], ' ' | '・' | '、' | '/') {
            reach[i + 1] = true;
            continue;
        }
        let mut w = String::new();
        for j in i + 1..=n.min(i + ROLE_MAX) {
            let c = cs[j - 1];
            if !role_prefix_char(c) {
                break;
            }
            w.push(c);
            if ROLES.last_chars.contains(&c) && is_role_word(&w) {
                reach[j] = true;
            }
        }
    }
    for (i, &r) in reach.iter().enumerate().skip(1) {
        if r && role_prefix_char(cs[i - 1]) {
            ends.push(i);
        }
    }
    ends.reverse();
    ends
}

/// True when `text` is nothing but department, title, rank or facility words (小児科, 放射線科副部長,
/// 乳腺外科専門医): such a text is never a person's name.
pub fn is_role_words(text: &str) -> bool {
    let cs: Vec<char> = text
        .trim_matches(|c: char| c.is_whitespace() || c == '・')
        .chars()
        .collect();
    !cs.is_empty() && role_run_ends(&cs).first() == Some(&cs.len())
}

/// Trim department, title and rank words off the front of a name candidate (放射線診断専門医 山田太郎 → 山田太郎,
/// 脳神経外科医長岩田 → 岩田); `None` when nothing else is left.
fn strip_roles(chars: &[char], s: usize, e: usize) -> Option<(usize, usize)> {
    let cs = &chars[s..e];
    let ends = role_run_ends(cs);
    if ends.first() == Some(&cs.len()) {
        return None;
    }
    for k in ends {
        // The rest must start a name: after a space, or glued when a lexicon family name follows.
        let mut r = k;
        while r < cs.len() && cs[r] == ' ' {
            r += 1;
        }
        if r > k || starts_with_surname(chars, s + r) {
            return Some((s + r, e));
        }
    }
    Some((s, e))
}

// ---------------------------------------------------------------------------------------------------------------
// Labelled fields (assets/guard/labels.toml): the value after an identifier, birth-date or name label

/// What a field label announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    Id,
    Birth,
    Name,
}

#[derive(Deserialize)]
struct LabelFile {
    patient_id: LabelList,
    birth_date: LabelList,
    name: LabelList,
    address: LabelList,
}
#[derive(Deserialize)]
struct LabelList {
    labels: Vec<String>,
}

/// assets/guard/labels.toml, parsed once for the field labels and the address labels.
static LABEL_FILE: LazyLock<LabelFile> = LazyLock::new(|| {
    toml::from_str(include_str!("../../../assets/guard/labels.toml"))
        .expect("assets/guard/labels.toml is valid")
});

/// Every field label, width-folded as the scanned text is, with its kind.
static FIELD_LABELS: LazyLock<Vec<(String, FieldKind)>> = LazyLock::new(|| {
    let f = &*LABEL_FILE;
    let mut v: Vec<(String, FieldKind)> = Vec::new();
    for (list, kind) in [
        (&f.patient_id, FieldKind::Id),
        (&f.birth_date, FieldKind::Birth),
        (&f.name, FieldKind::Name),
    ] {
        v.extend(list.labels.iter().map(|l| (normalize(l).text, kind)));
    }
    v
});

/// The identifier labels alone, as a regex alternation (longest first), for [`PATIENT_ID`].
fn id_label_alternation() -> String {
    let mut ids: Vec<&str> = FIELD_LABELS
        .iter()
        .filter(|(_, k)| *k == FieldKind::Id)
        .map(|(l, _)| l.as_str())
        .collect();
    ids.sort_by_key(|l| std::cmp::Reverse(l.chars().count()));
    ids.iter()
        .map(|l| regex::escape(l))
        .collect::<Vec<_>>()
        .join("|")
}

/// Any field label; the longest wins at a position (患者参照コード before 参照コード, Patient ID before Patient).
static FIELD: LazyLock<Regex> = LazyLock::new(|| {
    let mut all: Vec<&str> = FIELD_LABELS.iter().map(|(l, _)| l.as_str()).collect();
    all.sort_by_key(|l| std::cmp::Reverse(l.chars().count()));
    all.dedup();
    Regex::new(
        &all.iter()
            .map(|l| regex::escape(l))
            .collect::<Vec<_>>()
            .join("|"),
    )
    .unwrap()
});

fn field_kind(label: &str) -> Option<FieldKind> {
    FIELD_LABELS
        .iter()
        .find(|(l, _)| l == label)
        .map(|&(_, k)| k)
}

/// Birth-date values that [`DATE`] does not cover because they need the label to be dates at all: 19580302,
/// 03/02/1958, 2.3.1958.
static BIRTH_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])|\d{1,2}[/.-]\d{1,2}[/.-](?:18|19|20)\d{2})")
        .unwrap()
});

/// Where a label's value starts: after spaces, tabs and at most one colon, bar or equals sign, and an optional
/// No. (カルテNo. 3318-07). `None` when the label is glued to a word (ID番号 is a label, IDカード is not).
fn value_start(chars: &[char], le: usize) -> (usize, bool) {
    let mut p = le;
    let mut mark = false;
    while p < chars.len() && matches!(chars[p], ' ' | '\t') {
        p += 1;
    }
    if p < chars.len() && matches!(chars[p], ':' | '|' | '=') {
        mark = true;
        p += 1;
    }
    while p < chars.len() && matches!(chars[p], ' ' | '\t') {
        p += 1;
    }
    (p, mark || p > le)
}

/// A label must stand on its own: a Latin label not inside a Latin word (COVID-ID, Names), and a name label at the
/// start of a field (line start, after a space, tab, bar or bracket), since 氏名 or 担当 inside prose is not a field.
fn label_bounded(chars: &[char], ls: usize, le: usize, kind: FieldKind) -> bool {
    let latin = chars[ls].is_ascii_alphabetic();
    let prev = ls.checked_sub(1).map(|i| chars[i]);
    if latin
        && (prev.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
            || chars.get(le).is_some_and(|c| c.is_ascii_alphabetic()))
    {
        return false;
    }
    kind != FieldKind::Name
        || prev.is_none_or(|c| {
            matches!(
                c,
                '\n' | ' ' | '\t' | '|' | ')' | ']' | '】' | '、' | '/' | ','
            )
        })
}

/// Labelled fields: identifiers, birth dates and names after the labels of assets/guard/labels.toml.
fn fields(t: &str, ci: &CharIndex, chars: &[char], v: &mut Vec<Cand>) {
    for m in FIELD.find_iter(t) {
        let Some(kind) = field_kind(m.as_str()) else {
            continue;
        };
        let (ls, le) = (ci.char_at(m.start()), ci.char_at(m.end()));
        if !label_bounded(chars, ls, le, kind) {
            continue;
        }
        let (p, separated) = value_start(chars, le);
        let found = match kind {
            FieldKind::Id => id_value(chars, p, separated).map(|se| (PiiKind::PatientId, se, 80)),
            FieldKind::Birth if separated => {
                birth_value(t, ci, chars, p).map(|se| (PiiKind::BirthDate, se, 70))
            }
            FieldKind::Name if separated => {
                name_value(chars, p).map(|se| (PiiKind::PersonName, se, 30))
            }
            _ => None,
        };
        if let Some((kind, (start, end), rank)) = found {
            v.push(Cand {
                kind,
                start,
                end,
                rank,
            });
        }
    }
}

/// An identifier value: one token of Latin letters, digits and - _ / . # with at least one digit, to its end
/// (MR2024-89012, ICU-CTA-240806). Glued to its label only when it starts with a digit (参照コード19990801).
fn id_value(chars: &[char], p: usize, separated: bool) -> Option<(usize, usize)> {
    if !separated && !chars.get(p).is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut e = p;
    while e < chars.len()
        && (chars[e].is_ascii_alphanumeric() || matches!(chars[e], '-' | '_' | '/' | '.' | '#'))
    {
        e += 1;
    }
    while e > p && matches!(chars[e - 1], '-' | '_' | '/' | '.' | '#') {
        e -= 1;
    }
    let digits = chars[p..e].iter().filter(|c| c.is_ascii_digit()).count();
    (digits >= 1 && e - p >= 3).then_some((p, e))
}

/// A birth-date value in any notation, starting right at `p`.
fn birth_value(t: &str, ci: &CharIndex, chars: &[char], p: usize) -> Option<(usize, usize)> {
    let rest: String = chars[p..(p + 24).min(chars.len())].iter().collect();
    if let Some(m) = BIRTH_VALUE.find(&rest) {
        let e = p + rest[..m.end()].chars().count();
        return digit_bounded(chars, p, e).then_some((p, e));
    }
    let b = t.char_indices().nth(p).map_or(t.len(), |(b, _)| b);
    let m = DATE.find_at(t, b).filter(|m| m.start() == b)?;
    let e = ci.char_at(m.end());
    // S33.3.2 is a date; S33 alone is not an era year when a letter word goes on (S33a).
    digit_bounded(chars, p, e).then_some((p, e))
}

/// Initials as a name (Y.T., K. N.): capitals each followed by a period.
static INITIALS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Z]\.\s?[A-Z]\.(?:\s?[A-Z]\.)?").unwrap());

/// Skip a Dr./Dr title in front of a Latin name.
fn skip_dr(chars: &[char], mut p: usize) -> usize {
    if chars.get(p) == Some(&'D') && chars.get(p + 1) == Some(&'r') {
        let mut q = p + 2;
        let dot = chars.get(q) == Some(&'.');
        if dot {
            q += 1;
        }
        // Dr.Sato and Dr Sato are titles; Dream is not.
        if dot || chars.get(q).is_none_or(|c| !c.is_ascii_alphabetic()) {
            p = q;
            while chars.get(p) == Some(&' ') {
                p += 1;
            }
        }
    }
    p
}

/// Skip department, title and rank words before a name in a field (放射線科 副部長 岡田 → 岡田): the longest run of
/// role words that a space or a lexicon family name follows.
fn skip_roles(chars: &[char], p: usize) -> usize {
    let end = field_end(chars, p);
    for k in role_run_ends(&chars[p..end]) {
        let mut r = p + k;
        while r < end && chars[r] == ' ' {
            r += 1;
        }
        if r > p + k || starts_with_surname(chars, r) {
            return r;
        }
    }
    p
}

/// Is the value starting at `p` nothing but role words (担当医：小児科, 依頼医｜Ns｜)? Only spaces and punctuation
/// may follow them, never a name.
fn role_fills_value(chars: &[char], p: usize) -> bool {
    let end = field_end(chars, p);
    role_run_ends(&chars[p..end]).into_iter().any(|k| {
        let mut r = p + k;
        while r < end && chars[r] == ' ' {
            r += 1;
        }
        chars
            .get(r)
            .is_none_or(|&c| !(is_name_letter(c) || is_hiragana(c) || c.is_ascii_alphanumeric()))
    })
}

/// The end of the field that starts at `p`: the line, the table cell or the tab-separated column, at most 48
/// characters on.
fn field_end(chars: &[char], p: usize) -> usize {
    (p..chars.len())
        .find(|&i| matches!(chars[i], '\n' | '\t' | '|'))
        .unwrap_or(chars.len())
        .min(p + 48)
}

/// Does a Japanese run look like a person's name on its own: a reading in katakana, or a family name that the
/// lexicon knows or whose kanji are family-name kanji?
fn name_like(cs: &[char]) -> bool {
    let head: Vec<char> = cs.iter().copied().take_while(|&c| c != ' ').collect();
    if head.is_empty() {
        return false;
    }
    if head.iter().all(|&c| is_katakana(c)) {
        return head.len() >= 2;
    }
    if (2..=4).rev().any(|l| {
        l <= head.len() && SURNAMES.contains(head[..l].iter().collect::<String>().as_str())
    }) {
        return true;
    }
    (head.len() == 1 && ONE_CHAR_SURNAMES.contains(&head[0]))
        || ((2..=3).contains(&head.len()) && family_like(&head))
}

/// The person named in a name field whose value starts at `p`: titles and departments skipped, then initials
/// (Y.T.), a Latin name (Yamada Taro) or a Japanese name that looks like one (岩田 慎吾, 後藤, ナガイ マサト).
fn name_value(chars: &[char], p: usize) -> Option<(usize, usize)> {
    if role_fills_value(chars, p) {
        return None;
    }
    let p = skip_dr(chars, skip_roles(chars, skip_dr(chars, p)));
    let rest: String = chars[p..(p + 8).min(chars.len())].iter().collect();
    if let Some(m) = INITIALS.find(&rest) {
        return Some((p, p + rest[..m.end()].chars().count()));
    }
    let (s, e) = name_after(chars, p)?;
    if chars[s].is_ascii_alphabetic() {
        // OT, MSW: a short all-capital word is a profession, not a name.
        let short_caps = e - s <= 3 && chars[s..e].iter().all(|c| c.is_ascii_uppercase());
        return (!short_caps).then_some((s, e));
    }
    let cs = &chars[s..e];
    let text: String = cs.iter().collect();
    if is_role_words(&text) || NOT_NAMES.contains(&text.as_str()) || !name_like(cs) {
        return None;
    }
    strip_roles(chars, s, e)
}

/// A name in Latin script right before a Japanese honorific: initials (Y.T.氏, M. S.さん) or up to three
/// capitalised words (Yamada 様, Suzuki Haruko 様). All-capital words without periods (CT, ADL) are not names.
fn latin_name_before(chars: &[char], h: usize) -> Option<(usize, usize)> {
    let mut e = h;
    if e > 0 && chars[e - 1] == ' ' {
        e -= 1;
    }
    let mut s = e;
    let mut words = 0;
    loop {
        let mut k = s;
        while k > 0 && (chars[k - 1].is_ascii_alphabetic() || chars[k - 1] == '.') {
            k -= 1;
        }
        let w = &chars[k..s];
        let initials = w.len() >= 2
            && w.chunks(2)
                .all(|p| p[0].is_ascii_uppercase() && p.get(1) == Some(&'.'));
        let word = w.len() >= 2
            && w[0].is_ascii_uppercase()
            && w[1..].iter().all(|c| c.is_ascii_lowercase());
        if !(initials || word) {
            break;
        }
        s = k;
        words += 1;
        if words == 3
            || s < 2
            || chars[s - 1] != ' '
            || !(chars[s - 2].is_ascii_alphabetic() || chars[s - 2] == '.')
        {
            break;
        }
        s -= 1;
    }
    if s < e && chars[s] == ' ' {
        s += 1;
    }
    let bounded = s == 0 || !chars[s - 1].is_ascii_alphanumeric();
    (words > 0 && s < e && bounded).then_some((s, e))
}
