//! Splits PTX text into tokens, each tagged with its 1-based line number. Comments (`//`, `/* */`)
//! are dropped here.

/// A literal number as written; its meaning depends on the instruction type it is used with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Literal {
    /// A decimal, hex, octal or binary integer (sign applied by the parser).
    Int(i128),
    /// `0fXXXXXXXX`: the bits of an f32.
    F32Bits(u32),
    /// `0dXXXXXXXXXXXXXXXX`: the bits of an f64.
    F64Bits(u64),
    /// A decimal floating-point literal such as `1.5`.
    Float(f64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tok<'a> {
    /// Identifiers, opcodes, directives and registers: `ld.global.f32`, `.reg`, `%tid.x`, `$L1`.
    Word(&'a str),
    Num(Literal),
    Str(&'a str),
    Punct(char),
}

#[derive(Debug, Clone, Copy)]
pub struct Token<'a> {
    pub tok: Tok<'a>,
    pub line: u32,
}

fn is_word_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || matches!(c, b'_' | b'$' | b'%' | b'.')
}

fn is_word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b'%' | b'.')
}

/// Tokenizes `src`; an error gives the line and a message.
pub fn tokenize(src: &str) -> Result<Vec<Token<'_>>, (u32, String)> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::with_capacity(src.len() / 4);
    let mut i = 0;
    let mut line = 1u32;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\n' {
            line += 1;
            i += 1;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
            i += 2;
            while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                if bytes[i] == b'\n' {
                    line += 1;
                }
                i += 1;
            }
            i += 2;
        } else if c == b'"' {
            let start = i + 1;
            i = start;
            while i < bytes.len() && bytes[i] != b'"' {
                i += 1;
            }
            if i >= bytes.len() {
                return Err((line, "unterminated string".into()));
            }
            tokens.push(Token {
                tok: Tok::Str(&src[start..i]),
                line,
            });
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < bytes.len() && (is_word_char(bytes[i])) {
                i += 1;
            }
            // A decimal float with an exponent sign: `1.5e-3`.
            if matches!(bytes[i - 1], b'e' | b'E')
                && matches!(bytes.get(i), Some(b'+' | b'-'))
                && !src[start..i].starts_with("0x")
            {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
            }
            let text = &src[start..i];
            let lit = parse_number(text).ok_or_else(|| (line, format!("bad number `{text}`")))?;
            tokens.push(Token {
                tok: Tok::Num(lit),
                line,
            });
        } else if is_word_start(c) {
            let start = i;
            // `::` belongs to the word in cache-hint modifiers such as `.L1::no_allocate`.
            while i < bytes.len()
                && (is_word_char(bytes[i])
                    || (bytes[i] == b':' && bytes.get(i + 1) == Some(&b':'))
                    || (bytes[i] == b':' && i > start && bytes[i - 1] == b':'))
            {
                i += 1;
            }
            tokens.push(Token {
                tok: Tok::Word(&src[start..i]),
                line,
            });
        } else if b"[]{}(),;:+-|!@<>=".contains(&c) {
            tokens.push(Token {
                tok: Tok::Punct(c as char),
                line,
            });
            i += 1;
        } else {
            return Err((line, format!("unexpected character `{}`", c as char)));
        }
    }
    Ok(tokens)
}

fn parse_number(text: &str) -> Option<Literal> {
    let lower = text.to_ascii_lowercase();
    if let Some(hex) = lower.strip_prefix("0f") {
        if hex.len() == 8 {
            return u32::from_str_radix(hex, 16).ok().map(Literal::F32Bits);
        }
    }
    if let Some(hex) = lower.strip_prefix("0d") {
        if hex.len() == 16 {
            return u64::from_str_radix(hex, 16).ok().map(Literal::F64Bits);
        }
    }
    if lower.contains('.') || (lower.contains('e') && !lower.starts_with("0x")) {
        return lower.parse::<f64>().ok().map(Literal::Float);
    }
    let digits = lower.strip_suffix('u').unwrap_or(&lower);
    let (radix, body) = if let Some(h) = digits.strip_prefix("0x") {
        (16, h)
    } else if let Some(b) = digits.strip_prefix("0b") {
        (2, b)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    let value = u128::from_str_radix(body, radix).ok()?;
    if value > u64::MAX as u128 {
        return None;
    }
    Some(Literal::Int(value as i128))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_words() {
        let toks =
            tokenize("mov.f32 %f1, 0f3F800000; // c\n add.s64 %rd1, %rd2, -256; 0x3f80U 017 1.5")
                .unwrap();
        let kinds: Vec<Tok> = toks.iter().map(|t| t.tok).collect();
        assert_eq!(kinds[0], Tok::Word("mov.f32"));
        assert_eq!(kinds[3], Tok::Num(Literal::F32Bits(0x3F80_0000)));
        assert_eq!(toks[5].line, 2);
        assert_eq!(kinds[10], Tok::Punct('-'));
        assert_eq!(kinds[11], Tok::Num(Literal::Int(256)));
        assert_eq!(kinds[13], Tok::Num(Literal::Int(0x3f80)));
        assert_eq!(kinds[14], Tok::Num(Literal::Int(15)));
        assert_eq!(kinds[15], Tok::Num(Literal::Float(1.5)));
    }
}
