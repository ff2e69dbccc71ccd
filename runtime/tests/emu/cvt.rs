//! `cvt` between integer and float types with every rounding mode, `.sat` and `.ftz`,
//! bf16/f16 ties-to-even and NaN, and the packed-move forms the bf16 helpers use.

use crate::common::{bits, run, run1};

fn word16(out: &[u32], k: usize) -> u16 {
    (out[k / 2] >> (16 * (k % 2))) as u16
}

#[test]
fn f32_to_bf16_and_f16() {
    let body = "
	ld.global.f32 %f1, [%ia];
	cvt.rn.bf16.f32 %h1, %f1;   st.global.u16 [%oa], %h1;
	cvt.rz.bf16.f32 %h1, %f1;   st.global.u16 [%oa+2], %h1;
	cvt.rm.bf16.f32 %h1, %f1;   st.global.u16 [%oa+4], %h1;
	cvt.rp.bf16.f32 %h1, %f1;   st.global.u16 [%oa+6], %h1;
	cvt.rn.f16.f32 %h1, %f1;    st.global.u16 [%oa+8], %h1;
	cvt.rz.f16.f32 %h1, %f1;    st.global.u16 [%oa+10], %h1;
	{ .reg .b16 %tmp;
	  cvt.rn.bf16.f32 %tmp, %f1;
	  mov.b32 %f2, {0, %tmp};
	}
	st.global.f32 [%oa+12], %f2;
";
    let cases: Vec<(u32, [u16; 4], [u16; 2])> = vec![
        // value bits, bf16 [rn, rz, rm, rp], f16 [rn, rz]
        (
            0x3f80_8000,
            [0x3f80, 0x3f80, 0x3f80, 0x3f81],
            [0x3c04, 0x3c04],
        ),
        (
            0x3f81_8000,
            [0x3f82, 0x3f81, 0x3f81, 0x3f82],
            [0x3c0c, 0x3c0c],
        ),
        (
            0x3f80_8001,
            [0x3f81, 0x3f80, 0x3f80, 0x3f81],
            [0x3c04, 0x3c04],
        ),
        (
            0x3f80_1001,
            [0x3f80, 0x3f80, 0x3f80, 0x3f81],
            [0x3c01, 0x3c00],
        ),
        (
            0x3f80_1000,
            [0x3f80, 0x3f80, 0x3f80, 0x3f81],
            [0x3c00, 0x3c00],
        ),
        (
            0x3f80_3000,
            [0x3f80, 0x3f80, 0x3f80, 0x3f81],
            [0x3c02, 0x3c01],
        ),
        (
            0xbf80_8001,
            [0xbf81, 0xbf80, 0xbf81, 0xbf80],
            [0xbc04, 0xbc04],
        ),
        (
            0x7fc0_0000,
            [0x7fff, 0x7fff, 0x7fff, 0x7fff],
            [0x7fff, 0x7fff],
        ),
        (
            0xffc0_1234,
            [0x7fff, 0x7fff, 0x7fff, 0x7fff],
            [0x7fff, 0x7fff],
        ),
        (
            0x7f80_0000,
            [0x7f80, 0x7f80, 0x7f80, 0x7f80],
            [0x7c00, 0x7c00],
        ),
        (
            0x8000_0000,
            [0x8000, 0x8000, 0x8000, 0x8000],
            [0x8000, 0x8000],
        ),
        (
            f32::MAX.to_bits(),
            [0x7f80, 0x7f7f, 0x7f7f, 0x7f80],
            [0x7c00, 0x7bff],
        ),
        (
            65520f32.to_bits(),
            [0x4780, 0x477f, 0x477f, 0x4780],
            [0x7c00, 0x7bff],
        ),
        (
            1e-8f32.to_bits(),
            [0x322c, 0x322b, 0x322b, 0x322c],
            [0x0000, 0x0000],
        ),
        (
            1.0000001e-5f32.to_bits(),
            [0x3728, 0x3727, 0x3727, 0x3728],
            [0x00a8, 0x00a7],
        ),
    ];
    let input: Vec<u32> = cases.iter().map(|c| c.0).collect();
    let out = run(body, 4, cases.len() as u32, &input);
    for (t, (x, bf, hf)) in cases.iter().enumerate() {
        let got = &out[t];
        let what = format!("{:e} ({x:#x})", f32::from_bits(*x));
        for (k, want) in bf.iter().enumerate() {
            assert_eq!(word16(got, k), *want, "bf16 mode {k} of {what}");
        }
        for (k, want) in hf.iter().enumerate() {
            assert_eq!(word16(got, 4 + k), *want, "f16 mode {k} of {what}");
        }
        let back = f32::from_bits(got[3]);
        assert_eq!(
            back.to_bits(),
            (bf[0] as u32) << 16,
            "inline-asm bf16 round trip of {what}"
        );
        if !f32::from_bits(*x).is_nan() {
            assert_eq!(
                half::bf16::from_f32(f32::from_bits(*x)).to_bits(),
                bf[0],
                "half crate agrees on {what}"
            );
        }
    }
}

#[test]
fn half_to_f32_and_packing() {
    let body = "
	mov.b16 %h1, 0x0001;
	cvt.f32.f16 %f1, %h1;          st.global.f32 [%oa], %f1;
	mov.b16 %h2, 0xC049;
	cvt.f32.bf16 %f1, %h2;         st.global.f32 [%oa+4], %f1;
	mov.f32 %f2, 0f3F800000;
	mov.f32 %f3, 0fC0000000;
	cvt.rn.bf16x2.f32 %r1, %f2, %f3; st.global.u32 [%oa+8], %r1;
	cvt.rn.f16x2.f32 %r1, %f2, %f3;  st.global.u32 [%oa+12], %r1;
	mov.b32 {%h3, %h4}, %r1;
	st.global.u16 [%oa+16], %h4;
	st.global.u16 [%oa+18], %h3;
	mov.b32 {_, %h5}, %r1;         st.global.u16 [%oa+20], %h5;
	mov.b64 %rd1, {%r1, %r1};
	mov.b64 {%r2, %r3}, %rd1;
	xor.b32 %r2, %r2, %r3;         st.global.u32 [%oa+24], %r2;
	mov.b32 %r4, {%h3, %h3};       st.global.u32 [%oa+28], %r4;
	{ .reg .b16 low, high;
	  mov.b32 {low, high}, %r1;
	  mov.b16 %h6, high;
	}
	st.global.u16 [%oa+32], %h6;
";
    let o = run1(body, 9);
    assert_eq!(
        f32::from_bits(o[0]),
        2f32.powi(-24),
        "f16 smallest subnormal"
    );
    assert_eq!(f32::from_bits(o[1]), half::bf16::from_bits(0xC049).to_f32());
    assert_eq!(
        o[2], 0x3f80_c000,
        "cvt.rn.bf16x2.f32 puts the first source in the upper half"
    );
    assert_eq!(o[3], 0x3c00_c000);
    assert_eq!(
        o[4], 0xc000_3c00,
        "unpack: first destination takes the low half"
    );
    assert_eq!(o[5] as u16, 0x3c00, "sink destination");
    assert_eq!(o[6], 0);
    assert_eq!(o[7], 0xc000_c000);
    assert_eq!(o[8] as u16, 0x3c00);
}

#[test]
fn float_to_int_roundings_and_saturation() {
    let body = "
	ld.global.f32 %f1, [%ia];
	cvt.rni.s32.f32 %r1, %f1;   st.global.u32 [%oa], %r1;
	cvt.rzi.s32.f32 %r1, %f1;   st.global.u32 [%oa+4], %r1;
	cvt.rmi.s32.f32 %r1, %f1;   st.global.u32 [%oa+8], %r1;
	cvt.rpi.s32.f32 %r1, %f1;   st.global.u32 [%oa+12], %r1;
	cvt.rzi.u32.f32 %r1, %f1;   st.global.u32 [%oa+16], %r1;
	cvt.rzi.u8.f32 %h1, %f1;    st.global.u16 [%oa+20], %h1;
	cvt.rni.s64.f32 %rd1, %f1;  st.global.u64 [%oa+24], %rd1;
	cvt.rni.f32.f32 %f2, %f1;   st.global.f32 [%oa+32], %f2;
	cvt.rzi.f32.f32 %f2, %f1;   st.global.f32 [%oa+36], %f2;
	cvt.rmi.f32.f32 %f2, %f1;   st.global.f32 [%oa+40], %f2;
	cvt.rpi.f32.f32 %f2, %f1;   st.global.f32 [%oa+44], %f2;
	cvt.sat.f32.f32 %f2, %f1;   st.global.f32 [%oa+48], %f2;
	cvt.ftz.f32.f32 %f2, %f1;   st.global.f32 [%oa+52], %f2;
";
    let xs = [
        2.5f32,
        -2.5,
        3.7,
        -3.7,
        0.5,
        f32::NAN,
        1e10,
        -1e10,
        300.0,
        1e-40,
        -0.2,
        1e19,
    ];
    let out = run(body, 14, xs.len() as u32, &bits(&xs));
    for (t, &x) in xs.iter().enumerate() {
        let o = &out[t];
        let sat = |v: f64| -> i64 {
            if v.is_nan() {
                0
            } else {
                v.clamp(i32::MIN as f64, i32::MAX as f64) as i64
            }
        };
        let xf = x as f64;
        assert_eq!(o[0] as i32 as i64, sat(xf.round_ties_even()), "rni {x}");
        assert_eq!(o[1] as i32 as i64, sat(xf.trunc()), "rzi {x}");
        assert_eq!(o[2] as i32 as i64, sat(xf.floor()), "rmi {x}");
        assert_eq!(o[3] as i32 as i64, sat(xf.ceil()), "rpi {x}");
        let u = if x.is_nan() {
            0
        } else {
            xf.trunc().clamp(0.0, u32::MAX as f64) as u32
        };
        assert_eq!(o[4], u, "rzi.u32 {x}");
        let s64 = if x.is_nan() {
            0
        } else {
            xf.round_ties_even().clamp(i64::MIN as f64, i64::MAX as f64) as i64
        };
        assert_eq!(
            (o[6] as u64 | (o[7] as u64) << 32) as i64,
            s64,
            "rni.s64 {x}"
        );
        let u8v = if x.is_nan() {
            0
        } else {
            xf.trunc().clamp(0.0, 255.0) as u16
        };
        assert_eq!(o[5] as u16, u8v, "rzi.u8 {x}");
        let f = |k: usize| f32::from_bits(o[k]);
        let same = |g: f32, w: f32, what: &str| {
            assert!(
                g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                "{what} {x}: {g} vs {w}"
            )
        };
        same(f(8), x.round_ties_even(), "rni.f32");
        same(f(9), x.trunc(), "rzi.f32");
        same(f(10), x.floor(), "rmi.f32");
        same(f(11), x.ceil(), "rpi.f32");
        same(
            f(12),
            if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) },
            "sat",
        );
        same(f(13), if x.is_subnormal() { 0.0 } else { x }, "ftz");
    }
}

#[test]
fn int_to_float_roundings() {
    let body = "
	ld.global.u32 %r1, [%ia];
	cvt.rn.f32.s32 %f1, %r1;    st.global.f32 [%oa], %f1;
	cvt.rz.f32.s32 %f1, %r1;    st.global.f32 [%oa+4], %f1;
	cvt.rm.f32.s32 %f1, %r1;    st.global.f32 [%oa+8], %f1;
	cvt.rp.f32.s32 %f1, %r1;    st.global.f32 [%oa+12], %f1;
	cvt.rn.f32.u32 %f1, %r1;    st.global.f32 [%oa+16], %f1;
	cvt.u64.u32 %rd1, %r1;
	shl.b64 %rd1, %rd1, 20;
	cvt.rn.f32.u64 %f1, %rd1;   st.global.f32 [%oa+20], %f1;
	cvt.rp.f32.u64 %f1, %rd1;   st.global.f32 [%oa+24], %f1;
	cvt.rn.bf16.s32 %h1, %r1;   st.global.u16 [%oa+28], %h1;
	cvt.rn.f64.s32 %fd1, %r1;   st.global.f64 [%oa+32], %fd1;
	cvt.rn.f32.f64 %f1, %fd1;   st.global.f32 [%oa+40], %f1;
	cvt.f64.f32 %fd2, %f1;
	mul.f64 %fd2, %fd2, 0d3FB999999999999A;
	cvt.rz.f32.f64 %f1, %fd2;   st.global.f32 [%oa+44], %f1;
	cvt.rn.f32.f64 %f1, %fd2;   st.global.f32 [%oa+48], %f1;
";
    let xs: [u32; 6] = [
        (1 << 24) + 1,
        (1 << 24) + 3,
        (-(1i32 << 24) - 1) as u32,
        7,
        u32::MAX,
        0x7fff_ffff,
    ];
    let out = run(body, 14, xs.len() as u32, &xs);
    for (t, &x) in xs.iter().enumerate() {
        let o = &out[t];
        let f = |k: usize| f32::from_bits(o[k]);
        let s = x as i32 as i64;
        let near = s as f32;
        let (lo, hi) = if near as i64 > s {
            (f32::from_bits(near.to_bits() - 1), near)
        } else {
            (near, near)
        };
        let (down, up) = if near as i64 == s {
            (near, near)
        } else if near as i64 > s {
            if near > 0.0 {
                (lo, hi)
            } else {
                (f32::from_bits(near.to_bits() + 1), near)
            }
        } else if near > 0.0 {
            (near, f32::from_bits(near.to_bits() + 1))
        } else {
            (near, f32::from_bits(near.to_bits() - 1))
        };
        assert_eq!(f(0), near, "rn s32 {s}");
        assert_eq!(f(1), if s >= 0 { down } else { up }, "rz s32 {s}");
        assert_eq!(f(2), down, "rm s32 {s}");
        assert_eq!(f(3), up, "rp s32 {s}");
        assert_eq!(f(4), x as f32, "rn u32 {x}");
        let big = (x as u64) << 20;
        assert_eq!(f(5), big as f32, "rn u64");
        let up64 = if (big as f32) as u64 >= big {
            big as f32
        } else {
            f32::from_bits((big as f32).to_bits() + 1)
        };
        assert_eq!(f(6), up64, "rp u64");
        assert_eq!(f64::from_bits(o[8] as u64 | (o[9] as u64) << 32), s as f64);
        assert_eq!(
            o[7] as u16,
            half::bf16::from_f32(s as f32).to_bits(),
            "s32 to bf16 of {s}"
        );
        assert_eq!(f(10), s as f32);
        let v = (s as f32) as f64 * 0.1;
        assert_eq!(f(12), v as f32, "f64 -> f32 rn");
        let rz = if (v as f32 as f64).abs() > v.abs() {
            f32::from_bits((v as f32).to_bits() - 1)
        } else {
            v as f32
        };
        assert_eq!(f(11), rz, "f64 -> f32 rz");
    }
}

#[test]
fn int_to_int_conversions() {
    let body = "
	ld.global.u32 %r1, [%ia];
	cvt.s64.s32 %rd1, %r1;        st.global.u64 [%oa], %rd1;
	cvt.u64.u32 %rd1, %r1;        st.global.u64 [%oa+8], %rd1;
	cvt.u16.u32 %h1, %r1;         st.global.u16 [%oa+16], %h1;
	cvt.sat.s8.s32 %h1, %r1;      st.global.u16 [%oa+18], %h1;
	cvt.s32.s16 %r2, %h1;         st.global.u32 [%oa+20], %r2;
	cvt.sat.u16.s32 %h2, %r1;     st.global.u16 [%oa+24], %h2;
	cvt.s32.s8 %r2, %r1;          st.global.u32 [%oa+28], %r2;
	cvt.sat.s32.u32 %r2, %r1;     st.global.u32 [%oa+32], %r2;
	cvt.u32.u64 %r2, %rd1;        st.global.u32 [%oa+36], %r2;
";
    let xs: [u32; 6] = [5, u32::MAX, 0x8000_0000, 0x1_2380, 200, 0xffff_ff80];
    let out = run(body, 10, xs.len() as u32, &xs);
    for (t, &x) in xs.iter().enumerate() {
        let o = &out[t];
        let s = x as i32;
        assert_eq!(o[0] as u64 | (o[1] as u64) << 32, s as i64 as u64);
        assert_eq!(o[2] as u64 | (o[3] as u64) << 32, x as u64);
        assert_eq!(o[4] as u16, x as u16);
        let sat8 = s.clamp(-128, 127) as i16 as u16;
        assert_eq!((o[4] >> 16) as u16, sat8, "cvt.sat.s8.s32 of {s}");
        assert_eq!(o[5], sat8 as i16 as i32 as u32);
        assert_eq!(o[6] as u16, s.clamp(0, 65535) as u16);
        assert_eq!(o[7], x as u8 as i8 as i32 as u32);
        assert_eq!(o[8], x.min(i32::MAX as u32));
        assert_eq!(o[9], x);
    }
}
