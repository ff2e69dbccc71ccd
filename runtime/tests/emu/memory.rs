//! Loads and stores in every state space: vector forms, sub-word sign/zero extension, shared
//! memory across warps with barriers, dynamic shared memory, local memory through generic
//! addresses, struct parameters, module-level globals, and the bounds/alignment faults.

use runtime::emu::{Class, Device, EmuError, KernelArg, LaunchConfig, Module, SanitizerMode};

use crate::common::{from_bytes, run, run1, to_bytes, try_run, try_run_with, HEADER};

#[test]
fn shared_memory_across_warps_with_barriers() {
    // Block of 256: each thread stores tid*3, barrier, reads (tid + 37) % 256, barrier, then
    // overwrites its slot with that value and reads the mirrored slot.
    let body = "
	.shared .align 4 .b8 tile[1024];
	mov.u32 %r1, %tid.x;
	mov.u64 %rd1, tile;
	mul.wide.u32 %rd2, %r1, 4;
	add.s64 %rd3, %rd1, %rd2;
	mul.lo.s32 %r2, %r1, 3;
	st.shared.u32 [%rd3], %r2;
	bar.sync 0;
	add.s32 %r3, %r1, 37;
	and.b32 %r3, %r3, 255;
	mul.wide.u32 %rd4, %r3, 4;
	add.s64 %rd5, %rd1, %rd4;
	ld.shared.u32 %r4, [%rd5];
	barrier.sync 0;
	st.shared.u32 [%rd3], %r4;
	bar.sync 0;
	sub.s32 %r5, 255, %r1;
	mul.wide.u32 %rd6, %r5, 4;
	add.s64 %rd7, %rd1, %rd6;
	ld.shared.u32 %r6, [%rd7];
	st.global.v2.u32 [%oa], {%r4, %r6};
";
    let o = try_run(body, 2, 512, 256, &[]).unwrap();
    for t in 0..512u32 {
        let tid = t % 256;
        assert_eq!(o.out[t as usize][0], ((tid + 37) % 256) * 3);
        assert_eq!(o.out[t as usize][1], ((255 - tid + 37) % 256) * 3);
    }
    assert_eq!(o.report.counters.barriers, 2 * 3);
    assert_eq!(o.report.counters.shared_load_requests, 2 * 8 * 2);
}

#[test]
fn vector_and_subword_accesses() {
    let body = "
	ld.global.v4.u32 {%r1, %r2, %r3, %r4}, [%in];
	ld.global.nc.v2.f32 {%f1, %f2}, [%in+8];
	ld.global.v4.u32 {_, %r5, _, %r6}, [%in];
	ld.global.s8 %r7, [%in+3];
	ld.global.u8 %r8, [%in+3];
	ld.global.s16 %rd1, [%in+6];
	ld.global.u16 %h1, [%in+6];
	ld.global.s32 %rd2, [%in+12];
	st.global.v4.u32 [%oa], {%r4, %r3, %r2, %r1};
	st.global.v2.f32 [%oa+16], {%f2, %f1};
	st.global.v2.u32 [%oa+24], {%r5, %r6};
	st.global.u32 [%oa+32], %r7;
	st.global.u32 [%oa+36], %r8;
	st.global.u64 [%oa+40], %rd1;
	st.global.u16 [%oa+48], %h1;
	st.global.u8 [%oa+50], %r7;
	st.global.u8 [%oa+51], 0x5A;
	st.global.u64 [%oa+56], %rd2;
";
    let input = [0x8433_2211u32, 0xF123_4567, 0x3f80_0000, 0xC000_0000];
    let out = run(body, 16, 1, &input).remove(0);
    assert_eq!(
        &out[..4],
        &[0xC000_0000, 0x3f80_0000, 0xF123_4567, 0x8433_2211]
    );
    assert_eq!(&out[4..6], &[0xC000_0000, 0x3f80_0000]);
    assert_eq!(&out[6..8], &[0xF123_4567, 0xC000_0000]);
    assert_eq!(out[8], 0xFFFF_FF84, "ld.s8 sign-extends");
    assert_eq!(out[9], 0x84, "ld.u8 zero-extends");
    assert_eq!(
        out[10] as u64 | (out[11] as u64) << 32,
        0xFFFF_FFFF_FFFF_F123,
        "ld.s16 into a 64-bit register"
    );
    assert_eq!(
        out[12], 0x5A84_F123,
        "st.u16, st.u8 of a register and of an immediate"
    );
    assert_eq!(
        out[14] as u64 | (out[15] as u64) << 32,
        0xFFFF_FFFF_C000_0000,
        "ld.s32 into a 64-bit register"
    );
}

#[test]
fn dynamic_shared_memory_follows_static() {
    let ptx = format!(
        "{HEADER}.extern .shared .align 16 .b8 dyn[];
.visible .entry k(.param .u64 out)
{{
	.shared .align 4 .b8 fixed[12];
	.reg .pred %p<2>;
	.reg .b32 %r<8>;
	.reg .b64 %rd<8>;
	ld.param.u64 %rd1, [out];
	mov.u32 %r1, %tid.x;
	mov.u64 %rd2, dyn;
	mul.wide.u32 %rd3, %r1, 4;
	add.s64 %rd4, %rd2, %rd3;
	st.shared.u32 [%rd4], %r1;
	setp.eq.u32 %p1, %r1, 0;
	@%p1 st.shared.u32 [fixed+8], 99;
	bar.sync 0;
	ld.shared.u32 %r2, [dyn+4];
	ld.shared.u32 %r3, [fixed+8];
	mov.u32 %r4, %dynamic_smem_size;
	cvt.u32.u64 %r5, %rd2;
	add.s64 %rd5, %rd1, %rd3;
	mul.wide.u32 %rd6, %r1, 16;
	add.s64 %rd5, %rd1, %rd6;
	st.global.v4.u32 [%rd5], {{%r2, %r3, %r4, %r5}};
	ret;
}}
"
    );
    let module = Module::parse(&ptx).unwrap();
    let mut dev = Device::new();
    let out = dev.alloc(64 * 16);
    let cfg = LaunchConfig {
        grid: [1, 1, 1],
        block: [64, 1, 1],
        dynamic_shared_bytes: 256,
    };
    dev.launch(&module, "k", cfg, &[KernelArg::Ptr(out)])
        .unwrap();
    let w = from_bytes(&dev.read(out, 64 * 16).unwrap());
    for t in 0..64 {
        assert_eq!(&w[t * 4..t * 4 + 4], &[1, 99, 256, 16], "thread {t}");
    }
    // Dynamic shared memory beyond what was asked for is out of range.
    let small = LaunchConfig {
        dynamic_shared_bytes: 128,
        ..cfg
    };
    let err = dev
        .launch(&module, "k", small, &[KernelArg::Ptr(out)])
        .unwrap_err();
    assert!(
        err.to_string().contains("out-of-range shared access"),
        "{err}"
    );
}

#[test]
fn local_memory_and_generic_addressing() {
    // A per-thread local array written through a generic pointer (as NVRTC does for stack
    // arrays), read back through .local, plus generic access to shared memory.
    let body = "
	.local .align 4 .b8 depot[32];
	.shared .align 4 .b8 sh[256];
	.reg .b64 %SP, %SPL;
	mov.u64 %SPL, depot;
	cvta.local.u64 %SP, %SPL;
	mov.u32 %r1, %tid.x;
	mov.u32 %r2, 0;
$FILL:
	mul.wide.u32 %rd1, %r2, 4;
	add.s64 %rd2, %SP, %rd1;
	mad.lo.s32 %r3, %r1, 100, %r2;
	st.u32 [%rd2], %r3;
	add.s32 %r2, %r2, 1;
	setp.lt.u32 %p1, %r2, 8;
	@%p1 bra $FILL;
	ld.local.u32 %r4, [depot+28];
	ld.local.u32 %r5, [%SPL+4];
	mov.u64 %rd3, sh;
	cvta.shared.u64 %rd4, %rd3;
	mul.wide.u32 %rd5, %r1, 4;
	add.s64 %rd6, %rd4, %rd5;
	st.u32 [%rd6], %r4;
	bar.sync 0;
	cvta.to.shared.u64 %rd7, %rd6;
	ld.shared.u32 %r6, [%rd7];
	ld.u32 %r7, [%rd6];
	st.global.v4.u32 [%oa], {%r4, %r5, %r6, %r7};
";
    let out = run(body, 4, 40, &[]);
    for t in 0..40u32 {
        assert_eq!(
            out[t as usize],
            vec![t * 100 + 7, t * 100 + 1, t * 100 + 7, t * 100 + 7]
        );
    }
}

#[test]
fn struct_parameter_and_module_globals() {
    let ptx = format!(
        "{HEADER}.global .align 4 .b8 table[8] = {{1, 2, 3, 4, 5, 6, 7, 8}};
.global .align 4 .u32 counter;
.visible .entry k(
	.param .u64 out,
	.param .align 8 .b8 args[16]
)
{{
	.reg .b32 %r<8>;
	.reg .b64 %rd<4>;
	.reg .f32 %f<2>;
	ld.param.u64 %rd1, [out];
	ld.param.u32 %r1, [args];
	ld.param.f32 %f1, [args+4];
	ld.param.u64 %rd2, [args+8];
	ld.global.u32 %r2, [table+4];
	mov.u64 %rd3, counter;
	atom.global.add.u32 %r3, [%rd3], 1;
	st.global.u32 [%rd1], %r1;
	st.global.f32 [%rd1+4], %f1;
	st.global.u64 [%rd1+8], %rd2;
	st.global.u32 [%rd1+16], %r2;
	st.global.u32 [%rd1+20], %r3;
	ret;
}}
"
    );
    let module = Module::parse(&ptx).unwrap();
    let mut dev = Device::new();
    let out = dev.alloc(24);
    let mut s = Vec::new();
    s.extend_from_slice(&7u32.to_le_bytes());
    s.extend_from_slice(&2.5f32.to_le_bytes());
    s.extend_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
    let args = [KernelArg::Ptr(out), KernelArg::Bytes(s)];
    for launch in 0..3u32 {
        dev.launch(&module, "k", LaunchConfig::linear(1, 1), &args)
            .unwrap();
        let w = from_bytes(&dev.read(out, 24).unwrap());
        assert_eq!(
            w,
            vec![
                7,
                2.5f32.to_bits(),
                0x5566_7788,
                0x1122_3344,
                0x0807_0605,
                launch
            ]
        );
    }
    // A second device maps its own copy of the module's variables.
    let mut other = Device::new();
    let out2 = other.alloc(24);
    other
        .launch(
            &module,
            "k",
            LaunchConfig::linear(1, 1),
            &[KernelArg::Ptr(out2), args[1].clone()],
        )
        .unwrap();
    assert_eq!(from_bytes(&other.read(out2, 24).unwrap())[5], 0);
}

fn runtime_error(err: EmuError) -> (u32, String, [u32; 3], [u32; 3], String) {
    match err {
        EmuError::Runtime(f) => (f.line, f.text, f.pos.block, f.pos.thread, f.msg),
        other => panic!("expected a runtime error, got {other}"),
    }
}

#[test]
fn out_of_bounds_global_access_names_kernel_line_block_thread() {
    // 64 threads in blocks of 32 read in[tid]; the input has 40 words, so thread 40 (block 1,
    // thread 8) is the first to read past its allocation.
    let body = "
	ld.global.u32 %r1, [%ia];
	st.global.u32 [%oa], %r1;
";
    let module = Module::parse(&crate::common::kernel(body, 1)).unwrap();
    let mut dev = Device::new();
    let input = dev.alloc(40 * 4);
    let out = dev.alloc(64 * 4);
    let err = dev
        .launch(
            &module,
            "k",
            LaunchConfig::linear(2, 32),
            &[KernelArg::Ptr(out), KernelArg::Ptr(input)],
        )
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("kernel `k`"), "{text}");
    let (line, src, block, thread, msg) = runtime_error(err);
    assert_eq!(src, "ld.global.u32 %r1, [%ia];");
    assert!(line > 10, "line {line}");
    assert_eq!(block, [1, 0, 0]);
    assert_eq!(thread, [8, 0, 0]);
    assert!(
        msg.contains("out-of-bounds global access of 4 bytes")
            && msg.contains("0 bytes past the end of the 160-byte allocation"),
        "{msg}"
    );
}

#[test]
fn misaligned_and_shared_out_of_range_accesses_fault() {
    let (_, src, _, thread, msg) = runtime_error(
        try_run("\tld.global.u32 %r1, [%ia+2];", 1, 4, 4, &[1, 2, 3, 4])
            .err()
            .unwrap(),
    );
    assert_eq!(src, "ld.global.u32 %r1, [%ia+2];");
    assert_eq!(thread, [0, 0, 0]);
    assert!(msg.contains("misaligned 4-byte access"), "{msg}");

    let body = "
	.shared .align 16 .b8 sh[64];
	mov.u32 %r1, %tid.x;
	shl.b32 %r1, %r1, 4;
	mov.u32 %r2, sh;
	add.s32 %r2, %r2, %r1;
	st.shared.v4.u32 [%r2], {%r1, %r1, %r1, %r1};
";
    let (_, _, _, thread, msg) = runtime_error(try_run(body, 1, 8, 8, &[]).err().unwrap());
    assert_eq!(thread, [4, 0, 0]);
    assert!(
        msg.contains("out-of-range shared access of 16 bytes at offset 0x40"),
        "{msg}"
    );
}

#[test]
fn host_memory_errors() {
    let mut dev = Device::new();
    let p = dev.alloc(16);
    dev.write(p, &to_bytes(&[1, 2, 3, 4])).unwrap();
    assert_eq!(from_bytes(&dev.read(p.offset(8), 8).unwrap()), vec![3, 4]);
    assert!(dev.read(p, 17).is_err());
    assert!(dev.write(p.offset(12), &[0; 8]).is_err());
    assert!(dev.free(p.offset(4)).is_err());
    dev.free(p).unwrap();
    assert!(dev.read(p, 4).is_err());
    assert_eq!(run1("\tst.global.u32 [%oa], 5;", 1), vec![5]);
}

#[test]
fn faults_name_the_cuda_line_when_the_ptx_has_lineinfo() {
    let ptx = format!(
        "{HEADER}.visible .entry k(.param .u64 p)
{{
	.reg .b32 %r<4>;
	.reg .b64 %rd<4>;
	.loc 1 7 3
	ld.param.u64 %rd1, [p];
	.loc 1 42 5, function_name $L__info_string0, inlined_at 1 7 3
	ld.global.u32 %r1, [%rd1+64];
	ret;
}}
	.file 1 \"/src/kernels/oob.cu\"
"
    );
    let module = Module::parse(&ptx).unwrap();
    let mut dev = Device::new();
    let p = dev.alloc(64);
    let err = dev
        .launch(
            &module,
            "k",
            LaunchConfig::linear(1, 1),
            &[KernelArg::Ptr(p)],
        )
        .unwrap_err();
    match &err {
        EmuError::Runtime(f) => {
            assert_eq!(f.cuda_line.as_deref(), Some("/src/kernels/oob.cu:42"));
            assert_eq!(f.text, "ld.global.u32 %r1, [%rd1+64];");
        }
        other => panic!("{other}"),
    }
    assert!(
        err.to_string()
            .contains("PTX line 11 (/src/kernels/oob.cu:42)"),
        "{err}"
    );
}

#[test]
fn counters_measure_coalescing_and_bank_conflicts() {
    // 64 threads: a coalesced load in[tid], a strided load in[8 * tid], a conflict-free shared
    // store sh[tid] and a 32-way conflicting shared load sh[32 * lane % 64 ...] (of words no
    // thread wrote, without a barrier: the sanitizer is off).
    let body = "
	.shared .align 4 .b8 sh[4096];
	ld.global.u32 %r1, [%ia];
	mov.u32 %r2, %tid.x;
	mul.wide.u32 %rd1, %r2, 32;
	add.s64 %rd2, %in, %rd1;
	ld.global.u32 %r3, [%rd2];
	mov.u32 %r4, sh;
	and.b32 %r5, %r2, 31;
	shl.b32 %r6, %r5, 2;
	add.s32 %r7, %r4, %r6;
	st.shared.u32 [%r7], %r1;
	shl.b32 %r8, %r5, 7;
	add.s32 %r9, %r4, %r8;
	ld.shared.u32 %r10, [%r9];
	add.s32 %r11, %r3, %r10;
	st.global.u32 [%oa], %r11;
";
    let input = vec![1u32; 64 * 8];
    let o = try_run_with(SanitizerMode::Off, body, 1, 64, 64, &input).unwrap();
    let c = &o.report.counters;
    assert_eq!(c.global_load_requests, 4);
    assert_eq!(c.global_load_bytes, 4 * 32 * 4);
    // Coalesced: 4 sectors per warp; stride 32 bytes: one sector per lane.
    assert_eq!(c.global_load_sectors, 2 * 4 + 2 * 32);
    assert_eq!(c.global_store_sectors, 2 * 4);
    assert_eq!(c.shared_store_requests, 2);
    assert_eq!(c.shared_load_requests, 2);
    // Stride of 128 bytes puts every lane in bank 0 with a distinct word.
    assert_eq!(c.shared_bank_conflicts(), 2 * 31);
    assert_eq!(c.class(Class::Shared), 4);
    assert_eq!(c.class(Class::Global), 6);
    assert_eq!(o.report.warp_instructions, c.by_class.iter().sum::<u64>());
}

#[test]
fn counters_count_float_ops_of_the_lanes_that_execute() {
    // 40 threads (a full warp and 8 lanes of a second): one fma (2 ops), one add and one copysign
    // (no arithmetic) each, then a mul guarded to threads below 10 (only those execute it).
    let body = "
	ld.global.f32 %f1, [%ia];
	fma.rn.f32 %f2, %f1, %f1, %f1;
	add.f32 %f3, %f2, %f1;
	copysign.f32 %f4, %f3, %f1;
	mov.u32 %r1, %tid.x;
	setp.lt.u32 %p1, %r1, 10;
	@%p1 mul.f32 %f4, %f4, %f4;
	st.global.f32 [%oa], %f4;
";
    let o = try_run_with(SanitizerMode::Off, body, 1, 40, 40, &[0x3f80_0000; 40]).unwrap();
    assert_eq!(o.report.counters.float_ops, 40 * 3 + 10);
}
