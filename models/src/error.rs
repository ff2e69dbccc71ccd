/// The models crate's one error type; every message names the file and the field or tensor.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {msg}")]
    Config { path: String, msg: String },
    #[error("{path}: {msg}")]
    Weights { path: String, msg: String },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// Input the model cannot take (an empty batch, a sequence longer than the model allows...).
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Runtime(#[from] runtime::Error),
}

pub type Result<T> = std::result::Result<T, ModelError>;
