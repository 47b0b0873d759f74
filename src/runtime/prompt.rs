//! From a request to token ids: the user prompt (plain or in the model's chat format), lists of
//! token ids given by hand, and how many cache positions a generation needs. Untrusted text in,
//! a non-empty id list or a typed error out; ids are checked against the vocabulary later, by
//! the forward pass.

use super::error::Error;
use super::generate::chat_prompt;
use super::model::tokenizer_from_gguf;
use super::tokenizer::Tokenizer;
use crate::gguf::{keys, GgufFile};

/// How a user prompt is presented to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptFormat<'a> {
    /// The text as given, special-token text left as plain text.
    Plain,
    /// One user turn in the chat format (see [`chat_prompt`]), special tokens parsed.
    Chat {
        /// The file's `tokenizer.chat_template`, if any.
        chat_template: Option<&'a str>,
    },
}

impl<'a> PromptFormat<'a> {
    /// [`PromptFormat::Chat`] with the chat template of `file` when `chat`, else
    /// [`PromptFormat::Plain`].
    pub fn from_file(file: &GgufFile<'a>, chat: bool) -> Result<Self, Error> {
        Ok(if chat {
            PromptFormat::Chat {
                chat_template: file.get_str(keys::CHAT_TEMPLATE)?,
            }
        } else {
            PromptFormat::Plain
        })
    }
}

/// The ids of a user prompt in `format`, with bos as the tokenizer says. An empty result is
/// an error: generation needs at least one token to start from.
pub fn encode_user_prompt(
    tokenizer: &Tokenizer,
    text: &str,
    format: PromptFormat<'_>,
) -> Result<Vec<u32>, Error> {
    let ids = match format {
        PromptFormat::Plain => tokenizer.encode_prompt(text, false),
        PromptFormat::Chat { chat_template } => {
            tokenizer.encode_prompt(&chat_prompt(chat_template, text), true)
        }
    };
    if ids.is_empty() {
        return Err(Error::Invalid("the prompt encodes to no tokens".into()));
    }
    Ok(ids)
}

/// Parses comma-separated token ids (`"128000, 791,4062"`; blanks around an id are ignored).
/// The error names the first item that is not a `u32`.
pub fn parse_token_ids(list: &str) -> Result<Vec<u32>, Error> {
    list.split(',')
        .map(|item| {
            item.trim()
                .parse::<u32>()
                .map_err(|source| Error::BadTokenId {
                    text: item.to_string(),
                    source,
                })
        })
        .collect()
}

/// Tokens to evaluate, as a request gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenInput<'a> {
    /// Comma-separated ids (see [`parse_token_ids`]).
    Ids(&'a str),
    /// Text, encoded by the file's tokenizer with bos as the file says and special-token
    /// text left as plain text.
    Text(&'a str),
}

/// The ids of `input`; the tokenizer of `file` is read only for [`TokenInput::Text`], so ids
/// work on files without tokenizer metadata. An empty result is an error.
pub fn evaluation_ids(file: &GgufFile<'_>, input: TokenInput<'_>) -> Result<Vec<u32>, Error> {
    let ids = match input {
        TokenInput::Ids(list) => parse_token_ids(list)?,
        TokenInput::Text(text) => tokenizer_from_gguf(file)?.encode_prompt(text, false),
    };
    if ids.is_empty() {
        return Err(Error::Invalid("no tokens to evaluate".into()));
    }
    Ok(ids)
}

/// The cache a generation needs and how many tokens it can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerationBudget {
    /// KV cache positions to allocate.
    pub capacity: usize,
    /// Tokens to generate: the request, cut so that prompt and output fit the capacity.
    pub new_tokens: usize,
}

impl GenerationBudget {
    /// The budget for `prompt_tokens` of prompt and `requested` new tokens on a model trained
    /// for `context_length` positions. The cache holds prompt and output but no more than the
    /// context length, except that a prompt longer than the context still gets one position
    /// to generate into (the model may degrade there, but the request is honoured as far as
    /// it can be).
    pub fn new(prompt_tokens: usize, requested: usize, context_length: usize) -> Self {
        let capacity = prompt_tokens
            .saturating_add(requested)
            .min(context_length.max(prompt_tokens.saturating_add(1)));
        Self {
            capacity,
            new_tokens: requested.min(capacity.saturating_sub(prompt_tokens)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::tokenizer::{byte_level, GgufVocab};

    /// 256 byte tokens, then `<|begin_of_text|>` (256, bos) and `<|eot_id|>` (257).
    fn tokenizer(add_bos: bool) -> Tokenizer {
        let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_level::encode(&[b])).collect();
        tokens.extend(["<|begin_of_text|>", "<|eot_id|>"].map(String::from));
        let mut token_types = vec![1; 256];
        token_types.extend([3, 3]);
        Tokenizer::from_gguf_vocab(&GgufVocab {
            tokens,
            token_types,
            merges: Vec::new(),
            bos_id: Some(256),
            eos_id: Some(257),
            eot_id: None,
            add_bos,
        })
        .expect("valid vocabulary")
    }

    fn bytes(text: &str) -> Vec<u32> {
        text.bytes().map(u32::from).collect()
    }

    #[test]
    fn plain_prompt_is_encoded_as_text_with_bos() {
        let ids = encode_user_prompt(&tokenizer(true), "Hi<|eot_id|>", PromptFormat::Plain)
            .expect("non-empty");
        let mut expected = vec![256];
        expected.extend(bytes("Hi<|eot_id|>"));
        assert_eq!(ids, expected);
    }

    #[test]
    fn chat_prompt_parses_special_tokens() {
        let format = PromptFormat::Chat {
            chat_template: None,
        };
        let ids = encode_user_prompt(&tokenizer(false), "Hi", format).expect("non-empty");
        let mut expected = bytes("User: Hi");
        expected.push(257);
        expected.extend(bytes("Assistant:"));
        assert_eq!(ids, expected);
    }

    #[test]
    fn empty_prompt_without_bos_is_an_error() {
        let err = encode_user_prompt(&tokenizer(false), "", PromptFormat::Plain).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err:?}");
        assert_eq!(err.to_string(), "the prompt encodes to no tokens");
        assert_eq!(
            encode_user_prompt(&tokenizer(true), "", PromptFormat::Plain).expect("bos"),
            [256]
        );
    }

    #[test]
    fn token_ids_parse_with_blanks_and_name_the_bad_item() {
        assert_eq!(
            parse_token_ids("509, 364 ,220").expect("ids"),
            [509, 364, 220]
        );
        assert_eq!(parse_token_ids("4294967295").expect("id"), [u32::MAX]);
        for (list, bad) in [
            ("1,x2", "x2"),
            ("1,,2", ""),
            ("", ""),
            ("1, -3", " -3"),
            ("4294967296", "4294967296"),
        ] {
            match parse_token_ids(list) {
                Err(Error::BadTokenId { text, .. }) => assert_eq!(text, bad, "{list:?}"),
                other => panic!("{list:?}: {other:?}"),
            }
        }
        let err = parse_token_ids("7,abc").unwrap_err();
        assert_eq!(err.to_string(), "token id \"abc\"");
        let reason = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(reason.as_deref(), Some("invalid digit found in string"));
    }

    #[test]
    fn generation_budget_fits_the_context() {
        let budget = |p, n, ctx| {
            let b = GenerationBudget::new(p, n, ctx);
            (b.capacity, b.new_tokens)
        };
        assert_eq!(budget(5, 10, 128), (15, 10));
        assert_eq!(budget(5, 200, 128), (128, 123));
        assert_eq!(budget(5, 0, 128), (5, 0));
        // A prompt as long as the context, or longer, still gets one position.
        assert_eq!(budget(128, 10, 128), (129, 1));
        assert_eq!(budget(300, 10, 128), (301, 1));
        assert_eq!(budget(5, usize::MAX, 128), (128, 123));
    }
}
