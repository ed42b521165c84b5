//! Whisper's byte-level BPE, read from the model's own `vocabulary.txt` (id = line) and `tokenizer.json` (merges).
//!
//! Whisper needs only two things from a tokenizer: ids → text for the transcript, and text → ids for the initial
//! prompt. Both are small enough to do here, which keeps the `tokenizers` crate (and its native regex build) out of
//! the worker binary.

use std::collections::HashMap;

pub struct Tokenizer {
    vocab: Vec<String>,
    ids: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    byte_to_char: [char; 256],
    char_to_byte: HashMap<char, u8>,
}

/// GPT-2's reversible map from bytes to printable characters.
fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u32 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).unwrap()
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap()
        };
    }
    table
}

impl Tokenizer {
    pub fn new(vocabulary_txt: &str, tokenizer_json: &str) -> Result<Self, String> {
        let vocab: Vec<String> = vocabulary_txt.lines().map(str::to_string).collect();
        let ids = vocab
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let json: serde_json::Value =
            serde_json::from_str(tokenizer_json).map_err(|e| format!("tokenizer.json: {e}"))?;
        let merges = json
            .pointer("/model/merges")
            .and_then(|m| m.as_array())
            .ok_or("tokenizer.json has no model.merges")?;
        let mut ranks = HashMap::with_capacity(merges.len());
        for (rank, m) in merges.iter().enumerate() {
            let pair = match m {
                serde_json::Value::String(s) => s
                    .split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string())),
                serde_json::Value::Array(a) if a.len() == 2 => Some((
                    a[0].as_str().unwrap_or_default().to_string(),
                    a[1].as_str().unwrap_or_default().to_string(),
                )),
                _ => None,
            };
            if let Some(p) = pair {
                ranks.insert(p, rank);
            }
        }
        let byte_to_char = bytes_to_unicode();
        let char_to_byte = byte_to_char
            .iter()
            .enumerate()
            .map(|(b, c)| (*c, b as u8))
            .collect();
        Ok(Tokenizer {
            vocab,
            ids,
            ranks,
            byte_to_char,
            char_to_byte,
        })
    }

    pub fn id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    pub fn len(&self) -> usize {
        self.vocab.len()
    }

    /// Text of ordinary tokens; special and timestamp tokens (`<|…|>`) are skipped. Bytes are joined before UTF-8
    /// decoding because one kanji is often split across two tokens.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            let Some(tok) = self.vocab.get(id as usize) else {
                continue;
            };
            if tok.starts_with("<|") && tok.ends_with("|>") {
                continue;
            }
            bytes.extend(
                tok.chars()
                    .filter_map(|c| self.char_to_byte.get(&c).copied()),
            );
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Encode plain text (no special tokens). Pre-tokenisation follows GPT-2's pattern closely enough for prompts:
    /// runs of letters, of digits, of other symbols, each taking one leading space; then BPE by merge rank.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for piece in pretokenize(text) {
            let mapped: Vec<String> = piece
                .bytes()
                .map(|b| self.byte_to_char[b as usize].to_string())
                .collect();
            for sym in self.bpe(mapped) {
                if let Some(id) = self.id(&sym) {
                    out.push(id);
                } else {
                    // Every single byte is in the vocabulary, so this only happens with a foreign vocabulary.
                    for c in sym.chars() {
                        if let Some(id) = self.id(&c.to_string()) {
                            out.push(id);
                        }
                    }
                }
            }
        }
        out
    }

    fn bpe(&self, mut word: Vec<String>) -> Vec<String> {
        loop {
            let best = word
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| {
                    self.ranks
                        .get(&(w[0].clone(), w[1].clone()))
                        .map(|r| (*r, i))
                })
                .min();
            let Some((_, i)) = best else {
                return word;
            };
            let (a, b) = (word[i].clone(), word[i + 1].clone());
            let mut merged = Vec::with_capacity(word.len());
            let mut j = 0;
            while j < word.len() {
                if j + 1 < word.len() && word[j] == a && word[j + 1] == b {
                    merged.push(format!("{a}{b}"));
                    j += 2;
                } else {
                    merged.push(word[j].clone());
                    j += 1;
                }
            }
            word = merged;
        }
    }
}

#[derive(PartialEq, Clone, Copy)]
enum Class {
    Letter,
    Digit,
    Space,
    Other,
}

fn class(c: char) -> Class {
    if c.is_whitespace() {
        Class::Space
    } else if c.is_alphabetic() {
        Class::Letter
    } else if c.is_numeric() {
        Class::Digit
    } else {
        Class::Other
    }
}

fn pretokenize(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let mut piece = String::new();
        // One space joins the run that follows it, as in GPT-2 (" word").
        if chars[i] == ' ' && i + 1 < chars.len() && class(chars[i + 1]) != Class::Space {
            piece.push(' ');
            i += 1;
        }
        let k = class(chars[i]);
        while i < chars.len() && class(chars[i]) == k {
            piece.push(chars[i]);
            i += 1;
        }
        out.push(piece);
    }
    out
}
