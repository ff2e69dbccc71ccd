/// The algorithms crate's one error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting out of its domain (a flip fraction above 1, a zero batch size, ...).
    #[error("{0}")]
    Config(String),
    /// Training or tokenizing the task's vocabulary failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(transparent)]
    Model(#[from] models::ModelError),
    #[error(transparent)]
    Runtime(#[from] runtime::Error),
}

pub type Result<T> = std::result::Result<T, Error>;
