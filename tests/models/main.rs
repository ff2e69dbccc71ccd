//! The models crate: config parsing, checkpoint I/O, and the whole transformer's gradients.

#[path = "../common/mod.rs"]
mod common;

mod checkpoint_errors;
mod config;
mod fixtures;
mod generate;
mod gradient;
mod tiny;
