//! Every op of the `Backend` trait against naive f64 references: forward values, gradients
//! against finite differences, and errors for bad shapes and dtypes. One test body per op runs on
//! every backend.

#[path = "../common/mod.rs"]
mod common;

mod adamw;
mod attention;
mod attention_io;
mod bt_loss;
mod cross_entropy;
mod elementwise;
mod embedding;
mod gae;
mod gelu;
mod gemm;
mod grad_norm;
mod grpo_loss;
mod kl;
mod kv_cache;
mod layernorm;
mod linear_logprob;
mod linear_logprob_io;
mod logprob;
mod masked_whiten;
mod ppo_loss;
mod rmsnorm;
mod rope;
mod sample;
mod swiglu;
mod value_loss;
