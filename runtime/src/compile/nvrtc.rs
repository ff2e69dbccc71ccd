//! NVRTC, loaded by full path from the tools directory and driven through cudarc.
//!
//! cudarc opens `libnvrtc.so.12` by name and reads no variable, so [`Nvrtc::load`] first opens
//! the wheel's library by its full path (`RTLD_NOW | RTLD_GLOBAL`) and keeps it open for the
//! life of the process. The dynamic loader matches later by-name opens against the sonames of
//! libraries already loaded, so cudarc's own `dlopen("libnvrtc.so.12")` returns this copy; we then
//! check that cudarc resolved `nvrtcVersion` to the very same address, which catches a different
//! NVRTC reached first through another of cudarc's candidate names (`libnvrtc.so`, ...).
use std::ffi::{c_char, c_int, CString};
use std::path::PathBuf;
use std::sync::Mutex;

use cudarc::nvrtc::{result, sys};

use super::{Arch, CudaTools};
use crate::{Error, Result};

#[cfg(unix)]
type Library = libloading::os::unix::Library;
#[cfg(not(unix))]
type Library = libloading::Library;

/// The NVRTC this process opened by path; never closed, because cudarc keeps using it.
struct Preloaded {
    path: PathBuf,
    library: Library,
}

static PRELOADED: Mutex<Option<Preloaded>> = Mutex::new(None);

type VersionFn = unsafe extern "C" fn(*mut c_int, *mut c_int) -> sys::nvrtcResult;

/// A loaded NVRTC, ready to compile CUDA C++ to PTX.
#[derive(Debug, Clone)]
pub struct Nvrtc {
    version: (i32, i32),
    include_dir: PathBuf,
}

/// PTX text and the compiler's log (warnings; empty when there were none).
#[derive(Debug, Clone)]
pub struct NvrtcOutput {
    pub ptx: String,
    pub log: String,
}

impl Nvrtc {
    /// Loads NVRTC from `tools`. One NVRTC serves a whole process: a second tools directory is
    /// an error rather than a silent mix.
    pub fn load(tools: &CudaTools) -> Result<Self> {
        let path = tools.nvrtc_library().canonicalize().map_err(|e| {
            Error::compile("nvrtc", format!("{}: {e}", tools.nvrtc_library().display()))
        })?;
        let mut preloaded = PRELOADED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let ours = match &*preloaded {
            Some(loaded) if loaded.path != path => {
                return Err(Error::compile(
                    "nvrtc",
                    format!(
                        "this process already loaded NVRTC from {}; cannot also load {}",
                        loaded.path.display(),
                        path.display()
                    ),
                ))
            }
            Some(loaded) => version_symbol(&loaded.library)?,
            None => {
                let library = open(&path)?;
                let symbol = version_symbol(&library)?;
                *preloaded = Some(Preloaded {
                    path: path.clone(),
                    library,
                });
                symbol
            }
        };
        drop(preloaded);

        // SAFETY: only opens and closes candidate library names; NVRTC's initialisers have run
        // already for our copy, and opening it again just takes another reference.
        if !unsafe { sys::is_culib_present() } {
            return Err(Error::compile(
                "nvrtc",
                format!(
                    "cudarc cannot open libnvrtc by name after {} was loaded",
                    path.display()
                ),
            ));
        }
        // SAFETY: is_culib_present() just succeeded, so culib() finds a library and does not
        // panic; nvrtcVersion has the C signature of VersionFn.
        let theirs = unsafe { sys::culib().get::<VersionFn>(b"nvrtcVersion\0") }
            .map(|symbol| *symbol)
            .map_err(|e| Error::compile("nvrtc", format!("cudarc's libnvrtc: {e}")))?;
        if ours as usize != theirs as usize {
            return Err(Error::compile(
                "nvrtc",
                format!(
                    "cudarc picked up a different libnvrtc than {} (one earlier on the library \
                     path); remove it from LD_LIBRARY_PATH",
                    path.display()
                ),
            ));
        }

        let (mut major, mut minor) = (0, 0);
        // SAFETY: both pointers are valid for writes of one c_int each.
        unsafe { sys::nvrtcVersion(&mut major, &mut minor) }
            .result()
            .map_err(|e| Error::compile("nvrtc", format!("nvrtcVersion: {e:?}")))?;
        Ok(Nvrtc {
            version: (major, minor),
            include_dir: tools.include_dir(),
        })
    }

    /// (major, minor), e.g. (12, 9).
    pub fn version(&self) -> (i32, i32) {
        self.version
    }

    /// Compiles `code` (self-contained apart from the CUDA runtime headers) to PTX for `arch`.
    /// `name` appears in diagnostics. On failure the error carries NVRTC's log.
    pub fn compile(
        &self,
        name: &str,
        code: &str,
        arch: Arch,
        flags: &[&str],
    ) -> Result<NvrtcOutput> {
        let fail =
            |msg: String| Error::compile("nvrtc", format!("{name} for {}: {msg}", arch.compute()));
        let include_dir = self.include_dir.to_str().ok_or_else(|| {
            fail(format!(
                "include dir {} is not UTF-8",
                self.include_dir.display()
            ))
        })?;
        let code = CString::new(code).map_err(|_| fail("source contains a NUL byte".into()))?;
        let c_name = CString::new(name).map_err(|_| fail("name contains a NUL byte".into()))?;
        let mut options = vec![
            format!("--gpu-architecture={}", arch.compute()),
            format!("--include-path={include_dir}"),
        ];
        options.extend(flags.iter().map(|f| f.to_string()));

        // `program` is declared after `code` and `c_name`, so it is destroyed before them, as
        // NVRTC may keep pointers to both until then.
        let program = Program(
            result::create_program(&code, Some(&c_name)).map_err(|e| fail(format!("{e:?}")))?,
        );
        // SAFETY: the program is live until `program` drops; the options are valid C strings.
        let compiled = unsafe { result::compile_program(program.0, &options) };
        // SAFETY: as above.
        let log = unsafe { result::get_program_log(program.0) }
            .map(|chars| c_chars_to_string(&chars))
            .unwrap_or_default();
        if let Err(e) = compiled {
            return Err(fail(format!("{e:?}\n{log}")));
        }
        // SAFETY: as above; the program compiled successfully.
        let ptx = unsafe { result::get_ptx(program.0) }.map_err(|e| fail(format!("{e:?}")))?;
        Ok(NvrtcOutput {
            ptx: c_chars_to_string(&ptx),
            log,
        })
    }
}

/// Destroys an NVRTC program when dropped.
struct Program(sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: the program was created by create_program and is destroyed only here. A
        // failure to free it leaks it, which is all that can be done in a destructor.
        let _ = unsafe { result::destroy_program(self.0) };
    }
}

#[cfg(unix)]
fn open(path: &std::path::Path) -> Result<Library> {
    use libloading::os::unix::{RTLD_GLOBAL, RTLD_NOW};
    // SAFETY: libnvrtc's initialisers have no preconditions on the loading process.
    unsafe { Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL) }
        .map_err(|e| Error::compile("nvrtc", format!("cannot load {}: {e}", path.display())))
}

#[cfg(not(unix))]
fn open(path: &std::path::Path) -> Result<Library> {
    Err(Error::compile(
        "nvrtc",
        format!("{}: NVRTC is supported on Linux only", path.display()),
    ))
}

fn version_symbol(library: &Library) -> Result<VersionFn> {
    // SAFETY: nvrtcVersion has the C signature of VersionFn.
    unsafe { library.get::<VersionFn>(b"nvrtcVersion\0") }
        .map(|symbol| *symbol)
        .map_err(|e| Error::compile("nvrtc", format!("libnvrtc has no nvrtcVersion: {e}")))
}

/// NVRTC's NUL-terminated `char` buffers as a String (lossy: logs quote source bytes).
fn c_chars_to_string(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
