//! The GPT-2 "byte-to-unicode" alphabet used by byte-level BPE vocabularies.
//!
//! Every byte maps to one printable character: the 188 printable Latin-1 bytes (`!`..`~`,
//! `¡`..`¬`, `®`..`ÿ`) map to themselves, the other 68 map in byte order to U+0100, U+0101, …
//! (so a space is `Ġ` = U+0120 and a newline `Ċ` = U+010A). Vocabulary strings in GGUF files
//! and in HF tokenizer.json files are spelled in this alphabet.

/// Whether a byte is one of the 188 that map to the character of the same code point.
const fn maps_to_itself(byte: u8) -> bool {
    matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// The character for each byte.
const BYTE_TO_CHAR: [char; 256] = {
    let mut table = ['\0'; 256];
    let mut next_extra = 0u32;
    let mut byte = 0usize;
    while byte < 256 {
        let code = if maps_to_itself(byte as u8) {
            byte as u32
        } else {
            let code = 256 + next_extra;
            next_extra += 1;
            code
        };
        table[byte] = match char::from_u32(code) {
            Some(c) => c,
            None => panic!("byte-level code points are all below U+0144"),
        };
        byte += 1;
    }
    table
};

/// The character that stands for `byte`.
pub fn byte_to_char(byte: u8) -> char {
    BYTE_TO_CHAR[usize::from(byte)]
}

/// Number of code points the alphabet spans: U+0000..U+0143.
const ALPHABET_SPAN: usize = 256 + 68;

/// The inverse of [`BYTE_TO_CHAR`]: code point -> byte, `None` for code points outside it.
const CHAR_TO_BYTE: [Option<u8>; ALPHABET_SPAN] = {
    let mut table = [None; ALPHABET_SPAN];
    let mut byte = 0usize;
    while byte < 256 {
        table[BYTE_TO_CHAR[byte] as usize] = Some(byte as u8);
        byte += 1;
    }
    table
};

/// The byte a byte-level character stands for, or `None` if `c` is not in the alphabet.
pub fn char_to_byte(c: char) -> Option<u8> {
    CHAR_TO_BYTE.get(c as usize).copied().flatten()
}

/// Spell `bytes` in the byte-level alphabet.
pub fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| byte_to_char(b)).collect()
}

/// The bytes a byte-level string stands for, or `None` if a character is outside the alphabet.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    text.chars().map(char_to_byte).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_characters() {
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'a'), 'a');
        assert_eq!(byte_to_char(0), 'Ā');
        assert_eq!(byte_to_char(0xAD), '\u{0143}');
        assert_eq!(byte_to_char(0xFF), 'ÿ');
    }

    #[test]
    fn round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let spelled = encode(&all);
        assert_eq!(spelled.chars().count(), 256);
        assert_eq!(decode(&spelled), Some(all));
    }

    #[test]
    fn rejects_characters_outside_the_alphabet() {
        assert_eq!(char_to_byte(' '), None);
        assert_eq!(char_to_byte('\u{00AD}'), None);
        assert_eq!(char_to_byte('\u{0144}'), None);
        assert_eq!(decode("a b"), None);
    }
}
