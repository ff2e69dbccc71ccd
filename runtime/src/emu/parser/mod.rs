//! Reads PTX text into a [`ModuleAst`]. The grammar covered is what NVRTC emits: module
//! directives, `.entry`/`.func` definitions, variable declarations, and function bodies made of
//! labels, (guarded) instructions, `.reg` declarations and nested `{ }` scopes. Debug sections,
//! `.loc`/`.file` lines and `.pragma`s are skipped.

mod body;
#[cfg(test)]
mod tests;

use super::ast::*;
use super::error::EmuError;
use super::lexer::{tokenize, Literal, Tok, Token};
use super::types::{Space, Ty};

pub fn parse_module(src: &str) -> Result<ModuleAst, EmuError> {
    let tokens = tokenize(src).map_err(|(line, msg)| parse_error(src, line, msg))?;
    let mut parser = Parser {
        src,
        tokens,
        pos: 0,
        loc: None,
    };
    parser.module()
}

pub fn line_text(src: &str, line: u32) -> String {
    src.lines()
        .nth(line.saturating_sub(1) as usize)
        .unwrap_or("")
        .trim()
        .to_string()
}

fn parse_error(src: &str, line: u32, msg: impl Into<String>) -> EmuError {
    EmuError::Parse {
        line,
        text: line_text(src, line),
        msg: msg.into(),
    }
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token<'a>>,
    pos: usize,
    /// The position of the latest `.loc` in the current function body.
    loc: Option<(u32, u32)>,
}

type PResult<T> = Result<T, EmuError>;

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Tok<'a>> {
        self.tokens.get(self.pos).map(|t| t.tok)
    }

    fn peek_at(&self, ahead: usize) -> Option<Tok<'a>> {
        self.tokens.get(self.pos + ahead).map(|t| t.tok)
    }

    fn line(&self) -> u32 {
        self.tokens
            .get(self.pos)
            .or(self.tokens.last())
            .map_or(0, |t| t.line)
    }

    fn error<T>(&self, msg: impl Into<String>) -> PResult<T> {
        Err(parse_error(self.src, self.line(), msg))
    }

    fn next(&mut self) -> PResult<Tok<'a>> {
        match self.peek() {
            Some(t) => {
                self.pos += 1;
                Ok(t)
            }
            None => self.error("unexpected end of input"),
        }
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(Tok::Punct(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> PResult<()> {
        if self.eat(c) {
            Ok(())
        } else {
            self.error(format!("expected `{c}`, found {}", self.describe()))
        }
    }

    fn describe(&self) -> String {
        match self.peek() {
            Some(Tok::Word(w)) => format!("`{w}`"),
            Some(Tok::Punct(c)) => format!("`{c}`"),
            Some(Tok::Num(n)) => format!("number {n:?}"),
            Some(Tok::Str(s)) => format!("string \"{s}\""),
            None => "end of input".into(),
        }
    }

    fn word(&mut self) -> PResult<&'a str> {
        match self.peek() {
            Some(Tok::Word(w)) => {
                self.pos += 1;
                Ok(w)
            }
            _ => self.error(format!("expected a name, found {}", self.describe())),
        }
    }

    fn uint(&mut self) -> PResult<u32> {
        match self.next()? {
            Tok::Num(Literal::Int(v)) if (0..=u32::MAX as i128).contains(&v) => Ok(v as u32),
            _ => {
                self.pos -= 1;
                self.error(format!(
                    "expected an unsigned integer, found {}",
                    self.describe()
                ))
            }
        }
    }

    /// Skips every remaining token on the current token's line.
    fn skip_line(&mut self) {
        let line = self.line();
        while self.tokens.get(self.pos).is_some_and(|t| t.line == line) {
            self.pos += 1;
        }
    }

    fn skip_past(&mut self, c: char) -> PResult<()> {
        while !self.eat(c) {
            self.next()?;
        }
        Ok(())
    }

    /// Skips a balanced `{ ... }` group starting at the current `{`.
    fn skip_braces(&mut self) -> PResult<()> {
        self.expect('{')?;
        let mut depth = 1;
        while depth > 0 {
            match self.next()? {
                Tok::Punct('{') => depth += 1,
                Tok::Punct('}') => depth -= 1,
                _ => {}
            }
        }
        Ok(())
    }

    fn module(&mut self) -> PResult<ModuleAst> {
        let mut module = ModuleAst {
            functions: Vec::new(),
            variables: Vec::new(),
            files: Vec::new(),
        };
        let mut is_extern = false;
        while let Some(tok) = self.peek() {
            match tok {
                Tok::Word(".file") => {
                    self.pos += 1;
                    if let (Some(Tok::Num(Literal::Int(n))), Some(Tok::Str(path))) =
                        (self.peek(), self.peek_at(1))
                    {
                        module.files.push((n as u32, path.to_string()));
                    }
                    self.skip_line();
                }
                Tok::Word(".version" | ".target" | ".address_size" | ".loc") => self.skip_line(),
                Tok::Word(".visible" | ".weak" | ".common") => self.pos += 1,
                Tok::Word(".extern") => {
                    is_extern = true;
                    self.pos += 1;
                    continue;
                }
                Tok::Word(".pragma") => self.skip_past(';')?,
                Tok::Word(".section") => {
                    self.pos += 1;
                    self.word()?;
                    self.skip_braces()?;
                }
                Tok::Word(w @ (".entry" | ".func")) => {
                    self.pos += 1;
                    if let Some(f) = self.function(w == ".entry")? {
                        module.functions.push(f);
                    }
                }
                Tok::Word(w) if w.len() > 1 && Space::parse(&w[1..]).is_some() => {
                    module.variables.push(self.var_decl(is_extern)?);
                }
                _ => return self.error(format!("unexpected {} at module level", self.describe())),
            }
            is_extern = false;
        }
        Ok(module)
    }

    /// Parses a function after its `.entry`/`.func` keyword; a prototype (no body) gives `None`.
    fn function(&mut self, is_entry: bool) -> PResult<Option<FunctionAst>> {
        if self.peek() == Some(Tok::Punct('(')) {
            // The return parameters of a `.func`.
            self.params()?;
        }
        let name = self.word()?.to_string();
        let params = if self.peek() == Some(Tok::Punct('(')) {
            self.params()?
        } else {
            Vec::new()
        };
        let mut func = FunctionAst {
            name,
            is_entry,
            params,
            reqntid: None,
            maxntid: None,
            body: Vec::new(),
        };
        loop {
            match self.peek() {
                Some(Tok::Punct(';')) => {
                    self.pos += 1;
                    return Ok(None);
                }
                Some(Tok::Punct('{')) => break,
                Some(Tok::Word(w @ (".reqntid" | ".maxntid"))) => {
                    self.pos += 1;
                    let mut dims = [1u32; 3];
                    dims[0] = self.uint()?;
                    for d in dims.iter_mut().skip(1) {
                        if !self.eat(',') {
                            break;
                        }
                        *d = self.uint()?;
                    }
                    if w == ".reqntid" {
                        func.reqntid = Some(dims);
                    } else {
                        func.maxntid = Some(dims);
                    }
                }
                Some(Tok::Word(w)) if w.starts_with('.') => {
                    // Other performance directives (`.minnctapersm 2`, `.maxnreg 64`, `.noreturn`).
                    self.pos += 1;
                    while matches!(self.peek(), Some(Tok::Num(_) | Tok::Punct(','))) {
                        self.pos += 1;
                    }
                }
                _ => {
                    return self.error(format!("unexpected {} in function header", self.describe()))
                }
            }
        }
        self.expect('{')?;
        func.body = self.body()?;
        Ok(Some(func))
    }

    fn params(&mut self) -> PResult<Vec<ParamDecl>> {
        self.expect('(')?;
        let mut params = Vec::new();
        if self.eat(')') {
            return Ok(params);
        }
        loop {
            let line = self.line();
            if self.word()? != ".param" {
                self.pos -= 1;
                return self.error("expected `.param`");
            }
            let mut align = None;
            let mut ty = None;
            while let Some(Tok::Word(w)) = self.peek() {
                if w == ".align" {
                    self.pos += 1;
                    align = Some(self.uint()?);
                } else if w == ".ptr" || w == ".global" || w == ".shared" || w == ".const" {
                    // `.ptr.global.align 16`-style attributes: informational.
                    self.pos += 1;
                } else if let Some(t) = w.strip_prefix('.').and_then(Ty::parse) {
                    self.pos += 1;
                    ty = Some(t);
                } else {
                    break;
                }
            }
            let Some(ty) = ty else {
                return self.error("parameter without a type");
            };
            let name = self.word()?.to_string();
            let len = if self.eat('[') {
                let n = self.uint()?;
                self.expect(']')?;
                Some(n)
            } else {
                None
            };
            params.push(ParamDecl {
                name,
                ty,
                align,
                len,
                line,
            });
            if self.eat(')') {
                return Ok(params);
            }
            self.expect(',')?;
        }
    }

    /// A variable declaration starting at its state-space word; consumes the `;`.
    fn var_decl(&mut self, is_extern: bool) -> PResult<VarDecl> {
        let line = self.line();
        let space_word = self.word()?;
        let Some(space) = Space::parse(&space_word[1..]) else {
            return self.error(format!("unknown state space `{space_word}`"));
        };
        let mut align = None;
        let mut ty = None;
        while let Some(Tok::Word(w)) = self.peek() {
            if w == ".align" {
                self.pos += 1;
                align = Some(self.uint()?);
            } else if let Some(t) = w.strip_prefix('.').and_then(Ty::parse) {
                self.pos += 1;
                ty = Some(t);
            } else if w.starts_with('.') {
                return self.error(format!("unsupported variable attribute `{w}`"));
            } else {
                break;
            }
        }
        let Some(ty) = ty else {
            return self.error("variable without a type");
        };
        let name = self.word()?.to_string();
        let mut len = None;
        while self.eat('[') {
            let n = if self.peek() == Some(Tok::Punct(']')) {
                None
            } else {
                Some(self.uint()?)
            };
            self.expect(']')?;
            len = Some(match (len, n) {
                (None, n) => n,
                (Some(Some(a)), Some(b)) => Some(a * b),
                _ => return self.error("unsized inner array dimension"),
            });
        }
        let mut init = Vec::new();
        if self.eat('=') {
            if self.eat('{') {
                loop {
                    init.push(self.literal()?);
                    if self.eat('}') {
                        break;
                    }
                    self.expect(',')?;
                }
            } else {
                init.push(self.literal()?);
            }
        }
        self.expect(';')?;
        Ok(VarDecl {
            space,
            name,
            ty,
            align,
            len,
            is_extern,
            init,
            line,
        })
    }
}
