//! The sanitizer's detectors, each shown firing on a deliberately broken hand-written kernel
//! with the right kind, PTX line, block and thread (and the other thread), and staying silent
//! on the corrected kernel. Also: collect mode, the switch to turn it off, and the shared
//! out-of-range fault's position.

use runtime::emu::{
    Device, EmuError, Finding, FindingKind, KernelArg, LaunchConfig, Module, SanitizerMode,
};

use crate::common::{kernel, try_run, try_run_with, Outcome};

/// The 1-based line of the first line of `src` containing `needle`.
fn line_of(src: &str, needle: &str) -> u32 {
    src.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` not in the kernel")) as u32
        + 1
}

/// Runs `body` on `threads` threads in blocks of `block` and returns the finding it fails with.
fn finding(body: &str, threads: u32, block: u32) -> Finding {
    match try_run(body, 1, threads, block, &[]) {
        Err(EmuError::Sanitizer(f)) => *f,
        Err(other) => panic!("expected a sanitizer finding, got {other}"),
        Ok(_) => panic!("expected a sanitizer finding, the launch succeeded"),
    }
}

fn clean(body: &str, threads: u32, block: u32) -> Outcome {
    try_run(body, 1, threads, block, &[]).unwrap_or_else(|e| panic!("{e}"))
}

/// Checks a finding's kind, line (of `at`), block and thread, and the other thread and its line.
fn assert_finding(
    f: &Finding,
    body: &str,
    kind: FindingKind,
    at: &str,
    block: [u32; 3],
    thread: [u32; 3],
    other: Option<([u32; 3], &str)>,
) {
    let src = kernel(body, 1);
    assert_eq!(f.kind, kind, "{f}");
    assert_eq!(f.kernel, "k");
    assert_eq!((f.line, f.text.as_str()), (line_of(&src, at), at), "{f}");
    assert_eq!((f.pos.block, f.pos.thread), (block, thread), "{f}");
    match (other, &f.other) {
        (None, None) => {}
        (Some((t, text)), Some(o)) => {
            assert_eq!(
                (o.thread, o.line, o.text.as_str()),
                (t, line_of(&src, text), text),
                "{f}"
            )
        }
        (want, got) => panic!("other thread: want {want:?}, got {got:?} in {f}"),
    }
}

/// Each thread stores its id to `sh[tid]`, then (after `sync`) reads `sh[(tid + 1) % 32]`.
fn neighbour_exchange(sync: &str) -> String {
    format!(
        "
	.shared .align 4 .b8 sh[128];
	mov.u32 %r1, %tid.x;
	mov.u32 %r3, sh;
	shl.b32 %r2, %r1, 2;
	add.s32 %r4, %r3, %r2;
	st.shared.u32 [%r4], %r1;
	{sync}
	add.s32 %r6, %r1, 1;
	and.b32 %r6, %r6, 31;
	shl.b32 %r6, %r6, 2;
	add.s32 %r6, %r3, %r6;
	ld.shared.u32 %r5, [%r6];
	st.global.u32 [%oa], %r5;
"
    )
}

#[test]
fn read_after_write_between_lanes_of_a_warp_is_a_race() {
    // Lane 0 reads the word lane 1 stored one instruction before: lock-step orders nothing.
    let body = neighbour_exchange("");
    let f = finding(&body, 32, 32);
    assert_finding(
        &f,
        &body,
        FindingKind::SharedRace,
        "ld.shared.u32 %r5, [%r6];",
        [0, 0, 0],
        [0, 0, 0],
        Some(([1, 0, 0], "st.shared.u32 [%r4], %r1;")),
    );
    assert!(
        f.msg.contains("byte 0x4 was written by thread [1, 0, 0]"),
        "{f}"
    );
    let text = f.to_string();
    assert!(
        text.starts_with("sanitizer: shared-memory race in kernel `k`, PTX line"),
        "{text}"
    );

    // A barrier, or __syncwarp within one warp, orders the store before the load.
    for sync in ["bar.sync 0;", "bar.warp.sync -1;"] {
        let out = clean(&neighbour_exchange(sync), 32, 32).out;
        for (t, o) in out.iter().enumerate() {
            assert_eq!(o[0], (t as u32 + 1) % 32, "{sync}: thread {t}");
        }
    }
}

#[test]
fn read_after_write_across_warps_and_blocks() {
    // Warp 1 reads what warp 0 wrote with no barrier; with one, two blocks run clean.
    let body = "
	.shared .align 4 .b8 sh[256];
	mov.u32 %r1, %tid.x;
	mov.u32 %r3, sh;
	shl.b32 %r2, %r1, 2;
	add.s32 %r4, %r3, %r2;
	setp.lt.u32 %p1, %r1, 32;
	@%p1 st.shared.u32 [%r4], %r1;
	@!%p1 ld.shared.u32 %r5, [%r4+-128];
";
    let f = finding(body, 64, 64);
    assert_finding(
        &f,
        body,
        FindingKind::SharedRace,
        "@!%p1 ld.shared.u32 %r5, [%r4+-128];",
        [0, 0, 0],
        [32, 0, 0],
        Some(([0, 0, 0], "@%p1 st.shared.u32 [%r4], %r1;")),
    );
    let fixed = body.replace("\t@!%p1 ld", "\tbar.sync 0;\n\t@!%p1 ld");
    clean(&fixed, 128, 64);
}

#[test]
fn write_after_read_and_write_after_write() {
    // A shift reduction missing its second barrier: each thread reads sh[tid + 1] and then
    // overwrites sh[tid], which lane tid - 1 has just read.
    let body = "
	.shared .align 4 .b8 sh[132];
	mov.u32 %r1, %tid.x;
	mov.u32 %r3, sh;
	shl.b32 %r2, %r1, 2;
	add.s32 %r4, %r3, %r2;
	st.shared.u32 [%r4+4], %r1;
	setp.eq.u32 %p1, %r1, 0;
	@%p1 st.shared.u32 [%r4], %r1;
	bar.sync 0;
	ld.shared.u32 %r5, [%r4+4];
	st.shared.u32 [%r4], %r5;
";
    assert_finding(
        &finding(body, 32, 32),
        body,
        FindingKind::SharedRace,
        "st.shared.u32 [%r4], %r5;",
        [0, 0, 0],
        [1, 0, 0],
        Some(([0, 0, 0], "ld.shared.u32 %r5, [%r4+4];")),
    );
    clean(
        &body.replace(
            "\tst.shared.u32 [%r4], %r5;",
            "\tbar.sync 0;\n\tst.shared.u32 [%r4], %r5;",
        ),
        32,
        32,
    );

    // Every thread stores to the same word: lane 1's store races with lane 0's in one
    // instruction.
    let body = "
	.shared .align 4 .b8 flag[4];
	mov.u32 %r1, %tid.x;
	st.shared.u32 [flag], %r1;
";
    assert_finding(
        &finding(body, 8, 8),
        body,
        FindingKind::SharedRace,
        "st.shared.u32 [flag], %r1;",
        [0, 0, 0],
        [1, 0, 0],
        Some(([0, 0, 0], "st.shared.u32 [flag], %r1;")),
    );
}

#[test]
fn atomics_do_not_race_with_each_other_but_plain_reads_do() {
    // Thread 0 zeroes a counter; after a barrier every thread adds to it atomically, and after
    // another barrier thread 0 publishes it.
    let body = "
	.shared .align 4 .b8 count[4];
	mov.u32 %r1, %tid.x;
	setp.eq.u32 %p1, %r1, 0;
	@%p1 st.shared.u32 [count], 0;
	bar.sync 0;
	atom.shared.add.u32 %r2, [count], 1;
	red.shared.add.u32 [count], 2;
	bar.sync 0;
	@%p1 ld.shared.u32 %r3, [count];
	@%p1 st.global.u32 [%oa], %r3;
";
    assert_eq!(clean(body, 64, 64).out[0][0], 3 * 64);
    // Without the second barrier, thread 0's plain read races with the atomics the other lanes
    // of its warp have just made (the latest writer is named).
    let racy = body.replacen("\tbar.sync 0;\n\t@%p1 ld", "\t@%p1 ld", 1);
    assert_finding(
        &finding(&racy, 64, 64),
        &racy,
        FindingKind::SharedRace,
        "@%p1 ld.shared.u32 %r3, [count];",
        [0, 0, 0],
        [0, 0, 0],
        Some(([31, 0, 0], "red.shared.add.u32 [count], 2;")),
    );
}

#[test]
fn barrier_divergence_at_different_barriers_or_after_exits() {
    // Threads 0..15 wait at one bar.sync, threads 16.. at another.
    let body = "
	mov.u32 %r1, %tid.x;
	setp.lt.u32 %p1, %r1, 16;
	@%p1 bra $LOW;
	bar.sync 0; // high
	bra.uni $END;
$LOW:
	bar.sync 0; // low
$END:
";
    assert_finding(
        &finding(body, 64, 64),
        body,
        FindingKind::BarrierDivergence,
        "bar.sync 0; // low",
        [0, 0, 0],
        [0, 0, 0],
        Some(([16, 0, 0], "bar.sync 0; // high")),
    );

    // Threads 40.. of each 48-thread block exit; the rest wait at a barrier (reported for block
    // 0, whose thread 0 is the first to wait). With every thread reaching it, it is clean.
    let body = "
	mov.u32 %r1, %tid.x;
	setp.ge.u32 %p1, %r1, 40;
	@%p1 exit;
	bar.sync 0;
";
    let f = finding(body, 96, 48);
    assert_finding(
        &f,
        body,
        FindingKind::BarrierDivergence,
        "bar.sync 0;",
        [0, 0, 0],
        [0, 0, 0],
        Some(([40, 0, 0], "@%p1 exit;")),
    );
    assert!(
        f.msg
            .contains("40 threads wait at this barrier while 8 exited"),
        "{f}"
    );
    clean(&body.replace("40;", "48;"), 96, 48);
}

#[test]
fn uninitialised_shared_reads_static_and_dynamic() {
    // Threads 0..39 fill sh[tid]; after a barrier, thread t reads sh[63 - t]: thread 0 reads
    // word 63, which nobody wrote.
    let body = "
	.shared .align 4 .b8 sh[256];
	mov.u32 %r1, %tid.x;
	mov.u32 %r3, sh;
	shl.b32 %r2, %r1, 2;
	add.s32 %r4, %r3, %r2;
	setp.lt.u32 %p1, %r1, 40;
	@%p1 st.shared.u32 [%r4], %r1;
	bar.sync 0;
	mov.u32 %r5, 63;
	sub.s32 %r5, %r5, %r1;
	shl.b32 %r5, %r5, 2;
	add.s32 %r5, %r3, %r5;
	ld.shared.u32 %r6, [%r5];
";
    let f = finding(body, 64, 64);
    assert_finding(
        &f,
        body,
        FindingKind::UninitializedSharedRead,
        "ld.shared.u32 %r6, [%r5];",
        [0, 0, 0],
        [0, 0, 0],
        None,
    );
    assert!(f.msg.contains("shared offset 0xfc"), "{f}");
    clean(&body.replace("40;", "64;"), 64, 64);

    // Dynamic shared memory, through a generic address; block 0 writes it, block 1 does not
    // (each block starts with nothing written).
    let ptx = format!(
        "{}.extern .shared .align 4 .b8 dyn[];
.visible .entry k(.param .u64 out)
{{
	.reg .pred %p<2>;
	.reg .b32 %r<4>;
	.reg .b64 %rd<4>;
	mov.u32 %r1, %ctaid.x;
	setp.eq.u32 %p1, %r1, 0;
	mov.u64 %rd1, dyn;
	cvta.shared.u64 %rd2, %rd1;
	@%p1 st.u32 [%rd2], 7;
	bar.sync 0;
	ld.u32 %r2, [%rd2];
	ret;
}}
",
        crate::common::HEADER
    );
    let module = Module::parse(&ptx).unwrap();
    let mut dev = Device::new();
    let out = dev.alloc(4);
    let cfg = LaunchConfig {
        dynamic_shared_bytes: 16,
        ..LaunchConfig::linear(2, 1)
    };
    match dev.launch(&module, "k", cfg, &[KernelArg::Ptr(out)]) {
        Err(EmuError::Sanitizer(f)) => {
            assert_eq!(f.kind, FindingKind::UninitializedSharedRead);
            assert_eq!(f.text, "ld.u32 %r2, [%rd2];");
            assert_eq!((f.pos.block, f.pos.thread), ([1, 0, 0], [0, 0, 0]));
        }
        other => panic!("expected an uninitialised read in block 1, got {other:?}"),
    }
}

#[test]
fn collect_mode_reports_each_line_once_and_off_reports_nothing() {
    // The racy exchange in a loop of 4 rounds over 2 blocks: one finding per PTX line.
    let body = neighbour_exchange("")
        .replace(
            "\tmov.u32 %r1, %tid.x;",
            "\tmov.u32 %r7, 0;\n$ROUND:\n\tmov.u32 %r1, %tid.x;",
        )
        .replace(
            "\tst.global.u32 [%oa], %r5;",
            "\tst.global.u32 [%oa], %r5;\n\tadd.s32 %r7, %r7, 1;\n\tsetp.lt.u32 %p2, %r7, 4;\n\t@%p2 bra $ROUND;",
        );
    let o = try_run_with(SanitizerMode::Collect, &body, 1, 64, 32, &[]).unwrap();
    let kinds: Vec<(FindingKind, String)> = o
        .report
        .findings
        .iter()
        .map(|f| (f.kind, f.text.clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (
                FindingKind::SharedRace,
                "ld.shared.u32 %r5, [%r6];".to_string()
            ),
            (
                FindingKind::SharedRace,
                "st.shared.u32 [%r4], %r1;".to_string()
            ),
        ],
        "{:#?}",
        o.report.findings
    );
    // The second round's store overwrites what the first round's loads read.
    assert_eq!(o.report.findings[1].pos.thread, [0, 0, 0]);
    match o.report.check() {
        Err(EmuError::Sanitizer(f)) => assert_eq!(*f, o.report.findings[0]),
        other => panic!("{other:?}"),
    }
    let off = try_run_with(SanitizerMode::Off, &body, 1, 64, 32, &[]).unwrap();
    assert!(off.report.findings.is_empty());
    assert!(off.report.check().is_ok());
    assert_eq!(off.out, o.out);
}

#[test]
fn shared_out_of_range_names_kernel_line_block_and_thread() {
    // Block b, thread t stores 16 bytes at (4b + t) * 16 of a 64-byte array: block 1's thread 0
    // is the first outside it.
    let body = "
	.shared .align 16 .b8 sh[64];
	mov.u32 %r1, %tid.x;
	mov.u32 %r2, %ctaid.x;
	shl.b32 %r2, %r2, 2;
	add.s32 %r1, %r1, %r2;
	shl.b32 %r1, %r1, 4;
	mov.u32 %r2, sh;
	add.s32 %r2, %r2, %r1;
	st.shared.v4.u32 [%r2], {%r1, %r1, %r1, %r1};
";
    let src = kernel(body, 1);
    match try_run(body, 1, 8, 4, &[]) {
        Err(EmuError::Runtime(f)) => {
            assert_eq!(f.kernel, "k");
            let at = "st.shared.v4.u32 [%r2], {%r1, %r1, %r1, %r1};";
            assert_eq!((f.line, f.text.as_str()), (line_of(&src, at), at));
            assert_eq!((f.pos.block, f.pos.thread), ([1, 0, 0], [0, 0, 0]));
            assert!(
                f.msg
                    .contains("out-of-range shared access of 16 bytes at offset 0x40"),
                "{f}"
            );
        }
        other => panic!("expected a runtime fault, got {:?}", other.err()),
    }
}
