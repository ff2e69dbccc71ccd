//! An ensemble of reward models and the preference strength it measures (Secrets of RLHF II,
//! §2.2): `M` models trained on the same pairs from different seeds (scalar-head draws and data
//! orders); for pair `i`, with `d_im = r_m(chosen) − r_m(rejected)`,
//!
//! ```text
//! mean_i = (1/M)·Σ_m d_im,    std_i = sqrt((1/M)·Σ_m (d_im − mean_i)²)
//! ```
//!
//! (the population deviation, as the report writes it). A clearly negative mean says the label is
//! probably wrong; a mean small next to the deviation says the pair is ambiguous.

use models::transformer::Model;
use runtime::Backend;

use super::data::PreferencePair;
use super::model::RewardModel;
use super::train::{train_reward_model, RewardConfig, RewardMetrics};
use crate::{Error, Result};

/// Rows scored together when measuring pairs.
pub const SCORE_BATCH: usize = 256;

/// One pair's preference strength over an ensemble.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Strength {
    pub mean: f32,
    pub std: f32,
}

/// `r(chosen) − r(rejected)` for every pair under `rm`.
pub fn reward_differences<B: Backend>(
    backend: &B,
    rm: &RewardModel<B>,
    pairs: &[PreferencePair],
    pad_id: u32,
) -> Result<Vec<f32>> {
    let rows: Vec<(&[u32], &[u32])> = pairs
        .iter()
        .flat_map(|p| [(p.prompt.as_slice(), p.chosen.as_slice()), (p.prompt.as_slice(), p.rejected.as_slice())])
        .collect();
    let rewards = rm.score(backend, &rows, pad_id, SCORE_BATCH)?;
    Ok(rewards.chunks(2).map(|cr| cr[0] - cr[1]).collect())
}

/// Mean and population deviation per pair of `differences[m][i]` (member `m`, pair `i`),
/// accumulated in f64.
pub fn preference_strength(differences: &[Vec<f32>]) -> Result<Vec<Strength>> {
    let members = differences.len();
    let pairs = differences.first().map_or(0, Vec::len);
    if members == 0 || differences.iter().any(|d| d.len() != pairs) {
        return Err(Error::Config(format!(
            "preference strength needs at least one member and the same pairs for each (got {:?} pairs per member)",
            differences.iter().map(Vec::len).collect::<Vec<_>>()
        )));
    }
    Ok((0..pairs)
        .map(|i| {
            let mean = differences.iter().map(|d| f64::from(d[i])).sum::<f64>() / members as f64;
            let var = differences.iter().map(|d| (f64::from(d[i]) - mean).powi(2)).sum::<f64>() / members as f64;
            Strength { mean: mean as f32, std: var.sqrt() as f32 }
        })
        .collect())
}

/// Trains `members` reward models from `policy` on `pairs`; member `m` uses seed
/// `config.seed + m`. `on_step(m, metrics)` is called after every step of every member.
pub fn train_ensemble<B: Backend>(
    backend: &B,
    policy: &Model<B>,
    pairs: &[PreferencePair],
    pad_id: u32,
    config: &RewardConfig,
    members: usize,
    on_step: &mut dyn FnMut(usize, &RewardMetrics),
) -> Result<Vec<RewardModel<B>>> {
    if members == 0 {
        return Err(Error::Config("an ensemble needs at least one member".into()));
    }
    (0..members)
        .map(|m| {
            let member_config = RewardConfig { seed: config.seed + m as u64, ..config.clone() };
            let mut rm = RewardModel::from_policy(backend, policy, config.head_init_std, member_config.seed)?;
            train_reward_model(backend, &mut rm, pairs, pad_id, &member_config, &mut |metrics| on_step(m, metrics))?;
            Ok(rm)
        })
        .collect()
}

/// The ensemble's preference strength on each pair.
pub fn ensemble_strength<B: Backend>(
    backend: &B,
    members: &[&RewardModel<B>],
    pairs: &[PreferencePair],
    pad_id: u32,
) -> Result<Vec<Strength>> {
    let differences =
        members.iter().map(|rm| reward_differences(backend, rm, pairs, pad_id)).collect::<Result<Vec<_>>>()?;
    preference_strength(&differences)
}
