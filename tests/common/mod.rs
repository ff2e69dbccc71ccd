//! Helpers shared by the test binaries: a seeded RNG, closeness checks, finite differences, and
//! the macro that runs one test body on every backend.
#![allow(dead_code)]

/// splitmix64: small, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// `n` normal samples times `scale`, as f32 (what the backends take).
    pub fn normal_vec(&mut self, n: usize, scale: f64) -> Vec<f32> {
        (0..n).map(|_| (self.normal() * scale) as f32).collect()
    }

    pub fn uniform_vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f32> {
        (0..n).map(|_| (lo + (hi - lo) * self.uniform()) as f32).collect()
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }

    pub fn ids(&mut self, n: usize, below: usize) -> Vec<u32> {
        (0..n).map(|_| self.below(below) as u32).collect()
    }
}

pub fn to_f64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// Fails with the first offending index unless `|got - want| <= atol + rtol * |want|` everywhere.
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length {} vs reference {}", got.len(), want.len());
    let mut worst = (0.0f64, 0usize);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = g as f64;
        let ok = if w.is_finite() { (g - w).abs() <= atol + rtol * w.abs() } else { g == w };
        assert!(ok, "{what}[{i}]: got {g}, reference {w} (atol {atol}, rtol {rtol})");
        let err = (g - w).abs();
        if err > worst.0 {
            worst = (err, i);
        }
    }
}

/// Central finite differences of a scalar function of `x` in f64.
pub fn numeric_grad(x: &[f64], h: f64, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            xp[i] = x[i] + h;
            let up = f(&xp);
            xp[i] = x[i] - h;
            let down = f(&xp);
            xp[i] = x[i];
            (up - down) / (2.0 * h)
        })
        .collect()
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The bf16 value nearest to `x`, as f64: what an exact computation sees after bf16 storage.
pub fn bf16_round(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect()
}

/// Shapes for ops over the last dim: leading dims (rows 1, 1, 7, 64, 0; the first is a rank-1
/// `x`) crossed with C in {1, 7, 33, 769}.
pub fn norm_shapes() -> Vec<Vec<usize>> {
    let mut shapes = vec![];
    for lead in [&[][..], &[1], &[7], &[4, 16], &[2, 0]] {
        for c in [1, 7, 33, 769] {
            let mut dims = lead.to_vec();
            dims.push(c);
            shapes.push(dims);
        }
    }
    shapes
}

/// The error of a call that must fail (op results have no `Debug`, so no `unwrap_err`).
#[track_caller]
pub fn error_of<T>(result: Result<T, runtime::Error>) -> runtime::Error {
    result.err().expect("the call should have failed")
}

/// The call fails with a shape error of `op` whose message contains every needle.
#[track_caller]
pub fn assert_shape_error<T>(result: Result<T, runtime::Error>, op: &str, needles: &[&str]) {
    let err = error_of(result);
    let msg = err.to_string();
    assert!(matches!(err, runtime::Error::Shape { op: o, .. } if o == op), "{msg}");
    assert!(needles.iter().all(|n| msg.contains(n)), "{msg} lacks {needles:?}");
}

/// Expands each listed generic test body `fn name<B: Backend>(backend: &B)` into a module with
/// one `#[test]` per backend:
///
/// - `backend_tests!(fn_a, fn_b)` runs them on Cpu only;
/// - `backend_tests!(cpu, emu; fn_a, fn_b)` on each backend listed (`cpu`, `emu`, `cuda`), each
///   test named after its backend (`fn_a::emu`);
///
/// The Emu backend needs the CUDA tools (`scripts/setup-cuda-tools.sh`); without them its tests
/// fail with the error that says how to install them. The `cuda` tests run only where
/// `Cuda::new(0)` succeeds (an NVIDIA GPU and driver): elsewhere — CI and every machine without a
/// GPU — each prints why it did not run and passes.
#[macro_export]
macro_rules! backend_tests {
    (@tests $name:ident) => {};
    (@tests $name:ident cpu $($more:ident)*) => {
        #[test]
        fn cpu() {
            super::$name(&runtime::Cpu::new());
        }
        $crate::backend_tests!(@tests $name $($more)*);
    };
    (@tests $name:ident emu $($more:ident)*) => {
        #[test]
        fn emu() {
            super::$name(&runtime::Emu::new().unwrap_or_else(|e| panic!("{e}")));
        }
        $crate::backend_tests!(@tests $name $($more)*);
    };
    (@tests $name:ident cuda $($more:ident)*) => {
        #[test]
        fn cuda() {
            match runtime::Cuda::new(0) {
                Ok(cuda) => super::$name(&cuda),
                Err(e) => eprintln!("skipped: no Cuda device ({e})"),
            }
        }
        $crate::backend_tests!(@tests $name $($more)*);
    };
    (@bodies [$($backend:ident)+]) => {};
    (@bodies [$($backend:ident)+] $name:ident $(, $rest:ident)*) => {
        mod $name {
            $crate::backend_tests!(@tests $name $($backend)+);
        }
        $crate::backend_tests!(@bodies [$($backend)+] $($rest),*);
    };
    ($($backend:ident),+ ; $($name:ident),* $(,)?) => {
        $crate::backend_tests!(@bodies [$($backend)+] $($name),*);
    };
    ($($name:ident),* $(,)?) => {
        $crate::backend_tests!(cpu; $($name),*);
    };
}

/// A row-wise op's outputs for row 1 of a 3-row batch are the same bits as for that row alone.
/// `run(r0, n)` runs the op on rows `r0..r0 + n` and returns each output flattened, with its
/// width per row (C for `[n, C]`, 1 for a per-row statistic).
pub fn assert_row_alone_equals_in_batch(what: &str, run: impl Fn(usize, usize) -> Vec<(Vec<f32>, usize)>) {
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let (alone, batch) = (run(1, 1), run(0, 3));
    assert_eq!(alone.len(), batch.len(), "{what}");
    for ((a, width), (b, _)) in alone.iter().zip(&batch) {
        assert_eq!(bits(a), bits(&b[*width..2 * width]), "{what}");
    }
}
