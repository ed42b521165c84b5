//! Scoring a transcript against what was said: character error rate and lexicon-term recall.
//!
//! Japanese has no word boundaries, so recognition is scored per character. Both sides are NFKC-folded (全角 ＡＢＣ
//! and half-width ｶﾅ become one spelling) and stripped of punctuation and spaces, which Whisper places freely and
//! which carry no clinical content.

use unicode_normalization::UnicodeNormalization;

/// NFKC, then drop whitespace and punctuation/symbols (。、・「」！？ etc.). Letters, digits, kana and kanji stay.
pub fn normalize(s: &str) -> Vec<char> {
    s.nfkc()
        .filter(|c| c.is_alphanumeric() || is_kana_mark(*c))
        .collect()
}

/// The prolonged sound mark ー and iteration marks are letters in Japanese even though Unicode files some of them
/// as punctuation-like.
fn is_kana_mark(c: char) -> bool {
    matches!(c, 'ー' | '々' | 'ゝ' | 'ゞ' | 'ヽ' | 'ヾ')
}

/// Levenshtein distance over characters.
pub fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// [`normalize`], then numbers written as they are spoken (`3` → 三, `20` → 二十, `38.6` → 三十八点六): Whisper
/// writes 「3日前」 for what the reference spells 「三日前」, and the same words must not count as errors. Digits
/// inside Latin-letter names (HbA1c, T2) are left alone.
pub fn normalize_spoken(s: &str) -> Vec<char> {
    let c: Vec<char> = s.nfkc().collect();
    let mut out = Vec::with_capacity(c.len());
    let mut i = 0;
    while i < c.len() {
        let latin = |k: usize| c.get(k).is_some_and(|x| x.is_ascii_alphabetic());
        if c[i].is_ascii_digit() && !(i > 0 && latin(i - 1)) {
            let mut j = i;
            while j < c.len() && c[j].is_ascii_digit() {
                j += 1;
            }
            if latin(j) {
                out.extend_from_slice(&c[i..j]);
                i = j;
                continue;
            }
            out.extend(spoken_integer(&c[i..j]).chars());
            // A decimal point between digits is read 点, then digit by digit.
            if j + 1 < c.len() && c[j] == '.' && c[j + 1].is_ascii_digit() {
                out.push('点');
                j += 1;
                while j < c.len() && c[j].is_ascii_digit() {
                    out.push(KANJI_DIGITS[c[j] as usize - '0' as usize]);
                    j += 1;
                }
            }
            i = j;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out.into_iter()
        .filter(|c| c.is_alphanumeric() || is_kana_mark(*c))
        .collect()
}

const KANJI_DIGITS: [char; 10] = ['〇', '一', '二', '三', '四', '五', '六', '七', '八', '九'];

/// An integer in kanji as read (四千三百二十一; 一 is silent before 十, 百, 千). Leading zeros or more than eight
/// digits (an ID, a phone number) are read digit by digit.
fn spoken_integer(d: &[char]) -> String {
    let digit = |c: char| KANJI_DIGITS[c as usize - '0' as usize];
    if d.len() > 8 || (d.len() > 1 && d[0] == '0') {
        return d.iter().map(|c| digit(*c)).collect();
    }
    let n: u64 = d.iter().collect::<String>().parse().unwrap_or(0);
    if n == 0 {
        return "〇".into();
    }
    let below_10000 = |mut n: u64| {
        let mut s = String::new();
        for (unit, name) in [(1000, '千'), (100, '百'), (10, '十')] {
            let q = n / unit;
            if q > 0 {
                if q > 1 {
                    s.push(KANJI_DIGITS[q as usize]);
                }
                s.push(name);
            }
            n %= unit;
        }
        if n > 0 {
            s.push(KANJI_DIGITS[n as usize]);
        }
        s
    };
    let (man, rest) = (n / 10_000, n % 10_000);
    let mut s = String::new();
    if man > 0 {
        s.push_str(&below_10000(man));
        s.push('万');
    }
    s.push_str(&below_10000(rest));
    s
}

/// Character error rate of `hypothesis` against `reference` (edits / reference length, after
/// [`normalize_spoken`]).
pub fn cer(reference: &str, hypothesis: &str) -> f64 {
    let r = normalize_spoken(reference);
    let h = normalize_spoken(hypothesis);
    if r.is_empty() {
        return if h.is_empty() { 0.0 } else { 1.0 };
    }
    edit_distance(&r, &h) as f64 / r.len() as f64
}

/// Lexicon terms (canonical names and synonyms of `assets/lexicon`) that occur in `reference`, longest first and
/// without overlaps, so 市中肺炎 counts once rather than also as 肺炎.
pub fn lexicon_terms(reference: &str) -> Vec<String> {
    use karte_core::lexicon::{DIAGNOSES, DRUGS, FINDINGS, LABS, SYMPTOMS, TESTS};
    let text: String = normalize(reference).into_iter().collect();
    let mut spellings: Vec<String> = [&SYMPTOMS, &FINDINGS, &DIAGNOSES, &DRUGS, &TESTS, &LABS]
        .iter()
        .flat_map(|l| {
            l.spellings()
                .into_iter()
                .map(|(s, _)| s.nfkc().collect::<String>())
        })
        .filter(|s| s.chars().count() >= 2)
        .collect();
    spellings.sort_by_key(|s| std::cmp::Reverse(s.chars().count()));
    spellings.dedup();
    let mut taken = vec![false; text.len()];
    let mut found = Vec::new();
    for s in spellings {
        for (at, _) in text.match_indices(&s) {
            if !taken[at..at + s.len()].iter().any(|t| *t) {
                taken[at..at + s.len()].iter_mut().for_each(|t| *t = true);
                found.push(s.clone());
            }
        }
    }
    found
}

/// (terms of the reference found in the hypothesis, terms in the reference). Each occurrence counts once.
pub fn term_recall(reference: &str, hypothesis: &str) -> (usize, usize) {
    let want = lexicon_terms(reference);
    let hyp: String = normalize(hypothesis).into_iter().collect();
    let hit = want.iter().filter(|t| hyp.contains(t.as_str())).count();
    (hit, want.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cer_ignores_width_punctuation_and_spaces() {
        assert_eq!(cer("咳が３日続く。", "咳が 3日続く"), 0.0);
        // 咳 → 積 is one substitution in six characters.
        assert!((cer("咳が3日続く", "積が3日続く") - 1.0 / 6.0).abs() < 1e-9);
        assert_eq!(cer("", ""), 0.0);
        assert_eq!(cer("", "ご視聴ありがとうございました"), 1.0);
        assert_eq!(edit_distance(&['a', 'b'], &[]), 2);
    }

    #[test]
    fn numbers_count_as_spoken() {
        let n = |s: &str| normalize_spoken(s).into_iter().collect::<String>();
        assert_eq!(n("3日前から"), "三日前から");
        assert_eq!(n("20分以上、12誘導"), "二十分以上十二誘導");
        assert_eq!(n("2セット"), "二セット");
        assert_eq!(n("体温38.6度"), "体温三十八点六度");
        assert_eq!(n("1万2300円"), "一万二千三百円");
        assert_eq!(n("10000"), "一万");
        assert_eq!(n("HbA1c 7.5%"), "HbA1c七点五");
        assert_eq!(n("3. 発熱"), "三発熱");
        assert_eq!(cer("二十分以上持続", "20分以上持続"), 0.0);
    }

    #[test]
    fn term_recall_counts_lexicon_terms_once() {
        let (hit, all) = term_recall("頭痛と発熱あり。", "ずつと発熱あり");
        assert_eq!((hit, all), (1, 2));
        let terms = lexicon_terms("市中肺炎の疑い");
        assert!(terms.iter().any(|t| t == "市中肺炎"), "{terms:?}");
        assert!(!terms.iter().any(|t| t == "肺炎"), "{terms:?}");
    }
}
