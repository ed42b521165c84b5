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

/// Character error rate of `hypothesis` against `reference` (edits / reference length, after [`normalize`]).
pub fn cer(reference: &str, hypothesis: &str) -> f64 {
    let r = normalize(reference);
    let h = normalize(hypothesis);
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
    fn term_recall_counts_lexicon_terms_once() {
        let (hit, all) = term_recall("頭痛と発熱あり。", "ずつと発熱あり");
        assert_eq!((hit, all), (1, 2));
        let terms = lexicon_terms("市中肺炎の疑い");
        assert!(terms.iter().any(|t| t == "市中肺炎"), "{terms:?}");
        assert!(!terms.iter().any(|t| t == "肺炎"), "{terms:?}");
    }
}
