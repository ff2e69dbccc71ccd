//! Bookkeeping of one run's curve: per-step proxy reward, gold reward and KL, smoothed over a
//! trailing window (one rollout's means are noisy), the gold peak and the final values; and the
//! PNG charts of all runs.

use std::path::Path;

use serde::Serialize;

use crate::plot::{line_chart, Series};
use crate::Result;

/// One training step of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CurvePoint {
    pub step: usize,
    /// Mean proxy (reward-model) score of the rollout.
    pub proxy: f64,
    /// Mean gold reward of the same responses.
    pub gold: f64,
    /// Mean summed per-token KL estimate (k1) to the SFT policy.
    pub kl: f64,
}

/// Where a run started, where its gold peaked and where it ended (peak and end on the smoothed
/// curve).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CurveSummary {
    /// The first step's values (the SFT policy's rollout).
    pub start_gold: f64,
    pub start_proxy: f64,
    pub peak_gold: f64,
    pub peak_step: usize,
    pub peak_kl: f64,
    pub final_gold: f64,
    pub final_proxy: f64,
    pub final_kl: f64,
    /// Peak minus final gold: how much of the gain over-optimisation gave back.
    pub gold_drop: f64,
}

/// Each point replaced by the mean of the last `window` points up to it (fewer at the start).
pub fn smooth(points: &[CurvePoint], window: usize) -> Vec<CurvePoint> {
    let window = window.max(1);
    (0..points.len())
        .map(|i| {
            let part = &points[(i + 1).saturating_sub(window)..=i];
            let n = part.len() as f64;
            let mean = |f: fn(&CurvePoint) -> f64| part.iter().map(f).sum::<f64>() / n;
            CurvePoint { step: points[i].step, proxy: mean(|p| p.proxy), gold: mean(|p| p.gold), kl: mean(|p| p.kl) }
        })
        .collect()
}

/// The first step, the peak of the smoothed gold (the first, on ties) and the smoothed values at
/// the last step; `None` for an empty curve.
pub fn summarize(points: &[CurvePoint], window: usize) -> Option<CurveSummary> {
    let first = *points.first()?;
    let smoothed = smooth(points, window);
    let last = *smoothed.last()?;
    let peak = smoothed.iter().fold(smoothed[0], |best, p| if p.gold > best.gold { *p } else { best });
    Some(CurveSummary {
        start_gold: first.gold,
        start_proxy: first.proxy,
        peak_gold: peak.gold,
        peak_step: peak.step,
        peak_kl: peak.kl,
        final_gold: last.gold,
        final_proxy: last.proxy,
        final_kl: last.kl,
        gold_drop: peak.gold - last.gold,
    })
}

/// The charts of the runs `(name, curve)`, smoothed over `window` steps: gold and proxy reward
/// against KL to the SFT policy (the over-optimisation picture), and gold, proxy and KL against
/// the step. The proxy is drawn relative to its first value, since reward models' scales differ.
pub fn plot_runs(out: &Path, runs: &[(&str, &[CurvePoint])], window: usize) -> Result<()> {
    let smoothed: Vec<(&str, Vec<CurvePoint>)> = runs.iter().map(|(name, c)| (*name, smooth(c, window))).collect();
    type Axis = fn(&CurvePoint, &CurvePoint) -> f64;
    let charts: [(&str, &str, &str, Axis, &str, Axis); 5] = [
        ("style_gold_vs_kl", "gold reward vs KL to SFT", "KL to SFT (nats)", |p, _| p.kl, "gold", |p, _| p.gold),
        ("style_proxy_vs_kl", "proxy reward (from its start) vs KL", "KL to SFT (nats)", |p, _| p.kl, "proxy − start", |p, s| p.proxy - s.proxy),
        ("style_gold", "gold reward per step", "step", |p, _| p.step as f64, "gold", |p, _| p.gold),
        ("style_proxy", "proxy reward (from its start) per step", "step", |p, _| p.step as f64, "proxy − start", |p, s| p.proxy - s.proxy),
        ("style_kl", "KL to SFT per step", "step", |p, _| p.step as f64, "KL (nats)", |p, _| p.kl),
    ];
    for (file, title, x_label, x, y_label, y) in charts {
        let series: Vec<Series> = smoothed
            .iter()
            .filter_map(|(name, curve)| {
                let start = curve.first()?;
                Some(Series { name, points: curve.iter().map(|p| (x(p, start), y(p, start))).collect() })
            })
            .collect();
        line_chart(&out.join(format!("{file}.png")), title, x_label, y_label, &series)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(gold: &[f64]) -> Vec<CurvePoint> {
        gold.iter()
            .enumerate()
            .map(|(i, &g)| CurvePoint { step: i, proxy: i as f64, gold: g, kl: 10.0 * i as f64 })
            .collect()
    }

    #[test]
    fn smoothing_is_a_trailing_mean() {
        let s = smooth(&curve(&[1.0, 3.0, 5.0, 7.0]), 2);
        let gold: Vec<f64> = s.iter().map(|p| p.gold).collect();
        assert_eq!(gold, [1.0, 2.0, 4.0, 6.0]);
        assert_eq!(s[3].kl, 25.0);
        assert_eq!(s[3].step, 3);
        assert_eq!(smooth(&curve(&[1.0, 3.0]), 0)[1].gold, 3.0);
    }

    #[test]
    fn peak_and_final_of_a_rise_and_fall() {
        let points = curve(&[0.5, 0.6, 0.8, 0.9, 0.7, 0.4, 0.3]);
        let s = summarize(&points, 1).unwrap();
        assert_eq!((s.start_gold, s.start_proxy), (0.5, 0.0));
        assert_eq!((s.peak_gold, s.peak_step, s.peak_kl), (0.9, 3, 30.0));
        assert_eq!((s.final_gold, s.final_proxy, s.final_kl), (0.3, 6.0, 60.0));
        assert!((s.gold_drop - 0.6).abs() < 1e-12);
        // Window 2: the smoothed peak is (0.8 + 0.9) / 2 at step 3, the end (0.4 + 0.3) / 2.
        let s = summarize(&points, 2).unwrap();
        assert!((s.peak_gold - 0.85).abs() < 1e-12 && s.peak_step == 3 && s.peak_kl == 25.0);
        assert!((s.final_gold - 0.35).abs() < 1e-12 && s.final_kl == 55.0);
    }

    #[test]
    fn first_peak_wins_ties_and_monotone_curves_peak_last() {
        assert_eq!(summarize(&curve(&[0.2, 0.7, 0.7, 0.1]), 1).unwrap().peak_step, 1);
        let rising = summarize(&curve(&[0.1, 0.2, 0.3]), 1).unwrap();
        assert_eq!((rising.peak_step, rising.gold_drop), (2, 0.0));
        assert!(summarize(&[], 3).is_none());
    }
}
