//! Width folding and unit canonicalisation that keep a map back to the physician's original characters.
//!
//! Extraction and grounding work on the normalised text (so ３８．６度 and 38.6℃ are the same fact), but every span
//! that leaves the pipeline must point into the original text; hence each normalised character records the
//! original character range it came from.

use crate::types::Span;
use unicode_normalization::UnicodeNormalization;

#[derive(Debug, Clone)]
pub struct Normalized {
    pub text: String,
    chars: Vec<char>,
    /// For normalised char i, the original char range `[map[i].0, map[i].1)`.
    map: Vec<(u32, u32)>,
    orig_len: usize,
    /// Normalised chars that were an ideographic space (U+3000): ward records separate observations with it, so
    /// the splitter reads it as a boundary where an ASCII space inside 「BT 38.6」 is not.
    wide: Vec<bool>,
}

impl Normalized {
    pub fn chars(&self) -> &[char] {
        &self.chars
    }
    pub fn len(&self) -> usize {
        self.chars.len()
    }
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }
    /// Length of the original text in characters.
    pub fn orig_len(&self) -> usize {
        self.orig_len
    }
    /// Map a normalised char range to the original span that produced it.
    pub fn orig_span(&self, start: usize, end: usize) -> Span {
        if start >= end {
            let p = if start < self.map.len() {
                self.map[start].0 as usize
            } else {
                self.orig_len
            };
            return Span::new(p, p);
        }
        let s = self.map[start].0 as usize;
        let e = self.map[end.min(self.map.len()) - 1].1 as usize;
        Span::new(s, e.max(s))
    }
    /// Was normalised char `i` an ideographic space in the original?
    pub fn wide_space(&self, i: usize) -> bool {
        self.wide.get(i).copied().unwrap_or(false)
    }
    /// The normalised text of a normalised char range.
    pub fn slice(&self, start: usize, end: usize) -> String {
        self.chars[start..end].iter().collect()
    }
}

/// Characters folded by hand because NFKC folds them wrongly for clinical text (℃ would become °C) or not at all.
fn special(c: char) -> Option<&'static str> {
    Some(match c {
        '℃' => "℃",
        '〜' | '～' | '∼' => "~",
        '−' | '‐' | '‑' | '–' => "-",
        '＃' => "#",
        'µ' => "μ",
        '\u{3000}' => " ",
        '\r' => "",
        _ => return None,
    })
}

pub fn normalize(input: &str) -> Normalized {
    let mut chars: Vec<char> = Vec::with_capacity(input.len());
    let mut map: Vec<(u32, u32)> = Vec::with_capacity(input.len());
    let mut wide: Vec<bool> = Vec::with_capacity(input.len());
    let mut n = 0u32;
    for c in input.chars() {
        let range = (n, n + 1);
        n += 1;
        if let Some(s) = special(c) {
            for o in s.chars() {
                chars.push(o);
                map.push(range);
                wide.push(c == '\u{3000}');
            }
            continue;
        }
        if c.is_ascii() {
            chars.push(c);
            map.push(range);
            wide.push(false);
            continue;
        }
        for o in std::iter::once(c).nfkc() {
            // Half-width voiced marks become combining marks: compose them onto the previous kana.
            if matches!(o, '\u{3099}' | '\u{309A}') {
                if let Some(prev) = chars.last().copied() {
                    let composed: Vec<char> = [prev, o].iter().copied().nfc().collect();
                    if composed.len() == 1 {
                        let last = chars.len() - 1;
                        chars[last] = composed[0];
                        map[last].1 = range.1;
                        continue;
                    }
                }
            }
            chars.push(o);
            map.push(range);
            wide.push(false);
        }
    }
    // °C / ° C after NFKC (from ℉-less inputs such as "38.6°C") → ℃, keeping the union of the source ranges.
    let mut out_c = Vec::with_capacity(chars.len());
    let mut out_m: Vec<(u32, u32)> = Vec::with_capacity(map.len());
    let mut out_w: Vec<bool> = Vec::with_capacity(map.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '°' && chars.get(i + 1) == Some(&'C') {
            out_c.push('℃');
            out_m.push((map[i].0, map[i + 1].1));
            out_w.push(false);
            i += 2;
            continue;
        }
        out_c.push(chars[i]);
        out_m.push(map[i]);
        out_w.push(wide[i]);
        i += 1;
    }
    Normalized {
        text: out_c.iter().collect(),
        chars: out_c,
        map: out_m,
        orig_len: n as usize,
        wide: out_w,
    }
}

/// Byte offset → char offset for regex matches over a string.
pub struct CharIndex {
    starts: Vec<usize>,
}

impl CharIndex {
    pub fn new(s: &str) -> Self {
        CharIndex {
            starts: s
                .char_indices()
                .map(|(b, _)| b)
                .chain(std::iter::once(s.len()))
                .collect(),
        }
    }
    pub fn char_at(&self, byte: usize) -> usize {
        self.starts.binary_search(&byte).unwrap_or_else(|i| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_table() {
        let cases = [
            ("ＢＴ　３８．６℃", "BT 38.6℃"),
            ("38.6°C", "38.6℃"),
            ("ｶﾞｰｾﾞ", "ガーゼ"),
            ("SpO₂ 93％", "SpO2 93%"),
            ("5㎎", "5mg"),
            ("3〜5日", "3~5日"),
            ("①", "1"),
            ("line1\r\nline2", "line1\nline2"),
        ];
        for (i, o) in cases {
            assert_eq!(normalize(i).text, o, "{i}");
        }
    }

    #[test]
    fn spans_map_back_to_original() {
        let src = "ｶﾞｰｾﾞ交換。ＢＴ３８．６°C";
        let n = normalize(src);
        let pos = n.text.chars().position(|c| c == '3').unwrap();
        let end = n.text.chars().count();
        let sp = n.orig_span(pos, end);
        assert_eq!(sp.slice(src), "３８．６°C");
        let sp = n.orig_span(0, 1);
        assert_eq!(sp.slice(src), "ｶﾞ");
    }
}
