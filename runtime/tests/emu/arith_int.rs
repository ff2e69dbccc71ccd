//! Integer arithmetic, logic, shifts and bit manipulation, 16/32/64-bit, against Rust references
//! over random and edge-case inputs.

use crate::common::{run, Rng};

const THREADS: u32 = 128;

/// Inputs: word `i` is thread i's `a`, word `i + THREADS` its `b`; edge cases first.
fn inputs() -> Vec<u32> {
    let edges = [
        0u32,
        1,
        u32::MAX,
        i32::MIN as u32,
        i32::MAX as u32,
        31,
        32,
        33,
        0x8000,
        0xffff,
        2,
        64,
    ];
    let mut rng = Rng::new(3);
    let mut v: Vec<u32> = (0..2 * THREADS).map(|_| rng.next_u64() as u32).collect();
    for (i, e) in edges.iter().enumerate() {
        v[i] = *e;
        v[THREADS as usize + (i * 5) % edges.len()] = *e;
        v[THREADS as usize + 20 + i] = edges[(i * 7) % edges.len()];
        v[20 + i] = *e;
    }
    v
}

fn bfe_ref(a: u32, pos: u32, len: u32, signed: bool) -> u32 {
    let mut d = 0u32;
    let sbit = if !signed || len == 0 {
        0
    } else {
        (a >> (pos + len - 1).min(31)) & 1
    };
    for i in 0..32 {
        let bit = if i < len && pos + i <= 31 {
            (a >> (pos + i)) & 1
        } else {
            sbit
        };
        d |= bit << i;
    }
    d
}

fn bfi_ref(a: u32, b: u32, pos: u32, len: u32) -> u32 {
    let mut f = b;
    for i in 0..len {
        if pos + i > 31 {
            break;
        }
        f = (f & !(1 << (pos + i))) | (((a >> i) & 1) << (pos + i));
    }
    f
}

#[test]
fn int32_ops_match_reference() {
    let body = "
	ld.global.u32 %r1, [%ia];
	ld.global.u32 %r2, [%ia+512];
	and.b32 %r4, %r2, 65535;
	or.b32 %r4, %r4, 1;
	and.b32 %r5, %r2, 63;
	add.s32 %r3, %r1, %r2;       st.global.u32 [%oa], %r3;
	sub.s32 %r3, %r1, %r2;       st.global.u32 [%oa+4], %r3;
	mul.lo.s32 %r3, %r1, %r2;    st.global.u32 [%oa+8], %r3;
	mul.hi.s32 %r3, %r1, %r2;    st.global.u32 [%oa+12], %r3;
	mul.hi.u32 %r3, %r1, %r2;    st.global.u32 [%oa+16], %r3;
	div.s32 %r3, %r1, %r4;       st.global.u32 [%oa+20], %r3;
	rem.s32 %r3, %r1, %r4;       st.global.u32 [%oa+24], %r3;
	div.u32 %r3, %r1, %r4;       st.global.u32 [%oa+28], %r3;
	rem.u32 %r3, %r1, %r4;       st.global.u32 [%oa+32], %r3;
	min.s32 %r3, %r1, %r2;       st.global.u32 [%oa+36], %r3;
	max.u32 %r3, %r1, %r2;       st.global.u32 [%oa+40], %r3;
	abs.s32 %r3, %r1;            st.global.u32 [%oa+44], %r3;
	neg.s32 %r3, %r1;            st.global.u32 [%oa+48], %r3;
	and.b32 %r3, %r1, %r2;       st.global.u32 [%oa+52], %r3;
	or.b32 %r3, %r1, %r2;        st.global.u32 [%oa+56], %r3;
	xor.b32 %r3, %r1, %r2;       st.global.u32 [%oa+60], %r3;
	not.b32 %r3, %r1;            st.global.u32 [%oa+64], %r3;
	shl.b32 %r3, %r1, %r5;       st.global.u32 [%oa+68], %r3;
	shr.u32 %r3, %r1, %r5;       st.global.u32 [%oa+72], %r3;
	shr.s32 %r3, %r1, %r5;       st.global.u32 [%oa+76], %r3;
	popc.b32 %r3, %r1;           st.global.u32 [%oa+80], %r3;
	clz.b32 %r3, %r1;            st.global.u32 [%oa+84], %r3;
	brev.b32 %r3, %r1;           st.global.u32 [%oa+88], %r3;
	bfind.u32 %r3, %r1;          st.global.u32 [%oa+92], %r3;
	bfind.s32 %r3, %r1;          st.global.u32 [%oa+96], %r3;
	bfind.shiftamt.u32 %r3, %r1; st.global.u32 [%oa+100], %r3;
	and.b32 %r6, %r2, 31;
	shr.u32 %r7, %r2, 5;
	and.b32 %r7, %r7, 31;
	bfe.u32 %r3, %r1, %r6, %r7;  st.global.u32 [%oa+104], %r3;
	bfe.s32 %r3, %r1, %r6, %r7;  st.global.u32 [%oa+108], %r3;
	bfi.b32 %r3, %r2, %r1, %r6, %r7; st.global.u32 [%oa+112], %r3;
	add.sat.s32 %r3, %r1, %r2;   st.global.u32 [%oa+116], %r3;
	sub.sat.s32 %r3, %r1, %r2;   st.global.u32 [%oa+120], %r3;
	mad.lo.s32 %r3, %r1, %r2, %r1; st.global.u32 [%oa+124], %r3;
	lop3.b32 %r3, %r1, %r2, %r5, 0x96; st.global.u32 [%oa+128], %r3;
	shf.l.wrap.b32 %r3, %r1, %r2, %r5;  st.global.u32 [%oa+132], %r3;
	shf.r.clamp.b32 %r3, %r1, %r2, %r5; st.global.u32 [%oa+136], %r3;
	cnot.b32 %r3, %r1;           st.global.u32 [%oa+140], %r3;
	mad.hi.u32 %r3, %r1, %r2, %r2; st.global.u32 [%oa+144], %r3;
	min.u32 %r3, %r1, %r2;       st.global.u32 [%oa+148], %r3;
	max.s32 %r3, %r1, %r2;       st.global.u32 [%oa+152], %r3;
";
    let input = inputs();
    let out = run(body, 39, THREADS, &input);
    for t in 0..THREADS as usize {
        let (a, b) = (input[t], input[t + THREADS as usize]);
        let (sa, sb) = (a as i32, b as i32);
        let div = (b & 0xffff) | 1;
        let sh = b & 63;
        let (pos, len) = (b & 31, (b >> 5) & 31);
        let wide = ((b as u64) << 32) | a as u64;
        let want: Vec<u32> = vec![
            a.wrapping_add(b),
            a.wrapping_sub(b),
            a.wrapping_mul(b),
            ((sa as i64 * sb as i64) >> 32) as u32,
            ((a as u64 * b as u64) >> 32) as u32,
            (sa / div as i32) as u32,
            (sa % div as i32) as u32,
            a / div,
            a % div,
            sa.min(sb) as u32,
            a.max(b),
            sa.wrapping_abs() as u32,
            sa.wrapping_neg() as u32,
            a & b,
            a | b,
            a ^ b,
            !a,
            if sh >= 32 { 0 } else { a << sh },
            if sh >= 32 { 0 } else { a >> sh },
            (sa >> sh.min(31)) as u32,
            a.count_ones(),
            a.leading_zeros(),
            a.reverse_bits(),
            if a == 0 {
                u32::MAX
            } else {
                31 - a.leading_zeros()
            },
            {
                let s = if sa < 0 { !a } else { a };
                if s == 0 {
                    u32::MAX
                } else {
                    31 - s.leading_zeros()
                }
            },
            if a == 0 { u32::MAX } else { a.leading_zeros() },
            bfe_ref(a, pos, len, false),
            bfe_ref(a, pos, len, true),
            bfi_ref(b, a, pos, len),
            sa.saturating_add(sb) as u32,
            sa.saturating_sub(sb) as u32,
            a.wrapping_mul(b).wrapping_add(a),
            a ^ b ^ sh,
            ((wide << (sh & 31)) >> 32) as u32,
            (wide >> sh.min(32)) as u32,
            (a == 0) as u32,
            (((a as u64 * b as u64) >> 32) as u32).wrapping_add(b),
            a.min(b),
            sa.max(sb) as u32,
        ];
        for (k, (g, w)) in out[t].iter().zip(&want).enumerate() {
            assert_eq!(g, w, "thread {t} (a={a:#x}, b={b:#x}), result {k}");
        }
    }
}

#[test]
fn int64_and_int16_ops_match_reference() {
    let body = "
	ld.global.u32 %r1, [%ia];
	ld.global.u32 %r2, [%ia+512];
	mov.b64 %rd1, {%r1, %r2};
	mov.b64 %rd2, {%r2, %r1};
	and.b32 %r5, %r2, 127;
	add.s64 %rd3, %rd1, %rd2;     st.global.u64 [%oa], %rd3;
	mul.lo.s64 %rd3, %rd1, %rd2;  st.global.u64 [%oa+8], %rd3;
	mul.hi.u64 %rd3, %rd1, %rd2;  st.global.u64 [%oa+16], %rd3;
	mul.hi.s64 %rd3, %rd1, %rd2;  st.global.u64 [%oa+24], %rd3;
	or.b64 %rd4, %rd2, 1;
	div.u64 %rd3, %rd1, %rd4;     st.global.u64 [%oa+32], %rd3;
	rem.s64 %rd3, %rd1, %rd4;     st.global.u64 [%oa+40], %rd3;
	shr.s64 %rd3, %rd1, %r5;      st.global.u64 [%oa+48], %rd3;
	shl.b64 %rd3, %rd1, %r5;      st.global.u64 [%oa+56], %rd3;
	mul.wide.s32 %rd3, %r1, %r2;  st.global.u64 [%oa+64], %rd3;
	mul.wide.u32 %rd3, %r1, %r2;  st.global.u64 [%oa+72], %rd3;
	mad.wide.s32 %rd3, %r1, %r2, %rd1; st.global.u64 [%oa+80], %rd3;
	min.s64 %rd3, %rd1, %rd2;     st.global.u64 [%oa+88], %rd3;
	popc.b64 %r3, %rd1;           st.global.u32 [%oa+96], %r3;
	clz.b64 %r3, %rd1;            st.global.u32 [%oa+100], %r3;
	cvt.u16.u32 %h1, %r1;
	cvt.u16.u32 %h2, %r2;
	add.u16 %h3, %h1, %h2;        st.global.u16 [%oa+104], %h3;
	mul.lo.s16 %h3, %h1, %h2;     st.global.u16 [%oa+106], %h3;
	mul.wide.u16 %r3, %h1, %h2;   st.global.u32 [%oa+108], %r3;
	mul.wide.s16 %r3, %h1, %h2;   st.global.u32 [%oa+112], %r3;
	shr.s16 %h3, %h1, 3;          st.global.u16 [%oa+116], %h3;
	min.s16 %h3, %h1, %h2;        st.global.u16 [%oa+118], %h3;
	brev.b64 %rd3, %rd1;          st.global.u64 [%oa+120], %rd3;
	neg.s64 %rd3, %rd1;           st.global.u64 [%oa+128], %rd3;
	bfe.s64 %rd3, %rd1, 60, 8;    st.global.u64 [%oa+136], %rd3;
";
    let input = inputs();
    let out = run(body, 36, THREADS, &input);
    for t in 0..THREADS as usize {
        let (a, b) = (input[t], input[t + THREADS as usize]);
        let x = ((b as u64) << 32) | a as u64;
        let y = ((a as u64) << 32) | b as u64;
        let sh = b & 127;
        let word = |k: usize| (out[t][k] as u64) | ((out[t][k + 1] as u64) << 32);
        let (h1, h2) = (a as u16, b as u16);
        let want64 = [
            x.wrapping_add(y),
            x.wrapping_mul(y),
            ((x as u128 * y as u128) >> 64) as u64,
            ((x as i64 as i128 * y as i64 as i128) >> 64) as u64,
            x / (y | 1),
            ((x as i64) % ((y | 1) as i64)) as u64,
            ((x as i64) >> sh.min(63)) as u64,
            if sh >= 64 { 0 } else { x << sh },
            (a as i32 as i64 * b as i32 as i64) as u64,
            a as u64 * b as u64,
            (a as i32 as i64 * b as i32 as i64).wrapping_add(x as i64) as u64,
            (x as i64).min(y as i64) as u64,
        ];
        for (k, w) in want64.iter().enumerate() {
            assert_eq!(word(2 * k), *w, "thread {t} 64-bit result {k}");
        }
        assert_eq!(out[t][24], x.count_ones());
        assert_eq!(out[t][25], x.leading_zeros());
        let w26 = out[t][26];
        assert_eq!(w26 as u16, h1.wrapping_add(h2));
        assert_eq!(
            (w26 >> 16) as u16,
            (h1 as i16).wrapping_mul(h2 as i16) as u16
        );
        assert_eq!(out[t][27], h1 as u32 * h2 as u32);
        assert_eq!(out[t][28], (h1 as i16 as i32 * h2 as i16 as i32) as u32);
        assert_eq!(out[t][29] as u16, ((h1 as i16) >> 3) as u16);
        assert_eq!((out[t][29] >> 16) as u16, (h1 as i16).min(h2 as i16) as u16);
        assert_eq!(word(30), x.reverse_bits());
        assert_eq!(word(32), x.wrapping_neg());
        let field = x >> 60;
        let sext = if field & 0x8 != 0 {
            field | !0xf
        } else {
            field
        };
        assert_eq!(word(34), sext, "bfe.s64 past the top replicates bit 63");
    }
}

#[test]
fn prmt_selp_slct() {
    let body = "
	ld.global.u32 %r1, [%ia];
	ld.global.u32 %r2, [%ia+512];
	and.b32 %r5, %r2, 65535;
	prmt.b32 %r3, %r1, %r2, %r5;  st.global.u32 [%oa], %r3;
	setp.lt.s32 %p1, %r1, %r2;
	selp.b32 %r3, %r1, %r2, %p1;  st.global.u32 [%oa+4], %r3;
	slct.u32.s32 %r3, %r1, %r2, %r2; st.global.u32 [%oa+8], %r3;
	mov.b32 %f1, %r2;
	slct.u32.f32 %r3, %r1, %r2, %f1; st.global.u32 [%oa+12], %r3;
	selp.u32 %r3, 7, 9, %p1;      st.global.u32 [%oa+16], %r3;
";
    let input = inputs();
    let out = run(body, 5, THREADS, &input);
    for t in 0..THREADS as usize {
        let (a, b) = (input[t], input[t + THREADS as usize]);
        let bytes = ((b as u64) << 32 | a as u64).to_le_bytes();
        let mut want = 0u32;
        for i in 0..4 {
            let sel = (b >> (4 * i)) & 0xf;
            let byte = bytes[(sel & 7) as usize];
            let byte = if sel & 8 != 0 {
                if byte & 0x80 != 0 {
                    0xff
                } else {
                    0
                }
            } else {
                byte
            };
            want |= (byte as u32) << (8 * i);
        }
        assert_eq!(out[t][0], want, "prmt thread {t}");
        let lt = (a as i32) < (b as i32);
        assert_eq!(out[t][1], if lt { a } else { b });
        assert_eq!(out[t][2], if b as i32 >= 0 { a } else { b });
        let fb = f32::from_bits(b);
        assert_eq!(
            out[t][3],
            if fb >= 0.0 { a } else { b },
            "slct.f32 with {fb}"
        );
        assert_eq!(out[t][4], if lt { 7 } else { 9 });
    }
}
