//! The LLaMA-3 pre-tokenizer: splits text into the pieces that BPE then encodes one by one.
//!
//! The reference is tiktoken's `pat_str` (hf-formats §4), run by `fancy-regex`:
//! [`LLAMA3_SPLIT_PATTERN`]. Its only non-regular part is the lookahead in `\s+(?!\S)`. We run
//! the same pattern without that alternative on the linear-time `regex` crate and apply the
//! lookahead by hand, which gives identical pieces (a property test checks this against
//! `fancy-regex` on the exact pattern):
//!
//! * The alternatives are tried in order (leftmost-first), so a match reaches the last two
//!   alternatives only if nothing before them matched; in particular `\s*[\r\n]+` did not, so
//!   the whitespace run contains no `\r`/`\n`. Conversely no earlier alternative can match a
//!   run of whitespace without `\r`/`\n`. Such a match therefore comes from `\s+(?!\S)|\s+`.
//! * `\s+` is greedy, so the run is followed by a non-space or by the end of the text. At the
//!   end, `\s+(?!\S)` takes the whole run. Before a non-space it backtracks by one character
//!   (the last space then stays for the next piece, e.g. `" word"`), unless the run is a single
//!   character, in which case `\s+(?!\S)` fails and the plain `\s+` takes that one character.

use std::sync::LazyLock;

use regex::Regex;

/// The LLaMA-3 split pattern, exactly as in tiktoken's `pat_str` and the HF `Split`
/// pre-tokenizer of the LLaMA-3 tokenizer.json.
pub const LLAMA3_SPLIT_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// [`LLAMA3_SPLIT_PATTERN`] with `\s+(?!\S)|\s+` replaced by `\s+` (see the module docs).
const WITHOUT_LOOKAHEAD: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+";

static SPLITTER: LazyLock<Regex> = LazyLock::new(|| {
    // A constant pattern: failing to compile is a bug caught by every test, not an input error.
    Regex::new(WITHOUT_LOOKAHEAD).expect("the LLaMA-3 split pattern compiles")
});

/// Split `text` into LLaMA-3 pre-tokens (pieces), in order. The pieces concatenate back to
/// `text`; none is empty.
pub fn pre_tokenize(text: &str) -> PreTokens<'_> {
    PreTokens { text, position: 0 }
}

/// Iterator over the pieces of a text; see [`pre_tokenize`].
#[derive(Debug, Clone)]
pub struct PreTokens<'t> {
    text: &'t str,
    position: usize,
}

impl<'t> Iterator for PreTokens<'t> {
    type Item = &'t str;

    fn next(&mut self) -> Option<&'t str> {
        let start = self.position;
        if start >= self.text.len() {
            return None;
        }
        let end = match SPLITTER.find_at(self.text, start) {
            // Every character starts a match (letters, numbers, whitespace and everything else
            // each have an alternative), so a match never starts later than `start`; if one
            // ever did, the gap becomes a piece of its own rather than being lost.
            Some(found) if found.start() > start => found.start(),
            Some(found) => apply_lookahead(self.text, start, found.end()),
            None => self.text.len(),
        };
        self.position = end;
        self.text.get(start..end)
    }
}

/// Turn a match of `\s+` into what `\s+(?!\S)|\s+` matches (see the module docs).
fn apply_lookahead(text: &str, start: usize, end: usize) -> usize {
    let Some(piece) = text.get(start..end) else {
        return end;
    };
    let whitespace_run = piece
        .chars()
        .all(|c| c.is_whitespace() && c != '\r' && c != '\n');
    if !whitespace_run || end == text.len() {
        return end;
    }
    let mut chars = piece.chars();
    match (chars.next_back(), chars.next()) {
        // At least two characters: give the last one back.
        (Some(last), Some(_)) => end - last.len_utf8(),
        _ => end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str) -> Vec<&str> {
        pre_tokenize(text).collect()
    }

    #[test]
    fn splits_words_spaces_and_punctuation() {
        assert_eq!(pieces("Hello, world!"), ["Hello", ",", " world", "!"]);
        assert_eq!(pieces("a  b"), ["a", " ", " b"]);
        assert_eq!(pieces("x   "), ["x", "   "]);
        assert_eq!(pieces(" \t \n y"), [" \t \n", " y"]);
        assert_eq!(pieces("I'm 12345"), ["I", "'m", " ", "123", "45"]);
        assert_eq!(pieces("IT'S"), ["IT", "'S"]);
        assert_eq!(pieces(""), Vec::<&str>::new());
    }

    #[test]
    fn std_whitespace_is_regex_whitespace() {
        // `apply_lookahead` uses `char::is_whitespace` for the regex class `\s`.
        let class = Regex::new(r"^\s$").expect("valid");
        let mut buffer = [0u8; 4];
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            assert_eq!(
                c.is_whitespace(),
                class.is_match(c.encode_utf8(&mut buffer)),
                "U+{:04X}",
                u32::from(c)
            );
        }
    }
}
