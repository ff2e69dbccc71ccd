//! Unsupported or invalid PTX is rejected when the module is parsed, naming the line and its
//! text; bad launches name the kernel and parameter. Also the scoped `{ }` blocks of inline asm.

use runtime::emu::{Device, EmuError, KernelArg, LaunchConfig, Module};

use crate::common::{kernel, run1, HEADER};

/// Parses a one-kernel module with `body` and returns the error.
fn parse_error(body: &str) -> EmuError {
    match Module::parse(&kernel(body, 1)) {
        Ok(_) => panic!("`{body}` should not decode"),
        Err(e) => e,
    }
}

fn line_of(src: &str, needle: &str) -> u32 {
    src.lines()
        .position(|l| l.contains(needle))
        .expect("needle in source") as u32
        + 1
}

#[test]
fn unsupported_instructions_name_the_line() {
    let cases = [
        ("\tmma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%f1,%f2,%f3,%f4}, {%r1,%r2}, {%r5}, {%f1,%f2,%f3,%f4};", "shapes other than m16n8k16"),
        ("\twgmma.fence.sync.aligned;", "opcode `wgmma`"),
        ("\tadd.cc.u32 %r1, %r2, %r3;", "modifier `.cc` of `add`"),
        ("\tmov.u32 %r1, %clock;", "not deterministic"),
        ("\tbar.sync 1, 64;", "thread count"),
        ("\tshfl.up.b32 %r1, %r2, 1, 0;", "without .sync"),
        ("\tdiv.rz.f64 %fd1, %fd2, %fd3;", "directed rounding"),
        ("\tcall.uni foo, (%r1);", "opcode `call`"),
        ("\tmin.xorsign.abs.f32 %f1, %f2, %f3;", "modifier"),
        ("\tcvt.rn.relu.bf16.f32 %h1, %f1;", "modifier `.relu`"),
    ];
    for (body, what) in cases {
        let src = kernel(body, 1);
        let err = parse_error(body);
        let msg = err.to_string();
        match err {
            EmuError::Unsupported {
                kernel,
                line,
                text,
                what: w,
            } => {
                assert_eq!(kernel, "k");
                assert_eq!(line, line_of(&src, body.trim()), "{msg}");
                assert_eq!(text, body.trim());
                assert!(w.contains(what), "`{w}` should mention `{what}`");
            }
            other => panic!("{body}: expected Unsupported, got {other}"),
        }
    }
}

#[test]
fn invalid_ptx_names_the_line() {
    for (body, what) in [
        ("\tadd.s32 %r1, %r99, %r2;", "undeclared register `%r99`"),
        ("\tbra $NOWHERE;", "unknown label"),
        ("\tadd.s32 %r1, %r2;", "expected 3 operands"),
        ("\tsetp.lt.s32 %r1, %r2, %r3;", "not a predicate"),
    ] {
        match parse_error(body) {
            EmuError::Parse { text, msg, .. } => {
                assert_eq!(text, body.trim());
                assert!(msg.contains(what), "`{msg}` should mention `{what}`");
            }
            other => panic!("{body}: expected Parse, got {other}"),
        }
    }
    let src = format!("{HEADER}.visible .entry k()\n{{\n\tadd.s32 %r1 %r2;\n}}\n");
    match Module::parse(&src) {
        Err(EmuError::Parse { line, .. }) => assert_eq!(line, 6),
        other => panic!("expected a syntax error, got {:?}", other.err()),
    }
}

#[test]
fn launch_argument_and_geometry_errors() {
    let module = Module::parse(&kernel("", 1)).unwrap();
    let mut dev = Device::new();
    let p = dev.alloc(64);
    let cfg = LaunchConfig::linear(1, 32);
    let msg = |r: Result<_, EmuError>| r.expect_err("launch should fail").to_string();
    let m = msg(dev.launch(&module, "k", cfg, &[KernelArg::Ptr(p)]));
    assert!(
        m.contains("kernel `k`") && m.contains("takes 2 parameters (.u64, .u64), got 1 arguments"),
        "{m}"
    );
    let m = msg(dev.launch(&module, "k", cfg, &[KernelArg::Ptr(p), KernelArg::U32(3)]));
    assert!(
        m.contains("parameter 1 `p_in` is .u64, the argument is U32(3)"),
        "{m}"
    );
    let m = msg(dev.launch(&module, "nope", cfg, &[]));
    assert!(
        m.contains("no such kernel") && m.contains("it has: k"),
        "{m}"
    );
    let m = msg(dev.launch(
        &module,
        "k",
        LaunchConfig::linear(1, 2048),
        &[KernelArg::Ptr(p), KernelArg::Ptr(p)],
    ));
    assert!(m.contains("exceeds 1024 threads"), "{m}");
    let big = LaunchConfig {
        dynamic_shared_bytes: 300 * 1024,
        ..cfg
    };
    let m = msg(dev.launch(&module, "k", big, &[KernelArg::Ptr(p), KernelArg::Ptr(p)]));
    assert!(m.contains("shared memory"), "{m}");
}

#[test]
fn reqntid_is_enforced() {
    let src = format!("{HEADER}.visible .entry k()\n.reqntid 64, 1, 1\n{{\n\tret;\n}}\n");
    let module = Module::parse(&src).unwrap();
    let mut dev = Device::new();
    assert!(dev
        .launch(&module, "k", LaunchConfig::linear(1, 64), &[])
        .is_ok());
    let err = dev
        .launch(&module, "k", LaunchConfig::linear(1, 32), &[])
        .unwrap_err();
    assert!(err.to_string().contains(".reqntid [64, 1, 1]"), "{err}");
}

#[test]
fn inline_asm_scopes_shadow_and_end() {
    // The inner `%r1` shadows the outer one only inside its braces; `c` and `low`/`high` are
    // names without `%`, as cuda_bf16.h writes them.
    let body = "
	mov.u32 %r1, 5;
	{ .reg .b32 %r1;
	  mov.u32 %r1, 100;
	  add.s32 %r2, %r1, 1;
	}
	add.s32 %r3, %r1, 1;
	{ .reg .b16 c;
	  mov.b16 c, 0x3f80U;
	  mov.b32 %r4, {0, c};
	}
	{ .reg .b16 low, high;
	  mov.b32 {low, high}, %r4;
	  mov.b32 %r5, {high, low};
	}
	st.global.v4.u32 [%oa], {%r2, %r3, %r4, %r5};
";
    assert_eq!(run1(body, 4), vec![101, 6, 0x3f80_0000, 0x3f80]);
    // A scoped register is gone after its block.
    match parse_error("\t{ .reg .b32 %inner; mov.u32 %inner, 1; }\n\tmov.u32 %r1, %inner;") {
        EmuError::Parse { msg, .. } => {
            assert!(msg.contains("undeclared register `%inner`"), "{msg}")
        }
        other => panic!("{other}"),
    }
}

#[test]
fn repeated_label_names_are_rejected() {
    let body = "\t{ $L_loop: add.s32 %r1, %r1, 1; }\n\t{ $L_loop: add.s32 %r2, %r2, 1; }";
    match parse_error(body) {
        EmuError::Unsupported { what, text, .. } => {
            assert!(
                what.contains("label `$L_loop` defined more than once"),
                "{what}"
            );
            assert!(text.contains("$L_loop"), "{text}");
        }
        other => panic!("{other}"),
    }
}
