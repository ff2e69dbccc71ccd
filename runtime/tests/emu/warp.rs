//! Warp-synchronous instructions: every `shfl.sync` mode with widths (the packed `c` operand)
//! and its predicate output against CUDA's `__shfl_*_sync` semantics, `vote.sync`, `activemask`,
//! and the fault for a divergent membermask.

use crate::common::{run, try_run};

/// CUDA's definition of `__shfl_{up,down,xor,sync}(v, arg, width)`: the source lane and whether
/// it was in range.
fn cuda_shfl(mode: &str, lane: u32, arg: u32, width: u32) -> (u32, bool) {
    let base = lane / width * width;
    match mode {
        "up" => {
            if lane >= base + arg && arg < width {
                (lane - arg, true)
            } else {
                (lane, false)
            }
        }
        "down" => {
            if lane + arg < base + width {
                (lane + arg, true)
            } else {
                (lane, false)
            }
        }
        "bfly" => {
            let j = lane ^ arg;
            if j < base + width {
                (j, true)
            } else {
                (lane, false)
            }
        }
        _ => (base + arg % width, true),
    }
}

#[test]
fn shfl_modes_widths_and_predicate() {
    for mode in ["up", "down", "bfly", "idx"] {
        for width in [32u32, 16, 8, 4, 2, 1] {
            for arg in [0u32, 1, 3, 5, 16, 31] {
                // CUDA packs c = ((32 - width) << 8) | clamp, clamp = 31 except for `up` (0).
                let clamp = if mode == "up" { 0 } else { 31 };
                let c = ((32 - width) << 8) | clamp;
                let body = format!(
                    "
	mov.u32 %r1, %tid.x;
	mul.lo.s32 %r2, %r1, 7;
	add.s32 %r2, %r2, 1000;
	shfl.sync.{mode}.b32 %r3|%p1, %r2, {arg}, {c}, -1;
	selp.u32 %r4, 1, 0, %p1;
	st.global.v2.u32 [%oa], {{%r3, %r4}};
"
                );
                let out = run(&body, 2, 64, &[]);
                for t in 0..64u32 {
                    let lane = t % 32;
                    let (src, ok) = cuda_shfl(mode, lane, arg, width);
                    let want = (t - lane + src) * 7 + 1000;
                    assert_eq!(
                        out[t as usize][0], want,
                        "{mode} width {width} arg {arg} lane {lane}"
                    );
                    if mode != "idx" {
                        assert_eq!(
                            out[t as usize][1], ok as u32,
                            "{mode} predicate width {width} arg {arg} lane {lane}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn vote_ballot_and_activemask() {
    let body = "
	mov.u32 %r1, %laneid;
	and.b32 %r2, %r1, 3;
	setp.eq.s32 %p1, %r2, 0;
	vote.sync.ballot.b32 %r3, %p1, -1;
	vote.sync.all.pred %p2, %p1, -1;
	vote.sync.any.pred %p3, %p1, -1;
	vote.sync.uni.pred %p4, %p1, -1;
	setp.lt.u32 %p5, %r1, 40;
	vote.sync.all.pred %p6, %p5, -1;
	vote.sync.uni.pred %p7, !%p5, -1;
	selp.u32 %r4, 1, 0, %p2;
	selp.u32 %r5, 2, 0, %p3;
	selp.u32 %r6, 4, 0, %p4;
	selp.u32 %r7, 8, 0, %p6;
	selp.u32 %r8, 16, 0, %p7;
	add.s32 %r4, %r4, %r5;
	add.s32 %r4, %r4, %r6;
	add.s32 %r4, %r4, %r7;
	add.s32 %r4, %r4, %r8;
	mov.u32 %r9, 0;
	@!%p1 bra $SKIP;
	activemask.b32 %r9;
	and.b32 %r10, %r1, 4;
	setp.ne.s32 %p1, %r10, 0;
	vote.sync.ballot.b32 %r11, %p1, 0x11111111;
	add.s32 %r9, %r9, %r11;
$SKIP:
	st.global.v4.u32 [%oa], {%r3, %r4, %r9, %r1};
";
    let out = run(body, 4, 32, &[]);
    for (l, o) in out.iter().enumerate() {
        assert_eq!(o[0], 0x1111_1111, "ballot");
        assert_eq!(o[1], 2 | 8 | 16, "all/any/uni flags");
        let want = if l % 4 == 0 {
            0x1111_1111 + 0x1010_1010
        } else {
            0
        };
        assert_eq!(
            o[2], want,
            "activemask and ballot in a divergent branch, lane {l}"
        );
    }
}

#[test]
fn divergent_membermask_is_a_fault() {
    // Lanes 0..15 take a branch and shuffle with a full membermask while lanes 16..31 are
    // elsewhere: undefined on hardware, an error here.
    let body = "
	mov.u32 %r1, %laneid;
	setp.lt.u32 %p1, %r1, 16;
	@!%p1 bra $OTHER;
	shfl.sync.bfly.b32 %r2, %r1, 1, 31, -1;
	bra.uni $END;
$OTHER:
	mov.u32 %r2, 0;
$END:
	st.global.u32 [%oa], %r2;
";
    let err = try_run(body, 1, 32, 32, &[])
        .err()
        .expect("divergent shuffle must fail");
    let text = err.to_string();
    assert!(
        text.contains("not converged") && text.contains("shfl.sync.bfly.b32 %r2, %r1, 1, 31, -1;"),
        "{text}"
    );
    // With the membermask naming only the converged half, it is fine.
    let ok = body.replace("%r1, 1, 31, -1", "%r1, 1, 31, 0xffff");
    let out = run(&ok, 1, 32, &[]);
    for l in 0..32u32 {
        assert_eq!(out[l as usize][0], if l < 16 { l ^ 1 } else { 0 });
    }
}
