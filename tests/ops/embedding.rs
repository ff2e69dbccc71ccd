use runtime::{Backend, DType, Error};

use crate::backend_tests;
use crate::common::{assert_close, bf16_round, dot, numeric_grad, to_f64, Rng};

/// One embedding case: the ids' dims, the table `[V, C]`, and how many of the V rows the ids may
/// use (the rest are never referenced, so their gradient must be exactly 0).
#[derive(Clone, Copy, Debug)]
struct Case {
    ids: &'static [usize],
    vocab: usize,
    channels: usize,
    used: usize,
}

impl Case {
    fn n(&self) -> usize {
        self.ids.iter().product()
    }

    fn out_dims(&self) -> Vec<usize> {
        let mut d = self.ids.to_vec();
        d.push(self.channels);
        d
    }
}

fn cases() -> Vec<Case> {
    let case = |ids, vocab, channels, used| Case { ids, vocab, channels, used };
    vec![
        case(&[1], 1, 1, 1),
        case(&[], 5, 7, 5),
        case(&[7], 13, 7, 11),
        case(&[64], 50, 33, 50),
        case(&[2, 32], 5, 769, 3),
        case(&[7, 1], 4, 33, 1),
        case(&[3, 0], 6, 7, 6),
    ]
}

/// `table[ids]` in f64.
fn gather_ref(ids: &[u32], table: &[f64], channels: usize) -> Vec<f64> {
    ids.iter().flat_map(|&id| table[id as usize * channels..][..channels].iter().copied()).collect()
}

fn embedding_forward_matches_reference<B: Backend>(backend: &B) {
    let mut rng = Rng::new(31);
    // V above 65535 catches ids truncated to 16 bits.
    let big = Case { ids: &[4, 16], vocab: 70_000, channels: 3, used: 70_000 };
    for c in cases().into_iter().chain([big]) {
        let mut ids = rng.ids(c.n(), c.used);
        if let Some(last) = ids.last_mut() {
            *last = c.used as u32 - 1;
        }
        let table = rng.normal_vec(c.vocab * c.channels, 1.0);
        let want = gather_ref(&ids, &to_f64(&table), c.channels);
        let idt = backend.upload_u32(c.ids, &ids).unwrap();
        let tt = backend.upload_f32(&[c.vocab, c.channels], &table, DType::F32).unwrap();
        let y = backend.embedding_fwd(&idt, &tt).unwrap();
        assert_eq!((y.dims(), y.dtype()), (&c.out_dims()[..], DType::F32), "{c:?}");
        // A gather is exact.
        assert_close(
            &format!("embedding {c:?}"),
            &backend.download_f32(&y).unwrap(),
            &want,
            0.0,
            0.0,
        );
    }
}

fn embedding_backward_matches_finite_differences<B: Backend>(backend: &B) {
    let mut rng = Rng::new(32);
    for c in cases() {
        let ids = rng.ids(c.n(), c.used);
        let table = to_f64(&rng.normal_vec(c.vocab * c.channels, 1.0));
        let dy = rng.normal_vec(c.n() * c.channels, 1.0);
        let dy64 = to_f64(&dy);
        let want = numeric_grad(&table, 1e-3, |t| dot(&dy64, &gather_ref(&ids, t, c.channels)));
        let idt = backend.upload_u32(c.ids, &ids).unwrap();
        let dyt = backend.upload_f32(&c.out_dims(), &dy, DType::F32).unwrap();
        let dtable = backend.embedding_bwd(&idt, &dyt, c.vocab).unwrap();
        assert_eq!((dtable.dims(), dtable.dtype()), (&[c.vocab, c.channels][..], DType::F32));
        let got = backend.download_f32(&dtable).unwrap();
        assert_close(&format!("embedding dtable {c:?}"), &got, &want, 1e-5, 1e-5);
        let unused = &got[c.used * c.channels..];
        assert!(unused.iter().all(|&v| v == 0.0), "{c:?}: rows no id refers to must be 0");
    }
}

/// Many positions on few rows: every row sums dozens of contributions.
fn embedding_backward_accumulates_repeated_ids<B: Backend>(backend: &B) {
    let mut rng = Rng::new(33);
    let (vocab, channels, n) = (70_000, 5, 300);
    // Rows 0, 7 and 69_999 only, so the big table is almost all untouched rows.
    let ids: Vec<u32> = (0..n).map(|i| [0, 7, 69_999][i % 3]).collect();
    let dy = rng.normal_vec(n * channels, 1.0);
    let mut want = vec![0f64; vocab * channels];
    for (i, &id) in ids.iter().enumerate() {
        for j in 0..channels {
            want[id as usize * channels + j] += dy[i * channels + j] as f64;
        }
    }
    let idt = backend.upload_u32(&[n], &ids).unwrap();
    let dyt = backend.upload_f32(&[n, channels], &dy, DType::F32).unwrap();
    let got = backend.download_f32(&backend.embedding_bwd(&idt, &dyt, vocab).unwrap()).unwrap();
    assert_close("embedding repeated ids", &got, &want, 1e-5, 1e-5);
}

fn embedding_bf16_within_bf16_tolerance<B: Backend>(backend: &B) {
    let mut rng = Rng::new(34);
    let (vocab, channels, n) = (50, 769, 64);
    let ids = rng.ids(n, vocab);
    let table = rng.normal_vec(vocab * channels, 1.0);
    let idt = backend.upload_u32(&[n], &ids).unwrap();
    let tt = backend.upload_f32(&[vocab, channels], &table, DType::BF16).unwrap();
    let y = backend.embedding_fwd(&idt, &tt).unwrap();
    assert_eq!(y.dtype(), DType::BF16);
    // The gather copies stored bf16 values, so it is exact against the rounded table.
    let want = gather_ref(&ids, &to_f64(&bf16_round(&table)), channels);
    assert_close("embedding bf16", &backend.download_f32(&y).unwrap(), &want, 0.0, 0.0);

    let dy = rng.normal_vec(n * channels, 1.0);
    let dyt = backend.upload_f32(&[n, channels], &dy, DType::BF16).unwrap();
    let dtable = backend.embedding_bwd(&idt, &dyt, vocab).unwrap();
    assert_eq!(dtable.dtype(), DType::BF16);
    let mut want = vec![0f64; vocab * channels];
    let dy = to_f64(&bf16_round(&dy));
    for (i, &id) in ids.iter().enumerate() {
        for j in 0..channels {
            want[id as usize * channels + j] += dy[i * channels + j];
        }
    }
    // Sums of a few bf16 values, accumulated in f32 and rounded once to bf16.
    assert_close(
        "embedding dtable bf16",
        &backend.download_f32(&dtable).unwrap(),
        &want,
        1e-5,
        4e-3,
    );
}

fn embedding_rejects_bad_shapes_dtypes_and_ids<B: Backend>(backend: &B) {
    let ids = backend.upload_u32(&[2, 3], &[0, 1, 2, 3, 9, 1]).unwrap();
    let table = backend.zeros(&[4, 5], DType::F32).unwrap();
    let err = backend.embedding_fwd(&ids, &table).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Argument { op: "embedding_fwd", .. }), "{msg}");
    assert!(msg.contains("ids[4]") && msg.contains("9") && msg.contains("4 rows"), "{msg}");

    let dy = backend.zeros(&[2, 3, 5], DType::F32).unwrap();
    let err = backend.embedding_bwd(&ids, &dy, 9).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Argument { op: "embedding_bwd", .. }), "{msg}");
    assert!(msg.contains("ids[4]") && msg.contains("9 rows"), "{msg}");

    let flat_table = backend.zeros(&[20], DType::F32).unwrap();
    let err = backend.embedding_fwd(&ids, &flat_table).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Shape { op: "embedding_fwd", .. }), "{msg}");
    assert!(msg.contains("table") && msg.contains("[20]"), "{msg}");

    let float_ids = backend.zeros(&[2, 3], DType::F32).unwrap();
    let err = backend.embedding_fwd(&float_ids, &table).unwrap_err();
    assert!(matches!(err, Error::DType { op: "embedding_fwd", arg: "ids", .. }), "{err}");
    let int_table = backend.zeros(&[4, 5], DType::U32).unwrap();
    let err = backend.embedding_fwd(&ids, &int_table).unwrap_err();
    assert!(matches!(err, Error::DType { op: "embedding_fwd", arg: "table", .. }), "{err}");

    for bad_dims in [&[2, 5][..], &[3, 2, 5], &[2, 3]] {
        let dy = backend.zeros(bad_dims, DType::F32).unwrap();
        let err = backend.embedding_bwd(&ids, &dy, 10).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Shape { op: "embedding_bwd", .. }), "{msg}");
        assert!(msg.contains(&format!("{bad_dims:?}")) && msg.contains("[2, 3]"), "{msg}");
    }
    let err = backend.embedding_bwd(&float_ids, &dy, 10).unwrap_err();
    assert!(matches!(err, Error::DType { op: "embedding_bwd", arg: "ids", .. }), "{err}");
    let int_dy = backend.zeros(&[2, 3, 5], DType::U32).unwrap();
    let err = backend.embedding_bwd(&ids, &int_dy, 10).unwrap_err();
    assert!(matches!(err, Error::DType { op: "embedding_bwd", arg: "dy", .. }), "{err}");
}

backend_tests!(
    cpu, emu, cuda;
    embedding_forward_matches_reference,
    embedding_backward_matches_finite_differences,
    embedding_backward_accumulates_repeated_ids,
    embedding_bf16_within_bf16_tolerance,
    embedding_rejects_bad_shapes_dtypes_and_ids,
);
