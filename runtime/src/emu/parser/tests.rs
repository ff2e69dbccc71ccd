//! Parser tests.

use super::*;
use crate::emu::lexer::Literal;

#[test]
fn parses_scoped_inline_asm_and_operands() {
    let src = r#"
.version 8.8
.target sm_80
.address_size 64
.extern .shared .align 16 .b8 dyn[];
.global .align 4 .b8 tbl[4] = {1, 2, 3, 4};
.visible .entry k(
	.param .u64 k_param_0,
	.param .f32 k_param_1
)
.maxntid 256, 1, 1
{
	.reg .pred 	%p<2>;
	.reg .b16 	%rs<3>;
	.reg .f32 	%f<3>;
	.reg .b32 	%r<4>;
	.reg .b64 	%rd<3>;
	ld.param.u64 	%rd1, [k_param_0];
	{ .reg .b16 low,high;
	mov.b32 {low,high}, %r1;
	mov.b32 %f1, {0,%rs1};}
	shfl.sync.bfly.b32 	%r2|%p1, %r1, 16, 31, -1;
	@!%p1 bra 	$L__BB0_2;
	st.global.f32 	[%rd1+-256], %f1;
$L__BB0_2:
	ret;
}
.section .debug_str { $L__info: .b8 95,0 }
"#;
    let m = parse_module(src).unwrap();
    assert_eq!(m.variables.len(), 2);
    assert!(m.variables[0].is_extern);
    assert_eq!(m.variables[1].init.len(), 4);
    let f = &m.functions[0];
    assert_eq!(f.params.len(), 2);
    assert_eq!(f.maxntid, Some([256, 1, 1]));
    let instrs: Vec<&InstrAst> = f
        .body
        .iter()
        .filter_map(|s| {
            if let Stmt::Instr(i) = s {
                Some(i)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(instrs.len(), 7);
    assert_eq!(
        instrs[2].operands[1],
        Operand::Vector(vec![
            Operand::Imm(Literal::Int(0)),
            Operand::Name("%rs1".into())
        ])
    );
    assert_eq!(
        instrs[3].operands[0],
        Operand::WithPred("%r2".into(), "%p1".into())
    );
    assert_eq!(instrs[3].operands[4], Operand::Imm(Literal::Int(-1)));
    assert_eq!(instrs[4].guard, Some(("%p1".into(), true)));
    assert_eq!(
        instrs[5].operands[0],
        Operand::Addr {
            base: Some("%rd1".into()),
            offset: -256
        }
    );
    assert_eq!(instrs[5].line, 24);
}

#[test]
fn reports_line_of_syntax_error() {
    let err = parse_module(".version 8.8\n.entry k()\n{\n add.s32 %r1 %r2;\n}\n").unwrap_err();
    match err {
        EmuError::Parse { line, text, .. } => {
            assert_eq!(line, 4);
            assert_eq!(text, "add.s32 %r1 %r2;");
        }
        other => panic!("unexpected {other:?}"),
    }
}
