//! Attention (forward, backward, decoding against a KV cache), KV-cache writes and RoPE: their
//! cases and how one runs on a backend.
//!
//! Shapes cover T = 1, T not a multiple of the kernels' tiles (64 queries, 32 keys), ragged
//! batches (left and right padding through key_valid), rows that see no key at all, GQA ratios
//! 1, 2 and 4, head sizes 128, 64, 16, 8 and 5 (not a multiple of the kernels' 4-wide vectors),
//! and fewer queries than keys. The backward gets the forward's `out` and `lse` from the Cpu on
//! both backends, so its check isolates the backward kernels.
//!
//! Tolerance: the family's outputs are judged by `mod.rs`'s rule (llm.c's `atol + rtol·|cpu|`).
//! For bf16 that rule fits: both backends read the same bf16 inputs, compute in f32 and round
//! once on store, so an output differs by at most one bf16 rounding (rtol 2⁻⁷) plus f32
//! reordering noise (atol); lse stays f32 and gets f32's rtol.

use super::rng::Rng;
use super::Family;
use crate::{Backend, Cpu, DType, Result, Tensor};

const THETA: f32 = 10_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Fwd,
    Bwd,
    /// `attention_decode` with `Tq` new queries against a cache of `tk` rows holding `kv_len`.
    Decode {
        kv_len: usize,
    },
    /// `kv_cache_write` of `tq` rows at row `start` of a `[b, tk, nkv, hs]` cache.
    KvWrite {
        start: usize,
    },
    RopeFwd,
    RopeBwd,
}

/// One shape: q `[b, tq, nh, hs]`, k and v `[b, tk, nkv, hs]`; batch entry `i` has `pads[i]` =
/// (left, right) padding keys (RoPE uses `x` `[b, tq, nh, hs]`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Case {
    op: Op,
    b: usize,
    tq: usize,
    tk: usize,
    nh: usize,
    nkv: usize,
    hs: usize,
    pads: &'static [(usize, usize)],
    dtype: DType,
}

/// (b, tq, tk, nh, nkv, hs, pads) of the forward and backward checks.
type Shape = (
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    &'static [(usize, usize)],
);

const ATTENTION_SHAPES: [Shape; 8] = [
    (1, 1, 1, 2, 1, 8, &[(0, 0)]),
    (3, 13, 13, 4, 4, 16, &[(0, 0), (4, 0), (0, 5)]),
    (2, 9, 9, 4, 2, 8, &[(9, 0), (4, 0)]),
    (2, 77, 77, 4, 2, 64, &[(5, 0), (0, 9)]),
    (1, 40, 40, 4, 1, 128, &[(0, 3)]),
    (2, 37, 100, 2, 2, 64, &[(11, 0), (0, 0)]),
    (1, 33, 33, 2, 2, 5, &[(2, 1)]),
    (1, 130, 130, 2, 1, 64, &[(3, 0)]),
];

/// (b, tq, cache rows, kv_len, nh, nkv, hs, pads over the cache rows).
type DecodeShape = (
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    &'static [(usize, usize)],
);

const DECODE_SHAPES: [DecodeShape; 4] = [
    (2, 1, 12, 9, 4, 2, 16, &[(2, 0), (0, 4)]),
    (2, 3, 12, 9, 8, 2, 8, &[(1, 0), (0, 5)]),
    (1, 1, 48, 40, 4, 1, 128, &[(0, 0)]),
    // More queries than the decode kernel takes: the flash forward over the cache rows.
    (2, 6, 12, 9, 4, 2, 16, &[(3, 0), (0, 3)]),
];

/// (b, tokens, heads, hs) of the RoPE checks.
const ROPE_SHAPES: [(usize, usize, usize, usize); 3] =
    [(1, 1, 1, 6), (2, 7, 3, 64), (1, 13, 2, 128)];

impl Case {
    fn stem(&self) -> &'static str {
        match self.op {
            Op::Fwd => "attention_fwd",
            Op::Bwd => "attention_bwd",
            Op::Decode { .. } if self.tq > crate::ops::attention::DECODE_MAX_QUERIES => {
                "attention_fwd"
            }
            Op::Decode { .. } => "kv_cache_fwd_decode",
            Op::KvWrite { .. } => "kv_cache_fwd_write",
            Op::RopeFwd => "rope_fwd",
            Op::RopeBwd => "rope_bwd",
        }
    }

    fn shape(&self) -> String {
        let (q, kv) = (
            [self.b, self.tq, self.nh, self.hs],
            [self.b, self.tk, self.nkv, self.hs],
        );
        match self.op {
            Op::Fwd | Op::Bwd => format!("q {q:?}, kv {kv:?}, pads {:?}", self.pads),
            Op::Decode { kv_len } => format!(
                "q {q:?}, cache {kv:?}, kv_len {kv_len}, pads {:?}",
                self.pads
            ),
            Op::KvWrite { start } => format!(
                "new {:?} at row {start} of cache {kv:?}",
                [self.b, self.tq, self.nkv, self.hs]
            ),
            Op::RopeFwd | Op::RopeBwd => format!("x {q:?}"),
        }
    }

    fn key_valid(&self) -> Vec<u32> {
        self.pads
            .iter()
            .flat_map(|&(l, r)| (0..self.tk).map(move |j| (j >= l && j + r < self.tk) as u32))
            .collect()
    }
}

/// The family's cases, in report order.
pub(super) fn cases() -> Vec<super::Case> {
    let mut cases = vec![];
    for dtype in [DType::F32, DType::BF16] {
        let case = |op, (b, tq, tk, nh, nkv, hs, pads): Shape| Case {
            op,
            b,
            tq,
            tk,
            nh,
            nkv,
            hs,
            pads,
            dtype,
        };
        for op in [Op::Fwd, Op::Bwd] {
            cases.extend(ATTENTION_SHAPES.iter().map(|&s| case(op, s)));
        }
        for (b, tq, tk, kv_len, nh, nkv, hs, pads) in DECODE_SHAPES {
            cases.push(case(Op::Decode { kv_len }, (b, tq, tk, nh, nkv, hs, pads)));
        }
        cases.push(case(Op::KvWrite { start: 5 }, (2, 3, 12, 2, 2, 16, &[])));
        cases.push(case(Op::KvWrite { start: 0 }, (1, 1, 4, 4, 4, 128, &[])));
        for op in [Op::RopeFwd, Op::RopeBwd] {
            cases.extend(
                ROPE_SHAPES
                    .iter()
                    .map(|&(b, t, nh, hs)| case(op, (b, t, t, nh, nh, hs, &[]))),
            );
        }
    }
    cases
        .into_iter()
        .map(|c| super::Case {
            name: format!("{}_{}", c.stem(), c.dtype),
            shape: c.shape(),
            seed: 0,
            family: Family::Attention(c),
        })
        .collect()
}

/// Runs `case.op` on `backend` and downloads each output with its dtype.
pub(super) fn run<B: Backend>(b: &B, case: &Case, rng: &mut Rng) -> Result<Vec<(Vec<f32>, DType)>> {
    let c = case;
    let (q_dims, kv_dims) = ([c.b, c.tq, c.nh, c.hs], [c.b, c.tk, c.nkv, c.hs]);
    let numel = |d: &[usize]| d.iter().product::<usize>();
    let out = |t: &Tensor<B>| -> Result<(Vec<f32>, DType)> { Ok((b.download_f32(t)?, t.dtype())) };
    let scale = 1.0 / (c.hs as f32).sqrt();
    match c.op {
        Op::Fwd | Op::Bwd | Op::Decode { .. } => {
            let (q, k, v) = (
                rng.normal(numel(&q_dims)),
                rng.normal(numel(&kv_dims)),
                rng.normal(numel(&kv_dims)),
            );
            let valid = c.key_valid();
            let up = |x: &[f32], dims: &[usize]| b.upload_f32(dims, x, c.dtype);
            let (qt, kt, vt) = (up(&q, &q_dims)?, up(&k, &kv_dims)?, up(&v, &kv_dims)?);
            let valid_t = b.upload_u32(&[c.b, c.tk], &valid)?;
            match c.op {
                Op::Fwd => {
                    let o = b.attention_fwd(&qt, &kt, &vt, &valid_t, scale)?;
                    Ok(vec![out(&o.out)?, out(&o.lse)?])
                }
                Op::Decode { kv_len } => {
                    let o = b.attention_decode(&qt, &kt, &vt, &valid_t, kv_len, scale)?;
                    Ok(vec![out(&o.out)?, out(&o.lse)?])
                }
                _ => {
                    let dout = rng.normal(numel(&q_dims));
                    let (o, lse) = cpu_forward(c, (&q, &k, &v), &valid, scale)?;
                    let o = up(&o, &q_dims)?;
                    let lse = b.upload_f32(&[c.b, c.nh, c.tq], &lse, DType::F32)?;
                    let g = b.attention_bwd(
                        &qt,
                        &kt,
                        &vt,
                        &valid_t,
                        &o,
                        &lse,
                        &up(&dout, &q_dims)?,
                        scale,
                    )?;
                    Ok(vec![out(&g.dq)?, out(&g.dk)?, out(&g.dv)?])
                }
            }
        }
        Op::KvWrite { start } => {
            let new_dims = [c.b, c.tq, c.nkv, c.hs];
            let mut cache = b.upload_f32(&kv_dims, &rng.normal(numel(&kv_dims)), c.dtype)?;
            let new = b.upload_f32(&new_dims, &rng.normal(numel(&new_dims)), c.dtype)?;
            b.kv_cache_write(&mut cache, &new, start)?;
            Ok(vec![out(&cache)?])
        }
        Op::RopeFwd | Op::RopeBwd => {
            let x = b.upload_f32(&q_dims, &rng.normal(numel(&q_dims)), c.dtype)?;
            let positions: Vec<u32> = rng.ids(c.b * c.tq, 4096);
            let positions = b.upload_u32(&[c.b, c.tq], &positions)?;
            let y = if c.op == Op::RopeFwd {
                b.rope_fwd(&x, &positions, THETA)?
            } else {
                b.rope_bwd(&x, &positions, THETA)?
            };
            Ok(vec![out(&y)?])
        }
    }
}

/// The forward's `out` (as stored in `case.dtype`) and `lse` from the Cpu, for the backward.
fn cpu_forward(
    c: &Case,
    (q, k, v): (&[f32], &[f32], &[f32]),
    valid: &[u32],
    scale: f32,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let cpu = Cpu::new();
    let up = |x: &[f32], dims: &[usize]| cpu.upload_f32(dims, x, c.dtype);
    let (q_dims, kv_dims) = ([c.b, c.tq, c.nh, c.hs], [c.b, c.tk, c.nkv, c.hs]);
    let valid = cpu.upload_u32(&[c.b, c.tk], valid)?;
    let o = cpu.attention_fwd(
        &up(q, &q_dims)?,
        &up(k, &kv_dims)?,
        &up(v, &kv_dims)?,
        &valid,
        scale,
    )?;
    Ok((cpu.download_f32(&o.out)?, cpu.download_f32(&o.lse)?))
}
