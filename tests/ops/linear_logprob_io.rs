//! What only the emulator can show about the chunked LM head + log-prob: no `[N, V]` buffer is
//! ever allocated (the allocation high-water mark, which sees temporaries freed before the op
//! returns), against the unfused GEMM + log-prob whose logits are one; and the global bytes both
//! paths move (the emulator's counters), printed for docs/ARCHITECTURE.md.

use runtime::ops::gemm::GemmSpec;
use runtime::ops::linear_logprob::LinearLogProb;
use runtime::{Backend, DType, Emu};

use crate::common::Rng;

/// Global traffic of every kernel launched on `emu` so far: the 32-byte sectors loaded and
/// stored (a broadcast load of one id by a whole block counts once, not per lane).
fn moved(emu: &Emu) -> u64 {
    emu.kernel_stats().iter().map(|(_, k)| 32 * (k.counters.global_load_sectors + k.counters.global_store_sectors)).sum()
}

/// The peak of device memory above what was allocated before `f`, less what `f` returns alive.
fn extra_peak<T>(emu: &Emu, f: impl FnOnce() -> T, kept: impl Fn(&T) -> usize) -> (usize, T) {
    emu.reset_peak_allocated_bytes();
    let base = emu.allocated_bytes();
    let out = f();
    (emu.peak_allocated_bytes() - base - kept(&out), out)
}

/// N = 64, C = 8, V = 4096 in chunks of 256: the fused forward and backward stay far below the
/// logits' `N·V·sizeof` beside their results, where the unfused forward allocates them whole.
#[test]
fn linear_logprob_never_allocates_the_logits() {
    let (n, c, v, chunk) = (64, 8, 4096, 256);
    let mut rng = Rng::new(43);
    for dtype in [DType::F32, DType::BF16] {
        let logits_bytes = n * v * dtype.size_in_bytes();
        let h = rng.normal_vec(n * c, 1.0);
        let w = rng.normal_vec(v * c, 0.5);
        let ids = rng.ids(n, v);
        let dlp = rng.normal_vec(n, 1.0);
        let mut bytes = vec![];
        for fused in [true, false] {
            let emu = Emu::with_sanitizer(false).unwrap_or_else(|e| panic!("{e}"));
            let hidden = emu.upload_f32(&[n, c], &h, dtype).unwrap();
            let weight = emu.upload_f32(&[v, c], &w, dtype).unwrap();
            let targets = emu.upload_u32(&[n], &ids).unwrap();
            let dlogprob = emu.upload_f32(&[n], &dlp, DType::F32).unwrap();
            let op = LinearLogProb { hidden: &hidden, weight: &weight, targets: &targets, inv_temperature: 1.0, chunk };
            let results = 3 * n * 4;
            let before = moved(&emu);
            if fused {
                let (fwd_peak, fwd) = extra_peak(&emu, || op.forward(&emu).unwrap(), |_| results);
                let fwd_bytes = moved(&emu) - before;
                let grads = (n + v) * c * dtype.size_in_bytes();
                let (bwd_peak, _) = extra_peak(
                    &emu,
                    || op.backward(&emu, &fwd.lse, &fwd.entropy, &dlogprob, None).unwrap(),
                    |_| grads,
                );
                eprintln!(
                    "fused {dtype}: forward peak beside results {fwd_peak} B, backward peak beside \
                     grads {bwd_peak} B, logits {logits_bytes} B"
                );
                assert!(fwd_peak < logits_bytes / 8, "{dtype}: forward peak {fwd_peak} vs logits {logits_bytes}");
                assert!(bwd_peak < logits_bytes / 2, "{dtype}: backward peak {bwd_peak} vs logits {logits_bytes}");
                bytes.push(fwd_bytes);
            } else {
                let (fwd_peak, _) = extra_peak(
                    &emu,
                    || {
                        let logits = emu.gemm(&hidden, &weight, None, GemmSpec::nt()).unwrap();
                        emu.logprob_fwd(&logits, &targets, 1.0).unwrap()
                    },
                    |_| results,
                );
                eprintln!("unfused {dtype}: forward peak beside results {fwd_peak} B");
                assert!(fwd_peak >= logits_bytes, "{dtype}: the unfused path holds the logits");
                bytes.push(moved(&emu) - before);
            }
        }
        eprintln!("{dtype} forward global traffic (sectors): fused {} B, unfused {} B", bytes[0], bytes[1]);
    }
}
