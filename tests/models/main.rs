//! The models crate: config parsing, checkpoint I/O, and the whole transformer's gradients.

#[path = "../common/mod.rs"]
mod common;

mod batch_invariance;
mod checkpoint_errors;
mod config;
mod device_reads;
mod emu_matches_cpu;
mod fixtures;
mod generate;
mod gradient;
mod tiny;
