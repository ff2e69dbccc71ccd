//! `cp.async` with `commit_group` / `wait_group` / `wait_all`: copies land at the waits (values
//! read after the wait and a barrier), the `src-size` form zero-fills, and a read of a copy's
//! destination before waiting is reported by the sanitizer.

use runtime::emu::{EmuError, FindingKind};

use crate::common::{run, try_run};

/// Thread `t` copies input words `4t..4t+4` to shared row `t` with `copy`, waits with `wait`,
/// and after a barrier reads row `t ^ 5` (another thread's copy).
fn body(copy: &str, wait: &str) -> String {
    format!(
        "
	.shared .align 16 .b8 sm[512];
	mov.u32 %r1, %tid.x;
	mul.wide.u32 %t64, %r1, 16;
	add.s64 %rd1, %in, %t64;
	mov.u32 %r6, sm;
	shl.b32 %r7, %r1, 4;
	add.u32 %r8, %r6, %r7;
	{copy}
	{wait}
	bar.sync 0;
	xor.b32 %r9, %r1, 5;
	shl.b32 %r9, %r9, 4;
	add.u32 %r9, %r6, %r9;
	ld.shared.v4.u32 {{%r10, %r11, %r12, %r13}}, [%r9];
	st.global.v4.u32 [%oa], {{%r10, %r11, %r12, %r13}};
"
    )
}

fn input() -> Vec<u32> {
    (0..128).map(|i| 1000 + i).collect()
}

#[test]
fn copies_land_at_the_wait() {
    for (copy, wait) in [
        ("cp.async.cg.shared.global [%r8], [%rd1], 16;", "cp.async.wait_all;"),
        (
            "cp.async.ca.shared.global [%r8], [%rd1], 8;\n\tcp.async.commit_group;\n\tcp.async.ca.shared.global [%r8+8], [%rd1+8], 8;\n\tcp.async.commit_group;",
            "cp.async.wait_group 0;",
        ),
    ] {
        let out = run(&body(copy, wait), 4, 32, &input());
        for t in 0..32u32 {
            let src = t ^ 5;
            let want: Vec<u32> = (0..4).map(|w| 1000 + 4 * src + w).collect();
            assert_eq!(out[t as usize], want, "{copy} / {wait}: thread {t}");
        }
    }
}

#[test]
fn src_size_zero_fills_the_rest() {
    let copy = "cp.async.ca.shared.global [%r8], [%rd1], 16, 4;\n\tcp.async.commit_group;";
    let out = run(&body(copy, "cp.async.wait_group 0;"), 4, 32, &input());
    for t in 0..32u32 {
        assert_eq!(out[t as usize], vec![1000 + 4 * (t ^ 5), 0, 0, 0], "thread {t}");
    }
}

#[test]
fn reading_before_the_wait_is_reported() {
    // The second group is still pending at `wait_group 1`: its bytes are not there yet.
    let copy = "cp.async.ca.shared.global [%r8], [%rd1], 8;\n\tcp.async.commit_group;\n\tcp.async.ca.shared.global [%r8+8], [%rd1+8], 8;\n\tcp.async.commit_group;";
    match try_run(&body(copy, "cp.async.wait_group 1;"), 4, 32, 32, &input()) {
        Err(EmuError::Sanitizer(f)) => {
            assert_eq!(f.kind, FindingKind::UninitializedSharedRead, "{f}");
            assert!(f.text.contains("ld.shared"), "{f}");
        }
        other => panic!("expected an uninitialised-read finding, got {:?}", other.err()),
    }
}
