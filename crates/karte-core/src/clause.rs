//! Splitting normalised text into clauses: the unit of classification into S/O/A/P and of grounding.

/// A clause: normalised char range, its text (trimmed), and the index of the sentence it belongs to, so that the
/// floor draft only merges clauses that the physician wrote in one sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub sentence: usize,
}

fn is_sentence_end(chars: &[char], i: usize) -> bool {
    match chars[i] {
        '。' | '！' | '？' | '!' | '?' | '\n' | '；' | ';' => true,
        // An ASCII full stop ends a sentence only before white space or the end, never as a decimal point.
        '.' => chars.get(i + 1).is_none_or(|c| c.is_whitespace()),
        _ => false,
    }
}

fn is_clause_end(chars: &[char], i: usize) -> bool {
    // 「II、III、aVF」 (ECG leads) is one list of letters, not three clauses.
    let letters_around = i > 0
        && chars[i - 1].is_ascii_alphabetic()
        && chars.get(i + 1).is_some_and(|c| c.is_ascii_alphanumeric());
    match chars[i] {
        '、' | '，' => !letters_around,
        // "1,000" keeps its comma; "BT 38.6, HR 90" splits.
        ',' => {
            !(i > 0
                && chars[i - 1].is_ascii_digit()
                && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()))
        }
        _ => false,
    }
}

/// What the splitter may know beyond the characters: which spaces were ideographic (U+3000) in the dictation, and
/// where a section header of the document kind starts (「S)」「【O】」「<A>」「Plan:」).
#[derive(Default)]
pub struct Hints<'a> {
    pub wide: Option<&'a dyn Fn(usize) -> bool>,
    pub header: Option<&'a dyn Fn(&str) -> bool>,
}

/// Clauses of `chars`, in order; empty clauses are dropped. Brackets are kept whole so 「（室内気、安静時）」 is not split.
pub fn split(chars: &[char]) -> Vec<Clause> {
    split_with(chars, &Hints::default())
}

/// Words spoken to hold the floor (えー、あのー): never content, always a pause between statements.
const FILLERS: [&str; 11] = [
    "えーっと",
    "えーと",
    "えっと",
    "えー",
    "あのー",
    "あのう",
    "あの",
    "そのー",
    "まあ",
    "うーん",
    "んー",
];

/// A token after which a space does not end the statement: a value or a dose follows a label, a unit follows its
/// value, a route follows a dose.
const ROUTES: [&str; 24] = [
    "点滴", "静注", "内服", "経口", "皮下", "筋注", "投与", "開始", "継続", "中止", "頓用", "頓服",
    "持続", "増量", "減量", "分", "iv", "po", "div", "sc", "im", "prn", "q", "x",
];
const UNITS: [&str; 27] = [
    "mg", "g", "μg", "mL", "ml", "L", "dL", "mmHg", "bpm", "%", "℃", "度", "mEq", "mmol", "U",
    "IU", "ng", "pg", "kg", "cm", "mm", "回", "/", "単位", "錠", "本", "点",
];
/// Japanese names of what is measured, so that 「体温 38.3」 and 「尿量 20mL」 stay one statement.
pub(crate) const JA_LABELS: [&str; 14] = [
    "体温",
    "血圧",
    "脈拍",
    "心拍",
    "心拍数",
    "呼吸数",
    "尿量",
    "体重",
    "血糖",
    "酸素",
    "周径",
    "意識レベル",
    "ナトリウム",
    "カリウム",
];
/// Abbreviations whose full stop is not the end of a sentence.
const ABBREVIATIONS: [&str; 7] = ["bilat", "approx", "e.g", "i.e", "vs", "Dr", "pt"];

fn starts(chars: &[char], i: usize, w: &str) -> bool {
    let n = w.chars().count();
    i + n <= chars.len() && chars[i..i + n].iter().copied().eq(w.chars())
}

fn token_before(chars: &[char], i: usize) -> String {
    let mut s = i;
    while s > 0 && !chars[s - 1].is_whitespace() {
        s -= 1;
    }
    chars[s..i].iter().collect()
}

fn token_after(chars: &[char], j: usize) -> String {
    chars[j..]
        .iter()
        .take_while(|c| !c.is_whitespace())
        .collect()
}

/// A single capital letter opening a section: 「S)」「O:」「【A】」「<P>」.
fn is_letter_header(t: &str) -> bool {
    let c: Vec<char> = t.chars().collect();
    match c.as_slice() {
        [l, e] => l.is_ascii_uppercase() && matches!(e, ')' | ':' | '>' | '】'),
        [o, l, e] => {
            l.is_ascii_uppercase() && matches!((o, e), ('【', '】') | ('<', '>') | ('[', ']'))
        }
        _ => false,
    }
}

/// 「#1」「#12」: a problem number, which its name follows after a space.
fn is_problem_number(t: &str) -> bool {
    t.strip_prefix('#')
        .is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_digit()))
}

/// Does a space between `left` and `right` join one statement (「BT 38.6」「2g 1日1回 点滴静注」「#1 肺炎」)?
fn glued(left: &str, right: &str) -> bool {
    let Some(r0) = right.chars().next() else {
        return true;
    };
    // The ASCII word the left token ends with (「SpO2」「O)BP」→「BP」), if it is a label rather than a value.
    let tail: String = {
        let v: Vec<char> = left
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '/'))
            .collect();
        v.into_iter().rev().collect()
    };
    let ascii_label = tail.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    let label = ascii_label
        || left.ends_with(':')
        || left.ends_with('は')
        || left.ends_with('が')
        || JA_LABELS.iter().any(|l| left.ends_with(l));
    if (r0.is_ascii_digit() || matches!(r0, '+' | '-' | '±')) && label {
        return true;
    }
    if left.chars().last().is_some_and(|c| c.is_ascii_digit())
        && UNITS.iter().any(|u| right.starts_with(u))
    {
        return true;
    }
    let route = ROUTES.iter().any(|w| {
        right.starts_with(w)
            && (w.chars().count() > 1 && !w.is_ascii()
                || (w.is_ascii() && w.len() > 1 && right.len() == w.len())
                || right[w.len()..].starts_with(|c: char| c.is_ascii_digit() || c == '+'))
    });
    // A route follows a dose or a drug's name (「2g 点滴静注」「CTRX iv」), not a finding (「体熱感あり 点滴刺入部…」).
    let drug_like = left.chars().any(|c| c.is_ascii_digit())
        || left
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphabetic() || ('\u{30a0}'..='\u{30ff}').contains(&c));
    if route && drug_like {
        return true;
    }
    // A frequency follows a dose (「2g 1日1回」「5mg 1日2回」).
    let freq = {
        let d: String = right.chars().skip_while(|c| c.is_ascii_digit()).collect();
        d.len() < right.len() && d.starts_with('日') && d.contains(['回', '錠'])
    };
    if freq && left.chars().any(|c| c.is_ascii_digit()) {
        return true;
    }
    // A dose follows its drug (「アムロジピン 5mg 継続」).
    let dose = {
        let d: String = right
            .chars()
            .skip_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        d.len() < right.len()
            && ["mg", "g", "μg", "mL", "単位", "錠", "U", "A", "V"]
                .iter()
                .any(|u| d.starts_with(u))
    };
    if dose
        && left
            .chars()
            .last()
            .is_some_and(|c| ('\u{30a0}'..='\u{30ff}').contains(&c) || c.is_ascii_alphabetic())
    {
        return true;
    }
    // A token ending in a particle cannot end a statement: a pause in speech (「本人は 足がしびれると 話しています」).
    let particle = [
        "は", "が", "を", "に", "の", "と", "で", "も", "から", "まで", "へ", "や",
    ]
    .iter()
    .any(|p| left.ends_with(p));
    particle
        || is_letter_header(left)
        || is_problem_number(left)
        || ABBREVIATIONS
            .iter()
            .any(|a| left.strip_suffix('.').is_some_and(|l| l.ends_with(a)))
        || matches!(r0, '(' | '（' | '/' | '→')
        || matches!(left.chars().last(), Some('→' | '/' | '+' | '&'))
}

/// An ASCII label followed by its value (「HR 102」「CRP 5.2」「SpO2は93」) at `j`: where a run of measurements
/// written without commas starts its next item.
fn measurement_label_at(chars: &[char], j: usize) -> bool {
    let mut k = j;
    let mut letters = 0;
    while k < chars.len() && chars[k].is_ascii_alphabetic() {
        k += 1;
        letters += 1;
    }
    if letters < 2 {
        return JA_LABELS.iter().any(|l| starts(chars, j, l)) && {
            let l = JA_LABELS
                .iter()
                .filter(|l| starts(chars, j, l))
                .map(|l| l.chars().count())
                .max()
                .unwrap_or(0);
            let mut m = j + l;
            while m < chars.len() && matches!(chars[m], ' ' | 'は' | 'が' | ':') {
                m += 1;
            }
            // 「脈拍百四」 as well as 「脈拍 104」, but not 「体温の一時的な…」.
            chars.get(m).is_some_and(|c| {
                c.is_ascii_digit()
                    || (m > j + l && is_kanji_numeral(*c))
                    || (m == j + l
                        && is_kanji_numeral(*c)
                        && chars
                            .get(m + 1)
                            .is_some_and(|d| is_kanji_numeral(*d) || "度分".contains(*d)))
            })
        };
    }
    let word: String = chars[j..k].iter().collect();
    if UNITS.contains(&word.as_str()) || ["mmHg", "bpm", "min", "hr", "h"].contains(&word.as_str())
    {
        return false;
    }
    while k < chars.len() && chars[k].is_ascii_alphanumeric() {
        k += 1;
    }
    while k < chars.len() && matches!(chars[k], ' ' | 'は' | 'が' | ':') {
        k += 1;
    }
    chars.get(k).is_some_and(|c| c.is_ascii_digit())
}

fn after_value(chars: &[char], i: usize) -> bool {
    let mut k = i;
    while k > 0 && chars[k - 1] == ' ' {
        k -= 1;
    }
    k > 0 && {
        let p = chars[k - 1];
        p.is_ascii_digit()
            || matches!(p, '%' | '℃' | '度' | 'ト')
            || (p.is_ascii_alphabetic() && {
                // a unit after a value: 「120 mmHg」「14200/μL」
                let t = token_before(chars, k);
                t.chars().next().is_some_and(|c| c.is_ascii_digit()) || t.len() <= 5
            })
    }
}

/// Where a new statement starts without 。: `Some(n)` means a boundary at `i` whose first `n` chars are separators
/// (dropped), with `true` for a sentence boundary (a new statement) and `false` for a clause boundary.
fn soft_boundary(
    chars: &[char],
    i: usize,
    spaced_line: bool,
    hints: &Hints,
    prev: Option<char>,
) -> Option<(usize, bool)> {
    let c = chars[i];
    let at_line_start = prev.is_none_or(|p| p == '\n');
    // Bullets at the start of a line or after a space.
    if matches!(
        c,
        '・' | '•' | '●' | '○' | '■' | '□' | '◆' | '◇' | '▶' | '*'
    ) && prev.is_none_or(|p| p.is_whitespace())
    {
        return Some((1, true));
    }
    if c == '-' && at_line_start && chars.get(i + 1) == Some(&' ') {
        return Some((1, true));
    }
    for f in FILLERS {
        // 「あの」「まあ」 are also words: a filler only after a pause or a finished statement.
        let plain = !f.contains(['ー', 'っ']);
        if starts(chars, i, f)
            && !(f == "あの" && starts(chars, i, "あの方"))
            && (!plain
                || prev.is_none_or(|p| !is_kana_word_char(p) || matches!(p, 'て' | 'で'))
                || is_sentence_final(chars, i))
        {
            let mut n = f.chars().count();
            while chars
                .get(i + n)
                .is_some_and(|&c| matches!(c, 'ー' | '〜' | '~' | 'っ' | 'う'))
            {
                n += 1;
            }
            return Some((n, true));
        }
    }
    if c == ' ' && prev != Some(' ') {
        let mut j = i;
        while j < chars.len() && chars[j] == ' ' {
            j += 1;
        }
        if j >= chars.len() || chars[j] == '\n' {
            return None;
        }
        let strong = j - i >= 2 || (i..j).any(|k| hints.wide.is_some_and(|w| w(k)));
        let left = token_before(chars, i);
        let right = token_after(chars, j);
        if left.is_empty() {
            return None;
        }
        // A header after a space always opens a new statement.
        let header_next = hints.header.is_some_and(|h| {
            let look: String = chars[j..chars.len().min(j + 12)].iter().collect();
            h(&look)
        }) || is_problem_number(&right);
        if header_next && !is_letter_header(&left) && !is_problem_number(&left) {
            return Some((j - i, true));
        }
        if glued(&left, &right) {
            return None;
        }
        if strong || spaced_line {
            // Two English words are one phrase (「coarse crackles」「CVA tenderness」).
            let l_last = left.chars().last().unwrap_or(' ');
            let r0 = right.chars().next().unwrap_or(' ');
            if !strong && l_last.is_ascii_alphabetic() && r0.is_ascii_alphabetic() {
                return None;
            }
            return Some((j - i, true));
        }
        if after_value(chars, i) && measurement_label_at(chars, j) {
            return Some((j - i, false));
        }
        return None;
    }
    // 「体温は38.5度SpO2は93パーセント」: a measurement label right after a value starts the next item.
    if !c.is_whitespace()
        && after_value(chars, i)
        && prev.is_some_and(|p| !p.is_ascii_alphanumeric())
        && measurement_label_at(chars, i)
    {
        return Some((0, false));
    }
    // A bracketed header inside a line (「…続いている【O】腰部に…」).
    if matches!(c, '【' | '<' | '[') && !at_line_start && prev.is_some_and(|p| !p.is_whitespace())
    {
        let look: String = chars[i..chars.len().min(i + 12)].iter().collect();
        if hints.header.is_some_and(|h| h(&look)) {
            return Some((0, true));
        }
    }
    None
}

fn is_kana_word_char(c: char) -> bool {
    // A filler glued to the end of a word is still a filler if the word ended a statement (です、ます、した).
    ('\u{3040}'..='\u{30ff}').contains(&c) || ('\u{4e00}'..='\u{9fff}').contains(&c)
}

/// Does the text before `i` end a spoken statement (「…です」「…ます」「…ました」)?
fn is_sentence_final(chars: &[char], i: usize) -> bool {
    [
        "です",
        "ます",
        "でした",
        "ました",
        "ません",
        "した",
        "ください",
        "ですね",
        "ますね",
        "ですよ",
        "ますよ",
    ]
    .iter()
    .any(|e| {
        let n = e.chars().count();
        i >= n && chars[i - n..i].iter().copied().eq(e.chars())
    })
}

/// Spoken Japanese without punctuation: 「…を疑います頭部MRIを…」 ends a statement after ます/です unless a
/// conjunction follows. Returns the length of the ending when a statement ends right after it.
fn spoken_end(chars: &[char], i: usize) -> bool {
    if !is_sentence_final(chars, i) {
        return false;
    }
    let Some(&n) = chars.get(i) else {
        return false;
    };
    if n.is_whitespace()
        || matches!(
            n,
            '。' | '、' | ',' | '.' | '!' | '?' | ')' | '）' | '」' | '】'
        )
    {
        return false;
    }
    // Conjunctions and sentence particles continue the statement.
    !["が", "ので", "けど", "けれど", "から", "し、", "ね", "よ", "か", "と", "て", "の", "こと", "ため"]
        .iter()
        .any(|w| starts(chars, i, w))
        // 「した」 is also inside words (「低下した」 ends, but 「したがって」 does not).
        && !starts(chars, i, "がって")
}

/// A conjunction right after a spoken ending (「…ましたが」「…でしたので」): its length, where a clause ends.
fn spoken_conjunction(chars: &[char], i: usize) -> Option<usize> {
    if !is_sentence_final(chars, i) {
        return None;
    }
    let conj = ["ので", "けれど", "けど", "が", "から"]
        .iter()
        .find(|w| starts(chars, i, w))?;
    let n = conj.chars().count();
    // Only where more of the statement follows, not before punctuation, which splits anyway.
    chars
        .get(i + n)
        .is_some_and(|c| !c.is_whitespace() && !matches!(c, '、' | '。' | ',' | '.'))
        .then_some(n)
}

/// A plain ending (「…あり」「…なし」「…認める」) run into the next statement in a line without punctuation
/// (「圧痛なし胃腸炎と考える」): true where the next statement starts at `i`.
fn plain_end(chars: &[char], i: usize) -> bool {
    // Not 「ない」: 「症状のない患者」 modifies what follows.
    let ends = ["あり", "なし", "認める", "認めず"];
    let ended = |ends: &[&str]| {
        ends.iter().any(|e| {
            let n = e.chars().count();
            i >= n && chars[i - n..i].iter().copied().eq(e.chars())
        })
    };
    if ended(&ends)
        && chars.get(i).is_some_and(|&c| {
            !c.is_whitespace()
                && !c.is_ascii_digit()
                && !"とでにのがはもたてまそかよねや、。,.)）」】".contains(c)
                && !c.is_ascii_punctuation()
        })
    {
        return true;
    }
    // Spoken findings end on a noun as often (「腸蠕動音は正常食事は…」「30低下起立性…」「…とのこと体温…」), but the
    // same nouns open compounds (低下症, 陽性率, 正常値), so only a new word in kanji, katakana or Latin letters that
    // is not such a suffix starts the next statement.
    ended(&NOUN_ENDS)
        && chars.get(i).is_some_and(|&c| {
            (is_kanji(c) || is_katakana(c) || c.is_ascii_alphabetic())
                && !COMPOUND_SUFFIXES.contains(&c)
        })
}

/// Nouns that close a spoken finding or report (see `plain_end`).
const NOUN_ENDS: [&str; 9] = [
    "正常",
    "不良",
    "低下",
    "上昇",
    "陰性",
    "陽性",
    "聴取",
    "とのこと",
    "とのことで",
];
/// First characters of words that extend a noun of `NOUN_ENDS` into a compound (低下症, 上昇傾向, 陰性化, 正常範囲,
/// 陽性所見, 低下時, 正常洞調律, 聴取困難).
const COMPOUND_SUFFIXES: [char; 24] = [
    '症', '傾', '化', '値', '範', '所', '型', '例', '者', '率', '感', '域', '量', '的', '性', '後',
    '中', '前', '時', '度', '像', '洞', '困', '群',
];

fn is_kanji(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

fn is_katakana(c: char) -> bool {
    ('\u{30a1}'..='\u{30ff}').contains(&c)
}

/// Units as a transcript spells them after a number (「50ミリ」「2回」「62.4キロ」), with the written ones.
const SPOKEN_UNITS: [&str; 18] = [
    "パーセント",
    "プラス",
    "マイナス",
    "リットル",
    "ミリ",
    "キロ",
    "センチ",
    "グラム",
    "単位",
    "回",
    "度",
    "分",
    "点",
    "錠",
    "本",
    "%",
    "mL",
    "mg",
];

/// Numerals as a transcript may spell them (「百二十」「三十七度八分」).
fn is_kanji_numeral(c: char) -> bool {
    "〇一二三四五六七八九十百千万".contains(c)
}

/// Where the value that ends right before `i` starts, and whether it is spelled only in kanji: digits or kanji
/// numerals with spoken units between them (「三十八度一分」「百十の六十四」「15.2」「50ミリ」).
fn value_start(chars: &[char], i: usize) -> Option<(usize, bool)> {
    let numeral = |c: char| c.is_ascii_digit() || c == '.' || is_kanji_numeral(c);
    let mut k = i;
    let mut seen = false;
    let mut ascii = false;
    loop {
        if k > 0 && numeral(chars[k - 1]) {
            ascii |= chars[k - 1].is_ascii_digit();
            seen = true;
            k -= 1;
            continue;
        }
        let unit = SPOKEN_UNITS.iter().find(|u| {
            let n = u.chars().count();
            k > n && chars[k - n..k].iter().copied().eq(u.chars()) && numeral(chars[k - n - 1])
        });
        if let Some(u) = unit {
            k -= u.chars().count();
            continue;
        }
        // 「百十の六十四」: a blood pressure said as two numbers.
        if seen && k > 1 && chars[k - 1] == 'の' && numeral(chars[k - 2]) {
            k -= 1;
            continue;
        }
        break;
    }
    (seen
        && chars[k..i]
            .iter()
            .any(|&c| c.is_ascii_digit() || is_kanji_numeral(c)))
    .then_some((k, !ascii))
}

/// English letters and digits as a transcript spells them in katakana (エスピーオーツー SpO2, シーアールピー CRP,
/// ピーエイチ pH, エーワンシー A1c).
const LETTER_NAMES: [&str; 36] = [
    "エー",
    "ビー",
    "シー",
    "ディー",
    "イー",
    "エフ",
    "ジー",
    "エイチ",
    "アイ",
    "ジェー",
    "ジェイ",
    "ケー",
    "エル",
    "エム",
    "エヌ",
    "オー",
    "ピー",
    "キュー",
    "アール",
    "エス",
    "ティー",
    "ユー",
    "ブイ",
    "ダブリュー",
    "エックス",
    "ワイ",
    "ゼット",
    "ワン",
    "ツー",
    "スリー",
    "フォー",
    "ファイブ",
    "シックス",
    "セブン",
    "エイト",
    "ナイン",
];

/// Is `w` spelled entirely of at least two letter names?
fn letter_names(w: &[char]) -> bool {
    fn names(w: &[char]) -> Option<usize> {
        if w.is_empty() {
            return Some(0);
        }
        LETTER_NAMES.iter().find_map(|n| {
            let k = n.chars().count();
            (w.len() >= k && w[..k].iter().copied().eq(n.chars()))
                .then(|| names(&w[k..]).map(|m| m + 1))
                .flatten()
        })
    }
    names(w).is_some_and(|n| n >= 2)
}

/// Names of what is measured beyond `JA_LABELS`: the laboratory lexicon's spellings in kana or kanji (乳酸,
/// ヘモグロビン, 血小板).
static LAB_NAMES: std::sync::LazyLock<Vec<Vec<char>>> = std::sync::LazyLock::new(|| {
    crate::lexicon::LABS
        .spellings()
        .into_iter()
        .map(|(s, _)| s.chars().collect::<Vec<char>>())
        .filter(|s| s.len() >= 2 && s.iter().all(|&c| is_kanji(c) || is_katakana(c)))
        .collect()
});

/// Does a spoken measurement name end right before `k` (「エスピーオーツー」「ヘモグロビンエーワンシー」「ラクテート」)?
pub(crate) fn spoken_label_before(chars: &[char], k: usize) -> bool {
    let mut s = k;
    while s > 0 && is_katakana(chars[s - 1]) {
        s -= 1;
    }
    (s..k).any(|t| letter_names(&chars[t..k]))
        || LAB_NAMES
            .iter()
            .any(|l| k >= l.len() && chars[k - l.len()..k] == l[..])
}

/// A spoken measurement name followed by its value at `j` (「ラクテート6.8」「エスピーオーツー99」「乳酸は4.2」).
fn spoken_label_at(chars: &[char], j: usize) -> bool {
    let mut k = j;
    while k < chars.len()
        && (is_katakana(chars[k]) || is_kanji(chars[k]))
        && !is_kanji_numeral(chars[k])
    {
        k += 1;
        let mut m = k;
        while m < chars.len() && matches!(chars[m], 'は' | 'が') {
            m += 1;
        }
        let value = chars.get(m).is_some_and(|c| c.is_ascii_digit())
            || (chars.get(m).is_some_and(|&c| is_kanji_numeral(c))
                && chars.get(m + 1).is_some_and(|&c| is_kanji_numeral(c)));
        if value && is_spoken_label(&chars[j..k]) {
            return true;
        }
    }
    false
}

/// Is `w` a measurement name as spoken, whole (「ラクテート」「エスピーオーツー」「ヘモグロビンエーワンシー」), not
/// a word that merely ends in one (「後血糖」)?
fn is_spoken_label(w: &[char]) -> bool {
    letter_names(w)
        || LAB_NAMES
            .iter()
            .any(|l| w.starts_with(l) && (w.len() == l.len() || letter_names(&w[l.len()..])))
}

/// Is the value ending before `i` said after what it measures (「アンモニアは百八十」「脈拍百四」「CRPは15.2」)? Kanji
/// numerals are a value only there, since they also spell words (一過性, 十分).
fn stated_value_before(chars: &[char], i: usize) -> Option<bool> {
    let (k, kanji_only) = value_start(chars, i)?;
    let before: String = chars[..k].iter().collect();
    let stated = before.ends_with(['は', 'が'])
        || JA_LABELS.iter().any(|l| before.ends_with(l))
        || before.ends_with(|c: char| c.is_ascii_alphanumeric())
        || spoken_label_before(chars, k);
    (stated || !kanji_only).then_some(stated)
}

/// Does a number, with or without a unit, end right before `i`?
fn after_spoken_value(chars: &[char], i: usize) -> bool {
    let digit_at = |k: usize| k > 0 && chars[k - 1].is_ascii_digit();
    digit_at(i)
        || SPOKEN_UNITS.iter().any(|u| {
            let n = u.chars().count();
            i >= n && chars[i - n..i].iter().copied().eq(u.chars()) && digit_at(i - n)
        })
        || stated_value_before(chars, i).is_some()
}

/// What a value is qualified by (「20ミリ以下」「3程度」「140台」「2日前」), never a new statement.
const VALUE_MODIFIERS: [char; 20] = [
    '以', '未', '程', '前', '後', '台', '弱', '強', '位', '時', '日', '週', '歳', '年', '月', '倍',
    '代', '個', '秒', '間',
];

/// Words that open a spoken statement about when (「…50ミリ明日ドレーン抜去予定」).
const TIME_OPENERS: [&str; 6] = ["明日", "明朝", "本日", "今日", "今後", "来週"];

/// A value run into the next statement without a pause (「嘔吐は2回腹部は平坦」「尿量は2400下腿浮腫は軽減」「50ミリ明日
/// ドレーン抜去予定」「脈拍百四血圧は」「アンモニアは百八十肝性脳症と考えます」): true where the next statement starts
/// at `i`: a new topic (a word followed by は/が), a time, the next measurement, or, after a value said with what it
/// measures, a new word followed by と/を, or a katakana word followed by で (the judgement or order that follows).
fn value_then_topic(chars: &[char], i: usize) -> bool {
    let Some(&here) = chars.get(i) else {
        return false;
    };
    // The unit itself (「2回」「37.9度」「三十八度」) or more of the number is not a new statement.
    let unit_here = i > 0
        && (chars[i - 1].is_ascii_digit() || is_kanji_numeral(chars[i - 1]))
        && SPOKEN_UNITS.iter().any(|u| starts(chars, i, u));
    if !after_spoken_value(chars, i)
        || unit_here
        || is_kanji_numeral(here)
        || here == 'の'
        || VALUE_MODIFIERS.contains(&here)
    {
        return false;
    }
    if TIME_OPENERS.iter().any(|w| starts(chars, i, w))
        || measurement_label_at(chars, i)
        || spoken_label_at(chars, i)
    {
        return true;
    }
    let mut k = i;
    while k < chars.len() && (is_kanji(chars[k]) || is_katakana(chars[k])) {
        k += 1;
    }
    if k - i < 2 {
        return false;
    }
    let next = chars.get(k).copied();
    // 「6.8ミダゾラムで鎮静」: a drug or a device named after a value is what is done with it.
    let katakana_word = k - i >= 3 && chars[i..k].iter().all(|&c| is_katakana(c));
    matches!(next, Some('は' | 'が'))
        || ((matches!(next, Some('と' | 'を')) || (next == Some('で') && katakana_word))
            && stated_value_before(chars, i) == Some(true))
}

/// Clauses of `chars` with what the caller knows about the dictation.
pub fn split_with(chars: &[char], hints: &Hints) -> Vec<Clause> {
    let mut out = Vec::new();
    let mut sentence = 0;
    let mut start = 0;
    let mut depth: i32 = 0;
    let push = |out: &mut Vec<Clause>, s: usize, e: usize, sentence: usize| {
        let (mut s, mut e) = (s, e);
        while s < e && chars[s].is_whitespace() {
            s += 1;
        }
        while e > s && chars[e - 1].is_whitespace() {
            e -= 1;
        }
        if s < e {
            out.push(Clause {
                start: s,
                end: e,
                text: chars[s..e].iter().collect(),
                sentence,
            });
        }
    };
    // A line written without 、 or 。 is a list of statements separated by spaces (ward records, voice transcripts).
    let mut spaced = vec![false; chars.len()];
    let mut ls = 0;
    for e in 0..=chars.len() {
        if e == chars.len() || chars[e] == '\n' {
            let line = &chars[ls..e];
            // English written in sentences (「… crackles. 下腿浮腫」) is prose too.
            let v = !line.iter().any(|c| matches!(c, '。' | '、' | ',' | '，'))
                && !line.windows(2).any(|w| w[0] == '.' && w[1] == ' ');
            spaced[ls..e].fill(v);
            ls = e + 1;
        }
    }
    // Inside a problem heading (「#1 市中肺炎」) nothing splits until its line ends or a header begins.
    let mut in_heading = false;
    let mut i = 0;
    while i < chars.len() {
        let prev = if i == 0 { None } else { Some(chars[i - 1]) };
        let line_start_ws = {
            let mut k = i;
            while k > 0 && chars[k - 1] == ' ' {
                k -= 1;
            }
            k == 0 || chars[k - 1] == '\n'
        };
        if chars[i] == '#'
            && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit())
            && (line_start_ws || prev == Some(' '))
        {
            if i > start {
                push(&mut out, start, i, sentence);
                sentence += 1;
            }
            start = i;
            in_heading = true;
            depth = 0;
        }
        let depth_before = depth;
        match chars[i] {
            '(' | '（' | '「' | '【' | '[' => depth += 1,
            ')' | '）' | '」' | '】' | ']' => depth = (depth - 1).max(0),
            _ => {}
        }
        if is_sentence_end(chars, i)
            && !(chars[i] == '.'
                && ABBREVIATIONS
                    .iter()
                    .any(|a| token_before(chars, i).ends_with(a)))
        {
            push(&mut out, start, i, sentence);
            start = i + 1;
            sentence += 1;
            depth = 0;
            in_heading = false;
            i += 1;
            continue;
        }
        if in_heading {
            // A header after a space ends the heading; so does a bracketed header.
            if chars[i] == ' ' {
                let mut j = i;
                while j < chars.len() && chars[j] == ' ' {
                    j += 1;
                }
                let look: String = chars[j..chars.len().min(j + 12)].iter().collect();
                if hints.header.is_some_and(|h| h(&look)) {
                    push(&mut out, start, i, sentence);
                    sentence += 1;
                    start = j;
                    in_heading = false;
                    i = j;
                    continue;
                }
            }
            i += 1;
            continue;
        }
        // Outside brackets (an opening bracket just read may begin a header: 「…続いている【O】」).
        if depth_before == 0 {
            if let Some((n, new_sentence)) = soft_boundary(chars, i, spaced[i], hints, prev) {
                push(&mut out, start, i, sentence);
                if new_sentence {
                    sentence += 1;
                }
                // `n` separator chars are dropped; with none, the char at `i` opens the new clause.
                start = i + n;
                i += n.max(1);
                continue;
            }
        }
        if depth == 0 && is_clause_end(chars, i) {
            push(&mut out, start, i, sentence);
            start = i + 1;
        } else if depth == 0 && spoken_end(chars, i) {
            push(&mut out, start, i, sentence);
            start = i;
            sentence += 1;
        } else if let Some(n) = (depth == 0).then(|| spoken_conjunction(chars, i)).flatten() {
            // 「…陰性でしたので経過観察とします」: the reason and what follows from it are two clauses.
            push(&mut out, start, i + n, sentence);
            start = i + n;
            i += n;
            continue;
        } else if depth == 0 && spaced[i] && (plain_end(chars, i) || value_then_topic(chars, i)) {
            push(&mut out, start, i, sentence);
            start = i;
            sentence += 1;
        }
        i += 1;
    }
    push(&mut out, start, chars.len(), sentence);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoken_letters() {
        let w = |s: &str| letter_names(&s.chars().collect::<Vec<_>>());
        assert!(
            w("エスピーオーツー") && w("シーアールピー") && w("ピーエイチ") && w("エーワンシー")
        );
        assert!(!w("ピース") && !w("エス") && !w("ミダゾラム"));
    }

    #[test]
    fn split_table() {
        let cases: &[(&str, &[&str])] = &[
            ("発熱あり。咳嗽あり。", &["発熱あり", "咳嗽あり"]),
            (
                "BT 38.6℃、SpO2 93%(室内気、安静時)",
                &["BT 38.6℃", "SpO2 93%(室内気、安静時)"],
            ),
            ("WBC 12,300. CRP 5.2", &["WBC 12,300", "CRP 5.2"]),
            ("S) 頭痛\nO) 血圧 180/100", &["S) 頭痛", "O) 血圧 180/100"]),
            ("   ", &[]),
            // Ward records: ideographic spaces are read as spaces here (no hint), so a line without 。 splits at
            // spaces between statements but keeps label and value, value and unit, drug and dose together.
            (
                "体温38.3 体熱感あり 点滴刺入部の発赤なし クーリング開始",
                &[
                    "体温38.3",
                    "体熱感あり",
                    "点滴刺入部の発赤なし",
                    "クーリング開始",
                ],
            ),
            (
                "SpO2 91% BP 92/54 Cr 1.0 mg/dL セフトリアキソン 2g 1日1回 点滴静注",
                &[
                    "SpO2 91%",
                    "BP 92/54",
                    "Cr 1.0 mg/dL",
                    "セフトリアキソン 2g 1日1回 点滴静注",
                ],
            ),
            // Double spaces split even in prose; bullets open statements.
            (
                "発熱あり。咳嗽あり  喀痰なし",
                &["発熱あり", "咳嗽あり", "喀痰なし"],
            ),
            ("・腹痛なし\n・腹部平坦軟", &["腹痛なし", "腹部平坦軟"]),
            // Measurement runs without commas, even in a sentence with 。.
            (
                "WBC 14200/μL CRP 15.6 mg/dL。",
                &["WBC 14200/μL", "CRP 15.6 mg/dL"],
            ),
            (
                "体温は38.5度SpO2は93パーセント",
                &["体温は38.5度", "SpO2は93パーセント"],
            ),
            // Voice: fillers are pauses, polite endings end statements; GCS stays whole.
            (
                "えー72歳男性ですあのー発熱がありますえー GCS E4V5M6",
                &["72歳男性です", "発熱があります", "GCS E4V5M6"],
            ),
            // A problem heading is one clause up to its line's end; a letter header after a space starts anew.
            (
                "#2 2型糖尿病 血糖コントロール不良",
                &["#2 2型糖尿病 血糖コントロール不良"],
            ),
            ("S) 頭痛 O) 血圧 180/100", &["S) 頭痛", "O) 血圧 180/100"]),
            // Spoken run-ons: a conjunction after a polite ending closes a clause; a plain ending run into the next
            // statement closes it in a line without punctuation, but not before a number (「排便なし4日目」).
            (
                "陰性でしたので経過観察とします",
                &["陰性でしたので", "経過観察とします"],
            ),
            ("圧痛なし胃腸炎と考える", &["圧痛なし", "胃腸炎と考える"]),
            ("排便なし4日目", &["排便なし4日目"]),
            (
                "圧痛なし、胃腸炎と考える。",
                &["圧痛なし", "胃腸炎と考える"],
            ),
            // Spoken findings that end on a noun or a value run into the next statement; a compound (低下症), a unit
            // (「37.9度」) and a time (「10時20分」) do not end one.
            (
                "腸蠕動音は正常食事は五分粥から再開します",
                &["腸蠕動音は正常", "食事は五分粥から再開します"],
            ),
            (
                "臥位より30低下起立性低血圧を疑います",
                &["臥位より30低下", "起立性低血圧を疑います"],
            ),
            (
                "程度とのこと体温37度5分ドレーンの排液は50ミリ明日ドレーン抜去予定",
                &[
                    "程度とのこと",
                    "体温37度5分ドレーンの排液は50ミリ",
                    "明日ドレーン抜去予定",
                ],
            ),
            ("嘔吐は2回腹部は平坦", &["嘔吐は2回", "腹部は平坦"]),
            ("甲状腺機能低下症の既往", &["甲状腺機能低下症の既往"]),
            (
                "体温は37.9度血圧は100の60",
                &["体温は37.9度", "血圧は100の60"],
            ),
            // Kanji numerals are values after what they measure; a judgement run on after a value opens a statement,
            // what qualifies the value (「3程度」「20ミリ以下」) does not.
            (
                "体温三十八度一分脈拍百四血圧は百十の六十四エスピーオーツーは92パーセントです",
                &[
                    "体温三十八度一分",
                    "脈拍百四",
                    "血圧は百十の六十四",
                    "エスピーオーツーは92パーセントです",
                ],
            ),
            (
                "アンモニアは百八十肝性脳症と考えます",
                &["アンモニアは百八十", "肝性脳症と考えます"],
            ),
            (
                "シーアールピーは15.2誤嚥性肺炎と診断します",
                &["シーアールピーは15.2", "誤嚥性肺炎と診断します"],
            ),
            ("疼痛はNRSで3程度とのこと", &["疼痛はNRSで3程度とのこと"]),
            ("尿量は20ミリ以下が続く", &["尿量は20ミリ以下が続く"]),
            ("食事は五分粥から再開", &["食事は五分粥から再開"]),
            ("一過性徐脈はありません", &["一過性徐脈はありません"]),
            // Measurement names spelled in katakana (letters, or the laboratory lexicon's names) open the next item;
            // a katakana word followed by で after a value is what is done next; ですね ends a statement.
            (
                "呼吸数16回エスピーオーツー99パーセント過換気症候群と考えます",
                &[
                    "呼吸数16回",
                    "エスピーオーツー99パーセント",
                    "過換気症候群と考えます",
                ],
            ),
            (
                "ピーエイチ7.21ラクテート6.8ミダゾラムで鎮静を継続",
                &["ピーエイチ7.21", "ラクテート6.8", "ミダゾラムで鎮静を継続"],
            ),
            ("尿ケトンは3プラスです", &["尿ケトンは3プラスです"]),
            (
                "可能性が高いですねアセトアミノフェンを処方",
                &["可能性が高いですね", "アセトアミノフェンを処方"],
            ),
            ("ピースサインあり", &["ピースサインあり"]),
            // What qualifies a value's time (「15分後」) is not a new item, even before a measurement name.
            ("15分後血糖98", &["15分後血糖98"]),
            // English abbreviations keep their full stop.
            (
                "bilat. coarse crackles. 下腿浮腫",
                &["bilat. coarse crackles", "下腿浮腫"],
            ),
        ];
        for (t, want) in cases {
            let chars: Vec<char> = t.chars().collect();
            let got: Vec<String> = split(&chars).into_iter().map(|c| c.text).collect();
            assert_eq!(got, *want, "{t}");
        }
    }
}
