//! Comparisons, predication, divergent branches and their reconvergence, loops with
//! lane-dependent trip counts, early exit, and special registers over a multi-dim grid.

use runtime::emu::{Device, KernelArg, LaunchConfig, Module, SanitizerMode};

use crate::common::{bits, from_bytes, run, try_run_with, HEADER};

#[test]
fn setp_all_comparisons() {
    // Each comparison writes one bit of the result word.
    let float_cmps = [
        "eq", "ne", "lt", "le", "gt", "ge", "equ", "neu", "ltu", "leu", "gtu", "geu", "num", "nan",
    ];
    let mut body = String::from(
        "\tld.global.f32 %f1, [%ia];\n\tld.global.f32 %f2, [%ia+256];\n\tmov.u32 %r1, 0;\n",
    );
    for (i, c) in float_cmps.iter().enumerate() {
        body += &format!(
            "\tsetp.{c}.f32 %p1, %f1, %f2;\n\tselp.u32 %r2, {}, 0, %p1;\n\tor.b32 %r1, %r1, %r2;\n",
            1u32 << i
        );
    }
    let int_cmps = ["eq", "ne", "lt", "le", "gt", "ge"];
    for (i, c) in int_cmps.iter().enumerate() {
        body += &format!(
            "\tmov.b32 %r3, %f1;\n\tmov.b32 %r4, %f2;\n\tsetp.{c}.s32 %p1, %r3, %r4;\n\tselp.u32 %r2, {}, 0, %p1;\n\tor.b32 %r1, %r1, %r2;\n\
             \tsetp.{c}.u32 %p1, %r3, %r4;\n\tselp.u32 %r2, {}, 0, %p1;\n\tor.b32 %r1, %r1, %r2;\n",
            1u32 << (14 + i),
            1u32 << (20 + i)
        );
    }
    body += "\tst.global.u32 [%oa], %r1;\n";
    let pairs = [
        (1.0f32, 2.0f32),
        (2.0, 1.0),
        (1.0, 1.0),
        (f32::NAN, 1.0),
        (1.0, f32::NAN),
        (-0.0, 0.0),
        (-1.0, 3.0),
        (f32::NEG_INFINITY, -1.0),
    ];
    let mut input = vec![0u32; 128];
    for (i, (a, b)) in pairs.iter().enumerate() {
        input[i] = a.to_bits();
        input[64 + i] = b.to_bits();
    }
    let out = run(&body, 1, pairs.len() as u32, &input);
    for (t, (a, b)) in pairs.iter().enumerate() {
        let (a, b) = (*a, *b);
        let u = a.is_nan() || b.is_nan();
        let fw = [
            a == b,
            a != b && !u,
            a < b,
            a <= b,
            a > b,
            a >= b,
            u || a == b,
            a != b,
            u || a < b,
            u || a <= b,
            u || a > b,
            u || a >= b,
            !u,
            u,
        ];
        let (x, y) = (a.to_bits(), b.to_bits());
        let (sx, sy) = (x as i32, y as i32);
        let sw = [sx == sy, sx != sy, sx < sy, sx <= sy, sx > sy, sx >= sy];
        let uw = [x == y, x != y, x < y, x <= y, x > y, x >= y];
        let mut want = 0u32;
        for (i, w) in fw.iter().enumerate() {
            want |= (*w as u32) << i;
        }
        for i in 0..6 {
            want |= (sw[i] as u32) << (14 + i) | (uw[i] as u32) << (20 + i);
        }
        assert_eq!(
            out[t][0], want,
            "comparisons of {a} and {b}: got {:#b}, want {want:#b}",
            out[t][0]
        );
    }
}

#[test]
fn predication_setp_combine_and_pred_logic() {
    let body = "
	mov.u32 %r1, %tid.x;
	and.b32 %r2, %r1, 1;
	setp.eq.s32 %p1|%p2, %r2, 1;
	and.b32 %r3, %r1, 2;
	setp.ne.and.s32 %p3, %r3, 0, %p1;
	setp.ne.or.s32 %p4|%p5, %r3, 0, !%p1;
	mov.u32 %r4, 100;
	@%p1 add.s32 %r4, %r4, 1;
	@!%p1 add.s32 %r4, %r4, 2;
	@%p3 add.s32 %r4, %r4, 10;
	@%p4 add.s32 %r4, %r4, 1000;
	@%p5 add.s32 %r4, %r4, 20000;
	xor.pred %p6, %p1, %p3;
	not.pred %p7, %p6;
	@%p7 add.s32 %r4, %r4, 300000;
	and.pred %p6, %p2, %p4;
	or.pred %p7, %p6, %p3;
	@%p7 add.s32 %r4, %r4, 4000000;
	st.global.u32 [%oa], %r4;
";
    let out = run(body, 1, 8, &[]);
    for t in 0..8u32 {
        let p1 = t & 1 == 1;
        let p2 = !p1;
        let p3 = (t & 2 != 0) && p1;
        let p4 = (t & 2 != 0) || !p1;
        let p5 = t & 2 == 0 || !p1;
        let mut want = 100 + if p1 { 1 } else { 2 };
        want += if p3 { 10 } else { 0 } + if p4 { 1000 } else { 0 } + if p5 { 20000 } else { 0 };
        if !(p1 ^ p3) {
            want += 300_000;
        }
        if (p2 && p4) || p3 {
            want += 4_000_000;
        }
        assert_eq!(out[t as usize][0], want, "thread {t}");
    }
}

#[test]
fn constant_predicates_from_immediates() {
    // NVRTC emits `mov.pred %p, -1;` for a constant true (embedding kernels do).
    let body = "
	mov.pred %p1, -1;
	mov.pred %p2, 0;
	mov.u32 %r1, 0;
	@%p1 add.s32 %r1, %r1, 1;
	@%p2 add.s32 %r1, %r1, 2;
	@!%p2 add.s32 %r1, %r1, 4;
	st.global.u32 [%oa], %r1;
";
    let out = run(body, 1, 4, &[]);
    assert!(out.iter().all(|t| t[0] == 5), "{out:?}");
}

#[test]
fn divergent_branches_reconverge_before_shuffles() {
    // if (lane % 3 == 0) x = lane * 10; else if (lane % 3 == 1) x = lane + 1000; else x = -lane;
    // then a full-warp butterfly sum (which faults unless the warp has reconverged).
    let body = "
	mov.u32 %r1, %laneid;
	rem.u32 %r2, %r1, 3;
	setp.eq.s32 %p1, %r2, 0;
	@%p1 bra $THEN;
	setp.eq.s32 %p2, %r2, 1;
	@%p2 bra $ELIF;
	neg.s32 %r3, %r1;
	bra.uni $JOIN;
$ELIF:
	add.s32 %r3, %r1, 1000;
	bra.uni $JOIN;
$THEN:
	mul.lo.s32 %r3, %r1, 10;
$JOIN:
	mov.u32 %r4, %r3;
	shfl.sync.bfly.b32 %r5, %r4, 16, 31, -1;  add.s32 %r4, %r4, %r5;
	shfl.sync.bfly.b32 %r5, %r4, 8, 31, -1;   add.s32 %r4, %r4, %r5;
	shfl.sync.bfly.b32 %r5, %r4, 4, 31, -1;   add.s32 %r4, %r4, %r5;
	shfl.sync.bfly.b32 %r5, %r4, 2, 31, -1;   add.s32 %r4, %r4, %r5;
	shfl.sync.bfly.b32 %r5, %r4, 1, 31, -1;   add.s32 %r4, %r4, %r5;
	st.global.u32 [%oa], %r3;
	st.global.u32 [%oa+4], %r4;
";
    let out = run(body, 2, 64, &[]);
    let x = |l: i32| match l % 3 {
        0 => l * 10,
        1 => l + 1000,
        _ => -l,
    };
    let total: i32 = (0..32).map(x).sum();
    for (t, o) in out.iter().enumerate() {
        let l = (t % 32) as i32;
        assert_eq!(o[0] as i32, x(l));
        assert_eq!(
            o[1] as i32, total,
            "warp sum after reconvergence, thread {t}"
        );
    }
}

#[test]
fn loops_with_lane_dependent_trip_counts() {
    // sum = Σ_{i < tid % 37} (i * i), then a nested loop with a data-dependent inner count,
    // then a shuffle that needs the whole warp back together.
    let body = "
	mov.u32 %r1, %tid.x;
	rem.u32 %r2, %r1, 37;
	mov.u32 %r3, 0;
	mov.u32 %r4, 0;
	setp.eq.s32 %p1, %r2, 0;
	@%p1 bra $DONE;
$LOOP:
	mad.lo.s32 %r4, %r3, %r3, %r4;
	add.s32 %r3, %r3, 1;
	setp.lt.u32 %p2, %r3, %r2;
	@%p2 bra $LOOP;
$DONE:
	mov.u32 %r5, 0;
	mov.u32 %r6, 0;
$OUTER:
	and.b32 %r7, %r1, 3;
	add.s32 %r7, %r7, %r6;
	mov.u32 %r8, 0;
$INNER:
	add.s32 %r5, %r5, 1;
	add.s32 %r8, %r8, 1;
	setp.lt.u32 %p3, %r8, %r7;
	@%p3 bra $INNER;
	add.s32 %r6, %r6, 1;
	setp.lt.u32 %p4, %r6, 3;
	@%p4 bra $OUTER;
	shfl.sync.idx.b32 %r9, %r4, 5, 31, -1;
	st.global.u32 [%oa], %r4;
	st.global.u32 [%oa+4], %r5;
	st.global.u32 [%oa+8], %r9;
";
    let out = run(body, 3, 96, &[]);
    let sum = |t: u32| (0..t % 37).map(|i| i * i).sum::<u32>();
    for t in 0..96u32 {
        assert_eq!(out[t as usize][0], sum(t), "loop sum thread {t}");
        let inner: u32 = (0..3).map(|o| ((t & 3) + o).max(1)).sum();
        assert_eq!(out[t as usize][1], inner, "nested loop thread {t}");
        assert_eq!(out[t as usize][2], sum((t / 32) * 32 + 5));
    }
}

#[test]
fn early_exit_and_barrier_with_the_rest() {
    // Threads with tid % 5 == 0 exit; the others meet at a barrier and read a neighbour's value
    // written before it through shared memory. PTX releases a barrier once every non-exited
    // thread arrives; the sanitizer reports this as barrier divergence (and the reads of the
    // exited neighbours' words as uninitialised), so it is off here.
    let body = "
	.shared .align 4 .b8 buf[512];
	mov.u32 %r1, %tid.x;
	mov.u32 %r9, 7;
	st.global.u32 [%oa], %r9;
	rem.u32 %r2, %r1, 5;
	setp.eq.s32 %p1, %r2, 0;
	@%p1 exit;
	shl.b32 %r3, %r1, 2;
	mov.u32 %r4, buf;
	add.s32 %r5, %r4, %r3;
	mul.lo.s32 %r6, %r1, 3;
	st.shared.u32 [%r5], %r6;
	bar.sync 0;
	add.s32 %r7, %r1, 1;
	rem.u32 %r7, %r7, 128;
	shl.b32 %r7, %r7, 2;
	add.s32 %r7, %r4, %r7;
	ld.shared.u32 %r8, [%r7];
	st.global.u32 [%oa], %r8;
";
    let out = match try_run_with(SanitizerMode::Off, body, 1, 128, 128, &[]) {
        Ok(o) => o.out,
        Err(e) => panic!("{e}"),
    };
    for t in 0..128u32 {
        let want = if t % 5 == 0 {
            7
        } else {
            let n = (t + 1) % 128;
            if n % 5 == 0 {
                0
            } else {
                n * 3
            }
        };
        assert_eq!(out[t as usize][0], want, "thread {t}");
    }
}

#[test]
fn special_registers_over_a_3d_grid() {
    let ptx = format!(
        "{HEADER}.visible .entry sregs(.param .u64 out)
{{
	.reg .b32 %r<32>;
	.reg .b64 %rd<4>;
	ld.param.u64 %rd1, [out];
	cvta.to.global.u64 %rd1, %rd1;
	mov.u32 %r1, %tid.x;  mov.u32 %r2, %tid.y;  mov.u32 %r3, %tid.z;
	mov.u32 %r4, %ntid.x; mov.u32 %r5, %ntid.y; mov.u32 %r6, %ntid.z;
	mov.u32 %r7, %ctaid.x; mov.u32 %r8, %ctaid.y; mov.u32 %r9, %ctaid.z;
	mov.u32 %r10, %nctaid.x; mov.u32 %r11, %nctaid.y; mov.u32 %r12, %nctaid.z;
	mov.u32 %r13, %laneid; mov.u32 %r14, %warpid;
	mov.u32 %r20, %lanemask_lt;
	mad.lo.s32 %r15, %r9, %r11, %r8;
	mad.lo.s32 %r15, %r15, %r10, %r7;
	mad.lo.s32 %r16, %r3, %r5, %r2;
	mad.lo.s32 %r16, %r16, %r4, %r1;
	mul.lo.s32 %r17, %r4, %r5;
	mul.lo.s32 %r17, %r17, %r6;
	mad.lo.s32 %r18, %r15, %r17, %r16;
	mul.wide.u32 %rd2, %r18, 64;
	add.s64 %rd3, %rd1, %rd2;
	st.global.v4.u32 [%rd3], {{%r1, %r2, %r3, %r4}};
	st.global.v4.u32 [%rd3+16], {{%r5, %r6, %r7, %r8}};
	st.global.v4.u32 [%rd3+32], {{%r9, %r10, %r11, %r12}};
	st.global.v4.u32 [%rd3+48], {{%r13, %r14, %r20, %r18}};
	ret;
}}
"
    );
    let module = Module::parse(&ptx).unwrap();
    let mut dev = Device::new();
    let (grid, block) = ([3u32, 2, 2], [5u32, 4, 3]);
    let threads = grid.iter().product::<u32>() * block.iter().product::<u32>();
    let out = dev.alloc(threads as usize * 64);
    let cfg = LaunchConfig {
        grid,
        block,
        dynamic_shared_bytes: 0,
    };
    let report = dev
        .launch(&module, "sregs", cfg, &[KernelArg::Ptr(out)])
        .unwrap();
    assert_eq!(report.blocks, 12);
    let words = from_bytes(&dev.read(out, threads as usize * 64).unwrap());
    let mut seen = 0;
    for bz in 0..2 {
        for by in 0..2 {
            for bx in 0..3 {
                for tz in 0..3 {
                    for ty in 0..4 {
                        for tx in 0..5 {
                            let b = (bz * 2 + by) * 3 + bx;
                            let t = (tz * 4 + ty) * 5 + tx;
                            let g = b * 60 + t;
                            let w = &words[g as usize * 16..g as usize * 16 + 16];
                            let want = [
                                tx,
                                ty,
                                tz,
                                5,
                                4,
                                3,
                                bx,
                                by,
                                bz,
                                3,
                                2,
                                2,
                                t % 32,
                                t / 32,
                                (1u32 << (t % 32)) - 1,
                                g,
                            ];
                            assert_eq!(w, want, "block ({bx},{by},{bz}) thread ({tx},{ty},{tz})");
                            seen += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(seen, threads);
}

#[test]
fn partial_warp_blocks() {
    // 45 threads per block: the second warp has 13 lanes. A full-mask butterfly over a partial
    // warp reads only existing lanes' values for the lanes that exist.
    let body = "
	mov.u32 %r1, %tid.x;
	mov.u32 %r2, %ntid.x;
	st.global.u32 [%oa], %r2;
	mov.b32 %f1, %r1;
	st.global.f32 [%oa+4], %f1;
";
    let out = run(body, 2, 45, &bits(&[]));
    for (t, o) in out.iter().enumerate() {
        assert_eq!(o[0], 45);
        assert_eq!(o[1], t as u32);
    }
}

#[test]
fn spin_wait_on_another_warp_is_reported_not_hung() {
    // Warp 0 spins until warp 1 sets a flag; warps run one after another, so this would never
    // end. The watchdog turns it into an error naming the spinning instruction. (The flag is
    // never initialised, which the sanitizer would report first.)
    let body = "
	.shared .align 4 .b8 flag[4];
	mov.u32 %r1, %tid.x;
	setp.ge.u32 %p1, %r1, 32;
	@%p1 bra $SET;
$SPIN:
	ld.volatile.shared.u32 %r2, [flag];
	setp.eq.s32 %p2, %r2, 0;
	@%p2 bra $SPIN;
	bra.uni $END;
$SET:
	st.volatile.shared.u32 [flag], 1;
$END:
";
    let module = Module::parse(&crate::common::kernel(body, 1)).unwrap();
    let mut dev = Device::new();
    dev.set_sanitizer(false);
    dev.set_warp_instruction_limit(10_000);
    let p = dev.alloc(256);
    let err = dev
        .launch(
            &module,
            "k",
            LaunchConfig::linear(1, 64),
            &[KernelArg::Ptr(p), KernelArg::Ptr(p)],
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("without reaching a barrier or exit") && err.contains("thread [0, 0, 0]"),
        "{err}"
    );
}
