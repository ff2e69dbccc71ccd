use runtime::{Backend, DType, Error, Tensor};

use crate::backend_tests;
use crate::common::{
    assert_close, assert_row_alone_equals_in_batch, assert_shape_error, bf16_round, dot, error_of, norm_shapes, numeric_grad, to_f64, Rng,
};

/// Alternates a tiny and a large eps so the eps term is exercised, not just present.
fn eps_for(case: usize) -> f32 {
    [1e-6, 0.5][case % 2]
}

/// One row of RMSNorm in f64: `(y, rstd)`.
fn rmsnorm_row(x: &[f64], w: &[f64], eps: f64) -> (Vec<f64>, f64) {
    let mean_square = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let rstd = 1.0 / (mean_square + eps).sqrt();
    (x.iter().zip(w).map(|(v, w)| v * rstd * w).collect(), rstd)
}

/// RMSNorm of every row of `x` `[rows, c]`: `(y, rstd)`.
fn rmsnorm_ref(x: &[f64], w: &[f64], eps: f64) -> (Vec<f64>, Vec<f64>) {
    let (mut y, mut rstd) = (vec![], vec![]);
    for row in x.chunks(w.len()) {
        let (yr, r) = rmsnorm_row(row, w, eps);
        y.extend(yr);
        rstd.push(r);
    }
    (y, rstd)
}

/// Rows of varying scale (including an offset, which RMSNorm must not remove).
fn inputs(rng: &mut Rng, dims: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let c = *dims.last().unwrap();
    let x = rng.normal_vec(dims.iter().product(), 2.0).iter().map(|v| v + 0.5).collect();
    let w = rng.normal_vec(c, 0.5).iter().map(|v| v + 1.0).collect();
    (x, w)
}

fn rmsnorm_forward_matches_reference<B: Backend>(backend: &B) {
    let mut rng = Rng::new(51);
    for (case, dims) in norm_shapes().iter().enumerate() {
        let (c, rows) =
            (*dims.last().unwrap(), dims.iter().product::<usize>() / dims.last().unwrap());
        let eps = eps_for(case);
        let (x, w) = inputs(&mut rng, dims);
        let (want_y, want_rstd) = rmsnorm_ref(&to_f64(&x), &to_f64(&w), eps as f64);
        let out = backend
            .rmsnorm_fwd(
                &backend.upload_f32(dims, &x, DType::F32).unwrap(),
                &backend.upload_f32(&[c], &w, DType::F32).unwrap(),
                eps,
            )
            .unwrap();
        assert_eq!((out.y.dims(), out.y.dtype()), (&dims[..], DType::F32));
        assert_eq!((out.rstd.dims(), out.rstd.dtype()), (&[rows][..], DType::F32));
        let what = format!("{dims:?} eps {eps}");
        assert_close(
            &format!("rmsnorm y {what}"),
            &backend.download_f32(&out.y).unwrap(),
            &want_y,
            1e-5,
            1e-5,
        );
        assert_close(
            &format!("rmsnorm rstd {what}"),
            &backend.download_f32(&out.rstd).unwrap(),
            &want_rstd,
            1e-5,
            1e-5,
        );
    }
}

fn rmsnorm_backward_matches_finite_differences<B: Backend>(backend: &B) {
    let mut rng = Rng::new(52);
    for (case, dims) in norm_shapes().iter().enumerate() {
        let c = *dims.last().unwrap();
        let eps = eps_for(case);
        let (x, w) = inputs(&mut rng, dims);
        let dy = rng.normal_vec(x.len(), 1.0);
        let (x64, w64, dy64) = (to_f64(&x), to_f64(&w), to_f64(&dy));
        // Rows are independent, so the x-gradient of each row is the finite difference of that
        // row's share of the loss (n rows × C² work rather than (n·C)²).
        let mut want_dx = vec![];
        for (x_row, dy_row) in x64.chunks(c).zip(dy64.chunks(c)) {
            let row_loss = |xr: &[f64]| dot(dy_row, &rmsnorm_row(xr, &w64, eps as f64).0);
            want_dx.extend(numeric_grad(x_row, 1e-5, row_loss));
        }
        let want_dw =
            numeric_grad(&w64, 1e-5, |wv| dot(&dy64, &rmsnorm_ref(&x64, wv, eps as f64).0));

        let xt = backend.upload_f32(dims, &x, DType::F32).unwrap();
        let wt = backend.upload_f32(&[c], &w, DType::F32).unwrap();
        let out = backend.rmsnorm_fwd(&xt, &wt, eps).unwrap();
        let dyt = backend.upload_f32(dims, &dy, DType::F32).unwrap();
        let g = backend.rmsnorm_bwd(&dyt, &xt, &wt, &out.rstd).unwrap();
        assert_eq!((g.dx.dims(), g.dweight.dims()), (&dims[..], &[c][..]));
        let what = format!("{dims:?} eps {eps}");
        assert_close(
            &format!("rmsnorm dx {what}"),
            &backend.download_f32(&g.dx).unwrap(),
            &want_dx,
            1e-4,
            1e-4,
        );
        assert_close(
            &format!("rmsnorm dweight {what}"),
            &backend.download_f32(&g.dweight).unwrap(),
            &want_dw,
            1e-4,
            1e-4,
        );
    }
}

fn rmsnorm_bf16_within_bf16_tolerance<B: Backend>(backend: &B) {
    let mut rng = Rng::new(53);
    let dims = [7, 769];
    let (x, w) = inputs(&mut rng, &dims);
    let xt = backend.upload_f32(&dims, &x, DType::BF16).unwrap();
    let wt = backend.upload_f32(&[769], &w, DType::BF16).unwrap();
    let out = backend.rmsnorm_fwd(&xt, &wt, 1e-6).unwrap();
    assert_eq!((out.y.dtype(), out.rstd.dtype()), (DType::BF16, DType::F32));
    // The reference sees the stored (rounded) inputs; y is rounded once more, at most half a bf16
    // ulp (2^-8 relative), while the f32 rstd stays at f32 accuracy.
    let (want_y, want_rstd) = rmsnorm_ref(&to_f64(&bf16_round(&x)), &to_f64(&bf16_round(&w)), 1e-6);
    assert_close("rmsnorm bf16 y", &backend.download_f32(&out.y).unwrap(), &want_y, 1e-5, 4e-3);
    assert_close(
        "rmsnorm bf16 rstd",
        &backend.download_f32(&out.rstd).unwrap(),
        &want_rstd,
        1e-5,
        1e-5,
    );
    let dyt = backend.upload_f32(&dims, &x, DType::BF16).unwrap();
    let g = backend.rmsnorm_bwd(&dyt, &xt, &wt, &out.rstd).unwrap();
    assert_eq!((g.dx.dtype(), g.dweight.dtype()), (DType::BF16, DType::BF16));
}

fn rmsnorm_rejects_bad_shapes_dtypes_and_eps<B: Backend>(backend: &B) {
    let f32_zeros = |dims: &[usize]| backend.zeros(dims, DType::F32).unwrap();
    let (x, w) = (f32_zeros(&[3, 4]), f32_zeros(&[4]));

    assert_shape_error(
        backend.rmsnorm_fwd(&x, &f32_zeros(&[5]), 1e-5),
        "rmsnorm_fwd",
        &["weight", "[5]", "[4]"],
    );
    assert_shape_error(
        backend.rmsnorm_fwd(&x, &f32_zeros(&[3, 4]), 1e-5),
        "rmsnorm_fwd",
        &["weight", "[3, 4]", "[4]"],
    );
    assert_shape_error(
        backend.rmsnorm_fwd(&f32_zeros(&[3, 0]), &f32_zeros(&[0]), 1e-5),
        "rmsnorm_fwd",
        &["[3, 0]"],
    );
    assert_shape_error(
        backend.rmsnorm_fwd(&f32_zeros(&[]), &f32_zeros(&[1]), 1e-5),
        "rmsnorm_fwd",
        &["[]"],
    );

    let err = error_of(backend.rmsnorm_fwd(&x, &backend.zeros(&[4], DType::BF16).unwrap(), 1e-5));
    assert!(matches!(err, Error::DType { op: "rmsnorm_fwd", arg: "weight", .. }), "{err}");
    let err = error_of(backend.rmsnorm_fwd(&backend.zeros(&[3, 4], DType::U32).unwrap(), &w, 1e-5));
    assert!(matches!(err, Error::DType { op: "rmsnorm_fwd", arg: "x", .. }), "{err}");

    for eps in [-1e-5, f32::NAN, f32::NEG_INFINITY] {
        let err = error_of(backend.rmsnorm_fwd(&x, &w, eps));
        let msg = err.to_string();
        assert!(matches!(err, Error::Argument { op: "rmsnorm_fwd", .. }), "{msg}");
        assert!(msg.contains("eps") && msg.contains(&eps.to_string()), "{msg}");
    }
    assert!(backend.rmsnorm_fwd(&x, &w, 0.0).is_ok(), "eps = 0 is allowed");

    let rstd = f32_zeros(&[3]);
    assert_shape_error(
        backend.rmsnorm_bwd(&f32_zeros(&[4, 3]), &x, &w, &rstd),
        "rmsnorm_bwd",
        &["dy", "[4, 3]", "[3, 4]"],
    );
    assert_shape_error(
        backend.rmsnorm_bwd(&x, &x, &f32_zeros(&[3]), &rstd),
        "rmsnorm_bwd",
        &["weight", "[3]"],
    );
    assert_shape_error(
        backend.rmsnorm_bwd(&x, &x, &w, &f32_zeros(&[12])),
        "rmsnorm_bwd",
        &["rstd", "[12]", "[3]"],
    );
    let err = error_of(backend.rmsnorm_bwd(&x, &x, &w, &backend.zeros(&[3], DType::BF16).unwrap()));
    assert!(matches!(err, Error::DType { op: "rmsnorm_bwd", arg: "rstd", .. }), "{err}");
    let err =
        error_of(backend.rmsnorm_bwd(&backend.zeros(&[3, 4], DType::BF16).unwrap(), &x, &w, &rstd));
    assert!(matches!(err, Error::DType { op: "rmsnorm_bwd", arg: "dy", .. }), "{err}");
}

/// A row's outputs are the same bits alone as at row 1 of three, where an odd C leaves it off
/// the 16-byte grid: the kernel's fold follows the element index, never the address.
fn rmsnorm_row_does_not_depend_on_its_position<B: Backend>(backend: &B) {
    let mut rng = Rng::new(43);
    for c in [5, 33, 769] {
        for dtype in [DType::F32, DType::BF16] {
            let (x, w) = inputs(&mut rng, &[3, c]);
            let up = |v: &[f32], dims: &[usize]| backend.upload_f32(dims, v, dtype).unwrap();
            let get = |t: &Tensor<B>| backend.download_f32(t).unwrap();
            assert_row_alone_equals_in_batch(&format!("C {c} {dtype:?}"), |r0, n| {
                let rows = r0 * c..(r0 + n) * c;
                let out = backend.rmsnorm_fwd(&up(&x[rows], &[n, c]), &up(&w, &[c]), 1e-5).unwrap();
                vec![(get(&out.y), c), (get(&out.rstd), 1)]
            });
        }
    }
}

/// A row's dx is the same bits alone as at row 1 of three (off the 16-byte grid for odd C): the
/// backward's row sums fold by element index, never by address.
fn rmsnorm_backward_row_does_not_depend_on_its_position<B: Backend>(backend: &B) {
    let mut rng = Rng::new(44);
    for c in [5, 33, 769] {
        for dtype in [DType::F32, DType::BF16] {
            let (x, w) = inputs(&mut rng, &[3, c]);
            let dy = rng.normal_vec(3 * c, 1.0);
            let up = |v: &[f32], dims: &[usize]| backend.upload_f32(dims, v, dtype).unwrap();
            let out = backend.rmsnorm_fwd(&up(&x, &[3, c]), &up(&w, &[c]), 1e-5).unwrap();
            let stats = [out.rstd].map(|t| backend.download_f32(&t).unwrap());
            assert_row_alone_equals_in_batch(&format!("C {c} {dtype:?}"), |r0, n| {
                let rows = r0 * c..(r0 + n) * c;
                let stat = |i: usize| backend.upload_f32(&[n], &stats[i][r0..r0 + n], DType::F32).unwrap();
                let grads = backend.rmsnorm_bwd(&up(&dy[rows.clone()], &[n, c]), &up(&x[rows], &[n, c]), &up(&w, &[c]), &stat(0)).unwrap();
                vec![(backend.download_f32(&grads.dx).unwrap(), c)]
            });
        }
    }
}

backend_tests!(
    cpu, emu, cuda;
    rmsnorm_forward_matches_reference,
    rmsnorm_row_does_not_depend_on_its_position,
    rmsnorm_backward_row_does_not_depend_on_its_position,
    rmsnorm_backward_matches_finite_differences,
    rmsnorm_bf16_within_bf16_tolerance,
    rmsnorm_rejects_bad_shapes_dtypes_and_eps,
);
