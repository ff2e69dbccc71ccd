use runtime::{Backend, DType, Error, Tensor};

use crate::backend_tests;
use crate::common::{
    assert_close, assert_row_alone_equals_in_batch, assert_shape_error, bf16_round, dot, error_of, norm_shapes, numeric_grad, to_f64, Rng,
};

/// Alternates a tiny and a large eps so the eps term is exercised, not just present.
fn eps_for(case: usize) -> f32 {
    [1e-5, 0.5][case % 2]
}

/// One row of LayerNorm in f64: `(y, mean, rstd)`.
fn layernorm_row(x: &[f64], w: &[f64], b: &[f64], eps: f64) -> (Vec<f64>, f64, f64) {
    let c = x.len() as f64;
    let mean = x.iter().sum::<f64>() / c;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / c;
    let rstd = 1.0 / (var + eps).sqrt();
    let y = x.iter().zip(w).zip(b).map(|((v, w), b)| (v - mean) * rstd * w + b).collect();
    (y, mean, rstd)
}

/// LayerNorm of every row of `x` `[rows, c]`: `(y, mean, rstd)`.
fn layernorm_ref(x: &[f64], w: &[f64], b: &[f64], eps: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut y, mut mean, mut rstd) = (vec![], vec![], vec![]);
    for row in x.chunks(w.len()) {
        let (yr, m, r) = layernorm_row(row, w, b, eps);
        y.extend(yr);
        mean.push(m);
        rstd.push(r);
    }
    (y, mean, rstd)
}

/// Rows offset from zero and of varying spread, so centring and scaling both matter.
fn inputs(rng: &mut Rng, dims: &[usize]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let c = *dims.last().unwrap();
    let x = rng.normal_vec(dims.iter().product(), 2.0).iter().map(|v| v + 3.0).collect();
    let w = rng.normal_vec(c, 0.5).iter().map(|v| v + 1.0).collect();
    (x, w, rng.normal_vec(c, 1.0))
}

fn layernorm_forward_matches_reference<B: Backend>(backend: &B) {
    let mut rng = Rng::new(41);
    for (case, dims) in norm_shapes().iter().enumerate() {
        let (c, rows) =
            (*dims.last().unwrap(), dims.iter().product::<usize>() / dims.last().unwrap());
        let eps = eps_for(case);
        let (x, w, b) = inputs(&mut rng, dims);
        let (want_y, want_mean, want_rstd) =
            layernorm_ref(&to_f64(&x), &to_f64(&w), &to_f64(&b), eps as f64);
        let out = backend
            .layernorm_fwd(
                &backend.upload_f32(dims, &x, DType::F32).unwrap(),
                &backend.upload_f32(&[c], &w, DType::F32).unwrap(),
                &backend.upload_f32(&[c], &b, DType::F32).unwrap(),
                eps,
            )
            .unwrap();
        assert_eq!((out.y.dims(), out.y.dtype()), (&dims[..], DType::F32));
        assert_eq!((out.mean.dims(), out.mean.dtype()), (&[rows][..], DType::F32));
        assert_eq!((out.rstd.dims(), out.rstd.dtype()), (&[rows][..], DType::F32));
        let what = format!("{dims:?} eps {eps}");
        assert_close(
            &format!("layernorm y {what}"),
            &backend.download_f32(&out.y).unwrap(),
            &want_y,
            2e-5,
            1e-5,
        );
        assert_close(
            &format!("layernorm mean {what}"),
            &backend.download_f32(&out.mean).unwrap(),
            &want_mean,
            1e-5,
            1e-5,
        );
        assert_close(
            &format!("layernorm rstd {what}"),
            &backend.download_f32(&out.rstd).unwrap(),
            &want_rstd,
            1e-5,
            1e-5,
        );
    }
}

fn layernorm_backward_matches_finite_differences<B: Backend>(backend: &B) {
    let mut rng = Rng::new(42);
    for (case, dims) in norm_shapes().iter().enumerate() {
        let c = *dims.last().unwrap();
        let eps = eps_for(case);
        let (x, w, b) = inputs(&mut rng, dims);
        let dy = rng.normal_vec(x.len(), 1.0);
        let (x64, w64, b64, dy64) = (to_f64(&x), to_f64(&w), to_f64(&b), to_f64(&dy));
        let loss =
            |x: &[f64], w: &[f64], b: &[f64]| dot(&dy64, &layernorm_ref(x, w, b, eps as f64).0);
        // Rows are independent, so the x-gradient of each row is the finite difference of that
        // row's share of the loss (n rows × C² work rather than (n·C)²).
        let mut want_dx = vec![];
        for (x_row, dy_row) in x64.chunks(c).zip(dy64.chunks(c)) {
            let row_loss = |xr: &[f64]| dot(dy_row, &layernorm_row(xr, &w64, &b64, eps as f64).0);
            want_dx.extend(numeric_grad(x_row, 1e-5, row_loss));
        }
        let want_dw = numeric_grad(&w64, 1e-5, |wv| loss(&x64, wv, &b64));
        let want_db = numeric_grad(&b64, 1e-5, |bv| loss(&x64, &w64, bv));

        let xt = backend.upload_f32(dims, &x, DType::F32).unwrap();
        let wt = backend.upload_f32(&[c], &w, DType::F32).unwrap();
        let bt = backend.upload_f32(&[c], &b, DType::F32).unwrap();
        let out = backend.layernorm_fwd(&xt, &wt, &bt, eps).unwrap();
        let dyt = backend.upload_f32(dims, &dy, DType::F32).unwrap();
        let g = backend.layernorm_bwd(&dyt, &xt, &wt, &out.mean, &out.rstd).unwrap();
        assert_eq!(
            (g.dx.dims(), g.dweight.dims(), g.dbias.dims()),
            (&dims[..], &[c][..], &[c][..])
        );
        let what = format!("{dims:?} eps {eps}");
        assert_close(
            &format!("layernorm dx {what}"),
            &backend.download_f32(&g.dx).unwrap(),
            &want_dx,
            1e-4,
            1e-4,
        );
        assert_close(
            &format!("layernorm dweight {what}"),
            &backend.download_f32(&g.dweight).unwrap(),
            &want_dw,
            1e-4,
            1e-4,
        );
        assert_close(
            &format!("layernorm dbias {what}"),
            &backend.download_f32(&g.dbias).unwrap(),
            &want_db,
            1e-4,
            1e-4,
        );
    }
}

fn layernorm_bf16_within_bf16_tolerance<B: Backend>(backend: &B) {
    let mut rng = Rng::new(43);
    let dims = [7, 769];
    let (x, w, b) = inputs(&mut rng, &dims);
    let xt = backend.upload_f32(&dims, &x, DType::BF16).unwrap();
    let wt = backend.upload_f32(&[769], &w, DType::BF16).unwrap();
    let bt = backend.upload_f32(&[769], &b, DType::BF16).unwrap();
    let out = backend.layernorm_fwd(&xt, &wt, &bt, 1e-5).unwrap();
    assert_eq!(
        (out.y.dtype(), out.mean.dtype(), out.rstd.dtype()),
        (DType::BF16, DType::F32, DType::F32)
    );
    // The reference sees the stored (rounded) inputs; y is rounded once more, at most half a bf16
    // ulp (2^-8 relative), while the f32 statistics stay at f32 accuracy.
    let (r64, rw, rb) = (to_f64(&bf16_round(&x)), to_f64(&bf16_round(&w)), to_f64(&bf16_round(&b)));
    let (want_y, want_mean, want_rstd) = layernorm_ref(&r64, &rw, &rb, 1e-5);
    assert_close("layernorm bf16 y", &backend.download_f32(&out.y).unwrap(), &want_y, 1e-5, 4e-3);
    assert_close(
        "layernorm bf16 mean",
        &backend.download_f32(&out.mean).unwrap(),
        &want_mean,
        1e-5,
        1e-5,
    );
    assert_close(
        "layernorm bf16 rstd",
        &backend.download_f32(&out.rstd).unwrap(),
        &want_rstd,
        1e-5,
        1e-5,
    );
    let dyt = backend.upload_f32(&dims, &x, DType::BF16).unwrap();
    let g = backend.layernorm_bwd(&dyt, &xt, &wt, &out.mean, &out.rstd).unwrap();
    assert_eq!(
        (g.dx.dtype(), g.dweight.dtype(), g.dbias.dtype()),
        (DType::BF16, DType::BF16, DType::BF16)
    );
}

fn layernorm_rejects_bad_shapes_dtypes_and_eps<B: Backend>(backend: &B) {
    let f32_zeros = |dims: &[usize]| backend.zeros(dims, DType::F32).unwrap();
    let (x, w, b) = (f32_zeros(&[3, 4]), f32_zeros(&[4]), f32_zeros(&[4]));

    assert_shape_error(
        backend.layernorm_fwd(&x, &f32_zeros(&[5]), &b, 1e-5),
        "layernorm_fwd",
        &["weight", "[5]", "[4]"],
    );
    assert_shape_error(
        backend.layernorm_fwd(&x, &w, &f32_zeros(&[3]), 1e-5),
        "layernorm_fwd",
        &["bias", "[3]", "[4]"],
    );
    assert_shape_error(
        backend.layernorm_fwd(&f32_zeros(&[3, 0]), &f32_zeros(&[0]), &f32_zeros(&[0]), 1e-5),
        "layernorm_fwd",
        &["[3, 0]"],
    );
    assert_shape_error(
        backend.layernorm_fwd(&f32_zeros(&[]), &f32_zeros(&[1]), &f32_zeros(&[1]), 1e-5),
        "layernorm_fwd",
        &["[]"],
    );

    let err =
        error_of(backend.layernorm_fwd(&x, &backend.zeros(&[4], DType::BF16).unwrap(), &b, 1e-5));
    assert!(matches!(err, Error::DType { op: "layernorm_fwd", arg: "weight", .. }), "{err}");
    let err =
        error_of(backend.layernorm_fwd(&backend.zeros(&[3, 4], DType::U32).unwrap(), &w, &b, 1e-5));
    assert!(matches!(err, Error::DType { op: "layernorm_fwd", arg: "x", .. }), "{err}");

    for eps in [-1e-5, f32::NAN, f32::INFINITY] {
        let err = error_of(backend.layernorm_fwd(&x, &w, &b, eps));
        let msg = err.to_string();
        assert!(matches!(err, Error::Argument { op: "layernorm_fwd", .. }), "{msg}");
        assert!(msg.contains("eps") && msg.contains(&eps.to_string()), "{msg}");
    }
    assert!(backend.layernorm_fwd(&x, &w, &b, 0.0).is_ok(), "eps = 0 is allowed");

    let (mean, rstd) = (f32_zeros(&[3]), f32_zeros(&[3]));
    assert_shape_error(
        backend.layernorm_bwd(&f32_zeros(&[4, 3]), &x, &w, &mean, &rstd),
        "layernorm_bwd",
        &["dy", "[4, 3]", "[3, 4]"],
    );
    assert_shape_error(
        backend.layernorm_bwd(&x, &x, &f32_zeros(&[3]), &mean, &rstd),
        "layernorm_bwd",
        &["weight", "[3]"],
    );
    assert_shape_error(
        backend.layernorm_bwd(&x, &x, &w, &f32_zeros(&[3, 1]), &rstd),
        "layernorm_bwd",
        &["mean", "[3, 1]", "[3]"],
    );
    assert_shape_error(
        backend.layernorm_bwd(&x, &x, &w, &mean, &f32_zeros(&[4])),
        "layernorm_bwd",
        &["rstd", "[4]", "[3]"],
    );
    let err = error_of(backend.layernorm_bwd(
        &x,
        &x,
        &w,
        &mean,
        &backend.zeros(&[3], DType::BF16).unwrap(),
    ));
    assert!(matches!(err, Error::DType { op: "layernorm_bwd", arg: "rstd", .. }), "{err}");
    let err = error_of(backend.layernorm_bwd(
        &backend.zeros(&[3, 4], DType::BF16).unwrap(),
        &x,
        &w,
        &mean,
        &rstd,
    ));
    assert!(matches!(err, Error::DType { op: "layernorm_bwd", arg: "dy", .. }), "{err}");
}

/// A row's outputs are the same bits alone as at row 1 of three, where an odd C leaves it off
/// the 16-byte grid: the kernel's fold follows the element index, never the address.
fn layernorm_row_does_not_depend_on_its_position<B: Backend>(backend: &B) {
    let mut rng = Rng::new(43);
    for c in [5, 33, 769] {
        for dtype in [DType::F32, DType::BF16] {
            let (x, w, b) = inputs(&mut rng, &[3, c]);
            let up = |v: &[f32], dims: &[usize]| backend.upload_f32(dims, v, dtype).unwrap();
            let get = |t: &Tensor<B>| backend.download_f32(t).unwrap();
            assert_row_alone_equals_in_batch(&format!("C {c} {dtype:?}"), |r0, n| {
                let rows = r0 * c..(r0 + n) * c;
                let out = backend.layernorm_fwd(&up(&x[rows], &[n, c]), &up(&w, &[c]), &up(&b, &[c]), 1e-5).unwrap();
                vec![(get(&out.y), c), (get(&out.mean), 1), (get(&out.rstd), 1)]
            });
        }
    }
}

/// A row's dx is the same bits alone as at row 1 of three (off the 16-byte grid for odd C): the
/// backward's row sums fold by element index, never by address.
fn layernorm_backward_row_does_not_depend_on_its_position<B: Backend>(backend: &B) {
    let mut rng = Rng::new(44);
    for c in [5, 33, 769] {
        for dtype in [DType::F32, DType::BF16] {
            let (x, w, b) = inputs(&mut rng, &[3, c]);
            let dy = rng.normal_vec(3 * c, 1.0);
            let up = |v: &[f32], dims: &[usize]| backend.upload_f32(dims, v, dtype).unwrap();
            let out = backend.layernorm_fwd(&up(&x, &[3, c]), &up(&w, &[c]), &up(&b, &[c]), 1e-5).unwrap();
            let stats = [out.mean, out.rstd].map(|t| backend.download_f32(&t).unwrap());
            assert_row_alone_equals_in_batch(&format!("C {c} {dtype:?}"), |r0, n| {
                let rows = r0 * c..(r0 + n) * c;
                let stat = |i: usize| backend.upload_f32(&[n], &stats[i][r0..r0 + n], DType::F32).unwrap();
                let grads = backend.layernorm_bwd(&up(&dy[rows.clone()], &[n, c]), &up(&x[rows], &[n, c]), &up(&w, &[c]), &stat(0), &stat(1)).unwrap();
                vec![(backend.download_f32(&grads.dx).unwrap(), c)]
            });
        }
    }
}

backend_tests!(
    cpu, emu, cuda;
    layernorm_forward_matches_reference,
    layernorm_row_does_not_depend_on_its_position,
    layernorm_backward_row_does_not_depend_on_its_position,
    layernorm_backward_matches_finite_differences,
    layernorm_bf16_within_bf16_tolerance,
    layernorm_rejects_bad_shapes_dtypes_and_eps,
);
