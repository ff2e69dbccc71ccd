use runtime::{Backend, DType, Error};

use crate::backend_tests;
use crate::common::{assert_close, bf16_round, numeric_grad, to_f64, Rng};

/// Shapes with awkward sizes, an empty one, and ranks 1 to 3.
const SHAPES: &[&[usize]] = &[&[1], &[7], &[64, 7], &[7, 33], &[1, 769], &[4, 16, 769], &[2, 0, 3]];

/// `silu(g)·u` in f64.
fn swiglu_ref(g: f64, u: f64) -> f64 {
    g / (1.0 + (-g).exp()) * u
}

fn swiglu_forward_matches_reference<B: Backend>(backend: &B) {
    let mut rng = Rng::new(21);
    for &dims in SHAPES {
        let n = dims.iter().product();
        // Gates wide enough that the sigmoid saturates on both sides.
        let (gate, up) = (rng.normal_vec(n, 4.0), rng.normal_vec(n, 1.0));
        let want: Vec<f64> =
            to_f64(&gate).into_iter().zip(to_f64(&up)).map(|(g, u)| swiglu_ref(g, u)).collect();
        let gt = backend.upload_f32(dims, &gate, DType::F32).unwrap();
        let ut = backend.upload_f32(dims, &up, DType::F32).unwrap();
        let y = backend.swiglu_fwd(&gt, &ut).unwrap();
        assert_eq!((y.dims(), y.dtype()), (dims, DType::F32));
        assert_close(
            &format!("swiglu {dims:?}"),
            &backend.download_f32(&y).unwrap(),
            &want,
            1e-6,
            1e-5,
        );
    }
}

fn swiglu_backward_matches_finite_differences<B: Backend>(backend: &B) {
    let mut rng = Rng::new(22);
    for &dims in SHAPES {
        let n = dims.iter().product();
        let (gate, up, dy) =
            (rng.normal_vec(n, 4.0), rng.normal_vec(n, 1.0), rng.normal_vec(n, 1.0));
        let (g64, up64, dy64) = (to_f64(&gate), to_f64(&up), to_f64(&dy));
        // loss = Σ dy ⊙ swiglu(gate, up) is a sum of independent terms, so its derivative in
        // gate[i] or up[i] is the finite difference of term i alone.
        let mut want_dgate = vec![];
        let mut want_dup = vec![];
        for i in 0..n {
            let (g, u, d) = (g64[i], up64[i], dy64[i]);
            want_dgate.push(numeric_grad(&[g], 1e-4, |v| d * swiglu_ref(v[0], u))[0]);
            want_dup.push(numeric_grad(&[u], 1e-4, |v| d * swiglu_ref(g, v[0]))[0]);
        }
        let gt = backend.upload_f32(dims, &gate, DType::F32).unwrap();
        let ut = backend.upload_f32(dims, &up, DType::F32).unwrap();
        let dyt = backend.upload_f32(dims, &dy, DType::F32).unwrap();
        let grads = backend.swiglu_bwd(&gt, &ut, &dyt).unwrap();
        assert_eq!((grads.dgate.dims(), grads.dup.dims()), (dims, dims));
        let dgate = backend.download_f32(&grads.dgate).unwrap();
        let dup = backend.download_f32(&grads.dup).unwrap();
        assert_close(&format!("swiglu dgate {dims:?}"), &dgate, &want_dgate, 1e-5, 1e-4);
        assert_close(&format!("swiglu dup {dims:?}"), &dup, &want_dup, 1e-5, 1e-4);
    }
}

fn swiglu_bf16_within_bf16_tolerance<B: Backend>(backend: &B) {
    let mut rng = Rng::new(23);
    let dims = [7, 769];
    let (gate, up) = (rng.normal_vec(7 * 769, 4.0), rng.normal_vec(7 * 769, 1.0));
    let gt = backend.upload_f32(&dims, &gate, DType::BF16).unwrap();
    let ut = backend.upload_f32(&dims, &up, DType::BF16).unwrap();
    let y = backend.swiglu_fwd(&gt, &ut).unwrap();
    assert_eq!(y.dtype(), DType::BF16);
    // The reference sees the stored (rounded) inputs; the output is rounded once more, at most
    // half a bf16 ulp: 2^-8 relative.
    let want: Vec<f64> = to_f64(&bf16_round(&gate))
        .into_iter()
        .zip(to_f64(&bf16_round(&up)))
        .map(|(g, u)| swiglu_ref(g, u))
        .collect();
    assert_close("swiglu bf16", &backend.download_f32(&y).unwrap(), &want, 1e-6, 4e-3);
    let dyt = backend.upload_f32(&dims, &up, DType::BF16).unwrap();
    let grads = backend.swiglu_bwd(&gt, &ut, &dyt).unwrap();
    assert_eq!((grads.dgate.dtype(), grads.dup.dtype()), (DType::BF16, DType::BF16));
}

fn swiglu_rejects_bad_shapes_and_dtypes<B: Backend>(backend: &B) {
    let gate = backend.zeros(&[2, 6], DType::F32).unwrap();
    let up = backend.zeros(&[6, 2], DType::F32).unwrap();
    let err = backend.swiglu_fwd(&gate, &up).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Shape { op: "swiglu_fwd", .. }), "{msg}");
    assert!(msg.contains("[2, 6]") && msg.contains("[6, 2]"), "{msg}");

    let up = backend.zeros(&[2, 6], DType::F32).unwrap();
    let dy = backend.zeros(&[2, 5], DType::F32).unwrap();
    let err = backend.swiglu_bwd(&gate, &up, &dy).err().expect("an error");
    let msg = err.to_string();
    assert!(matches!(err, Error::Shape { op: "swiglu_bwd", .. }), "{msg}");
    assert!(msg.contains("dy") && msg.contains("[2, 6]") && msg.contains("[2, 5]"), "{msg}");

    let up16 = backend.zeros(&[2, 6], DType::BF16).unwrap();
    let err = backend.swiglu_fwd(&gate, &up16).unwrap_err();
    assert!(matches!(err, Error::DType { op: "swiglu_fwd", arg: "up", .. }), "{err}");
    let dy16 = backend.zeros(&[2, 6], DType::BF16).unwrap();
    let err = backend.swiglu_bwd(&gate, &up, &dy16).err().expect("an error");
    assert!(matches!(err, Error::DType { op: "swiglu_bwd", arg: "dy", .. }), "{err}");

    let ids = backend.zeros(&[2, 6], DType::U32).unwrap();
    let err = backend.swiglu_fwd(&ids, &ids).unwrap_err();
    assert!(matches!(err, Error::DType { op: "swiglu_fwd", arg: "gate", .. }), "{err}");
}

backend_tests!(
    cpu, emu, cuda;
    swiglu_forward_matches_reference,
    swiglu_backward_matches_finite_differences,
    swiglu_bf16_within_bf16_tolerance,
    swiglu_rejects_bad_shapes_and_dtypes,
);
