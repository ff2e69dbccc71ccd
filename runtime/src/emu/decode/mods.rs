//! The dot-separated pieces of an opcode (`ld.global.nc.v4.f32`), consumed one by one by the
//! decoder so that any piece left over is reported as an unsupported modifier.

use super::{unsupported, DResult};
use crate::emu::types::Ty;

pub(crate) struct Mods<'a> {
    parts: Vec<&'a str>,
    used: Vec<bool>,
}

impl<'a> Mods<'a> {
    pub fn new(opcode: &'a str) -> Self {
        let parts: Vec<&str> = opcode.split('.').collect();
        let mut used = vec![false; parts.len()];
        used[0] = true;
        Mods { parts, used }
    }

    pub fn base(&self) -> &'a str {
        self.parts[0]
    }

    /// Whether any of `names` is present (consumed or not).
    pub fn has(&self, names: &[&str]) -> bool {
        self.parts.iter().any(|p| names.contains(p))
    }

    /// Consumes `name` if present.
    pub fn flag(&mut self, name: &str) -> bool {
        self.one_of(&[name]).is_some()
    }

    /// Consumes the first piece that is one of `names`.
    pub fn one_of(&mut self, names: &[&str]) -> Option<&'a str> {
        for (i, p) in self.parts.iter().enumerate() {
            if !self.used[i] && names.contains(p) {
                self.used[i] = true;
                return Some(p);
            }
        }
        None
    }

    /// Consumes every piece for which `keep` is true (hints that do not change results).
    pub fn ignore(&mut self, keep: impl Fn(&str) -> bool) {
        for (i, p) in self.parts.iter().enumerate() {
            if !self.used[i] && keep(p) {
                self.used[i] = true;
            }
        }
    }

    /// Consumes all type pieces, in order.
    pub fn types(&mut self) -> Vec<Ty> {
        let mut out = Vec::new();
        for (i, p) in self.parts.iter().enumerate() {
            if !self.used[i] {
                if let Some(t) = Ty::parse(p) {
                    self.used[i] = true;
                    out.push(t);
                }
            }
        }
        out
    }

    /// Consumes exactly one type piece.
    pub fn ty(&mut self) -> DResult<Ty> {
        match self.types().as_slice() {
            [t] => Ok(*t),
            [] => unsupported(format!("`{}` without a type", self.parts.join("."))),
            _ => unsupported(format!("`{}` with several types", self.parts.join("."))),
        }
    }

    /// Errors on any piece not consumed.
    pub fn finish(&self) -> DResult<()> {
        for (i, p) in self.parts.iter().enumerate() {
            if !self.used[i] {
                return unsupported(format!("modifier `.{p}` of `{}`", self.parts[0]));
            }
        }
        Ok(())
    }
}
