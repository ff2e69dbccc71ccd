//! One module per op: its argument/result types, the shape and dtype checks every backend runs
//! before touching data, the Cpu implementation, and (for ops with a CUDA kernel) the launcher
//! shared by the GPU backends (`*_gpu`, over [`crate::gpu`]).

pub mod adamw;
pub mod attention;
pub mod bt_loss;
pub(crate) mod check;
pub mod cross_entropy;
pub mod elementwise;
pub mod embedding;
pub mod gae;
pub mod gelu;
pub mod gemm;
pub mod grad_norm;
pub mod grpo_loss;
pub mod kl;
pub mod kv_cache;
pub mod layernorm;
pub mod linear_logprob;
pub mod logprob;
pub mod masked_whiten;
pub mod ppo_loss;
pub mod rmsnorm;
pub mod rope;
pub mod sample;
pub mod swiglu;
pub mod value_loss;
