//! The on-disk PTX cache, so that NVRTC runs once per source, arch and compiler, not per process.
//!
//! An entry's key is a SHA-256 over everything that decides the PTX: the compiled text (with
//! the project's headers inlined), the content of each CUDA runtime header it includes by name,
//! the arch, the compiler flags and the NVRTC version. Files are written to a temporary name and
//! renamed into place, so concurrent processes and interrupted writes never leave a torn entry.
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::{tools, Arch};
use crate::{Error, Result};

/// What determines a PTX output.
#[derive(Debug, Clone)]
pub struct CacheKey<'a> {
    /// The text handed to NVRTC.
    pub code: &'a str,
    /// (name, content) of every system header `code` includes directly.
    pub headers: Vec<(&'a str, Vec<u8>)>,
    pub arch: Arch,
    pub flags: &'a [&'a str],
    pub nvrtc_version: (i32, i32),
}

impl CacheKey<'_> {
    /// 32 hex digits (128 bits) of the SHA-256 of the fields, each tagged and length-prefixed
    /// so that no two different keys hash the same bytes.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        let mut field = |tag: &str, bytes: &[u8]| {
            hasher.update(tag.as_bytes());
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        field("code", self.code.as_bytes());
        for (name, content) in &self.headers {
            field("header-name", name.as_bytes());
            field("header", content);
        }
        field("arch", self.arch.compute().as_bytes());
        for flag in self.flags {
            field("flag", flag.as_bytes());
        }
        field(
            "nvrtc",
            format!("{}.{}", self.nvrtc_version.0, self.nvrtc_version.1).as_bytes(),
        );
        hasher.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A directory of `<stem>-<compute_XX>-<digest>.ptx` files.
#[derive(Debug, Clone)]
pub struct PtxCache {
    dir: PathBuf,
}

impl PtxCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        PtxCache { dir: dir.into() }
    }

    /// `$RLHF_CACHE_DIR/ptx`, else `${XDG_CACHE_HOME:-$HOME/.cache}/rlhf-rs/ptx`.
    pub fn default_location() -> Result<Self> {
        tools::default_ptx_cache_dir().map(PtxCache::new)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, stem: &str, key: &CacheKey) -> PathBuf {
        self.dir.join(format!(
            "{stem}-{}-{}.ptx",
            key.arch.compute(),
            key.digest()
        ))
    }

    /// The cached PTX, or `None` on a miss (an unreadable entry counts as a miss).
    pub fn load(&self, stem: &str, key: &CacheKey) -> Option<String> {
        fs::read_to_string(self.path(stem, key)).ok()
    }

    /// Stores `ptx` atomically: a temporary file in the same directory, then a rename.
    pub fn store(&self, stem: &str, key: &CacheKey, ptx: &str) -> Result<PathBuf> {
        let path = self.path(stem, key);
        write_atomically(&path, ptx.as_bytes()).map_err(|e| {
            Error::compile(
                "ptx cache",
                format!(
                    "{}: {e} (set {} to a writable directory)",
                    path.display(),
                    tools::CACHE_ENV
                ),
            )
        })?;
        Ok(path)
    }
}

/// Writes `bytes` to `path` through a uniquely named temporary file and a rename, creating the
/// parent directory if needed.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temporary = dir.join(format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    fs::write(&temporary, bytes)
        .and_then(|()| fs::rename(&temporary, path))
        .inspect_err(|_| {
            let _ = fs::remove_file(&temporary);
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(code: &'a str, arch: Arch, flags: &'a [&'a str]) -> CacheKey<'a> {
        CacheKey {
            code,
            headers: vec![("h.h", b"x".to_vec())],
            arch,
            flags,
            nvrtc_version: (12, 9),
        }
    }

    #[test]
    fn every_field_changes_the_digest() {
        let base = key("a", Arch::Sm80, &["-x"]).digest();
        assert_eq!(base.len(), 32);
        assert_eq!(base, key("a", Arch::Sm80, &["-x"]).digest());
        assert_ne!(base, key("b", Arch::Sm80, &["-x"]).digest());
        assert_ne!(base, key("a", Arch::Sm90, &["-x"]).digest());
        assert_ne!(base, key("a", Arch::Sm80, &["-y"]).digest());
        let mut other_header = key("a", Arch::Sm80, &["-x"]);
        other_header.headers[0].1 = b"y".to_vec();
        assert_ne!(base, other_header.digest());
        let mut other_version = key("a", Arch::Sm80, &["-x"]);
        other_version.nvrtc_version = (12, 8);
        assert_ne!(base, other_version.digest());
    }
}
