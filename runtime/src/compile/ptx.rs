//! The entry points a PTX module declares, with their parameter sizes: enough to check a
//! module against the list in the kernels crate.

/// One `.entry` of a PTX module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtxEntry {
    pub name: String,
    /// Bytes of each parameter, in order (8 for pointers, 4 for 32-bit scalars, the array size
    /// for `.b8 name[N]` aggregates).
    pub param_sizes: Vec<usize>,
}

/// Every `.entry` in `ptx`, in order.
pub fn ptx_entries(ptx: &str) -> Vec<PtxEntry> {
    let mut entries = Vec::new();
    let mut lines = ptx.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.split(".entry ").nth(1) else {
            continue;
        };
        let name = rest.split('(').next().unwrap_or(rest).trim().to_string();
        let mut param_sizes = Vec::new();
        if !rest.contains(')') {
            for param in lines.by_ref() {
                let param = param.trim();
                if param.starts_with(')') {
                    break;
                }
                if param.starts_with(".param") {
                    param_sizes.push(param_size(param));
                }
            }
        }
        entries.push(PtxEntry { name, param_sizes });
    }
    entries
}

/// `.param .u64 p` → 8, `.param .f32 p` → 4, `.param .align 8 .b8 p[24]` → 24.
fn param_size(declaration: &str) -> usize {
    if let Some(open) = declaration.rfind('[') {
        let count = declaration[open + 1..]
            .trim_end_matches([']', ','])
            .parse()
            .unwrap_or(0);
        return count;
    }
    let width = |t: &str| {
        t.trim_start_matches('.')
            .get(1..)
            .and_then(|bits| bits.parse::<usize>().ok())
    };
    declaration
        .split_whitespace()
        .skip(1)
        .find_map(width)
        .map(|bits| bits / 8)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_entries_and_parameter_sizes() {
        let ptx = "\
.visible .entry k_f32(
\t.param .u64 k_f32_param_0,
\t.param .f32 k_f32_param_1,
\t.param .align 8 .b8 k_f32_param_2[24]
)
{
}
.visible .entry empty()
{
}
";
        assert_eq!(
            ptx_entries(ptx),
            [
                PtxEntry {
                    name: "k_f32".into(),
                    param_sizes: vec![8, 4, 24]
                },
                PtxEntry {
                    name: "empty".into(),
                    param_sizes: vec![]
                },
            ]
        );
    }
}
