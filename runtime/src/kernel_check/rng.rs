//! The seeded inputs of the kernel checks: the same values on every backend.

use crate::DType;

/// The values a tensor of `dtype` holds after uploading `x`.
pub(super) fn stored(x: &[f32], dtype: DType) -> Vec<f64> {
    match dtype {
        DType::BF16 => x.iter().map(|&v| half::bf16::from_f32(v).to_f64()).collect(),
        _ => x.iter().map(|&v| v as f64).collect(),
    }
}

/// splitmix64 with Box–Muller normals: small, seeded, the same on every backend.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(super) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(super) fn scaled(&mut self, n: usize, scale: f64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let (u1, u2) = (self.uniform().max(1e-300), self.uniform());
                let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (normal * scale) as f32
            })
            .collect()
    }

    pub(super) fn normal(&mut self, n: usize) -> Vec<f32> {
        self.scaled(n, 1.0)
    }

    /// Normals around 1 (weights) or rows offset from 0, so centring and scaling both matter.
    pub(super) fn offset(&mut self, n: usize) -> Vec<f32> {
        self.normal(n).iter().map(|v| v + 1.0).collect()
    }

    pub(super) fn ids(&mut self, n: usize, below: usize) -> Vec<u32> {
        (0..n)
            .map(|_| (self.next_u64() % below as u64) as u32)
            .collect()
    }
}
