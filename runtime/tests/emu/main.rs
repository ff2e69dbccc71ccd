//! Tests of the PTX emulator: small hand-written PTX programs with known results for each
//! instruction family, and NVRTC-generated kernels (fixtures) compared with Rust references.

mod arith_float;
mod async_copy;
mod arith_int;
mod atomics;
mod common;
mod control;
mod cvt;
mod errors;
mod fixtures;
mod memory;
mod realistic;
mod sanitizer;
mod sanitizer_kernels;
mod tensor;
mod warp;
