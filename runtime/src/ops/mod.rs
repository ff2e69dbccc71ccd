//! One module per op: its argument/result types, the shape and dtype checks every backend runs
//! before touching data, and the Cpu implementation.

pub mod adamw;
pub mod attention;
pub mod bt_loss;
pub(crate) mod check;
pub mod cross_entropy;
pub mod elementwise;
pub mod embedding;
pub mod gelu;
pub mod gemm;
pub mod grad_norm;
pub mod kl;
pub mod kv_cache;
pub mod layernorm;
pub mod logprob;
pub mod rmsnorm;
pub mod rope;
pub mod swiglu;
