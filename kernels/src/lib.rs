//! The CUDA C++ sources of rlhf-rs, embedded in the binary, and the list of their entry points.
//!
//! Each op has one source, `src/<op>.cu`, whose entry points are named
//! `<op>_<fwd|bwd>[_variant]_<dtype>`; shared device helpers live in `src/*.cuh` ([`HEADERS`]),
//! pulled in with `#include "name.cuh"`. The runtime compiles the sources with NVRTC (inlining
//! the headers) for the Cuda backend and runs the resulting PTX on its emulator for the Emu
//! backend. Every entry point is listed in [`Source::entries`] with its parameter signature, so
//! a launcher can check its arguments (count, order, pointer element types, scalars) before a
//! launch. The launch geometry of each kernel is described in the header comment of its source.
//!
//! These kernels take flat argument lists (up to 15: the GRPO loss's pointers and scalars) rather
//! than the `#[repr(C)]` params struct that design.md suggests past ~6 arguments: every argument
//! is a pointer or a 32-bit scalar, and the list here is checked against both the CUDA signatures
//! (unit tests below) and the PTX (`tests/kernels_compile.rs`), which is the mismatch a params
//! struct guards against. Kernels with strides and many shapes (attention) are where a params
//! struct pays.

/// Element type behind a pointer parameter, or the storage dtype an entry point is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Elem {
    F32,
    BF16,
    U32,
}

impl Elem {
    pub fn size_in_bytes(self) -> usize {
        match self {
            Elem::F32 | Elem::U32 => 4,
            Elem::BF16 => 2,
        }
    }

    /// The suffix of entry-point names built for this dtype (`f32`, `bf16`, `u32`).
    pub fn suffix(self) -> &'static str {
        match self {
            Elem::F32 => "f32",
            Elem::BF16 => "bf16",
            Elem::U32 => "u32",
        }
    }
}

/// How one kernel parameter is passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamKind {
    /// A device pointer the kernel only reads (`const T*`).
    ConstPtr(Elem),
    /// A device pointer the kernel writes, and may read (`T*`).
    MutPtr(Elem),
    U32,
    I32,
    F32,
}

impl ParamKind {
    /// Bytes the parameter occupies in the launch's argument buffer.
    pub fn size_in_bytes(self) -> usize {
        match self {
            ParamKind::ConstPtr(_) | ParamKind::MutPtr(_) => 8,
            ParamKind::U32 | ParamKind::I32 | ParamKind::F32 => 4,
        }
    }

    pub fn is_pointer(self) -> bool {
        matches!(self, ParamKind::ConstPtr(_) | ParamKind::MutPtr(_))
    }
}

/// One kernel parameter, named as in the CUDA source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Param {
    pub name: &'static str,
    pub kind: ParamKind,
}

/// One `extern "C" __global__` entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The symbol, e.g. `layernorm_fwd_bf16`.
    pub name: &'static str,
    /// The op stem of its source, e.g. `layernorm`.
    pub op: &'static str,
    /// The storage dtype it is built for (`U32` for kernels that only see ids).
    pub dtype: Elem,
    /// Its parameters, in order.
    pub params: &'static [Param],
}

/// One embedded CUDA source file: an op and its entry points.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    /// The op stem, e.g. `layernorm`.
    pub op: &'static str,
    /// The file name, e.g. `layernorm.cu`.
    pub file: &'static str,
    /// The CUDA C++ text.
    pub code: &'static str,
    /// Every entry point it defines.
    pub entries: &'static [Entry],
}

/// One embedded header (`.cuh`) that sources include by its file name.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub file: &'static str,
    pub code: &'static str,
}

/// One parameter of an entry list: `T` stands for the entry's dtype.
macro_rules! param {
    ($t:ident, $name:ident, In<T>) => {
        Param {
            name: stringify!($name),
            kind: ParamKind::ConstPtr(Elem::$t),
        }
    };
    ($t:ident, $name:ident, In<$elem:ident>) => {
        Param {
            name: stringify!($name),
            kind: ParamKind::ConstPtr(Elem::$elem),
        }
    };
    ($t:ident, $name:ident, Out<T>) => {
        Param {
            name: stringify!($name),
            kind: ParamKind::MutPtr(Elem::$t),
        }
    };
    ($t:ident, $name:ident, Out<$elem:ident>) => {
        Param {
            name: stringify!($name),
            kind: ParamKind::MutPtr(Elem::$elem),
        }
    };
    ($t:ident, $name:ident, $scalar:ident) => {
        Param {
            name: stringify!($name),
            kind: ParamKind::$scalar,
        }
    };
}

macro_rules! suffix {
    (F32) => {
        "_f32"
    };
    (BF16) => {
        "_bf16"
    };
    (U32) => {
        "_u32"
    };
}

/// One entry point: `$params` is a parenthesised parameter list in which `T` is `$t`.
macro_rules! entry {
    ($op:literal, $stem:literal, $t:ident, ($($name:ident: $kind:ident $(<$elem:ident>)?),* $(,)?)) => {
        Entry {
            name: concat!($stem, suffix!($t)),
            op: $op,
            dtype: Elem::$t,
            params: &[$(param!($t, $name, $kind $(<$elem>)?)),*],
        }
    };
}

/// The entry points of one source: each line names a stem, the dtypes it is instantiated for,
/// and its parameters (`In<..>` a const pointer, `Out<..>` a written pointer, else a scalar).
macro_rules! entries {
    ($op:literal; $($stem:literal [$($t:ident),+] $params:tt;)+) => {
        &[$($(entry!($op, $stem, $t, $params),)+)+]
    };
}

macro_rules! source {
    ($op:literal, $entries:expr) => {
        Source {
            op: $op,
            file: concat!($op, ".cu"),
            code: include_str!(concat!($op, ".cu")),
            entries: $entries,
        }
    };
}

/// Every embedded header.
pub const HEADERS: &[Header] = &[
    Header {
        file: "common.cuh",
        code: include_str!("common.cuh"),
    },
    Header {
        file: "row_stream.cuh",
        code: include_str!("row_stream.cuh"),
    },
    Header {
        file: "logprob.cuh",
        code: include_str!("logprob.cuh"),
    },
    Header {
        file: "kl.cuh",
        code: include_str!("kl.cuh"),
    },
    Header {
        file: "masked_loss.cuh",
        code: include_str!("masked_loss.cuh"),
    },
    Header {
        file: "attention.cuh",
        code: include_str!("attention.cuh"),
    },
];

/// Every embedded source, in a fixed order.
pub const SOURCES: &[Source] = &[
    source!(
        "elementwise",
        entries!("elementwise";
            "elementwise_fwd_add" [F32, BF16] (a: In<T>, b: In<T>, y: Out<T>, n: U32);
            "elementwise_fwd_axpy" [F32, BF16] (y: Out<T>, alpha: F32, x: In<T>, n: U32);
            "elementwise_fwd_scale" [F32, BF16] (x: Out<T>, alpha: F32, n: U32);
        )
    ),
    source!(
        "gelu",
        entries!("gelu";
            "gelu_fwd" [F32, BF16] (x: In<T>, y: Out<T>, n: U32);
            "gelu_bwd" [F32, BF16] (x: In<T>, dy: In<T>, dx: Out<T>, n: U32);
        )
    ),
    source!(
        "swiglu",
        entries!("swiglu";
            "swiglu_fwd" [F32, BF16] (gate: In<T>, up: In<T>, y: Out<T>, n: U32);
            "swiglu_bwd" [F32, BF16]
                (gate: In<T>, up: In<T>, dy: In<T>, dgate: Out<T>, dup: Out<T>, n: U32);
        )
    ),
    source!(
        "layernorm",
        entries!("layernorm";
            "layernorm_fwd" [F32, BF16] (x: In<T>, weight: In<T>, bias: In<T>, y: Out<T>,
                mean: Out<F32>, rstd: Out<F32>, N: U32, C: U32, eps: F32);
            "layernorm_bwd" [F32, BF16] (dy: In<T>, x: In<T>, weight: In<T>, mean: In<F32>,
                rstd: In<F32>, dx: Out<T>, partial: Out<F32>, N: U32, C: U32);
            "layernorm_bwd_reduce" [F32, BF16]
                (partial: In<F32>, dweight: Out<T>, dbias: Out<T>, G: U32, C: U32);
        )
    ),
    source!(
        "rmsnorm",
        entries!("rmsnorm";
            "rmsnorm_fwd" [F32, BF16]
                (x: In<T>, weight: In<T>, y: Out<T>, rstd: Out<F32>, N: U32, C: U32, eps: F32);
            "rmsnorm_bwd" [F32, BF16] (dy: In<T>, x: In<T>, weight: In<T>, rstd: In<F32>,
                dx: Out<T>, partial: Out<F32>, N: U32, C: U32);
            "rmsnorm_bwd_reduce" [F32, BF16] (partial: In<F32>, dweight: Out<T>, G: U32, C: U32);
        )
    ),
    source!(
        "embedding",
        entries!("embedding";
            "embedding_fwd" [F32, BF16]
                (ids: In<U32>, table: In<T>, out: Out<T>, N: U32, V: U32, C: U32);
            "embedding_bwd_rank" [U32]
                (ids: In<U32>, order: Out<U32>, sorted_ids: Out<U32>, N: U32);
            "embedding_bwd" [F32, BF16] (order: In<U32>, sorted_ids: In<U32>, dy: In<T>,
                dtable: Out<T>, N: U32, V: U32, C: U32);
        )
    ),
    source!(
        "gemm",
        entries!("gemm";
            "gemm_fwd" [F32, BF16] (a: In<T>, b: In<T>, bias: In<T>, c: Out<T>, M: U32, N: U32,
                K: U32, batch: U32, flags: U32);
            "gemm_fwd_mma" [BF16] (a: In<T>, b: In<T>, bias: In<T>, c: Out<T>, M: U32, N: U32,
                K: U32, batch: U32, flags: U32);
            "gemm_bwd_bias" [F32, BF16] (dc: In<T>, dbias: Out<T>, R: U32, N: U32);
        )
    ),
    source!(
        "cross_entropy",
        entries!("cross_entropy";
            "cross_entropy_fwd" [F32, BF16] (logits: In<T>, targets: In<U32>, loss: Out<F32>,
                lse: Out<F32>, N: U32, V: U32, ignore_index: U32);
            "cross_entropy_bwd" [F32, BF16] (logits: In<T>, targets: In<U32>, lse: In<F32>,
                dloss: In<F32>, dlogits: Out<T>, N: U32, V: U32, ignore_index: U32);
        )
    ),
    source!(
        "logprob",
        entries!("logprob";
            "logprob_fwd" [F32, BF16] (logits: In<T>, targets: In<U32>, logprob: Out<F32>,
                entropy: Out<F32>, lse: Out<F32>, N: U32, V: U32, inv_temperature: F32);
            "logprob_fwd_kl" [F32, BF16] (logits: In<T>, ref_logits: In<T>, targets: In<U32>,
                logprob: Out<F32>, entropy: Out<F32>, lse: Out<F32>, ref_logprob: Out<F32>,
                kl: Out<F32>, N: U32, V: U32, inv_temperature: F32, estimator: U32);
            "logprob_bwd" [F32, BF16] (logits: In<T>, targets: In<U32>, lse: In<F32>,
                dlogprob: In<F32>, dlogits: Out<T>, N: U32, V: U32, inv_temperature: F32);
            "logprob_bwd_entropy" [F32, BF16] (logits: In<T>, targets: In<U32>, lse: In<F32>,
                entropy: In<F32>, dlogprob: In<F32>, dentropy: In<F32>, dlogits: Out<T>, N: U32,
                V: U32, inv_temperature: F32);
        )
    ),
    source!(
        "sample",
        entries!("sample";
            "sample_fwd" [F32, BF16] (logits: In<T>, ids: Out<U32>, V: U32, top_k: U32,
                p_mant: U32, p_shift: U32, inv_temperature: F32, seed_lo: U32, seed_hi: U32,
                sequence_lo: U32, sequence_hi: U32, step_lo: U32, step_hi: U32);
        )
    ),
    source!(
        "linear_logprob",
        entries!("linear_logprob";
            "linear_logprob_fwd_first" [F32, BF16] (chunk: In<T>, targets: In<U32>,
                max_out: Out<F32>, sum_out: Out<F32>, shifted_out: Out<F32>, target_out: Out<F32>,
                N: U32, Vc: U32, offset: U32, inv_temperature: F32);
            "linear_logprob_fwd" [F32, BF16] (chunk: In<T>, targets: In<U32>, max_in: In<F32>,
                sum_in: In<F32>, shifted_in: In<F32>, target_in: In<F32>, max_out: Out<F32>,
                sum_out: Out<F32>, shifted_out: Out<F32>, target_out: Out<F32>, N: U32, Vc: U32,
                offset: U32, inv_temperature: F32);
            "linear_logprob_fwd_last" [F32, BF16] (chunk: In<T>, targets: In<U32>, max_in: In<F32>,
                sum_in: In<F32>, shifted_in: In<F32>, target_in: In<F32>, logprob: Out<F32>,
                entropy: Out<F32>, lse: Out<F32>, N: U32, Vc: U32, offset: U32,
                inv_temperature: F32);
            "linear_logprob_fwd_whole" [F32, BF16] (chunk: In<T>, targets: In<U32>,
                logprob: Out<F32>, entropy: Out<F32>, lse: Out<F32>, N: U32, Vc: U32, offset: U32,
                inv_temperature: F32);
            "linear_logprob_bwd" [F32, BF16] (chunk: In<T>, targets: In<U32>, lse: In<F32>,
                dlogprob: In<F32>, dchunk: Out<T>, N: U32, Vc: U32, offset: U32,
                inv_temperature: F32);
            "linear_logprob_bwd_entropy" [F32, BF16] (chunk: In<T>, targets: In<U32>, lse: In<F32>,
                entropy: In<F32>, dlogprob: In<F32>, dentropy: In<F32>, dchunk: Out<T>, N: U32,
                Vc: U32, offset: U32, inv_temperature: F32);
        )
    ),
    source!(
        "kl",
        entries!("kl";
            "kl_fwd" [F32, BF16]
                (logprob: In<T>, ref_logprob: In<T>, kl: Out<T>, n: U32, estimator: U32);
            "kl_bwd" [F32, BF16] (logprob: In<T>, ref_logprob: In<T>, dkl: In<T>,
                dlogprob: Out<T>, n: U32, estimator: U32);
        )
    ),
    source!(
        "ppo_loss",
        entries!("ppo_loss";
            "ppo_loss_fwd" [F32, BF16] (logprob: In<T>, old_logprob: In<T>, advantages: In<T>,
                mask: In<U32>, row_weight: In<F32>, partial: Out<F32>, dlogprob: Out<T>,
                rows: U32, cols: U32, clip_low: F32, clip_high: F32, dual_clip: F32);
            "ppo_loss_fwd_totals" [F32, BF16] (partial: In<F32>, totals: Out<F32>, rows: U32,
                sequence_mean: U32);
        )
    ),
    source!(
        "grpo_loss",
        entries!("grpo_loss";
            "grpo_loss_fwd" [F32, BF16] (logprob: In<T>, old_logprob: In<T>, ref_logprob: In<T>,
                advantages: In<T>, mask: In<U32>, row_weight: In<F32>, partial: Out<F32>,
                dlogprob: Out<T>, rows: U32, cols: U32, clip_low: F32, clip_high: F32,
                dual_clip: F32, beta: F32);
            "grpo_loss_fwd_totals" [F32, BF16] (partial: In<F32>, totals: Out<F32>, rows: U32,
                sequence_mean: U32);
        )
    ),
    source!(
        "value_loss",
        entries!("value_loss";
            "value_loss_fwd" [F32, BF16] (values: In<T>, old_values: In<T>, returns: In<T>,
                mask: In<U32>, row_weight: In<F32>, partial: Out<F32>, dvalues: Out<T>,
                rows: U32, cols: U32, clip: F32);
            "value_loss_fwd_totals" [F32, BF16] (partial: In<F32>, totals: Out<F32>, rows: U32,
                sequence_mean: U32);
        )
    ),
    source!(
        "bt_loss",
        entries!("bt_loss";
            "bt_loss_fwd" [F32, BF16] (chosen: In<T>, rejected: In<T>, margin: In<T>,
                label: In<T>, loss: Out<F32>, P: U32, smoothing: F32);
            "bt_loss_bwd" [F32, BF16] (chosen: In<T>, rejected: In<T>, margin: In<T>,
                label: In<T>, dloss: In<F32>, dchosen: Out<T>, drejected: Out<T>, P: U32,
                smoothing: F32);
            "bt_loss_fwd_binary" [F32, BF16]
                (reward: In<T>, label: In<T>, loss: Out<F32>, P: U32);
            "bt_loss_bwd_binary" [F32, BF16]
                (reward: In<T>, label: In<T>, dloss: In<F32>, dreward: Out<T>, P: U32);
        )
    ),
    source!(
        "masked_whiten",
        entries!("masked_whiten";
            "masked_whiten_fwd" [F32, BF16] (x: In<T>, mask: In<U32>, y: Out<T>,
                stats: Out<F32>, n: U32, keep_mean: U32, eps: F32);
        )
    ),
    source!(
        "gae",
        entries!("gae";
            "gae_fwd" [F32, BF16] (rewards: In<T>, values: In<T>, mask: In<U32>,
                advantages: Out<T>, returns: Out<T>, rows: U32, cols: U32, gamma: F32,
                lambda: F32);
        )
    ),
    source!(
        "adamw",
        entries!("adamw";
            "adamw_fwd" [F32, BF16] (param: Out<F32>, grad: In<T>, m: Out<F32>, v: Out<F32>,
                n: U32, beta1: F32, beta2: F32, decay: F32, step_size: F32, inv_sqrt_c2: F32,
                eps: F32);
            "adamw_fwd_copy" [F32, BF16] (param: Out<F32>, grad: In<T>, m: Out<F32>,
                v: Out<F32>, copy: Out<BF16>, n: U32, beta1: F32, beta2: F32, decay: F32,
                step_size: F32, inv_sqrt_c2: F32, eps: F32);
        )
    ),
    source!(
        "grad_norm",
        entries!("grad_norm";
            "grad_norm_fwd_sumsq" [F32, BF16] (x: In<T>, partial: Out<F32>, n: U32, G: U32);
        )
    ),
    source!(
        "rope",
        entries!("rope";
            "rope_fwd" [F32, BF16] (x: In<T>, positions: In<U32>, inv_freq: In<F32>, y: Out<T>,
                N: U32, NH: U32, HS: U32);
            "rope_bwd" [F32, BF16] (dy: In<T>, positions: In<U32>, inv_freq: In<F32>, dx: Out<T>,
                N: U32, NH: U32, HS: U32);
        )
    ),
    source!(
        "attention",
        entries!("attention";
            "attention_fwd" [F32, BF16] (q: In<T>, k: In<T>, v: In<T>, key_valid: In<U32>,
                out: Out<T>, lse: Out<F32>, Tq: U32, Tk: U32, cap: U32, NH: U32, NKV: U32,
                HS: U32, scale: F32);
            "attention_bwd_prep" [F32, BF16]
                (out: In<T>, dout: In<T>, D: Out<F32>, N: U32, Tq: U32, NH: U32, HS: U32);
            "attention_bwd" [F32, BF16] (q: In<T>, k: In<T>, v: In<T>, key_valid: In<U32>,
                lse: In<F32>, D: In<F32>, dout: In<T>, dk: Out<T>, dv: Out<T>, Tq: U32, Tk: U32,
                cap: U32, NH: U32, NKV: U32, HS: U32, scale: F32);
            "attention_bwd_dq" [F32, BF16] (q: In<T>, k: In<T>, v: In<T>, key_valid: In<U32>,
                lse: In<F32>, D: In<F32>, dout: In<T>, dq: Out<T>, Tq: U32, Tk: U32, cap: U32,
                NH: U32, NKV: U32, HS: U32, scale: F32);
        )
    ),
    source!(
        "kv_cache",
        entries!("kv_cache";
            "kv_cache_fwd_write" [F32, BF16]
                (cache: Out<T>, src: In<T>, n: U32, chunk: U32, stride: U32, offset: U32);
            "kv_cache_fwd_decode" [F32, BF16] (q: In<T>, k_cache: In<T>, v_cache: In<T>,
                key_valid: In<U32>, out: Out<T>, lse: Out<F32>, Tq: U32, kv_len: U32, cap: U32,
                NH: U32, NKV: U32, HS: U32, scale: F32);
        )
    ),
];

/// The embedded header with this file name.
pub fn header(file: &str) -> Option<&'static Header> {
    HEADERS.iter().find(|h| h.file == file)
}

/// The source with this op stem.
pub fn source(op: &str) -> Option<&'static Source> {
    SOURCES.iter().find(|s| s.op == op)
}

/// The entry point with this symbol name, and the source defining it.
pub fn entry(name: &str) -> Option<(&'static Source, &'static Entry)> {
    SOURCES
        .iter()
        .find_map(|s| s.entries.iter().find(|e| e.name == name).map(|e| (s, e)))
}

#[cfg(test)]
mod tests;
