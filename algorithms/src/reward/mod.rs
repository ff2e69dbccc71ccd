//! Reward models: the policy's trunk with a scalar head, trained on preference pairs drawn from
//! the policy's own samples and labelled by the noisy annotator.
//!
//! - [`data`]: [`PreferencePair`] and [`sample_preference_pairs`] (two sampled responses per
//!   prompt, labelled by [`crate::tasks::annotator::Annotator`]).
//! - [`model`]: [`RewardModel`], the reward read at each response's last real token.
//! - [`train`]: the Bradley–Terry loss with margins, soft labels and smoothing, the optional
//!   binary outcome loss, and GRM's SFT regulariser, over one shared forward and backward.
//! - [`ensemble`]: `M` models from different seeds and the preference strength they measure.
//! - [`denoise`]: flips, soft labels and adaptive margins from that strength.
//! - [`metrics`]: held-out accuracy against noisy labels and against gold, and an audit of what
//!   denoising did to the training labels.
//! - [`select`]: early stopping on the accuracy against noisy validation labels.
//! - [`stage`]: the whole stage of `rlhf demo`: pairs, ensemble, denoising, final model, report.

pub mod data;
pub mod denoise;
pub mod ensemble;
pub mod metrics;
pub mod model;
pub mod select;
pub mod stage;
pub mod train;

pub use data::{sample_preference_pairs, PairSampling, PairStats, PreferencePair};
pub use denoise::{denoise, DenoiseConfig, DenoiseCounts, Treatment};
pub use ensemble::{ensemble_strength, preference_strength, reward_differences, train_ensemble, Strength};
pub use metrics::{audit_denoising, evaluate_pairs, pair_accuracy, DenoiseAudit, PairAccuracy};
pub use model::{copy_model, Readout, RewardModel};
pub use select::{standard_error, train_selected, Selection};
pub use stage::{run_reward_stage, RewardProgress, RewardStageConfig, RewardStageOutput, RewardStageReport};
pub use train::{
    reward_loss_and_grads, train_reward_model, train_reward_model_watched, RewardConfig, RewardLoss, RewardLossConfig, RewardMetrics};
