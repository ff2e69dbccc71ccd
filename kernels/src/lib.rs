//! The CUDA C++ sources of rlhf-rs, embedded in the binary, and the list of their entry points.
//!
//! Each op has one source, `src/<op>.cu`, whose entry points follow
//! `<op>_<fwd|bwd>[_variant]_<dtype>`. The runtime compiles these with NVRTC for the Cuda backend
//! and runs the resulting PTX on its emulator for the Emu backend. The sources arrive with the
//! emulator and Cuda backend; until then this crate lists none.

/// One embedded CUDA source file.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    /// The op stem, e.g. `layernorm`.
    pub op: &'static str,
    /// The CUDA C++ text.
    pub code: &'static str,
}

/// Every embedded source, in a fixed order.
pub const SOURCES: &[Source] = &[];
