//! ptxas: PTX to cubin, and the resource report of `ptxas -v` (registers, spills, shared memory).
use std::path::Path;
use std::process::Command;

use super::Arch;
use crate::{Error, Result};

/// What ptxas reports for one function of a module.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionResources {
    pub name: String,
    /// A kernel entry point (`.entry`), as opposed to a non-inlined device function.
    pub is_entry: bool,
    /// Registers per thread (0 for non-entry functions, for which ptxas reports none).
    pub registers: u32,
    pub stack_frame_bytes: u32,
    pub spill_store_bytes: u32,
    pub spill_load_bytes: u32,
    /// Statically declared shared memory per block (dynamic shared memory is the launcher's).
    pub static_shared_bytes: u32,
}

impl FunctionResources {
    pub fn spill_bytes(&self) -> u32 {
        self.spill_store_bytes + self.spill_load_bytes
    }
}

/// Runs `ptxas -arch=<sm> -v` on `ptx`, writing `cubin`, and returns its report per function.
pub fn assemble(
    ptxas: &Path,
    ptx: &Path,
    arch: Arch,
    cubin: &Path,
) -> Result<Vec<FunctionResources>> {
    let output = Command::new(ptxas)
        .arg(format!("-arch={}", arch.sm()))
        .arg("-v")
        .arg(ptx)
        .arg("-o")
        .arg(cubin)
        .output()
        .map_err(|e| Error::compile("ptxas", format!("cannot run {}: {e}", ptxas.display())))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        return Err(Error::compile(
            "ptxas",
            format!(
                "{} for {} failed ({}):\n{text}",
                ptx.display(),
                arch.sm(),
                output.status
            ),
        ));
    }
    Ok(parse_verbose(&text))
}

/// Parses the `ptxas -v` report:
/// ```text
/// ptxas info    : Compiling entry function 'k' for 'sm_90'
/// ptxas info    : Function properties for k
///     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
/// ptxas info    : Used 24 registers, used 1 barriers, 256 bytes smem
/// ```
pub fn parse_verbose(text: &str) -> Vec<FunctionResources> {
    let mut functions: Vec<FunctionResources> = Vec::new();
    let index_of = |functions: &mut Vec<FunctionResources>, name: &str| {
        functions
            .iter()
            .position(|f| f.name == name)
            .unwrap_or_else(|| {
                functions.push(FunctionResources {
                    name: name.to_string(),
                    ..Default::default()
                });
                functions.len() - 1
            })
    };
    let mut compiling = None;
    let mut properties_of = None;
    for line in text.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let name = rest.split('\'').next().unwrap_or(rest);
            let i = index_of(&mut functions, name);
            functions[i].is_entry = true;
            compiling = Some(i);
        } else if let Some(name) = line.split("Function properties for ").nth(1) {
            properties_of = Some(index_of(&mut functions, name.trim()));
        } else if line.contains("bytes stack frame") {
            if let Some(i) = properties_of.take() {
                let f = &mut functions[i];
                f.stack_frame_bytes = number_before(line, "bytes stack frame").unwrap_or(0);
                f.spill_store_bytes = number_before(line, "bytes spill stores").unwrap_or(0);
                f.spill_load_bytes = number_before(line, "bytes spill loads").unwrap_or(0);
            }
        } else if line.contains("Used ") && line.contains(" registers") {
            if let Some(i) = compiling {
                let f = &mut functions[i];
                f.registers = number_before(line, "registers").unwrap_or(0);
                f.static_shared_bytes = number_before(line, "bytes smem").unwrap_or(0);
            }
        }
    }
    functions
}

/// The integer just before `label` in `line` ("..., 12 bytes smem" → 12).
fn number_before(line: &str, label: &str) -> Option<u32> {
    let before = &line[..line.find(label)?];
    before.split_whitespace().next_back()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries_spills_and_shared_memory() {
        let text = "\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'a_f32' for 'sm_90'
ptxas info    : Function properties for a_f32
    16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 40 registers, used 1 barriers, 1024 bytes smem, 380 bytes cmem[0]
ptxas info    : Compile time = 1.0 ms
ptxas info    : Function properties for helper
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Compiling entry function 'b_bf16' for 'sm_90'
ptxas info    : Function properties for b_bf16
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 22 registers, used 0 barriers
";
        let functions = parse_verbose(text);
        assert_eq!(
            functions,
            [
                FunctionResources {
                    name: "a_f32".into(),
                    is_entry: true,
                    registers: 40,
                    stack_frame_bytes: 16,
                    spill_store_bytes: 8,
                    spill_load_bytes: 4,
                    static_shared_bytes: 1024,
                },
                FunctionResources {
                    name: "helper".into(),
                    ..Default::default()
                },
                FunctionResources {
                    name: "b_bf16".into(),
                    is_entry: true,
                    registers: 22,
                    ..Default::default()
                },
            ]
        );
        assert_eq!(functions[0].spill_bytes(), 12);
    }
}
