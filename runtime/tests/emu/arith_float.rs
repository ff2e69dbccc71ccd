//! Float arithmetic: correctly rounded f32/f64 operations in every rounding mode, `.ftz`, `.sat`,
//! min/max NaN rules, approximate functions within PTX's error, and bf16/f16 arithmetic.

use crate::common::{bits, f32s, run, run1, Rng};

const THREADS: u32 = 128;

/// Random f32 inputs of mixed magnitudes, edge cases first; word `i + THREADS` is `b`.
fn inputs(seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut v: Vec<f32> = (0..2 * THREADS)
        .map(|i| {
            let scale = [1.0f32, 1e-3, 1e3, 3.0e7, 1e-30][i as usize % 5];
            rng.uniform() * scale
        })
        .collect();
    let edges = [
        0.0f32,
        -0.0,
        1.0,
        -1.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MIN_POSITIVE,
        1e-40,
        f32::MAX,
    ];
    for (i, e) in edges.iter().enumerate() {
        v[i] = *e;
        v[THREADS as usize + (i * 3) % edges.len()] = *e;
    }
    v
}

fn next_up(x: f32) -> f32 {
    if x.is_nan() || x == f32::INFINITY {
        return x;
    }
    if x == 0.0 {
        return f32::from_bits(1);
    }
    f32::from_bits(if x > 0.0 {
        x.to_bits() + 1
    } else {
        x.to_bits() - 1
    })
}

fn next_down(x: f32) -> f32 {
    -next_up(-x)
}

/// Checks `got` is the directed rounding of the exact value `exact`.
fn check_directed(what: &str, mode: &str, got: f32, exact: f64) {
    if exact.is_nan() {
        assert!(got.is_nan(), "{what}.{mode}: want NaN, got {got}");
        return;
    }
    let toward_down = mode == "rm" || (mode == "rz" && exact >= 0.0);
    let ok = if toward_down {
        (got as f64) <= exact && (next_up(got) as f64) > exact
    } else {
        (got as f64) >= exact && (next_down(got) as f64) < exact
    };
    assert!(
        ok,
        "{what}.{mode}: got {got:e} ({:#x}) for exact {exact:e}",
        got.to_bits()
    );
}

fn same(what: &str, got: f32, want: f32) {
    assert!(
        got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
        "{what}: got {got:e} ({:#x}), want {want:e} ({:#x})",
        got.to_bits(),
        want.to_bits()
    );
}

#[test]
fn f32_round_to_nearest_is_bit_exact() {
    let body = "
	ld.global.f32 %f1, [%ia];
	ld.global.f32 %f2, [%ia+512];
	add.f32 %f3, %f1, %f2;        st.global.f32 [%oa], %f3;
	sub.f32 %f3, %f1, %f2;        st.global.f32 [%oa+4], %f3;
	mul.rn.f32 %f3, %f1, %f2;     st.global.f32 [%oa+8], %f3;
	fma.rn.f32 %f3, %f1, %f2, %f1; st.global.f32 [%oa+12], %f3;
	div.rn.f32 %f3, %f1, %f2;     st.global.f32 [%oa+16], %f3;
	abs.f32 %f4, %f1;
	sqrt.rn.f32 %f3, %f4;         st.global.f32 [%oa+20], %f3;
	rcp.rn.f32 %f3, %f2;          st.global.f32 [%oa+24], %f3;
	mad.rn.f32 %f3, %f2, %f2, %f1; st.global.f32 [%oa+28], %f3;
	neg.f32 %f3, %f1;             st.global.f32 [%oa+32], %f3;
	copysign.f32 %f3, %f2, %f1;   st.global.f32 [%oa+36], %f3;
";
    let x = inputs(5);
    let out = run(body, 10, THREADS, &bits(&x));
    for t in 0..THREADS as usize {
        let (a, b) = (x[t], x[t + THREADS as usize]);
        let got = f32s(&out[t]);
        same(&format!("add {a:e} {b:e}"), got[0], a + b);
        same(&format!("sub {a:e} {b:e}"), got[1], a - b);
        same(&format!("mul {a:e} {b:e}"), got[2], a * b);
        same(&format!("fma {a:e} {b:e}"), got[3], a.mul_add(b, a));
        same(&format!("div {a:e} {b:e}"), got[4], a / b);
        same(&format!("sqrt {a:e}"), got[5], a.abs().sqrt());
        same(&format!("rcp {b:e}"), got[6], 1.0 / b);
        same(&format!("mad {a:e} {b:e}"), got[7], b.mul_add(b, a));
        same("neg", got[8], -a);
        same("copysign", got[9], a.abs().copysign(b));
    }
}

#[test]
fn f32_directed_rounding() {
    for mode in ["rz", "rm", "rp"] {
        let body = format!(
            "
	ld.global.f32 %f1, [%ia];
	ld.global.f32 %f2, [%ia+512];
	add.{mode}.f32 %f3, %f1, %f2;      st.global.f32 [%oa], %f3;
	sub.{mode}.f32 %f3, %f1, %f2;      st.global.f32 [%oa+4], %f3;
	mul.{mode}.f32 %f3, %f1, %f2;      st.global.f32 [%oa+8], %f3;
	fma.{mode}.f32 %f3, %f1, %f2, %f2; st.global.f32 [%oa+12], %f3;
	div.{mode}.f32 %f3, %f1, %f2;      st.global.f32 [%oa+16], %f3;
	abs.f32 %f4, %f1;
	sqrt.{mode}.f32 %f3, %f4;          st.global.f32 [%oa+20], %f3;
	rcp.{mode}.f32 %f3, %f2;           st.global.f32 [%oa+24], %f3;
"
        );
        // Inputs within a few binades of each other keep the exact results representable in f64.
        let mut rng = Rng::new(17);
        let x: Vec<f32> = (0..2 * THREADS).map(|_| rng.uniform() * 10.0).collect();
        let out = run(&body, 7, THREADS, &bits(&x));
        for t in 0..THREADS as usize {
            let (a, b) = (x[t] as f64, x[t + THREADS as usize] as f64);
            let got = f32s(&out[t]);
            check_directed("add", mode, got[0], a + b);
            check_directed("sub", mode, got[1], a - b);
            check_directed("mul", mode, got[2], a * b);
            check_directed("fma", mode, got[3], a * b + b);
            // A quotient or root of f32 inputs is never within 2^-53 of an f32 boundary unless it
            // is exactly on it, so the f64 value decides the directed rounding.
            check_directed("div", mode, got[4], a / b);
            check_directed("sqrt", mode, got[5], a.abs().sqrt());
            check_directed("rcp", mode, got[6], 1.0 / b);
        }
    }
}

#[test]
fn f32_ftz_sat_and_min_max_rules() {
    let body = "
	mov.f32 %f1, 0f00000001;
	mov.f32 %f2, 0f3F800000;
	add.ftz.f32 %f3, %f1, %f1;           st.global.f32 [%oa], %f3;
	add.f32 %f3, %f1, %f1;               st.global.f32 [%oa+4], %f3;
	mov.f32 %f4, 0f1F800000;
	mul.ftz.f32 %f3, %f4, %f4;           st.global.f32 [%oa+8], %f3;
	mul.f32 %f3, %f4, %f4;               st.global.f32 [%oa+12], %f3;
	mov.f32 %f5, 0f3F333333;
	add.sat.f32 %f3, %f5, %f5;           st.global.f32 [%oa+16], %f3;
	sub.sat.f32 %f3, %f1, %f2;           st.global.f32 [%oa+20], %f3;
	mov.f32 %f6, 0f7FC00000;
	add.sat.f32 %f3, %f6, %f2;           st.global.f32 [%oa+24], %f3;
	min.f32 %f3, %f6, %f2;               st.global.f32 [%oa+28], %f3;
	max.f32 %f3, %f2, %f6;               st.global.f32 [%oa+32], %f3;
	max.NaN.f32 %f3, %f2, %f6;           st.global.f32 [%oa+36], %f3;
	mov.f32 %f7, 0f80000000;
	mov.f32 %f8, 0f00000000;
	min.f32 %f3, %f8, %f7;               st.global.f32 [%oa+40], %f3;
	max.f32 %f3, %f7, %f8;               st.global.f32 [%oa+44], %f3;
	min.f32 %f3, %f6, %f6;               st.global.f32 [%oa+48], %f3;
	abs.ftz.f32 %f3, %f1;                st.global.f32 [%oa+52], %f3;
	fma.rn.sat.f32 %f3, %f2, %f2, %f2;   st.global.f32 [%oa+56], %f3;
	testp.finite.f32 %p1, %f2;
	testp.notanumber.f32 %p2, %f6;
	testp.subnormal.f32 %p3, %f1;
	testp.normal.f32 %p4, %f1;
	testp.infinite.f32 %p5, %f2;
	selp.u32 %r1, 1, 0, %p1;
	selp.u32 %r2, 2, 0, %p2;
	selp.u32 %r3, 4, 0, %p3;
	selp.u32 %r4, 8, 0, %p4;
	selp.u32 %r5, 16, 0, %p5;
	add.s32 %r1, %r1, %r2;
	add.s32 %r1, %r1, %r3;
	add.s32 %r1, %r1, %r4;
	add.s32 %r1, %r1, %r5;               st.global.u32 [%oa+60], %r1;
";
    let got = f32s(&run1(body, 16));
    let tiny = f32::from_bits(1);
    same("add.ftz subnormal", got[0], 0.0);
    same("add subnormal", got[1], tiny + tiny);
    same("mul.ftz underflow", got[2], 0.0);
    assert!(
        got[3] != 0.0 && got[3].is_subnormal(),
        "mul without ftz keeps the subnormal"
    );
    same("add.sat", got[4], 1.0);
    same("sub.sat", got[5], 0.0);
    same("add.sat NaN", got[6], 0.0);
    same("min(NaN, 1)", got[7], 1.0);
    same("max(1, NaN)", got[8], 1.0);
    assert!(got[9].is_nan(), "max.NaN propagates");
    same("min(+0, -0)", got[10], -0.0);
    same("max(-0, +0)", got[11], 0.0);
    assert!(got[12].is_nan());
    same("abs.ftz", got[13], 0.0);
    same("fma.sat", got[14], 1.0);
    assert_eq!(got[15].to_bits(), 1 + 2 + 4);
}

#[test]
fn approximate_functions_within_ptx_error() {
    let body = "
	ld.global.f32 %f1, [%ia];
	ex2.approx.f32 %f3, %f1;             st.global.f32 [%oa], %f3;
	ex2.approx.ftz.f32 %f3, %f1;         st.global.f32 [%oa+4], %f3;
	abs.f32 %f2, %f1;
	add.f32 %f2, %f2, 0f3C23D70A;
	lg2.approx.f32 %f3, %f2;             st.global.f32 [%oa+8], %f3;
	rsqrt.approx.f32 %f3, %f2;           st.global.f32 [%oa+12], %f3;
	rcp.approx.f32 %f3, %f1;             st.global.f32 [%oa+16], %f3;
	sin.approx.f32 %f3, %f1;             st.global.f32 [%oa+20], %f3;
	cos.approx.f32 %f3, %f1;             st.global.f32 [%oa+24], %f3;
	tanh.approx.f32 %f3, %f1;            st.global.f32 [%oa+28], %f3;
	div.approx.f32 %f3, %f1, %f2;        st.global.f32 [%oa+32], %f3;
	div.full.f32 %f3, %f1, %f2;          st.global.f32 [%oa+36], %f3;
	sqrt.approx.f32 %f3, %f2;            st.global.f32 [%oa+40], %f3;
	rcp.approx.ftz.f32 %f3, %f2;         st.global.f32 [%oa+44], %f3;
";
    let mut rng = Rng::new(23);
    let x: Vec<f32> = (0..THREADS).map(|_| rng.uniform() * 3.0).collect();
    let out = run(body, 12, THREADS, &bits(&x));
    for t in 0..THREADS as usize {
        let a = x[t] as f64;
        let b = (x[t].abs() + 0.01f32) as f64;
        let got: Vec<f64> = f32s(&out[t]).iter().map(|&v| v as f64).collect();
        let rel = |what: &str, g: f64, w: f64, tol: f64| {
            assert!(
                (g - w).abs() <= tol * w.abs() + 1e-30,
                "{what}({a}): got {g}, want {w}"
            );
        };
        // PTX: ex2 2 ulp, lg2 2^-22 abs, rsqrt/rcp 1 ulp, sin/cos 2^-20.9 abs, tanh 2^-10.987 rel.
        rel("ex2", got[0], a.exp2(), 2.5e-7);
        rel("ex2.ftz", got[1], a.exp2(), 2.5e-7);
        assert!((got[2] - b.log2()).abs() <= 2f64.powi(-22), "lg2");
        rel("rsqrt", got[3], 1.0 / b.sqrt(), 1.2e-7);
        rel("rcp", got[4], 1.0 / a, 1.2e-7);
        assert!((got[5] - a.sin()).abs() <= 2f64.powf(-20.9), "sin");
        assert!((got[6] - a.cos()).abs() <= 2f64.powf(-20.9), "cos");
        rel("tanh", got[7], a.tanh(), 2f64.powf(-10.987));
        rel("div.approx", got[8], a / b, 2.5e-7);
        rel("div.full", got[9], a / b, 2.5e-7);
        rel("sqrt.approx", got[10], b.sqrt(), 2.5e-7);
        rel("rcp.approx.ftz", got[11], 1.0 / b, 1.2e-7);
    }
}

#[test]
fn f64_arithmetic() {
    let body = "
	ld.global.f32 %f1, [%ia];
	ld.global.f32 %f2, [%ia+512];
	cvt.f64.f32 %fd1, %f1;
	cvt.f64.f32 %fd2, %f2;
	mul.f64 %fd1, %fd1, 0d3FB999999999999A;
	add.f64 %fd3, %fd1, %fd2;           st.global.f64 [%oa], %fd3;
	mul.f64 %fd3, %fd1, %fd2;           st.global.f64 [%oa+8], %fd3;
	fma.rn.f64 %fd3, %fd1, %fd2, %fd1;  st.global.f64 [%oa+16], %fd3;
	div.rn.f64 %fd3, %fd1, %fd2;        st.global.f64 [%oa+24], %fd3;
	abs.f64 %fd4, %fd1;
	sqrt.rn.f64 %fd3, %fd4;             st.global.f64 [%oa+32], %fd3;
	sub.rz.f64 %fd3, %fd1, %fd2;        st.global.f64 [%oa+40], %fd3;
	rcp.rn.f64 %fd3, %fd2;              st.global.f64 [%oa+48], %fd3;
";
    let mut rng = Rng::new(29);
    let x: Vec<f32> = (0..2 * THREADS).map(|_| rng.uniform() * 100.0).collect();
    let out = run(body, 14, THREADS, &bits(&x));
    for t in 0..THREADS as usize {
        let a = x[t] as f64 * 0.1;
        let b = x[t + THREADS as usize] as f64;
        let w = |k: usize| f64::from_bits(out[t][2 * k] as u64 | (out[t][2 * k + 1] as u64) << 32);
        assert_eq!(w(0), a + b);
        assert_eq!(w(1), a * b);
        assert_eq!(w(2), a.mul_add(b, a));
        assert_eq!(w(3), a / b);
        assert_eq!(w(4), a.abs().sqrt());
        let d = a - b;
        assert!(
            w(5).abs() <= d.abs() && (d - w(5)).abs() <= d.abs() * f64::EPSILON,
            "sub.rz"
        );
        assert_eq!(w(6), 1.0 / b);
    }
}

fn bf16(x: f32) -> u16 {
    half::bf16::from_f32(x).to_bits()
}

fn f16(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

#[test]
fn bf16_and_f16_arithmetic() {
    let body = "
	ld.global.u32 %r1, [%ia];
	ld.global.u32 %r2, [%ia+512];
	mov.b32 {%h1, %h2}, %r1;
	mov.b32 {%h3, %h4}, %r2;
	add.rn.bf16 %h5, %h1, %h3;       st.global.u16 [%oa], %h5;
	mul.rn.bf16 %h5, %h1, %h3;       st.global.u16 [%oa+2], %h5;
	fma.rn.bf16 %h5, %h1, %h3, %h2;  st.global.u16 [%oa+4], %h5;
	sub.bf16 %h5, %h1, %h3;          st.global.u16 [%oa+6], %h5;
	max.bf16 %h5, %h1, %h3;          st.global.u16 [%oa+8], %h5;
	min.bf16 %h5, %h1, %h3;          st.global.u16 [%oa+10], %h5;
	neg.bf16 %h5, %h1;               st.global.u16 [%oa+12], %h5;
	abs.bf16 %h5, %h1;               st.global.u16 [%oa+14], %h5;
	add.rn.bf16x2 %r3, %r1, %r2;     st.global.u32 [%oa+16], %r3;
	fma.rn.bf16x2 %r3, %r1, %r2, %r1; st.global.u32 [%oa+20], %r3;
	mul.bf16x2 %r3, %r1, %r2;        st.global.u32 [%oa+24], %r3;
	neg.bf16x2 %r3, %r1;             st.global.u32 [%oa+28], %r3;
";
    let mut rng = Rng::new(31);
    let vals: Vec<f32> = (0..4 * THREADS)
        .map(|_| half::bf16::from_f32(rng.uniform() * 4.0).to_f32())
        .collect();
    let input: Vec<u32> = vals
        .chunks(2)
        .map(|p| bf16(p[0]) as u32 | (bf16(p[1]) as u32) << 16)
        .collect();
    let out = run(body, 8, THREADS, &input);
    let exact = |x: f64| -> u16 {
        assert_eq!(x as f32 as f64, x, "reference needs an f32-exact value");
        bf16(x as f32)
    };
    for t in 0..THREADS as usize {
        let (h1, h2) = (vals[2 * t] as f64, vals[2 * t + 1] as f64);
        let (h3, h4) = (
            vals[2 * (t + THREADS as usize)] as f64,
            vals[2 * (t + THREADS as usize) + 1] as f64,
        );
        let o = &out[t];
        let lo = |k: usize| o[k] as u16;
        let hi = |k: usize| (o[k] >> 16) as u16;
        assert_eq!(lo(0), exact(h1 + h3), "add.bf16 thread {t}");
        assert_eq!(hi(0), exact(h1 * h3), "mul.bf16");
        assert_eq!(lo(1), exact(h1 * h3 + h2), "fma.bf16");
        assert_eq!(hi(1), exact(h1 - h3), "sub.bf16");
        assert_eq!(lo(2), exact(h1.max(h3)), "max.bf16");
        assert_eq!(hi(2), exact(h1.min(h3)), "min.bf16");
        assert_eq!(lo(3), bf16(vals[2 * t]) ^ 0x8000, "neg.bf16");
        assert_eq!(hi(3), bf16(vals[2 * t]) & 0x7fff, "abs.bf16");
        assert_eq!(lo(4), exact(h1 + h3));
        assert_eq!(hi(4), exact(h2 + h4));
        assert_eq!(lo(5), exact(h1 * h3 + h1));
        assert_eq!(hi(5), exact(h2 * h4 + h2));
        assert_eq!(lo(6), exact(h1 * h3));
        assert_eq!(hi(6), exact(h2 * h4));
        assert_eq!(o[7], input[t] ^ 0x8000_8000);
    }
    // Ties: 1 + 2^-8 lies halfway between bf16 neighbours 1 and 1 + 2^-7.
    let tie = "
	mov.b16 %h1, 0x3F80;
	mov.b16 %h2, 0x3B80;
	add.rn.bf16 %h3, %h1, %h2;    st.global.u16 [%oa], %h3;
	mov.b16 %h4, 0x3F81;
	add.rn.bf16 %h3, %h4, %h2;    st.global.u16 [%oa+2], %h3;
	add.rz.bf16 %h3, %h4, %h2;    st.global.u16 [%oa+4], %h3;
	mov.b16 %h5, 0x3C00;
	mov.b16 %h6, 0x1000;
	add.rn.f16 %h3, %h5, %h6;     st.global.u16 [%oa+6], %h3;
	fma.rn.f16 %h3, %h5, %h5, %h6; st.global.u16 [%oa+8], %h3;
	mov.b32 %r1, {%h5, %h6};
	add.f16x2 %r2, %r1, %r1;      st.global.u32 [%oa+12], %r2;
";
    let o = run1(tie, 4);
    assert_eq!(o[0] as u16, 0x3F80, "tie to even (down)");
    assert_eq!((o[0] >> 16) as u16, 0x3F82, "tie to even (up)");
    assert_eq!(o[1] as u16, 0x3F81, "rz");
    // f16: 1 + 2^-11 is a tie between 1 and 1 + 2^-10: even is 1.
    assert_eq!((o[1] >> 16) as u16, 0x3C00);
    assert_eq!(o[2] as u16, 0x3C00);
    assert_eq!(o[3] as u16, f16(2.0));
    assert_eq!(
        (o[3] >> 16) as u16,
        f16(2.0 * half::f16::from_bits(0x1000).to_f32())
    );
}
