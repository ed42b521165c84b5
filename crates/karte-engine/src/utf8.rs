//! Incremental UTF-8 assembly for streamed tokens.
//!
//! Byte-level BPE vocabularies (Qwen, SmolLM2) split one Japanese character (3 bytes) across two or three tokens, so a
//! token's piece is often not valid UTF-8 on its own. Emitting pieces lossily would put U+FFFD into the nurse's note;
//! instead we hold back an incomplete tail until the next token completes it. A generation cut mid-character (token
//! or time limit) ends at the last whole character: what is held back then is half a character, not text, and is
//! dropped with the stream.

/// Accumulates raw token bytes and hands out only complete UTF-8 text.
#[derive(Debug, Default)]
pub(crate) struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Appends `bytes` and returns the text that is now complete (possibly empty).
    ///
    /// Bytes that can never become valid UTF-8 (as opposed to a sequence that is merely cut short) are replaced by
    /// U+FFFD right away, so that one bad byte cannot stall the stream forever.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // SAFETY-free: `valid_up_to` guarantees this prefix is valid UTF-8.
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        // Incomplete sequence at the end: keep it for the next token.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Utf8Stream;

    #[test]
    fn japanese_split_across_tokens_is_reassembled() {
        let text = "患者は頭痛を訴える。";
        let bytes = text.as_bytes();
        // Split at every byte: the worst case for a byte-level vocabulary.
        let mut s = Utf8Stream::default();
        let mut out = String::new();
        for b in bytes {
            let piece = s.push(std::slice::from_ref(b));
            assert!(!piece.contains('\u{FFFD}'));
            out.push_str(&piece);
        }
        assert_eq!(out, text);
    }

    #[test]
    fn uneven_chunks() {
        let text = "血圧 120/80 mmHg、体温36.8℃";
        let bytes = text.as_bytes();
        let mut s = Utf8Stream::default();
        let mut out = String::new();
        for chunk in bytes.chunks(4) {
            out.push_str(&s.push(chunk));
        }
        assert_eq!(out, text);
    }

    #[test]
    fn invalid_bytes_do_not_stall() {
        let mut s = Utf8Stream::default();
        assert_eq!(s.push(b"a\xffb"), "a\u{FFFD}b");
        // Half a character is held back, never shown (a cut generation ends before it).
        assert_eq!(s.push(&"あ".as_bytes()[..2]), "");
        assert_eq!(s.push(&"あい".as_bytes()[2..]), "あい");
    }
}
