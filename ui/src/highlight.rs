//! Splitting the dictation into marked and unmarked runs for the source view.
//!
//! Spans are character (Unicode scalar) offsets, never bytes: a Japanese character is three bytes in UTF-8, so byte
//! arithmetic would cut characters in half or mark the wrong words. Everything here works on `char`s.

use crate::model::Span;

/// A run of the dictation that is either wholly inside the highlighted spans or wholly outside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub text: String,
    pub marked: bool,
}

/// Cuts `text` into runs by `spans`. Overlapping or adjacent spans merge into one run; spans reaching past the end
/// are clipped, because a stale highlight must never panic the window.
pub fn segments(text: &str, spans: &[Span]) -> Vec<Segment> {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let mut marked = vec![false; n];
    for s in spans {
        let end = s.end.min(n);
        for m in marked.iter_mut().take(end).skip(s.start.min(end)) {
            *m = true;
        }
    }
    let mut out: Vec<Segment> = Vec::new();
    for (c, m) in chars.into_iter().zip(marked) {
        match out.last_mut() {
            Some(seg) if seg.marked == m => seg.text.push(c),
            _ => out.push(Segment {
                text: c.to_string(),
                marked: m,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (text, spans as (start, end) character offsets, expected)
    type Case = (&'static str, &'static [(usize, usize)], &'static str);

    fn render(segs: &[Segment]) -> String {
        segs.iter()
            .map(|s| {
                if s.marked {
                    format!("[{}]", s.text)
                } else {
                    s.text.clone()
                }
            })
            .collect()
    }

    #[test]
    fn segments_follow_character_offsets() {
        // (text, spans, expected with [] around marked runs)
        let cases: &[Case] = &[
            ("65歳男性。発熱あり。", &[(6, 8)], "65歳男性。[発熱]あり。"),
            ("65歳男性。発熱あり。", &[], "65歳男性。発熱あり。"),
            (
                "BT 38.6℃、SpO2 93%",
                &[(3, 8), (14, 17)],
                "BT [38.6℃]、SpO2 [93%]",
            ),
            ("咳嗽と喀痰", &[(0, 2), (1, 3)], "[咳嗽と]喀痰"),
            ("咳嗽と喀痰", &[(0, 2), (2, 3)], "[咳嗽と]喀痰"),
            ("咳嗽", &[(1, 99)], "咳[嗽]"),
            ("咳嗽", &[(5, 9)], "咳嗽"),
            ("右下肺野で湿性ラ音", &[(0, 9)], "[右下肺野で湿性ラ音]"),
            ("", &[(0, 3)], ""),
        ];
        for (text, spans, want) in cases {
            let spans: Vec<Span> = spans.iter().map(|&(a, b)| Span::new(a, b)).collect();
            assert_eq!(
                render(&segments(text, &spans)),
                *want,
                "text {text:?} spans {spans:?}"
            );
        }
    }
}
