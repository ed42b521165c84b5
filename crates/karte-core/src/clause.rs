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

/// Clauses of `chars`, in order; empty clauses are dropped. Brackets are kept whole so 「（室内気、安静時）」 is not split.
pub fn split(chars: &[char]) -> Vec<Clause> {
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
    for i in 0..chars.len() {
        match chars[i] {
            '(' | '（' | '「' | '【' | '[' => depth += 1,
            ')' | '）' | '」' | '】' | ']' => depth = (depth - 1).max(0),
            _ => {}
        }
        if is_sentence_end(chars, i) {
            push(&mut out, start, i, sentence);
            start = i + 1;
            sentence += 1;
            depth = 0;
        } else if depth == 0 && is_clause_end(chars, i) {
            push(&mut out, start, i, sentence);
            start = i + 1;
        }
    }
    push(&mut out, start, chars.len(), sentence);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ];
        for (t, want) in cases {
            let chars: Vec<char> = t.chars().collect();
            let got: Vec<String> = split(&chars).into_iter().map(|c| c.text).collect();
            assert_eq!(got, *want, "{t}");
        }
    }
}
