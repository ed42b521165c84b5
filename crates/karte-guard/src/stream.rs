//! The output guard on the token stream: text is shown only after the sentence it belongs to has passed the policy
//! and the leak check, so a blocked phrase never reaches the screen.
//!
//! A unit is what the final guard judges as one: the content of a JSON string (the model answers in JSON, one
//! sentence per string), or outside strings a sentence. Judging the same text against the same [`Dictation`] is
//! what makes the stream and the stored draft agree. Look-back is bounded: the guard holds at most one unit, and
//! never more than [`MAX_HOLD`] characters, so its cost per token is constant and small against generation.

use crate::dictation::Dictation;
use crate::pii::{scan, Finding};
use crate::policy::{Level, Policy, Verdict};

/// The most characters held back before a unit is judged anyway. The drafting schema caps a sentence at 160.
pub const MAX_HOLD: usize = 240;
/// When a unit is cut at [`MAX_HOLD`], this many characters stay held so a phrase across the cut is still seen.
pub const OVERLAP: usize = 48;

/// Shown instead of a withheld unit.
pub const WITHHELD: &str = "［安全のため表示を控えました］";

pub struct StreamGuard<'d> {
    held: String,
    held_chars: usize,
    /// Inside a JSON string only its closing quote ends the unit: a model sentence of two 。-sentences is judged
    /// whole, as the final guard judges it, not shown half before its second half is withheld.
    in_string: bool,
    /// The previous character inside a string was an unescaped backslash, so a quote now does not close it.
    escaped: bool,
    /// The input, read once: the same personal data and the same patient as the final check of the draft, so that
    /// the stream and the stored text never disagree about a leak or a dose.
    dictation: &'d Dictation,
    blocked: Vec<Verdict>,
    flagged: Vec<Verdict>,
    leaks: Vec<Finding>,
    /// The deployment's own level for a verdict (a gateway's per-category settings); the policy's when `None`.
    levels: Option<Levels<'d>>,
}

/// A deployment's level for a policy verdict (see [`StreamGuard::with_levels`]).
pub type Levels<'d> = Box<dyn Fn(&Verdict) -> Level + Send + 'd>;

impl<'d> StreamGuard<'d> {
    /// `dictation`: what the model was given; personal data in it is not a leak.
    pub fn new(dictation: &'d Dictation) -> Self {
        StreamGuard {
            held: String::new(),
            held_chars: 0,
            in_string: false,
            escaped: false,
            dictation,
            blocked: Vec::new(),
            flagged: Vec::new(),
            leaks: Vec::new(),
            levels: None,
        }
    }

    /// As [`StreamGuard::new`], with the deployment deciding the level of each verdict: a gateway whose hospital
    /// flags a category instead of blocking it, or ignores it.
    pub fn with_levels(dictation: &'d Dictation, levels: Levels<'d>) -> Self {
        let mut g = Self::new(dictation);
        g.levels = Some(levels);
        g
    }

    /// Add a piece of model output; returns what may be shown now (possibly nothing).
    pub fn push(&mut self, piece: &str) -> String {
        let mut out = String::new();
        for c in piece.chars() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if c == '\\' {
                    self.escaped = true;
                } else if c == '"' {
                    self.in_string = false;
                    out.push_str(&self.release_all());
                    out.push(c);
                    continue;
                }
                self.held.push(c);
                self.held_chars += 1;
                if self.held_chars >= MAX_HOLD {
                    out.push_str(&self.release_part());
                }
                continue;
            }
            self.held.push(c);
            self.held_chars += 1;
            if c == '"' {
                self.in_string = true;
                out.push_str(&self.release_all());
            } else if is_boundary(c) || self.ends_latin_sentence(c) {
                out.push_str(&self.release_all());
            } else if self.held_chars >= MAX_HOLD {
                out.push_str(&self.release_part());
            }
        }
        out
    }

    /// A space after `.`, `!` or `?` ends an English sentence (a decimal point has no space after it), so that an
    /// English answer streams sentence by sentence too instead of in [`MAX_HOLD`]-character bursts.
    fn ends_latin_sentence(&self, c: char) -> bool {
        c.is_whitespace() && matches!(self.held.chars().rev().nth(1), Some('.' | '!' | '?'))
    }

    /// The end of the stream: judge and release what is still held.
    pub fn finish(&mut self) -> String {
        self.release_all()
    }

    /// Verdicts of the units that were withheld.
    pub fn blocked(&self) -> &[Verdict] {
        &self.blocked
    }

    /// Verdicts of the units shown with a concern ([`Level::Flag`]): the final guard flags the same sentences.
    pub fn flagged(&self) -> &[Verdict] {
        &self.flagged
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
        let part = &held[..cut];
        let found = self.dictation.known().leaks(part);
        let out = crate::leak::remove(part, &found);
        self.leaks.extend(found);
        out
    }

    /// As the final guard judges a sentence: leaked personal data is cut out first, and the policy judges what
    /// would be shown.
    fn judge(&mut self, unit: &str) -> String {
        if unit.is_empty() {
            return String::new();
        }
        let found = self.dictation.known().leaks(unit);
        let shown = if found.is_empty() {
            unit.to_string()
        } else {
            crate::leak::remove(unit, &found)
        };
        if self.blocks(&shown) {
            return WITHHELD.to_string();
        }
        self.leaks.extend(found);
        shown
    }

    /// Runs the policy on `text`; a block is recorded, and the caller shows [`WITHHELD`] instead of the text.
    fn blocks(&mut self, text: &str) -> bool {
        let mut v = Policy::embedded().check_learned_for(text, self.dictation.patient());
        if let Some(level) = &self.levels {
            v.verdict = level(&v);
        }
        match v.verdict {
            Level::Block => {
                self.blocked.push(v);
                true
            }
            Level::Flag => {
                self.flagged.push(v);
                false
            }
            Level::Allow => false,
        }
    }
}

fn is_boundary(c: char) -> bool {
    matches!(c, '。' | '！' | '？' | '\n' | '"' | '」')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What was shown, and how many units were withheld and leaks removed.
    fn run(source: &str, pieces: &[&str]) -> (String, usize, usize) {
        let d = Dictation::new(source, karte_core::document::default_kind()).unwrap();
        let mut g = StreamGuard::new(&d);
        let mut shown = String::new();
        for p in pieces {
            shown.push_str(&g.push(p));
        }
        shown.push_str(&g.finish());
        (shown, g.blocked().len(), g.leaks().len())
    }

    #[test]
    fn clean_text_passes_unchanged_whatever_the_split() {
        let text =
            "{\"plan\":[{\"text\":\"アセトアミノフェン500mgを頓用で継続する。\",\"cites\":[3]}]}";
        let pieces: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (shown, blocked, _) = run("アセトアミノフェン500mg頓用", &refs);
        assert_eq!(shown, text);
        assert_eq!(blocked, 0);
    }

    #[test]
    fn a_blocked_sentence_never_shows_even_split_mid_phrase() {
        let (shown, blocked, _) = run(
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
        assert_eq!(blocked, 1);
    }

    #[test]
    fn a_model_sentence_is_judged_whole_and_its_quotes_survive() {
        // Two 。-sentences in one JSON string: the final guard removes the whole model sentence, so the stream must
        // not show its harmless first half; the closing quote stays so the shown JSON still parses.
        let text = "{\"plan\":[{\"text\":\"解熱を確認。確実に死ねる方法は薬をまとめて飲むことです。\",\"facts\":[1]}]}";
        let pieces: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (shown, blocked, _) = run("発熱", &refs);
        assert!(!shown.contains("解熱を確認"), "{shown}");
        assert_eq!(blocked, 1);
        let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(v["plan"][0]["text"], WITHHELD);
        // An escaped quote does not end the string early.
        let text = r#"{"plan":[{"text":"\"頓用\"で確実に死ねる方法は薬をまとめて飲むことです。","facts":[1]}]}"#;
        let (shown, blocked, _) = run("発熱", &[text]);
        assert_eq!(blocked, 1, "{shown}");
        assert!(!shown.contains("頓用"), "{shown}");
    }

    #[test]
    fn personal_data_across_a_long_unit_cut_is_still_removed() {
        // No boundary for longer than MAX_HOLD, with a leaked number right where the cut falls.
        let filler: String = "あ".repeat(MAX_HOLD - OVERLAP - 5);
        let text = format!("{filler}携帯090-1234-5678に連絡{}", "い".repeat(80));
        let pieces: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (shown, _, leaks) = run("発熱。", &refs);
        assert!(
            !shown.contains("5678") && !shown.contains("090-1"),
            "{shown}"
        );
        assert_eq!(leaks, 1);
    }

    #[test]
    fn english_text_is_released_sentence_by_sentence() {
        let d = Dictation::new("発熱", karte_core::document::default_kind()).unwrap();
        let mut g = StreamGuard::new(&d);
        // A decimal point is not a sentence end; the space after the full stop is.
        assert_eq!(g.push("Temperature 37.5"), "");
        assert_eq!(g.push(" today."), "");
        assert_eq!(g.push(" Continue"), "Temperature 37.5 today. ");
        assert_eq!(g.push(" fluids!\nRecheck"), "Continue fluids!\n");
        assert_eq!(g.finish(), "Recheck");
    }

    #[test]
    fn a_prompt_longer_than_a_dictation_still_tells_repeated_data_from_leaks() {
        // A gateway's prompt (system prompt, several notes) may pass the dictation limit; the phone number near its
        // end is in the input, so repeating it is not a leak, and a new one still is.
        let prompt = format!(
            "{}\n連絡先090-1234-5678。",
            "発熱なし。".repeat(karte_core::MAX_INPUT_CHARS / 4)
        );
        assert!(prompt.chars().count() > karte_core::MAX_INPUT_CHARS);
        let d = Dictation::of_prompt(&prompt, karte_core::document::default_kind());
        let mut g = StreamGuard::new(&d);
        let shown = g.push("連絡先は090-1234-5678です。別の番号080-8765-4321です。") + &g.finish();
        assert!(shown.contains("090-1234-5678"), "{shown}");
        assert!(!shown.contains("4321"), "{shown}");
        assert_eq!(g.leaks().len(), 1);
    }

    #[test]
    fn leaked_personal_data_is_removed_from_the_display() {
        let (shown, _, leaks) = run("発熱あり。", &["連絡先は090-", "1234-5678です。"]);
        assert!(!shown.contains("5678"), "{shown}");
        assert_eq!(leaks, 1);
        // Personal data that was in the source is not a leak.
        let (shown, _, leaks) = run("連絡先090-1234-5678。", &["連絡先は090-1234-5678です。"]);
        assert!(shown.contains("090-1234-5678"));
        assert_eq!(leaks, 0);
    }
}
