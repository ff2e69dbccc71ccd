//! Atomics and reductions on global and shared memory, with contention within a warp, across
//! warps and across blocks.

use runtime::emu::{Device, KernelArg, LaunchConfig, Module};

use crate::common::{from_bytes, kernel, run, to_bytes};

#[test]
fn contended_global_atomics() {
    // 4 blocks of 256 threads all hit the same words of `in`.
    let body = "
	mov.u32 %r1, %tid.x;
	mov.u32 %r2, %ctaid.x;
	mad.lo.s32 %r3, %r2, 256, %r1;
	atom.global.add.u32 %r4, [%in], 1;
	cvt.rn.f32.u32 %f1, %r3;
	atom.global.add.f32 %f2, [%in+4], %f1;
	atom.global.max.s32 %r5, [%in+8], %r3;
	neg.s32 %r6, %r3;
	atom.global.min.s32 %r5, [%in+12], %r6;
	atom.global.exch.b32 %r7, [%in+16], %r3;
	shl.b32 %r8, 1, %r1;
	atom.global.or.b32 %r9, [%in+20], %r8;
	atom.global.xor.b32 %r9, [%in+24], %r3;
	atom.global.inc.u32 %r9, [%in+28], 99;
	cvt.u64.u32 %rd1, %r3;
	atom.global.add.u64 %rd2, [%in+32], %rd1;
	red.global.add.f32 [%in+40], 0f3F000000;
	atom.global.and.b32 %r9, [%in+44], %r3;
	atom.global.dec.u32 %r9, [%in+48], 5;
	st.global.u32 [%oa], %r4;
";
    let module = Module::parse(&kernel(body, 1)).unwrap();
    let mut dev = Device::new();
    let words = dev.alloc(64);
    dev.write(
        words,
        &to_bytes(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, u32::MAX, 3, 0, 0, 0]),
    )
    .unwrap();
    let out = dev.alloc(1024 * 4);
    let report = dev
        .launch(
            &module,
            "k",
            LaunchConfig::linear(4, 256),
            &[KernelArg::Ptr(out), KernelArg::Ptr(words)],
        )
        .unwrap();
    let w = from_bytes(&dev.read(words, 64).unwrap());
    assert_eq!(w[0], 1024);
    assert_eq!(f32::from_bits(w[1]), (0..1024).sum::<u32>() as f32);
    assert_eq!(w[2], 1023);
    assert_eq!(w[3] as i32, -1023);
    assert_eq!(
        w[4], 1023,
        "sequential order: the last thread's exchange wins"
    );
    assert_eq!(w[5], u32::MAX);
    assert_eq!(w[6], (0..1024).fold(0, |a, b| a ^ b));
    assert_eq!(w[7], 1024 % 100, "inc wraps at 99");
    assert_eq!(w[8] as u64 | (w[9] as u64) << 32, (0..1024u64).sum::<u64>());
    assert_eq!(f32::from_bits(w[10]), 512.0);
    assert_eq!(w[11], 0);
    let dec = (0..1024).fold(3u32, |v, _| if v == 0 || v > 5 { 5 } else { v - 1 });
    assert_eq!(w[12], dec);
    let mut old = from_bytes(&dev.read(out, 1024 * 4).unwrap());
    old.sort_unstable();
    assert_eq!(
        old,
        (0..1024).collect::<Vec<u32>>(),
        "each thread saw a distinct old value"
    );
    assert_eq!(report.counters.atomic_requests, 32 * 12);
}

#[test]
fn shared_atomics_and_cas_spin_loop() {
    // Per block: a shared counter incremented by every thread through a CAS loop (lanes of one
    // warp contend and retry), a shared float sum via red.shared, then thread 0 publishes both.
    let body = "
	.shared .align 4 .b8 acc[8];
	mov.u32 %r1, %tid.x;
	setp.ne.s32 %p1, %r1, 0;
	@%p1 bra $INIT_DONE;
	st.shared.u32 [acc], 0;
	st.shared.f32 [acc+4], 0f00000000;
$INIT_DONE:
	bar.sync 0;
$RETRY:
	ld.volatile.shared.u32 %r2, [acc];
	add.s32 %r3, %r2, 1;
	atom.shared.cas.b32 %r4, [acc], %r2, %r3;
	setp.ne.s32 %p2, %r4, %r2;
	@%p2 bra $RETRY;
	cvt.rn.f32.u32 %f1, %r1;
	red.shared.add.f32 [acc+4], %f1;
	bar.sync 0;
	@%p1 bra $END;
	ld.shared.u32 %r5, [acc];
	ld.shared.f32 %f2, [acc+4];
	st.global.u32 [%oa], %r5;
	st.global.f32 [%oa+4], %f2;
$END:
";
    let out = run(body, 2, 200, &[]);
    assert_eq!(out[0][0], 200);
    assert_eq!(f32::from_bits(out[0][1]), (0..200).sum::<u32>() as f32);
}
