//! Function bodies: statements, instructions and operands.

use super::{PResult, Parser};
use crate::emu::ast::*;
use crate::emu::lexer::{Literal, Tok};
use crate::emu::types::{Space, Ty};

impl Parser<'_> {
    pub(super) fn literal(&mut self) -> PResult<Literal> {
        let negative = self.eat('-');
        match self.next()? {
            Tok::Num(Literal::Int(v)) => Ok(Literal::Int(if negative { -v } else { v })),
            Tok::Num(Literal::Float(v)) => Ok(Literal::Float(if negative { -v } else { v })),
            Tok::Num(lit) if !negative => Ok(lit),
            _ => {
                self.pos -= 1;
                self.error(format!("expected a number, found {}", self.describe()))
            }
        }
    }

    /// Statements up to the `}` that closes the function body (already past its `{`).
    pub(super) fn body(&mut self) -> PResult<Vec<Stmt>> {
        let mut stmts = Vec::new();
        let mut depth = 0usize;
        self.loc = None;
        loop {
            let line = self.line();
            match self.peek() {
                None => return self.error("function body not closed"),
                Some(Tok::Punct('{')) => {
                    self.pos += 1;
                    depth += 1;
                    stmts.push(Stmt::Open);
                }
                Some(Tok::Punct('}')) => {
                    self.pos += 1;
                    if depth == 0 {
                        return Ok(stmts);
                    }
                    depth -= 1;
                    stmts.push(Stmt::Close);
                }
                Some(Tok::Word(".loc")) => {
                    if let (Some(Tok::Num(Literal::Int(file))), Some(Tok::Num(Literal::Int(l)))) =
                        (self.peek_at(1), self.peek_at(2))
                    {
                        self.loc = Some((file as u32, l as u32));
                    }
                    self.skip_line();
                }
                Some(Tok::Word(".file")) => self.skip_line(),
                Some(Tok::Word(".pragma")) => self.skip_past(';')?,
                Some(Tok::Word(".reg")) => {
                    self.pos += 1;
                    let tw = self.word()?;
                    let Some(ty) = tw.strip_prefix('.').and_then(Ty::parse) else {
                        return self.error(format!("unsupported register type `{tw}`"));
                    };
                    let mut names = Vec::new();
                    loop {
                        let base = self.word()?.to_string();
                        let count = if self.eat('<') {
                            let n = self.uint()?;
                            self.expect('>')?;
                            Some(n)
                        } else {
                            None
                        };
                        names.push(RegName { base, count });
                        if self.eat(';') {
                            break;
                        }
                        self.expect(',')?;
                    }
                    stmts.push(Stmt::Reg { ty, names, line });
                }
                Some(Tok::Word(w)) if w.len() > 1 && Space::parse(&w[1..]).is_some() => {
                    stmts.push(Stmt::Var(self.var_decl(false)?));
                }
                Some(Tok::Word(".extern")) => {
                    self.pos += 1;
                    stmts.push(Stmt::Var(self.var_decl(true)?));
                }
                Some(Tok::Word(w)) if self.peek_at(1) == Some(Tok::Punct(':')) => {
                    self.pos += 2;
                    stmts.push(Stmt::Label {
                        name: w.to_string(),
                        line,
                    });
                }
                Some(Tok::Punct('@')) | Some(Tok::Word(_)) => {
                    stmts.push(Stmt::Instr(self.instr()?))
                }
                _ => return self.error(format!("unexpected {} in function body", self.describe())),
            }
        }
    }

    fn instr(&mut self) -> PResult<InstrAst> {
        let line = self.line();
        let guard = if self.eat('@') {
            let negated = self.eat('!');
            Some((self.word()?.to_string(), negated))
        } else {
            None
        };
        let opcode = self.word()?;
        if opcode.starts_with('.') {
            self.pos -= 1;
            return self.error(format!("unsupported directive `{opcode}`"));
        }
        let mut operands = Vec::new();
        if !self.eat(';') {
            loop {
                operands.push(self.operand()?);
                if self.eat(';') {
                    break;
                }
                self.expect(',')?;
            }
        }
        Ok(InstrAst {
            line,
            guard,
            opcode: opcode.to_string(),
            operands,
            loc: self.loc,
        })
    }

    fn operand(&mut self) -> PResult<Operand> {
        match self.peek() {
            Some(Tok::Punct('!')) => {
                self.pos += 1;
                Ok(Operand::Not(self.word()?.to_string()))
            }
            // `{a, b}` vectors, and `(a, b)` argument lists of `call` (read as vectors so the
            // decoder can name the instruction it does not support).
            Some(Tok::Punct(open @ ('{' | '('))) => {
                self.pos += 1;
                let close = if open == '{' { '}' } else { ')' };
                let mut items = Vec::new();
                if self.eat(close) {
                    return Ok(Operand::Vector(items));
                }
                loop {
                    items.push(self.operand()?);
                    if self.eat(close) {
                        return Ok(Operand::Vector(items));
                    }
                    self.expect(',')?;
                }
            }
            Some(Tok::Punct('[')) => {
                self.pos += 1;
                let mut base = None;
                let mut offset: i64 = 0;
                if let Some(Tok::Word(w)) = self.peek() {
                    self.pos += 1;
                    base = Some(w.to_string());
                    // `[%rd+8]`, `[%rd+-8]`, `[%rd-8]`: the literal carries its own sign.
                    if self.eat('+') || self.peek() == Some(Tok::Punct('-')) {
                        offset = self.int_literal()?;
                    }
                } else {
                    offset = self.int_literal()?;
                }
                self.expect(']')?;
                Ok(Operand::Addr { base, offset })
            }
            Some(Tok::Word("_")) => {
                self.pos += 1;
                Ok(Operand::Sink)
            }
            Some(Tok::Word(w)) => {
                self.pos += 1;
                if self.eat('|') {
                    Ok(Operand::WithPred(w.to_string(), self.word()?.to_string()))
                } else {
                    Ok(Operand::Name(w.to_string()))
                }
            }
            Some(Tok::Num(_) | Tok::Punct('-')) => Ok(Operand::Imm(self.literal()?)),
            _ => self.error(format!("unexpected {} in operand", self.describe())),
        }
    }

    fn int_literal(&mut self) -> PResult<i64> {
        match self.literal()? {
            Literal::Int(v) if v >= i64::MIN as i128 && v <= u64::MAX as i128 => Ok(v as i64),
            _ => self.error("expected an integer offset"),
        }
    }
}
