//! Bad checkpoints give errors naming the file and the tensor, never a panic or a wrong model.

use std::path::{Path, PathBuf};

use models::transformer::Model;
use models::weights::{self, Checkpoint, HostTensor, StorageDtype};
use runtime::{Cpu, DType};

use crate::fixtures::fixture;

/// A fresh copy of fixture `name` in a temporary directory.
fn copy_fixture(name: &str, tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rlhf-ckpt-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    dir
}

fn load_error(dir: &Path) -> String {
    let err = Model::load(dir, &Cpu::new(), DType::F32).err().expect("loading must fail").to_string();
    std::fs::remove_dir_all(dir).unwrap();
    err
}

/// Replaces `from` by `to` (same length) in the safetensors header of `file`.
fn patch_header(file: &Path, from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(file).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
    assert!(header.contains(from), "{from} not in header");
    bytes[8..8 + n].copy_from_slice(header.replacen(from, to, 1).as_bytes());
    std::fs::write(file, bytes).unwrap();
}

/// Rewrites `dir/model.safetensors` after `edit` changes its tensor list.
fn rewrite(dir: &Path, edit: impl FnOnce(&mut Vec<(String, HostTensor)>)) {
    let ckpt = Checkpoint::open(dir).unwrap();
    let mut tensors: Vec<(String, HostTensor)> = ckpt.names().map(|n| (n.to_string(), ckpt.read_f32(n).unwrap())).collect();
    drop(ckpt);
    edit(&mut tensors);
    weights::save(&dir.join("model.safetensors"), &tensors, StorageDtype::F32).unwrap();
}

#[test]
fn truncated_file() {
    let dir = copy_fixture("gpt2", "truncated");
    let file = dir.join("model.safetensors");
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(len - 100).unwrap();
    let err = load_error(&dir);
    assert!(err.contains("model.safetensors") && err.contains("not a valid safetensors"), "{err}");
}

#[test]
fn header_that_lies_about_sizes() {
    let dir = copy_fixture("gpt2", "lying");
    patch_header(&dir.join("model.safetensors"), "[300,32]", "[301,32]");
    let err = load_error(&dir);
    assert!(err.contains("model.safetensors") && err.contains("not a valid safetensors"), "{err}");
}

#[test]
fn unsupported_dtype() {
    let dir = copy_fixture("gpt2", "dtype");
    rewrite(&dir, |_| {});
    patch_header(&dir.join("model.safetensors"), "\"F32\"", "\"I32\"");
    let err = load_error(&dir);
    assert!(err.contains("dtype I32") && err.contains("model.safetensors"), "{err}");
}

#[test]
fn missing_shard() {
    let dir = copy_fixture("llama-sharded", "shard");
    std::fs::remove_file(dir.join("model-00003-of-00004.safetensors")).unwrap();
    let err = load_error(&dir);
    assert!(err.contains("model-00003-of-00004.safetensors") && err.contains("missing"), "{err}");
}

#[test]
fn missing_extra_and_misshaped_tensors() {
    let dir = copy_fixture("llama", "missing");
    rewrite(&dir, |t| t.retain(|(n, _)| n != "model.layers.1.mlp.up_proj.weight"));
    let err = load_error(&dir);
    assert!(err.contains("`model.layers.1.mlp.up_proj.weight` is missing"), "{err}");

    let dir = copy_fixture("llama", "extra");
    rewrite(&dir, |t| t.push(("model.layers.9.mystery.weight".into(), HostTensor { dims: vec![2], data: vec![1.0, 2.0] })));
    let err = load_error(&dir);
    assert!(err.contains("unexpected tensor `model.layers.9.mystery.weight`"), "{err}");

    let dir = copy_fixture("llama", "shape");
    rewrite(&dir, |t| {
        let (_, norm) = t.iter_mut().find(|(n, _)| n == "model.norm.weight").unwrap();
        *norm = HostTensor { dims: vec![31], data: vec![1.0; 31] };
    });
    let err = load_error(&dir);
    assert!(err.contains("`model.norm.weight` has shape [31]") && err.contains("[32]"), "{err}");
}

#[test]
fn bad_config_and_tokenizer_files() {
    let dir = copy_fixture("qwen2", "config");
    std::fs::write(dir.join("config.json"), "{\"model_type\": \"qwen2\", ").unwrap();
    let err = load_error(&dir);
    assert!(err.contains("config.json") && err.contains("invalid JSON"), "{err}");

    let dir = copy_fixture("qwen2", "tokenizer");
    std::fs::write(dir.join("tokenizer.json"), "{\"model\": 3}").unwrap();
    let err = models::tokenizer::Tokenizer::from_file(&dir.join("tokenizer.json")).err().expect("must fail").to_string();
    assert!(err.contains("tokenizer.json") && err.contains("invalid tokenizer"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
