//! What only the emulator can show about the flash attention kernels: the global bytes they move
//! (the emulator's counters) against the I/O model of `kernels/src/attention.cu`
//! (`attention::io_model_bytes`), and that no buffer of T×T size is ever allocated (the
//! emulator's allocation high-water mark, which sees temporaries freed before the op returns).

use runtime::ops::attention::{io_model_bytes, AttentionDims};
use runtime::{Backend, DType, Emu, Error, Tensor};

use crate::common::Rng;

/// Global bytes (loads + stores requested by the active lanes, and the 32-byte sectors they
/// touched) of the kernels whose names start with `prefix`, since `emu` was made.
fn counted(emu: &Emu, prefix: &str) -> (u64, u64) {
    emu.kernel_stats()
        .iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .fold((0, 0), |(b, s), (_, k)| {
            let c = &k.counters;
            (
                b + c.global_load_bytes + c.global_store_bytes,
                s + 32 * (c.global_load_sectors + c.global_store_sectors),
            )
        })
}

fn bytes(t: &Tensor<Emu>) -> usize {
    t.numel() * t.dtype().size_in_bytes()
}

/// B=1, NH=2, NKV=1 (GQA 2), HS=64, causal, unpadded, T=512: forward and backward within 1.1×
/// of the model, and the peak of device memory during the op no more than its outputs (plus D in
/// the backward). Both dtypes: the model's K/V term scales with the element size, key_valid's
/// does not.
#[test]
fn flash_attention_moves_the_modelled_bytes_and_allocates_no_t_by_t_buffer() {
    let (b, t, nh, nkv, hs) = (1, 512, 2, 1, 64);
    let dims = AttentionDims {
        batch: b,
        q_len: t,
        kv_len: t,
        kv_capacity: t,
        heads: nh,
        kv_heads: nkv,
        head_size: hs,
    };
    let mut rng = Rng::new(31);
    for dtype in [DType::F32, DType::BF16] {
        let emu = Emu::new().unwrap_or_else(|e| panic!("{e}"));
        let up = |dims: &[usize], rng: &mut Rng| {
            emu.upload_f32(dims, &rng.normal_vec(dims.iter().product(), 1.0), dtype)
                .unwrap()
        };
        let q = up(&[b, t, nh, hs], &mut rng);
        let k = up(&[b, t, nkv, hs], &mut rng);
        let v = up(&[b, t, nkv, hs], &mut rng);
        let dout = up(&[b, t, nh, hs], &mut rng);
        let valid = emu.upload_u32(&[b, t], &vec![1; b * t]).unwrap();
        let scale = 1.0 / (hs as f32).sqrt();

        emu.reset_peak_allocated_bytes();
        let base = emu.allocated_bytes();
        let fwd = emu.attention_fwd(&q, &k, &v, &valid, scale).unwrap();
        let fwd_out = bytes(&fwd.out) + bytes(&fwd.lse);
        assert_eq!(
            emu.peak_allocated_bytes() - base,
            fwd_out,
            "{dtype}: forward temporaries"
        );
        emu.reset_peak_allocated_bytes();
        let g = emu
            .attention_bwd(&q, &k, &v, &valid, &fwd.out, &fwd.lse, &dout, scale)
            .unwrap();
        let d_bytes = b * nh * t * 4;
        let bwd_out = bytes(&g.dq) + bytes(&g.dk) + bytes(&g.dv) + d_bytes;
        assert_eq!(
            emu.peak_allocated_bytes() - base - fwd_out,
            bwd_out,
            "{dtype}: backward temporaries"
        );
        assert!(
            bwd_out + fwd_out < t * t * 4,
            "a T×T f32 buffer would stand out at this size"
        );

        let model = io_model_bytes(&dims, dtype);
        let (fwd_bytes, fwd_sectors) = counted(&emu, "attention_fwd_");
        let (bwd_bytes, bwd_sectors) = counted(&emu, "attention_bwd");
        for (what, got, sectors, want) in [
            ("forward", fwd_bytes, fwd_sectors, model.forward),
            ("backward", bwd_bytes, bwd_sectors, model.backward),
        ] {
            let ratio = got as f64 / want as f64;
            println!(
                "{dtype} {what}: counted {got} B ({sectors} B of sectors), model {want} B, ratio {ratio:.3}"
            );
            assert!(
                (0.9..=1.1).contains(&ratio),
                "{dtype} {what}: {got} counted vs {want} modelled"
            );
        }
    }
}

/// The kernels' register tiles stop at HS = 128: a larger head is a shape error naming it, not a
/// wrong answer (the Cpu backend has no such limit).
#[test]
fn head_sizes_past_the_kernels_maximum_are_shape_errors() {
    let emu = Emu::new().unwrap_or_else(|e| panic!("{e}"));
    let x = emu.zeros(&[1, 2, 1, 130], DType::F32).unwrap();
    let valid = emu.upload_u32(&[1, 2], &[1, 1]).unwrap();
    let err = emu.attention_fwd(&x, &x, &x, &valid, 0.1).unwrap_err();
    assert!(matches!(err, Error::Shape { op: "attention", .. }), "{err}");
    assert!(err.to_string().contains("HS=130"), "{err}");
}
