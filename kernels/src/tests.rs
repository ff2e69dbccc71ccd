//! Checks the entry list against the CUDA text itself (no compiler needed): every listed entry
//! point is defined with the listed parameters, and every defined one is listed.
use super::*;

/// The C parameter list of every `extern "C" __global__` function in `code`, by name.
fn declared_kernels(code: &str) -> Vec<(String, Vec<String>)> {
    let marker = "extern \"C\" __global__ void ";
    let mut kernels = Vec::new();
    let mut rest = code;
    while let Some(start) = rest.find(marker) {
        let after = &rest[start + marker.len()..];
        let open = after
            .find('(')
            .expect("a kernel signature has a parameter list");
        let close = after.find(')').expect("a kernel signature is closed");
        let name = after[..open].trim().to_string();
        let params = after[open + 1..close]
            .split(',')
            // `__restrict__` is a promise about aliasing; it does not change the signature.
            .map(|p| {
                p.split_whitespace()
                    .filter(|w| *w != "__restrict__")
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .filter(|p| !p.is_empty())
            .collect();
        kernels.push((name, params));
        rest = &after[close..];
    }
    kernels
}

fn c_type(kind: ParamKind) -> String {
    let elem = |e: Elem| match e {
        Elem::F32 => "float",
        Elem::BF16 => "bf16",
        Elem::U32 => "u32",
    };
    match kind {
        ParamKind::ConstPtr(e) => format!("const {}*", elem(e)),
        ParamKind::MutPtr(e) => format!("{}*", elem(e)),
        ParamKind::U32 => "u32".into(),
        ParamKind::I32 => "int".into(),
        ParamKind::F32 => "float".into(),
    }
}

#[test]
fn every_listed_entry_is_defined_with_its_parameters() {
    for source in SOURCES {
        let declared = declared_kernels(source.code);
        for entry in source.entries {
            let (_, params) = declared
                .iter()
                .find(|(name, _)| name == entry.name)
                .unwrap_or_else(|| {
                    panic!(
                        "{} is listed but not defined in {}",
                        entry.name, source.file
                    )
                });
            let listed: Vec<String> = entry
                .params
                .iter()
                .map(|p| format!("{} {}", c_type(p.kind), p.name))
                .collect();
            assert_eq!(params, &listed, "parameters of {}", entry.name);
        }
        for (name, _) in &declared {
            assert!(
                source.entries.iter().any(|e| e.name == *name),
                "{name} is defined in {} but not listed",
                source.file
            );
        }
    }
}

#[test]
fn names_follow_the_convention() {
    let mut seen = std::collections::HashSet::new();
    for source in SOURCES {
        assert_eq!(source.file, format!("{}.cu", source.op));
        for entry in source.entries {
            assert!(seen.insert(entry.name), "{} listed twice", entry.name);
            assert_eq!(entry.op, source.op);
            let rest = entry
                .name
                .strip_prefix(&format!("{}_", entry.op))
                .unwrap_or_else(|| panic!("{} does not start with its op", entry.name));
            assert!(
                rest.starts_with("fwd") || rest.starts_with("bwd"),
                "{}",
                entry.name
            );
            assert!(
                rest.ends_with(&format!("_{}", entry.dtype.suffix())),
                "{}",
                entry.name
            );
            assert_eq!(super::entry(entry.name).map(|(s, _)| s.op), Some(source.op));
        }
    }
}

#[test]
fn every_include_names_an_embedded_header() {
    let codes = SOURCES
        .iter()
        .map(|s| (s.file, s.code))
        .chain(HEADERS.iter().map(|h| (h.file, h.code)));
    for (file, code) in codes {
        for line in code.lines() {
            if let Some(included) = line.trim().strip_prefix("#include \"") {
                let name = included.trim_end_matches('"');
                assert!(
                    header(name).is_some(),
                    "{file} includes {name}, which is not embedded"
                );
            }
        }
    }
}

#[test]
fn float_ops_come_in_f32_and_bf16() {
    for source in SOURCES {
        for entry in source.entries.iter().filter(|e| e.dtype == Elem::F32) {
            let stem = entry.name.trim_end_matches("_f32");
            assert!(
                super::entry(&format!("{stem}_bf16")).is_some(),
                "{stem} has no bf16 version"
            );
        }
    }
}
