//! The output guard on the token stream: text is shown only after the sentence it belongs to has passed the policy
//! and the leak check, so a blocked phrase never reaches the screen.
//!
//! Look-back is bounded: the guard holds at most one unit of text (up to the next sentence or JSON string boundary,
//! and never more than [`MAX_HOLD`] characters), so its cost per token is constant and small against generation.

use crate::leak::Known;
use crate::pii::{scan, Finding};
use crate::policy::{Policy, Verdict};

/// The most characters held back before a unit is judged anyway. The drafting schema caps a sentence at 160.
pub const MAX_HOLD: usize = 240;
/// When a unit is cut at [`MAX_HOLD`], this many characters stay held so a phrase across the cut is still seen.
pub const OVERLAP: usize = 48;

/// Shown instead of a withheld unit.
pub const WITHHELD: &str = "［安全のため表示を控えました］";

pub struct StreamGuard {
    held: String,
    held_chars: usize,
    /// Personal data of the input: the same judgement as the final check of a draft, so that the stream and the
    /// stored text never disagree about what is a leak.
    known: Known,
    blocked: Vec<Verdict>,
    leaks: Vec<Finding>,
}

impl StreamGuard {
    /// `source`: the text the model was given; personal data in it is not a leak.
    pub fn new(source: &str) -> Self {
        StreamGuard {
            held: String::new(),
            held_chars: 0,
            known: Known::new(source),
            blocked: Vec::new(),
            leaks: Vec::new(),
        }
    }

    /// Add a piece of model output; returns what may be shown now (possibly nothing).
    pub fn push(&mut self, piece: &str) -> String {
        let mut out = String::new();
        for c in piece.chars() {
            self.held.push(c);
            self.held_chars += 1;
            if is_boundary(c) {
                out.push_str(&self.release_all());
            } else if self.held_chars >= MAX_HOLD {
                out.push_str(&self.release_part());
            }
        }
        out
    }

    /// The end of the stream: judge and release what is still held.
    pub fn finish(&mut self) -> String {
        self.release_all()
    }

    /// Verdicts of the units that were withheld.
    pub fn blocked(&self) -> &[Verdict] {
        &self.blocked
    }

    /// Personal data that the model produced and the source did not contain (removed from the display).
    pub fn leaks(&self) -> &[Finding] {
        &self.leaks
    }

    fn release_all(&mut self) -> String {
        let unit = std::mem::take(&mut self.held);
        self.held_chars = 0;
        self.judge(&unit)
    }

    fn release_part(&mut self) -> String {
        // Judge the whole held text, but release only the part before the overlap.
        let held = std::mem::take(&mut self.held);
        if self.blocks(&held) {
            self.held_chars = 0;
            return WITHHELD.to_string();
        }
        let mut cut_char = self.held_chars - OVERLAP;
        // Never cut through personal data: a number split in two would pass both scans.
        for f in scan(&held) {
            if f.start < cut_char && cut_char < f.end {
                cut_char = f.start;
            }
        }
        let cut = held
            .char_indices()
            .nth(cut_char)
            .map_or(held.len(), |(b, _)| b);
        self.held = held[cut..].to_string();
        self.held_chars = self.held.chars().count();
        self.redact_leaks(&held[..cut])
    }

    fn judge(&mut self, unit: &str) -> String {
        if unit.is_empty() {
            return String::new();
        }
        if self.blocks(unit) {
            return WITHHELD.to_string();
        }
        self.redact_leaks(unit)
    }

    /// Runs the policy on `text`; a block is recorded, and the caller shows [`WITHHELD`] instead of the text.
    fn blocks(&mut self, text: &str) -> bool {
        let v = Policy::embedded().check(text);
        let block = v.is_block();
        if block {
            self.blocked.push(v);
        }
        block
    }

    fn redact_leaks(&mut self, unit: &str) -> String {
        let found = self.known.leaks(unit);
        if found.is_empty() {
            return unit.to_string();
        }
        let out = crate::leak::remove(unit, &found);
        self.leaks.extend(found);
        out
    }
}

fn is_boundary(c: char) -> bool {
    matches!(c, '。' | '！' | '？' | '\n' | '"' | '」')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(source: &str, pieces: &[&str]) -> (String, StreamGuard) {
        let mut g = StreamGuard::new(source);
        let mut shown = String::new();
        for p in pieces {
            shown.push_str(&g.push(p));
        }
        shown.push_str(&g.finish());
        (shown, g)
    }

    #[test]
    fn clean_text_passes_unchanged_whatever_the_split() {
        let text =
            "{\"plan\":[{\"text\":\"アセトアミノフェン500mgを頓用で継続する。\",\"cites\":[3]}]}";
        let pieces: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (shown, g) = run("アセトアミノフェン500mg頓用", &refs);
        assert_eq!(shown, text);
        assert!(g.blocked().is_empty());
    }

    #[test]
    fn a_blocked_sentence_never_shows_even_split_mid_phrase() {
        let (shown, g) = run(
            "発熱",
            &[
                "解熱を確認。",
                "確実に死",
                "ねる方法は",
                "薬をまとめて飲むことです。",
                "経過観察。",
            ],
        );
        assert!(!shown.contains("確実に死"), "{shown}");
        assert!(!shown.contains("ねる方法"), "{shown}");
        assert!(shown.contains(WITHHELD));
        assert!(
            shown.contains("解熱を確認。") && shown.contains("経過観察。"),
            "{shown}"
        );
        assert_eq!(g.blocked().len(), 1);
    }

    #[test]
    fn personal_data_across_a_long_unit_cut_is_still_removed() {
        // No boundary for longer than MAX_HOLD, with a leaked number right where the cut falls.
        let filler: String = "あ".repeat(MAX_HOLD - OVERLAP - 5);
        let text = format!("{filler}携帯090-1234-5678に連絡{}", "い".repeat(80));
        let pieces: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (shown, g) = run("発熱。", &refs);
        assert!(
            !shown.contains("5678") && !shown.contains("090-1"),
            "{shown}"
        );
        assert_eq!(g.leaks().len(), 1);
    }

    #[test]
    fn leaked_personal_data_is_removed_from_the_display() {
        let (shown, g) = run("発熱あり。", &["連絡先は090-", "1234-5678です。"]);
        assert!(!shown.contains("5678"), "{shown}");
        assert_eq!(g.leaks().len(), 1);
        // Personal data that was in the source is not a leak.
        let (shown, g) = run("連絡先090-1234-5678。", &["連絡先は090-1234-5678です。"]);
        assert!(shown.contains("090-1234-5678"));
        assert!(g.leaks().is_empty());
    }
}
