//! Preference strength from an ensemble, each denoising rule on hand-built strengths, and the
//! accuracy and audit reports.

use algorithms::reward::{
    audit_denoising, denoise, pair_accuracy, preference_strength, DenoiseConfig, PreferencePair, Strength, Treatment,
};

/// A pair whose responses are one token each, with the given label and gold rewards.
fn pair(id: u32, label: f32, gold: (f32, f32)) -> PreferencePair {
    PreferencePair {
        prompt: vec![id],
        chosen: vec![100 + id],
        rejected: vec![200 + id],
        label,
        margin: 0.0,
        outcomes: Some(gold),
        gold,
    }
}

fn close(a: f32, b: f64) -> bool {
    (f64::from(a) - b).abs() <= 1e-6 * b.abs().max(1.0)
}

#[test]
fn strength_is_the_mean_and_population_deviation_over_members() {
    // Three members, three pairs.
    let differences = vec![vec![1.0, 2.0, -1.0], vec![3.0, 2.0, -2.0], vec![2.0, -4.0, -3.0]];
    let s = preference_strength(&differences).unwrap();
    assert!(close(s[0].mean, 2.0) && close(s[0].std, (2.0f64 / 3.0).sqrt()), "{:?}", s[0]);
    assert!(close(s[1].mean, 0.0) && close(s[1].std, 8f64.sqrt()), "{:?}", s[1]);
    assert!(close(s[2].mean, -2.0) && close(s[2].std, (2.0f64 / 3.0).sqrt()), "{:?}", s[2]);
    // One member: its differences, no spread.
    assert_eq!(preference_strength(&[vec![0.5, -1.0]]).unwrap(), vec![
        Strength { mean: 0.5, std: 0.0 },
        Strength { mean: -1.0, std: 0.0 }
    ]);
    assert!(preference_strength(&[]).is_err());
    assert!(preference_strength(&[vec![1.0, 2.0], vec![1.0]]).is_err(), "members must score the same pairs");
}

#[test]
fn each_denoising_rule_on_hand_built_strengths() {
    let pairs: Vec<PreferencePair> = (0..6).map(|i| pair(i, 1.0, (1.0, 0.0))).collect();
    let strengths = [
        Strength { mean: 2.0, std: 0.5 },   // clearly right: kept
        Strength { mean: -3.0, std: 1.0 },  // clearly wrong: flipped
        Strength { mean: 0.2, std: 1.0 },   // members disagree: softened
        Strength { mean: -0.5, std: 1.0 },  // negative, not clearly: softened
        Strength { mean: -0.5, std: 0.25 }, // negative and clearly (z = −2): flipped
        Strength { mean: 10.0, std: 1.0 },  // kept; the margin saturates
    ];
    let config = DenoiseConfig { margin_scale: 0.5, max_margin: 4.0, soft_label: 0.8, ..DenoiseConfig::default() };
    let (out, treatments, counts) = denoise(&pairs, &strengths, &config).unwrap();
    assert_eq!((counts.kept, counts.flipped, counts.softened), (2, 2, 2));
    assert_eq!(treatments[0], Treatment::Keep);
    assert_eq!(treatments[1], Treatment::Flip);
    assert_eq!(treatments[4], Treatment::Flip);
    for i in [2, 3] {
        assert_eq!(treatments[i], Treatment::Soft { label: 0.8 });
        assert_eq!(out[i].label, 0.8);
    }
    // Kept: unchanged but for the margin 0.5·|μ|.
    assert_eq!(out[0], PreferencePair { margin: 1.0, ..pairs[0].clone() });
    assert_eq!(out[5].margin, 2.0, "margins stop growing at max_margin");
    // Flipped: chosen and rejected (and their gold and outcomes) swap, the label stays hard.
    let flipped = &out[1];
    assert_eq!((&flipped.chosen, &flipped.rejected), (&pairs[1].rejected, &pairs[1].chosen));
    assert_eq!((flipped.label, flipped.gold, flipped.outcomes), (1.0, (0.0, 1.0), Some((0.0, 1.0))));
    assert_eq!(flipped.margin, 1.5);
    assert_eq!(out[4].margin, 0.25);
    assert_eq!((out[2].margin, out[3].margin), (0.0, 0.0), "soft pairs get no margin");
    assert_eq!(out[2].chosen, pairs[2].chosen);

    // Without soft labels the ambiguous pairs are kept; a doubtful kept label gets no margin.
    let flip_only = DenoiseConfig { soft_labels: false, ..config };
    let (out, treatments, _) = denoise(&pairs, &strengths, &flip_only).unwrap();
    assert_eq!(treatments[..5], [Treatment::Keep, Treatment::Flip, Treatment::Keep, Treatment::Keep, Treatment::Flip]);
    assert_eq!((out[2].margin, out[3].margin), (0.1, 0.0));
    // Without flips the clearly wrong pairs are softened instead.
    let soft_only = DenoiseConfig { flip: false, ..config };
    let (out, treatments, _) = denoise(&pairs, &strengths, &soft_only).unwrap();
    assert_eq!((treatments[1], out[1].label), (Treatment::Soft { label: 0.8 }, 0.8));
    assert_eq!(out[1].chosen, pairs[1].chosen);
    // A label that already points the other way is smoothed from below.
    let reversed = PreferencePair { label: 0.0, ..pairs[2].clone() };
    let (out, _, _) = denoise(&[reversed], &strengths[2..3], &config).unwrap();
    assert!(close(out[0].label, 0.2), "{}", out[0].label);
    // Neither: every label stays; without a margin scale, so do the margins.
    let (out, treatments, _) = denoise(&pairs, &strengths, &DenoiseConfig { flip: false, soft_labels: false, margin_scale: 0.0, ..config }).unwrap();
    assert!(treatments.iter().all(|t| *t == Treatment::Keep));
    assert_eq!(out, pairs);

    assert!(denoise(&pairs[..2], &strengths, &config).is_err(), "one strength per pair");
}

#[test]
fn accuracy_leaves_out_gold_ties_and_counts_equal_rewards_half() {
    let pairs = vec![
        pair(0, 1.0, (1.0, 0.0)), // label right
        pair(1, 1.0, (0.0, 1.0)), // label wrong
        pair(2, 1.0, (0.0, 0.0)), // gold tie
        pair(3, 1.0, (1.0, 0.0)),
    ];
    let acc = pair_accuracy(&[0.5, 0.5, -1.0, 0.0], &pairs);
    assert_eq!((acc.pairs, acc.gold_pairs), (4, 3));
    // Labels: right, right, wrong, half.
    assert!((acc.label_accuracy - 2.5 / 4.0).abs() < 1e-12, "{acc:?}");
    // Gold (ties out): right, wrong, half.
    assert!((acc.gold_accuracy - 1.5 / 3.0).abs() < 1e-12, "{acc:?}");
    // A soft label below one half asks for the rejected response on top.
    let acc = pair_accuracy(&[-1.0], &[pair(0, 0.3, (0.0, 1.0))]);
    assert_eq!((acc.label_accuracy, acc.gold_accuracy), (1.0, 1.0));
}

#[test]
fn audit_counts_corrections_damage_and_softened_ties() {
    let before = vec![
        pair(0, 1.0, (0.0, 1.0)), // wrong label, flipped: a correction
        pair(1, 1.0, (1.0, 0.0)), // right label, flipped: damage
        pair(2, 1.0, (0.0, 0.0)), // tie, softened
        pair(3, 1.0, (0.0, 1.0)), // wrong label, kept
        pair(4, 0.0, (1.0, 0.0)), // wrong label (below one half), softened to 0.3: still wrong
    ];
    let strengths = [
        Strength { mean: -2.0, std: 0.1 },
        Strength { mean: -2.0, std: 0.1 },
        Strength { mean: 0.0, std: 1.0 },
        Strength { mean: 2.0, std: 0.1 },
        Strength { mean: 0.5, std: 1.0 },
    ];
    let (after, treatments, _) = denoise(&before, &strengths, &DenoiseConfig::default()).unwrap();
    let audit = audit_denoising(&before, &after, &treatments);
    assert_eq!((audit.wrong_before, audit.wrong_after), (3, 3));
    assert_eq!((audit.flips_correcting, audit.flips_damaging), (1, 1));
    assert_eq!((audit.softened, audit.softened_ties, audit.ties), (2, 1, 1));
}
