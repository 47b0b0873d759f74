//! Byte-level BPE tokenizer with the LLaMA-3 pre-tokenizer and special tokens.
//!
//! Invariant: a [`Tokenizer`] is only built from a vocabulary that was checked whole (every
//! type known, every normal token spelled in the byte-level alphabet, every merge made of
//! tokens, all 256 single bytes present, special ids in range), so encoding is infallible and
//! decoding fails only on ids outside the vocabulary.
//!
//! Encoding, as tiktoken and HF `tokenizers` do for LLaMA-3 (hf-formats §4):
//! 1. split out special tokens: control tokens when asked (`parse_special`), user-defined
//!    tokens always (as llama.cpp does); at each position the longest special text wins;
//! 2. split the rest with [`LLAMA3_SPLIT_PATTERN`] ([`pre_tokenize`]);
//! 3. a piece that is itself a token is emitted as is (`ignore_merges`); otherwise its bytes are
//!    merged pairwise, lowest merge rank first, leftmost on ties.
//!
//! The primary constructor, [`Tokenizer::from_gguf_vocab`], takes what a GGUF file stores under
//! `tokenizer.ggml.*`; [`Tokenizer::from_tokenizer_json`] reads an HF tokenizer.json of the
//! same structure.

mod bpe;
pub mod byte_level;
mod hf_json;
mod pre_tokenize;

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use bpe::{FxHasher, Merge, MergeTable, Scratch};

pub use pre_tokenize::{pre_tokenize, PreTokens, LLAMA3_SPLIT_PATTERN};

/// Tokenizer errors: a vocabulary that cannot be used, or an id outside it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `token_types` is neither empty nor one entry per token.
    #[error("{types} token types for {tokens} tokens")]
    TokenTypeCount {
        /// Number of tokens.
        tokens: usize,
        /// Number of token types.
        types: usize,
    },
    /// A token type outside the GGUF `llama_token_type` values 0..=6.
    #[error("token {id}: unknown token type {value}")]
    UnknownTokenType {
        /// The token's id.
        id: u32,
        /// The stored type value.
        value: i32,
    },
    /// More tokens than `u32` ids can address.
    #[error("{count} tokens do not fit 32-bit ids")]
    TooManyTokens {
        /// Number of tokens.
        count: usize,
    },
    /// A normal token whose text has a character outside the GPT-2 byte-level alphabet.
    #[error("token {id} ({text:?}): normal token not spelled in the byte-level alphabet")]
    NotByteLevel {
        /// The token's id.
        id: u32,
        /// The token's text.
        text: String,
    },
    /// No normal token for a single byte; byte-level BPE needs all 256.
    #[error("no token for byte 0x{byte:02x}; byte-level BPE needs all 256 single bytes")]
    MissingByteToken {
        /// The byte.
        byte: u8,
    },
    /// A merge that is not two token texts separated by one space.
    #[error("merge {index} ({merge:?}): expected two tokens separated by one space")]
    MalformedMerge {
        /// Position in the merge list.
        index: usize,
        /// The merge as stored.
        merge: String,
    },
    /// A merge whose left part, right part or joined text is not a normal token.
    #[error("merge {index} ({left:?} {right:?}): {missing:?} is not a normal token")]
    MergeNotInVocab {
        /// Position in the merge list.
        index: usize,
        /// Left part.
        left: String,
        /// Right part.
        right: String,
        /// The text that was not found.
        missing: String,
    },
    /// A bos/eos/eot id outside the vocabulary.
    #[error("{role} token id {id} is outside the vocabulary of {vocab_size} tokens")]
    SpecialIdOutOfRange {
        /// `"bos"`, `"eos"` or `"eot"`.
        role: &'static str,
        /// The id.
        id: u32,
        /// Number of tokens.
        vocab_size: usize,
    },
    /// Decoding met an id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab_size} tokens")]
    UnknownId {
        /// The id.
        id: u32,
        /// Number of tokens.
        vocab_size: usize,
    },
    /// tokenizer.json is not valid JSON or lacks a required field.
    #[error("tokenizer.json: {detail}")]
    InvalidJson {
        /// What is wrong, naming the field.
        detail: String,
    },
    /// tokenizer.json uses a feature this tokenizer does not implement.
    #[error("tokenizer.json: unsupported {feature}")]
    UnsupportedJson {
        /// The feature, naming the field.
        feature: String,
    },
}

/// Token types as stored in GGUF `tokenizer.ggml.token_type` (llama.cpp `llama_token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// 0: no type given; treated like [`TokenType::Normal`].
    Undefined,
    /// 1: an ordinary BPE token, spelled in the byte-level alphabet.
    Normal,
    /// 2: the unknown token; decoded as its text, never produced by encoding.
    Unknown,
    /// 3: a control (special) token such as `<|eot_id|>`; text is raw.
    Control,
    /// 4: a user-defined added token; always split out when encoding; text is raw.
    UserDefined,
    /// 5: an unused slot; decoded as its text, never produced by encoding.
    Unused,
    /// 6: a byte token (`<0xAB>`), as SentencePiece vocabularies have.
    Byte,
}

impl TokenType {
    /// The type for a GGUF token-type value, or `None` outside 0..=6.
    pub fn from_gguf(value: i32) -> Option<Self> {
        Some(match value {
            0 => Self::Undefined,
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => return None,
        })
    }

    /// The GGUF token-type value.
    pub fn to_gguf(self) -> i32 {
        match self {
            Self::Undefined => 0,
            Self::Normal => 1,
            Self::Unknown => 2,
            Self::Control => 3,
            Self::UserDefined => 4,
            Self::Unused => 5,
            Self::Byte => 6,
        }
    }

    /// Whether BPE may produce this token (its text is a byte-level spelling).
    fn is_bpe(self) -> bool {
        matches!(self, Self::Normal | Self::Undefined)
    }
}

/// The vocabulary data a GGUF file holds (`tokenizer.ggml.*` keys), in the form
/// [`Tokenizer::from_gguf_vocab`] takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GgufVocab {
    /// `tokenizer.ggml.tokens`: token texts by id. Normal tokens are spelled in the GPT-2
    /// byte-level alphabet (`Ġ` for a space); control and user-defined tokens are raw text.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type`: one [`TokenType`] value per token, or empty for "all
    /// normal" (the key is optional in GGUF).
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.merges`: `"left right"`, highest priority first.
    pub merges: Vec<String>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_id: Option<u32>,
    /// `tokenizer.ggml.eot_token_id`.
    pub eot_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`: whether a prompt starts with bos.
    pub add_bos: bool,
}

#[derive(Debug, Clone)]
struct TokenEntry {
    /// The text as stored (byte-level spelling for BPE tokens).
    text: String,
    kind: TokenType,
    /// What the token decodes to.
    bytes: Box<[u8]>,
}

/// A special (control, user-defined or unknown) token matched in raw text.
#[derive(Debug, Clone)]
struct SpecialText {
    text: Box<[u8]>,
    id: u32,
    /// Control and unknown tokens are only matched with `parse_special`.
    needs_parse_special: bool,
}

/// Byte-level BPE tokenizer; see the module docs for the algorithm.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    entries: Vec<TokenEntry>,
    /// Bytes of each BPE token -> id (the lowest id if two tokens share a spelling).
    bpe_ids: HashMap<Box<[u8]>, u32, BuildHasherDefault<FxHasher>>,
    byte_tokens: [u32; 256],
    merges: MergeTable,
    /// Specials, longest text first.
    specials: Vec<SpecialText>,
    /// `specials_by_first_byte[b]`: indices into `specials` of texts starting with `b`.
    specials_by_first_byte: Vec<Vec<usize>>,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    eot_id: Option<u32>,
    add_bos: bool,
}

/// One merge as a pair of token texts, before validation.
type MergePair<'a> = (&'a str, &'a str);

impl Tokenizer {
    /// Build a tokenizer from GGUF vocabulary data (the runtime's constructor).
    pub fn from_gguf_vocab(vocab: &GgufVocab) -> Result<Self, Error> {
        let types = if vocab.token_types.is_empty() {
            vec![TokenType::Normal; vocab.tokens.len()]
        } else if vocab.token_types.len() == vocab.tokens.len() {
            vocab
                .token_types
                .iter()
                .zip(0u32..)
                .map(|(&value, id)| {
                    TokenType::from_gguf(value).ok_or(Error::UnknownTokenType { id, value })
                })
                .collect::<Result<Vec<_>, _>>()?
        } else {
            return Err(Error::TokenTypeCount {
                tokens: vocab.tokens.len(),
                types: vocab.token_types.len(),
            });
        };
        let merges = vocab
            .merges
            .iter()
            .enumerate()
            .map(|(index, merge)| match merge.split_once(' ') {
                Some((left, right)) if !left.is_empty() && !right.is_empty() => {
                    if right.contains(' ') {
                        Err(Error::MalformedMerge {
                            index,
                            merge: merge.clone(),
                        })
                    } else {
                        Ok((left, right))
                    }
                }
                _ => Err(Error::MalformedMerge {
                    index,
                    merge: merge.clone(),
                }),
            })
            .collect::<Result<Vec<MergePair<'_>>, _>>()?;
        let tokens = vocab.tokens.iter().map(String::as_str);
        Self::build(
            tokens.zip(types),
            &merges,
            Roles {
                bos_id: vocab.bos_id,
                eos_id: vocab.eos_id,
                eot_id: vocab.eot_id,
                add_bos: vocab.add_bos,
            },
        )
    }

    /// Build a tokenizer from an HF tokenizer.json of the LLaMA-3 structure (hf-formats §4):
    /// BPE model with `ignore_merges`, merges as `"a b"` or `["a", "b"]`, `added_tokens`
    /// (special ones become control tokens, others user-defined), the LLaMA-3 `Split`
    /// pre-tokenizer followed by `ByteLevel`, no normalizer. bos and `add_bos` come from a
    /// `TemplateProcessing` post-processor that starts with a special token; eos and eot are
    /// `<|end_of_text|>` and `<|eot_id|>` when present.
    pub fn from_tokenizer_json(json: &[u8]) -> Result<Self, Error> {
        hf_json::read(json)
    }

    fn build<'a>(
        tokens: impl ExactSizeIterator<Item = (&'a str, TokenType)>,
        merges: &[MergePair<'_>],
        roles: Roles,
    ) -> Result<Self, Error> {
        let count = tokens.len();
        if u32::try_from(count).is_err() {
            return Err(Error::TooManyTokens { count });
        }
        let mut entries = Vec::with_capacity(count);
        let mut bpe_ids: HashMap<Box<[u8]>, u32, BuildHasherDefault<FxHasher>> =
            HashMap::with_capacity_and_hasher(count, Default::default());
        let mut ids_by_text: HashMap<&str, u32> = HashMap::with_capacity(count);
        let mut specials = Vec::new();
        for ((text, kind), id) in tokens.zip(0u32..) {
            let bytes: Box<[u8]> = match kind {
                TokenType::Normal | TokenType::Undefined => byte_level::decode(text)
                    .ok_or_else(|| Error::NotByteLevel {
                        id,
                        text: text.to_owned(),
                    })?
                    .into(),
                TokenType::Byte => byte_token_value(text)
                    .map(|byte| Box::from([byte]))
                    .unwrap_or_else(|| text.as_bytes().into()),
                TokenType::Control
                | TokenType::UserDefined
                | TokenType::Unknown
                | TokenType::Unused => text.as_bytes().into(),
            };
            if kind.is_bpe() {
                bpe_ids.entry(bytes.clone()).or_insert(id);
                ids_by_text.entry(text).or_insert(id);
            }
            if matches!(
                kind,
                TokenType::Control | TokenType::UserDefined | TokenType::Unknown
            ) && !text.is_empty()
            {
                specials.push(SpecialText {
                    text: text.as_bytes().into(),
                    id,
                    needs_parse_special: kind != TokenType::UserDefined,
                });
            }
            entries.push(TokenEntry {
                text: text.to_owned(),
                kind,
                bytes,
            });
        }

        let mut byte_tokens = [0u32; 256];
        for (byte, slot) in (0..=255u8).zip(byte_tokens.iter_mut()) {
            *slot = *bpe_ids
                .get(&[byte][..])
                .ok_or(Error::MissingByteToken { byte })?;
        }

        let mut merge_table =
            MergeTable::with_capacity_and_hasher(merges.len(), Default::default());
        let mut joined_text = String::new();
        for ((index, &(left, right)), rank) in merges.iter().enumerate().zip(0u32..) {
            let missing = |text: &str| Error::MergeNotInVocab {
                index,
                left: left.to_owned(),
                right: right.to_owned(),
                missing: text.to_owned(),
            };
            let left_id = *ids_by_text.get(left).ok_or_else(|| missing(left))?;
            let right_id = *ids_by_text.get(right).ok_or_else(|| missing(right))?;
            joined_text.clear();
            joined_text.push_str(left);
            joined_text.push_str(right);
            let joined = *ids_by_text
                .get(joined_text.as_str())
                .ok_or_else(|| missing(&joined_text))?;
            // On a repeated pair the first (highest-priority) merge stands, as in llama.cpp.
            merge_table
                .entry(bpe::pair_key(left_id, right_id))
                .or_insert(Merge { rank, joined });
        }

        for (role, id) in [
            ("bos", roles.bos_id),
            ("eos", roles.eos_id),
            ("eot", roles.eot_id),
        ] {
            if let Some(id) = id {
                if id as usize >= count {
                    return Err(Error::SpecialIdOutOfRange {
                        role,
                        id,
                        vocab_size: count,
                    });
                }
            }
        }

        // Longest first, so the first candidate that matches at a position is the longest.
        specials.sort_by(|a, b| b.text.len().cmp(&a.text.len()).then(a.id.cmp(&b.id)));
        let mut specials_by_first_byte = vec![Vec::new(); 256];
        for (index, special) in specials.iter().enumerate() {
            if let Some(&first) = special.text.first() {
                specials_by_first_byte[usize::from(first)].push(index);
            }
        }

        Ok(Self {
            entries,
            bpe_ids,
            byte_tokens,
            merges: merge_table,
            specials,
            specials_by_first_byte,
            bos_id: roles.bos_id,
            eos_id: roles.eos_id,
            eot_id: roles.eot_id,
            add_bos: roles.add_bos,
        })
    }

    /// Number of tokens (the largest id + 1).
    pub fn vocab_size(&self) -> usize {
        self.entries.len()
    }

    /// The beginning-of-text token, if the vocabulary names one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// The end-of-text token, if the vocabulary names one.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// The end-of-turn token (`<|eot_id|>` for LLaMA-3), if the vocabulary names one.
    pub fn eot_id(&self) -> Option<u32> {
        self.eot_id
    }

    /// Whether a prompt starts with bos (see [`Tokenizer::encode_prompt`]).
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether `id` ends generation: it is the eos or the eot token.
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        Some(id) == self.eos_id || Some(id) == self.eot_id
    }

    /// The token's text as stored (byte-level spelling for normal tokens).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.entry(id).map(|entry| entry.text.as_str())
    }

    /// The token's type.
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.entry(id).map(|entry| entry.kind)
    }

    /// The bytes the token decodes to (a control token's text for control tokens).
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.entry(id).map(|entry| &*entry.bytes)
    }

    /// The token whose decoded text is exactly `text`: a special token with that text, else a
    /// BPE token with those bytes.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.specials
            .iter()
            .find(|special| &*special.text == text.as_bytes())
            .map(|special| special.id)
            .or_else(|| self.bpe_ids.get(text.as_bytes()).copied())
    }

    fn entry(&self, id: u32) -> Option<&TokenEntry> {
        self.entries.get(usize::try_from(id).ok()?)
    }

    /// Encode `text` without adding bos. With `parse_special`, control-token texts such as
    /// `<|eot_id|>` become their ids; without it they are encoded as ordinary text (the
    /// default of microsoft/BitNet's tokenizer). User-defined tokens are always recognised.
    pub fn encode(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        self.encode_into(text, parse_special, &mut out);
        out
    }

    /// Encode a prompt: bos first if [`Tokenizer::add_bos`] and a bos token exists, then
    /// [`Tokenizer::encode`].
    pub fn encode_prompt(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if let (true, Some(bos)) = (self.add_bos, self.bos_id) {
            out.push(bos);
        }
        self.encode_into(text, parse_special, &mut out);
        out
    }

    fn encode_into(&self, text: &str, parse_special: bool, out: &mut Vec<u32>) {
        let mut scratch = Scratch::default();
        let bytes = text.as_bytes();
        let mut plain_start = 0;
        let mut position = 0;
        while position < bytes.len() {
            match self.special_at(bytes, position, parse_special) {
                Some(special) => {
                    // Specials start and end on char boundaries: their texts are whole strs.
                    self.encode_plain(&text[plain_start..position], &mut scratch, out);
                    out.push(special.id);
                    position += special.text.len();
                    plain_start = position;
                }
                None => position += 1,
            }
        }
        self.encode_plain(&text[plain_start..], &mut scratch, out);
    }

    /// The longest special token starting at `position`, if any may be matched.
    fn special_at(
        &self,
        bytes: &[u8],
        position: usize,
        parse_special: bool,
    ) -> Option<&SpecialText> {
        let first = *bytes.get(position)?;
        let rest = &bytes[position..];
        self.specials_by_first_byte[usize::from(first)]
            .iter()
            .map(|&index| &self.specials[index])
            .find(|special| {
                (parse_special || !special.needs_parse_special) && rest.starts_with(&special.text)
            })
    }

    fn encode_plain(&self, text: &str, scratch: &mut Scratch, out: &mut Vec<u32>) {
        for piece in pre_tokenize(text) {
            let piece = piece.as_bytes();
            match self.bpe_ids.get(piece) {
                Some(&id) => out.push(id),
                None => bpe::merge_piece(piece, &self.byte_tokens, &self.merges, scratch, out),
            }
        }
    }

    /// The bytes `ids` stand for, concatenated. Control and unknown tokens give their text
    /// unless `skip_special`.
    pub fn decode_bytes(&self, ids: &[u32], skip_special: bool) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            out.extend_from_slice(self.piece(id, skip_special)?);
        }
        Ok(out)
    }

    /// [`Tokenizer::decode_bytes`] as text; invalid UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, Error> {
        let bytes = self.decode_bytes(ids, skip_special)?;
        Ok(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(invalid) => String::from_utf8_lossy(invalid.as_bytes()).into_owned(),
        })
    }

    fn piece(&self, id: u32, skip_special: bool) -> Result<&[u8], Error> {
        let entry = self.entry(id).ok_or(Error::UnknownId {
            id,
            vocab_size: self.entries.len(),
        })?;
        let special = matches!(entry.kind, TokenType::Control | TokenType::Unknown);
        Ok(if skip_special && special {
            &[]
        } else {
            &entry.bytes
        })
    }
}

/// bos/eos/eot ids and the add-bos flag.
#[derive(Debug, Clone, Copy, Default)]
struct Roles {
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    eot_id: Option<u32>,
    add_bos: bool,
}

/// The byte of a SentencePiece byte token `<0xAB>`.
fn byte_token_value(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// Turns generated token ids into text as they arrive, holding back the bytes of a UTF-8
/// character that a later token completes.
#[derive(Debug, Clone, Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
    skip_special: bool,
}

impl StreamDecoder {
    /// A decoder; `skip_special` as in [`Tokenizer::decode_bytes`].
    pub fn new(skip_special: bool) -> Self {
        Self {
            pending: Vec::new(),
            skip_special,
        }
    }

    /// Add one token; returns the text completed by it (possibly empty). Bytes that can never
    /// become valid UTF-8 come out as U+FFFD.
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<String, Error> {
        self.pending
            .extend_from_slice(tokenizer.piece(id, self.skip_special)?);
        let mut text = String::new();
        let mut consumed = 0;
        loop {
            let rest = &self.pending[consumed..];
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    text.push_str(valid);
                    consumed = self.pending.len();
                    break;
                }
                Err(error) => {
                    let valid_len = error.valid_up_to();
                    text.push_str(&String::from_utf8_lossy(&rest[..valid_len]));
                    match error.error_len() {
                        Some(invalid_len) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            consumed += valid_len + invalid_len;
                        }
                        // An incomplete character at the end: wait for more bytes.
                        None => {
                            consumed += valid_len;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..consumed);
        Ok(text)
    }

    /// Text for the bytes still held back (an incomplete character becomes U+FFFD); resets.
    pub fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vocabulary of all 256 bytes, "ab", "abc", one control and one user-defined token.
    fn small_vocab() -> GgufVocab {
        let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_level::encode(&[b])).collect();
        tokens.extend(["ab", "abc", "<|eot|>", "<u>"].map(String::from));
        let mut token_types = vec![1; 258];
        token_types.extend([3, 4]);
        GgufVocab {
            tokens,
            token_types,
            merges: vec!["a b".into(), "ab c".into()],
            bos_id: None,
            eos_id: Some(258),
            eot_id: None,
            add_bos: false,
        }
    }

    #[test]
    fn encodes_and_decodes_a_small_vocab() {
        let tokenizer = Tokenizer::from_gguf_vocab(&small_vocab()).expect("valid");
        let a = u32::from(b'a');
        assert_eq!(tokenizer.encode("abcab", false), [257, 256]);
        assert_eq!(tokenizer.encode("a<|eot|>", true), [a, 258]);
        assert_eq!(tokenizer.encode("x<u>", false), [u32::from(b'x'), 259]);
        let as_text = tokenizer.encode("<|eot|>", false);
        assert!(!as_text.contains(&258));
        assert_eq!(tokenizer.decode(&as_text, false).expect("ids"), "<|eot|>");
        assert_eq!(tokenizer.decode(&[256, 258], true).expect("ids"), "ab");
        assert_eq!(
            tokenizer.decode(&[256, 258], false).expect("ids"),
            "ab<|eot|>"
        );
        assert_eq!(
            tokenizer.decode(&[999], false),
            Err(Error::UnknownId {
                id: 999,
                vocab_size: 260
            })
        );
        assert!(tokenizer.is_end_of_generation(258));
        assert_eq!(tokenizer.token_id("<|eot|>"), Some(258));
        assert_eq!(tokenizer.token_id("abc"), Some(257));
    }

    #[test]
    fn rejects_bad_vocabularies() {
        let mut vocab = small_vocab();
        vocab.merges.push("a".into());
        assert!(matches!(
            Tokenizer::from_gguf_vocab(&vocab),
            Err(Error::MalformedMerge { index: 2, .. })
        ));
        let mut vocab = small_vocab();
        vocab.merges.push("ab ab".into());
        assert!(matches!(
            Tokenizer::from_gguf_vocab(&vocab),
            Err(Error::MergeNotInVocab { index: 2, .. })
        ));
        let mut vocab = small_vocab();
        vocab.token_types[5] = 9;
        assert_eq!(
            Tokenizer::from_gguf_vocab(&vocab).err(),
            Some(Error::UnknownTokenType { id: 5, value: 9 })
        );
        let mut vocab = small_vocab();
        vocab.tokens[32] = " ".into();
        assert!(matches!(
            Tokenizer::from_gguf_vocab(&vocab),
            Err(Error::NotByteLevel { id: 32, .. })
        ));
        let mut vocab = small_vocab();
        vocab.bos_id = Some(260);
        assert!(matches!(
            Tokenizer::from_gguf_vocab(&vocab),
            Err(Error::SpecialIdOutOfRange { role: "bos", .. })
        ));
        let mut vocab = small_vocab();
        vocab.token_types.pop();
        assert!(matches!(
            Tokenizer::from_gguf_vocab(&vocab),
            Err(Error::TokenTypeCount { .. })
        ));
    }

    #[test]
    fn stream_decoder_holds_back_split_characters() {
        let tokenizer = Tokenizer::from_gguf_vocab(&small_vocab()).expect("valid");
        let mut stream = StreamDecoder::new(false);
        // "é" = C3 A9, sent one byte token at a time.
        assert_eq!(stream.push(&tokenizer, 0xC3).expect("id"), "");
        assert_eq!(stream.push(&tokenizer, 0xA9).expect("id"), "é");
        assert_eq!(stream.push(&tokenizer, 0xFF).expect("id"), "\u{FFFD}");
        assert_eq!(stream.push(&tokenizer, 0xE2).expect("id"), "");
        assert_eq!(stream.finish(), "\u{FFFD}");
    }
}
