use crate::DType;

/// The runtime's one error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Arguments whose shapes do not fit the op, or each other.
    #[error("{op}: {msg}")]
    Shape { op: &'static str, msg: String },
    /// An argument of a dtype the op does not take.
    #[error("{op}: argument `{arg}` has dtype {got}, expected {expected}")]
    DType { op: &'static str, arg: &'static str, got: DType, expected: String },
    /// A value out of its domain: a scalar (a negative epsilon, a zero temperature) or an element
    /// (a token id not below the vocabulary size).
    #[error("{op}: {msg}")]
    Argument { op: &'static str, msg: String },
    /// Something the backend cannot do on this machine (no driver, no compiler, ...).
    #[error("{backend} backend: {msg}")]
    Backend { backend: &'static str, msg: String },
    /// A PTX emulator error: unsupported PTX, a bad launch, or a fault while a kernel ran.
    #[error("PTX emulator: {0}")]
    Emulator(#[from] crate::emu::EmuError),
    /// Building kernels failed: the CUDA tools are missing, NVRTC rejected a source (the message
    /// carries its log), ptxas failed, or the PTX cache could not be written.
    #[error("{stage}: {msg}")]
    Compile { stage: &'static str, msg: String },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn shape(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Shape { op, msg: msg.into() }
    }

    pub fn argument(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Argument { op, msg: msg.into() }
    }

    pub fn compile(stage: &'static str, msg: impl Into<String>) -> Self {
        Error::Compile { stage, msg: msg.into() }
    }
}
