//! The task's tokenizer: a word-level vocabulary trained on the task's corpus with the `tokenizers`
//! crate, saved as a Hugging Face `tokenizer.json`, and the prompt/response encoding conventions.
//!
//! `arith` cuts text into characters (digits, `+`, `=`: a tiny model learns sums best one digit at
//! a time); `style` into space-separated words. Either way the vocabulary is the special tokens
//! `<pad>` (0), `<eos>` (1), `<unk>` (2) followed by the corpus's tokens by decreasing count. A
//! response ends with `<eos>`, the task's end marker.

use std::path::{Path, PathBuf};

use models::tokenizer::Tokenizer;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::models::wordlevel::{WordLevel, WordLevelTrainer};
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, SplitDelimiterBehavior,
    TokenizerImpl,
};

use crate::tasks::{Granularity, Task};
use crate::{Error, Result};

pub const PAD: &str = "<pad>";
pub const EOS: &str = "<eos>";
pub const UNK: &str = "<unk>";
/// The file name Hugging Face gives a tokenizer.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

type WordLevelTokenizer =
    TokenizerImpl<WordLevel, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>;

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

/// Trains a vocabulary on the task's training prompts and SFT corpus, writes it to
/// `dir/tokenizer.json` (creating `dir`), and returns the loaded tokenizer.
pub fn train_tokenizer(task: &dyn Task, dir: &Path) -> Result<TaskTokenizer> {
    let mut tokenizer = WordLevelTokenizer::new(WordLevel::builder().unk_token(UNK.into()).build().map_err(tok_err)?);
    match task.granularity() {
        Granularity::Characters => {
            let each_char = Split::new(SplitPattern::Regex(".".into()), SplitDelimiterBehavior::Isolated, false)
                .map_err(tok_err)?;
            tokenizer.with_pre_tokenizer(Some(each_char));
            tokenizer.with_decoder(Some(Fuse::new()));
        }
        // Without a decoder, tokens are joined with single spaces, which is how style text is
        // written.
        Granularity::Words => {
            tokenizer.with_pre_tokenizer(Some(WhitespaceSplit));
        }
    }
    let mut trainer = WordLevelTrainer::builder()
        .special_tokens([PAD, EOS, UNK].iter().map(|t| AddedToken::from(*t, true)).collect())
        .show_progress(false)
        .build()
        .map_err(tok_err)?;
    let texts = task
        .train_prompts()
        .iter()
        .map(String::as_str)
        .chain(task.sft_corpus().iter().flat_map(|e| [e.prompt.as_str(), e.response.as_str()]));
    tokenizer.train(&mut trainer, texts).map_err(tok_err)?;
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
    let path = dir.join(TOKENIZER_FILE);
    tokenizer.save(&path, true).map_err(tok_err)?;
    TaskTokenizer::load(&path)
}

/// A decoded response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub text: String,
    /// Whether the response ended with the end marker (rather than running out of room).
    pub finished: bool,
}

/// A task tokenizer with its special ids.
pub struct TaskTokenizer {
    tokenizer: Tokenizer,
    path: PathBuf,
    eos: u32,
    pad: u32,
    unk: Option<u32>,
}

impl TaskTokenizer {
    /// Loads a `tokenizer.json` that has `<eos>` and `<pad>` tokens.
    pub fn load(path: &Path) -> Result<Self> {
        let tokenizer = Tokenizer::from_file(path)?;
        let special = |name: &str| {
            tokenizer
                .token_to_id(name)
                .ok_or_else(|| Error::Tokenizer(format!("{}: no `{name}` token", path.display())))
        };
        let (eos, pad) = (special(EOS)?, special(PAD)?);
        let unk = tokenizer.token_to_id(UNK);
        Ok(TaskTokenizer { tokenizer, path: path.to_path_buf(), eos, pad, unk })
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn eos_id(&self) -> u32 {
        self.eos
    }

    pub fn pad_id(&self) -> u32 {
        self.pad
    }

    pub fn vocab_size(&self) -> usize {
        self.tokenizer.vocab_size()
    }

    /// Token ids of `text`; text outside the vocabulary is an error naming it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let ids = self.tokenizer.encode(text)?;
        if self.unk.is_some_and(|unk| ids.contains(&unk)) {
            return Err(Error::Tokenizer(format!(
                "{text:?} has text outside the vocabulary of {}",
                self.path.display()
            )));
        }
        Ok(ids)
    }

    /// Token ids of a response followed by the end marker.
    pub fn encode_response(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = self.encode(text)?;
        ids.push(self.eos);
        Ok(ids)
    }

    /// The text of generated ids up to the first end marker, and whether there was one.
    pub fn decode_response(&self, ids: &[u32]) -> Result<Response> {
        let end = ids.iter().position(|&t| t == self.eos);
        let text = self.tokenizer.decode(&ids[..end.unwrap_or(ids.len())])?;
        Ok(Response { text, finished: end.is_some() })
    }
}
