//! Every op of the `Backend` trait against naive f64 references: forward values, gradients
//! against finite differences, and errors for bad shapes and dtypes. One test body per op runs on
//! every backend.

#[path = "../common/mod.rs"]
mod common;

mod attention;
mod embedding;
mod gelu;
mod gemm;
mod kv_cache;
mod layernorm;
mod rmsnorm;
mod rope;
mod swiglu;
