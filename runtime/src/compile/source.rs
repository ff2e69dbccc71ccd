//! The text NVRTC compiles: a kernel source with the project's headers inlined.
//!
//! NVRTC can be handed headers by name, but cudarc's program wrapper passes none, so the
//! project's `#include "x.cuh"` lines are replaced by the embedded header text here (each header
//! at most once per source, which is why the headers need no include guards). `#line`
//! directives around each inlined header keep NVRTC's diagnostics pointing at the right file and
//! line. `#include <...>` lines (the CUDA runtime headers) are left for NVRTC to find on `-I`.
use std::collections::HashSet;
use std::fmt::Write;

use crate::{Error, Result};

/// `code` of `file` with every `#include "x.cuh"` replaced by the embedded header.
pub fn expand_includes(file: &str, code: &str) -> Result<String> {
    let mut out = String::with_capacity(code.len() * 2);
    let mut seen = HashSet::new();
    expand(file, code, &mut out, &mut seen)?;
    Ok(out)
}

fn expand<'a>(
    file: &str,
    code: &'a str,
    out: &mut String,
    seen: &mut HashSet<&'a str>,
) -> Result<()> {
    for (index, line) in code.lines().enumerate() {
        let Some(name) = include_target(line, '"', '"') else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        if seen.insert(name) {
            let header = kernels::header(name).ok_or_else(|| {
                Error::compile(
                    "include",
                    format!("{file}:{}: no embedded header {name}", index + 1),
                )
            })?;
            // Writing to a String cannot fail.
            let _ = writeln!(out, "#line 1 \"{name}\"");
            expand(header.file, header.code, out, seen)?;
        }
        let _ = writeln!(out, "#line {} \"{file}\"", index + 2);
    }
    Ok(())
}

/// The headers a text includes with `#include <...>`, in order of appearance.
pub fn system_includes(code: &str) -> Vec<&str> {
    code.lines()
        .filter_map(|line| include_target(line, '<', '>'))
        .collect()
}

fn include_target(line: &str, open: char, close: char) -> Option<&str> {
    let rest = line
        .trim_start()
        .strip_prefix('#')?
        .trim_start()
        .strip_prefix("include")?;
    let rest = rest.trim_start().strip_prefix(open)?;
    rest.find(close).map(|end| &rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_inlined_once_with_line_directives() {
        let code = "#include \"common.cuh\"\n#include \"common.cuh\"\nint x;\n";
        let expanded = expand_includes("k.cu", code).unwrap();
        assert_eq!(expanded.matches("#line 1 \"common.cuh\"").count(), 1);
        assert!(expanded.contains("typedef __nv_bfloat16 bf16;"));
        assert!(expanded.ends_with("#line 2 \"k.cu\"\n#line 3 \"k.cu\"\nint x;\n"));
        assert_eq!(system_includes(&expanded), ["cuda_bf16.h"]);
    }

    #[test]
    fn unknown_header_is_an_error_naming_the_line() {
        let err = expand_includes("k.cu", "int a;\n#include \"nope.cuh\"\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("k.cu:2: no embedded header nope.cuh"),
            "{err}"
        );
    }
}
