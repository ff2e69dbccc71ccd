//! RLHF algorithms (SFT, reward models, critic, PPO, GRPO) built on `models` and `runtime`.
//! Filled in by the RLHF work; the crate exists so the workspace has its final shape.
