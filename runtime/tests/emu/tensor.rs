//! Tensor-core instructions: `mma.sync` m16n8k16 (bf16 and f16 inputs, f32 accumulators) against
//! a host matmul on the PTX ISA's fragment layouts, `ldmatrix` x1/x2/x4 with and without
//! `.trans` against the layout computed on the host, and the faults for a partial warp and the
//! sanitizer finding for an uninitialised `ldmatrix` read.

use runtime::emu::{EmuError, FindingKind};

use crate::common::{f32s, run, try_run, Rng};

/// A bf16 or f16 value exactly representable in both (small integers and halves), as bits.
fn small(rng: &mut Rng, f16: bool) -> (f32, u16) {
    let v = ((rng.next_u64() % 15) as f32 - 7.0) * 0.5;
    let bits = if f16 {
        half::f16::from_f32(v).to_bits()
    } else {
        half::bf16::from_f32(v).to_bits()
    };
    (v, bits)
}

fn pack(lo: u16, hi: u16) -> u32 {
    lo as u32 | (hi as u32) << 16
}

fn mma_matches_host_matmul(ty: &str) {
    let f16 = ty == "f16";
    let mut rng = Rng::new(7);
    let (mut a, mut ab) = ([[0f32; 16]; 16], [[0u16; 16]; 16]);
    let (mut b, mut bb) = ([[0f32; 8]; 16], [[0u16; 8]; 16]);
    let mut c = [[0f32; 8]; 16];
    for i in 0..16 {
        for k in 0..16 {
            (a[i][k], ab[i][k]) = small(&mut rng, f16);
        }
    }
    for k in 0..16 {
        for j in 0..8 {
            (b[k][j], bb[k][j]) = small(&mut rng, f16);
        }
    }
    for row in c.iter_mut() {
        for x in row.iter_mut() {
            *x = rng.uniform() * 8.0;
        }
    }
    // Per lane: a0..a3, b0, b1, 2 pad words, c0..c3 (12 words, 48 bytes).
    let mut input = Vec::new();
    for lane in 0..32 {
        let (g, t) = (lane / 4, lane % 4);
        for (row, col) in [(g, 2 * t), (g + 8, 2 * t), (g, 2 * t + 8), (g + 8, 2 * t + 8)] {
            input.push(pack(ab[row][col], ab[row][col + 1]));
        }
        for k in [2 * t, 2 * t + 8] {
            input.push(pack(bb[k][g], bb[k + 1][g]));
        }
        input.extend([0, 0]);
        for (row, col) in [(g, 2 * t), (g, 2 * t + 1), (g + 8, 2 * t), (g + 8, 2 * t + 1)] {
            input.push(c[row][col].to_bits());
        }
    }
    let body = format!(
        "
	mov.u32 %r1, %tid.x;
	mul.wide.u32 %t64, %r1, 48;
	add.s64 %rd1, %in, %t64;
	ld.global.v4.u32 {{%r2, %r3, %r4, %r5}}, [%rd1];
	ld.global.v2.u32 {{%r6, %r7}}, [%rd1+16];
	ld.global.v4.f32 {{%f1, %f2, %f3, %f4}}, [%rd1+32];
	mma.sync.aligned.m16n8k16.row.col.f32.{ty}.{ty}.f32 {{%f5, %f6, %f7, %f8}}, {{%r2, %r3, %r4, %r5}}, {{%r6, %r7}}, {{%f1, %f2, %f3, %f4}};
	st.global.v4.f32 [%oa], {{%f5, %f6, %f7, %f8}};
"
    );
    let out = run(&body, 4, 32, &input);
    for (lane, words) in out.iter().enumerate() {
        let (g, t) = (lane / 4, lane % 4);
        let got = f32s(words);
        for (i, (row, col)) in [(g, 2 * t), (g, 2 * t + 1), (g + 8, 2 * t), (g + 8, 2 * t + 1)]
            .into_iter()
            .enumerate()
        {
            let exact: f64 = c[row][col] as f64
                + (0..16).map(|k| a[row][k] as f64 * b[k][col] as f64).sum::<f64>();
            assert_eq!(got[i], exact as f32, "{ty} D[{row}][{col}] (lane {lane}, d{i})");
        }
    }
}

#[test]
fn mma_bf16_matches_host_matmul() {
    mma_matches_host_matmul("bf16");
}

#[test]
fn mma_f16_matches_host_matmul() {
    mma_matches_host_matmul("f16");
}

/// Thread `s` stores shared row `s` (8 b16 elements `8s + j + 1`); lane `l` then addresses
/// shared row `3l mod 32`, a permutation, so each matrix's rows come from scattered places.
fn ldmatrix_body(count: usize, trans: bool, store: bool) -> String {
    let regs = ["%r10", "%r11", "%r12", "%r13"][..count].join(", ");
    let store_rows = if store {
        "st.shared.v4.u32 [%r8], {%r2, %r3, %r4, %r5};"
    } else {
        ""
    };
    let trans = if trans { ".trans" } else { "" };
    format!(
        "
	.shared .align 16 .b8 sm[512];
	mov.u32 %r1, %tid.x;
	mul.wide.u32 %t64, %r1, 16;
	add.s64 %rd1, %in, %t64;
	ld.global.v4.u32 {{%r2, %r3, %r4, %r5}}, [%rd1];
	mov.u32 %r6, sm;
	shl.b32 %r7, %r1, 4;
	add.u32 %r8, %r6, %r7;
	{store_rows}
	bar.sync 0;
	mul.lo.u32 %r9, %r1, 3;
	and.b32 %r9, %r9, 31;
	shl.b32 %r9, %r9, 4;
	add.u32 %r9, %r6, %r9;
	ldmatrix.sync.aligned.m8n8.x{count}{trans}.shared.b16 {{{regs}}}, [%r9];
	st.global.v4.u32 [%oa], {{%r10, %r11, %r12, %r13}};
"
    )
}

fn elem(row: usize, j: usize) -> u16 {
    (row * 8 + j + 1) as u16
}

#[test]
fn ldmatrix_layouts() {
    let input: Vec<u32> = (0..32)
        .flat_map(|s| (0..4).map(move |w| pack(elem(s, 2 * w), elem(s, 2 * w + 1))))
        .collect();
    for count in [1, 2, 4] {
        for trans in [false, true] {
            let out = run(&ldmatrix_body(count, trans, true), 4, 32, &input);
            // Row r of matrix i is shared row 3(8i + r) mod 32.
            let at = |i: usize, r: usize, col: usize| elem((3 * (8 * i + r)) % 32, col);
            for (lane, words) in out.iter().enumerate() {
                let (q, p) = (lane / 4, 2 * (lane % 4));
                for (i, &word) in words.iter().enumerate().take(count) {
                    let want = if trans {
                        pack(at(i, p, q), at(i, p + 1, q))
                    } else {
                        pack(at(i, q, p), at(i, q, p + 1))
                    };
                    assert_eq!(word, want, "x{count} trans={trans} lane {lane} matrix {i}");
                }
            }
        }
    }
}

#[test]
fn ldmatrix_of_unwritten_shared_memory_is_reported() {
    let err = try_run(&ldmatrix_body(4, false, false), 4, 32, 32, &[0; 128]).err();
    match err {
        Some(EmuError::Sanitizer(f)) => {
            assert_eq!(f.kind, FindingKind::UninitializedSharedRead, "{f}");
            assert!(f.text.contains("ldmatrix"), "{f}");
        }
        other => panic!("expected an uninitialised-read finding, got {other:?}"),
    }
}

#[test]
fn mma_in_a_partial_warp_is_a_fault() {
    let body = "
	mov.u32 %r1, %tid.x;
	setp.lt.u32 %p1, %r1, 16;
	@%p1 mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%f5, %f6, %f7, %f8}, {%r2, %r3, %r4, %r5}, {%r6, %r7}, {%f1, %f2, %f3, %f4};
";
    match try_run(body, 1, 32, 32, &[]) {
        Err(EmuError::Runtime(fault)) => assert!(fault.msg.contains("all 32 lanes"), "{fault}"),
        other => panic!("expected a fault, got {:?}", other.err()),
    }
}
