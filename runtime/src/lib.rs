//! The rlhf-rs runtime: tensors, the [`Backend`] trait, and the backends that implement it:
//! [`Cpu`], [`Cuda`] (the CUDA kernels on an NVIDIA GPU, through cudarc) and [`Emu`] (the same
//! kernels run by the PTX emulator in [`emu`]).
//!
//! Every op a decoder-only transformer and the RL losses need is a method of [`Backend`]. Each op
//! lives in one file under [`ops`]: its shape checks (shared by all backends), its argument and
//! result types, its Cpu implementation and its GPU launcher (over [`gpu`], shared by the
//! backends that run the kernels). Tensors are owned by their backend
//! ([`Tensor<B>`] holds a `B::Buffer`); moving data to or from the host is explicit
//! ([`Backend::upload_f32`], [`Backend::download_f32`], ...).

mod backend;
pub mod compile;
mod cpu;
mod cuda_backend;
mod dtype;
pub mod emu;
mod emu_backend;
mod error;
mod fast_exp;
pub mod gpu;
pub mod kernel_check;
pub mod ops;
mod tensor;

pub use backend::Backend;
pub use cpu::{Cpu, CpuBuffer};
pub use cuda_backend::{Cuda, CudaDevice, CudaOptions, GemmImpl, KERNELS_DIR_ENV};
pub use dtype::DType;
pub use emu_backend::{Emu, EmuDevice, KernelStats};
pub use error::{Error, Result};
pub use tensor::{Shape, Tensor};
