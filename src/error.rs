/// Everything the command line can fail with; each message names what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Runtime(#[from] runtime::Error),
    #[error(transparent)]
    Model(#[from] models::ModelError),
    #[error(transparent)]
    Algorithm(#[from] algorithms::Error),
    #[error("{0}")]
    Usage(String),
}
