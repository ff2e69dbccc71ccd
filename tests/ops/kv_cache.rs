//! KV-cache writes and attention against a cache: decoding step by step must give the rows of the
//! full causal attention.

use runtime::{Backend, DType, Error};

use crate::backend_tests;
use crate::common::{assert_close, to_f64, Rng};

/// Rows `t0..t1` of a `[B, T, H, HS]` host array.
fn rows(x: &[f32], (b, t, h, hs): (usize, usize, usize, usize), t0: usize, t1: usize) -> Vec<f32> {
    (0..b).flat_map(|bi| x[(bi * t + t0) * h * hs..(bi * t + t1) * h * hs].to_vec()).collect()
}

fn decoding_matches_full_attention<B: Backend>(backend: &B) {
    let mut rng = Rng::new(21);
    let (bsz, t, nh, nkv, hs, tmax) = (2, 9, 4, 2, 8, 12);
    let q = rng.normal_vec(bsz * t * nh * hs, 1.0);
    let k = rng.normal_vec(bsz * t * nkv * hs, 1.0);
    let v = rng.normal_vec(bsz * t * nkv * hs, 1.0);
    // Row 0 left-padded by 3, row 1 unpadded.
    let mut valid: Vec<u32> = (0..t).map(|j| (j >= 3) as u32).chain(std::iter::repeat_n(1, t)).collect();
    let key_valid = backend.upload_u32(&[bsz, t], &valid).unwrap();
    let up = |x: &[f32], dims: &[usize]| backend.upload_f32(dims, x, DType::F32).unwrap();
    let scale = 0.35;
    let full = backend
        .attention_fwd(&up(&q, &[bsz, t, nh, hs]), &up(&k, &[bsz, t, nkv, hs]), &up(&v, &[bsz, t, nkv, hs]), &key_valid, scale)
        .unwrap();
    let full_out = backend.download_f32(&full.out).unwrap();

    let mut k_cache = backend.zeros(&[bsz, tmax, nkv, hs], DType::F32).unwrap();
    let mut v_cache = backend.zeros(&[bsz, tmax, nkv, hs], DType::F32).unwrap();
    // Slots past the sequence hold garbage validity that must never be read.
    valid = (0..bsz).flat_map(|b| (0..tmax).map(move |j| if j < t { (j >= 3 || b == 1) as u32 } else { 1 })).collect();
    let cache_valid = backend.upload_u32(&[bsz, tmax], &valid).unwrap();
    // Prefill 5 tokens, then one token per step.
    let steps = [(0, 5), (5, 6), (6, 7), (7, 8), (8, 9)];
    for (t0, t1) in steps {
        let n = t1 - t0;
        backend.kv_cache_write(&mut k_cache, &up(&rows(&k, (bsz, t, nkv, hs), t0, t1), &[bsz, n, nkv, hs]), t0).unwrap();
        backend.kv_cache_write(&mut v_cache, &up(&rows(&v, (bsz, t, nkv, hs), t0, t1), &[bsz, n, nkv, hs]), t0).unwrap();
        let q_step = up(&rows(&q, (bsz, t, nh, hs), t0, t1), &[bsz, n, nh, hs]);
        let out = backend.attention_decode(&q_step, &k_cache, &v_cache, &cache_valid, t1, scale).unwrap().out;
        assert_eq!(out.dims(), &[bsz, n, nh, hs]);
        let want = to_f64(&rows(&full_out, (bsz, t, nh, hs), t0, t1));
        assert_close(&format!("decode rows {t0}..{t1}"), &backend.download_f32(&out).unwrap(), &want, 1e-6, 1e-5);
    }
    // The cache now holds exactly k and v in its first t rows.
    let cached = backend.download_f32(&k_cache).unwrap();
    for b in 0..bsz {
        assert_eq!(&cached[b * tmax * nkv * hs..][..t * nkv * hs], &k[b * t * nkv * hs..][..t * nkv * hs]);
    }
}

/// A batch entry's decoded rows are the same bits alone as at row 1 of three: the kernel's
/// split of keys and heads over lanes depends on the shape, never on where the entry sits.
fn decode_entry_does_not_depend_on_batch_position<B: Backend>(backend: &B) {
    let mut rng = Rng::new(22);
    let (tq, tmax, kv_len) = (2, 11, 10);
    // (NH, NKV, HS): heads side by side with key slots, several KV heads per block, one head.
    for (nh, nkv, hs) in [(4, 1, 4), (6, 3, 5), (2, 2, 40)] {
        for dtype in [DType::F32, DType::BF16] {
            let q = rng.normal_vec(3 * tq * nh * hs, 1.0);
            let k = rng.normal_vec(3 * tmax * nkv * hs, 1.0);
            let v = rng.normal_vec(3 * tmax * nkv * hs, 1.0);
            let valid: Vec<u32> = (0..3 * tmax).map(|j| (j % tmax != 2) as u32).collect();
            let decode = |b0: usize, n: usize| {
                let part = |x: &[f32], row: usize| x[b0 * row..(b0 + n) * row].to_vec();
                let up = |x: &[f32], dims: &[usize]| backend.upload_f32(dims, x, dtype).unwrap();
                let out = backend
                    .attention_decode(
                        &up(&part(&q, tq * nh * hs), &[n, tq, nh, hs]),
                        &up(&part(&k, tmax * nkv * hs), &[n, tmax, nkv, hs]),
                        &up(&part(&v, tmax * nkv * hs), &[n, tmax, nkv, hs]),
                        &backend.upload_u32(&[n, tmax], &valid[b0 * tmax..(b0 + n) * tmax]).unwrap(),
                        kv_len,
                        0.4,
                    )
                    .unwrap();
                (backend.download_f32(&out.out).unwrap(), backend.download_f32(&out.lse).unwrap())
            };
            let (alone, alone_lse) = decode(1, 1);
            let (batch, batch_lse) = decode(0, 3);
            let row = tq * nh * hs;
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&alone), bits(&batch[row..2 * row]), "{nh} {nkv} {hs} {dtype:?}");
            assert_eq!(bits(&alone_lse), bits(&batch_lse[nh * tq..2 * nh * tq]), "{nh} {nkv} {hs} {dtype:?}");
        }
    }
}

fn kv_cache_write_keeps_bf16_and_rejects_bad_shapes<B: Backend>(backend: &B) {
    let mut cache = backend.zeros(&[1, 4, 1, 2], DType::BF16).unwrap();
    let new = backend.upload_f32(&[1, 2, 1, 2], &[1.0, 2.0, 3.0, 4.0], DType::BF16).unwrap();
    backend.kv_cache_write(&mut cache, &new, 1).unwrap();
    assert_eq!(backend.download_f32(&cache).unwrap(), vec![0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 0.0, 0.0]);

    let err = backend.kv_cache_write(&mut cache, &new, 3).unwrap_err();
    assert!(matches!(err, Error::Shape { op: "kv_cache_write", .. }), "{err}");
    assert!(err.to_string().contains("[1, 4, 1, 2]") && err.to_string().contains("row 3"), "{err}");
    let f32_new = backend.zeros(&[1, 1, 1, 2], DType::F32).unwrap();
    assert!(matches!(backend.kv_cache_write(&mut cache, &f32_new, 0), Err(Error::DType { .. })));

    let q = backend.zeros(&[1, 2, 1, 2], DType::BF16).unwrap();
    let valid = backend.upload_u32(&[1, 4], &[1, 1, 1, 1]).unwrap();
    let err = backend.attention_decode(&q, &cache, &cache, &valid, 5, 1.0).unwrap_err();
    assert!(err.to_string().contains("kv_len=5"), "{err}");
    let err = backend.attention_decode(&q, &cache, &cache, &valid, 1, 1.0).unwrap_err();
    assert!(err.to_string().contains("Tq=2"), "{err}");
}

backend_tests!(
    cpu, emu, cuda;
    decoding_matches_full_attention, decode_entry_does_not_depend_on_batch_position,
    kv_cache_write_keeps_bf16_and_rejects_bad_shapes);
