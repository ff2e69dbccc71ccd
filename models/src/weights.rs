//! Checkpoint tensors in Hugging Face's safetensors layout: one `model.safetensors`, or shards
//! listed by `model.safetensors.index.json`. Files are memory-mapped; tensors stored as f32, f16
//! or bf16 are converted to f32 on the host when read. Saving writes one `model.safetensors`
//! atomically (a temporary file renamed into place) so an interrupted save loses nothing.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use memmap2::Mmap;
use safetensors::tensor::{Dtype, Metadata, TensorView};
use safetensors::SafeTensors;
use serde_json::Value;

use crate::{ModelError, Result};

/// A tensor on the host as f32, with its dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

/// The on-disk element type when saving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageDtype {
    F32,
    BF16,
}

struct Shard {
    path: PathBuf,
    mmap: Mmap,
    header_len: usize,
    metadata: Metadata,
}

/// An opened checkpoint: every shard mapped and its header validated.
pub struct Checkpoint {
    shards: Vec<Shard>,
    /// Tensor name → index into `shards`.
    location: BTreeMap<String, usize>,
}

fn io_err(path: &Path, source: std::io::Error) -> ModelError {
    ModelError::Io { path: path.display().to_string(), source }
}

fn weights_err(path: &Path, msg: impl Into<String>) -> ModelError {
    ModelError::Weights { path: path.display().to_string(), msg: msg.into() }
}

impl Shard {
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| io_err(path, e))?;
        // SAFETY: the map is read-only and private to this process; a checkpoint changed on disk
        // while mapped is outside what we support, as with every memory-mapped loader.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| io_err(path, e))?;
        let (header_len, metadata) = SafeTensors::read_metadata(&mmap)
            .map_err(|e| weights_err(path, format!("not a valid safetensors file: {e}")))?;
        Ok(Shard { path: path.to_path_buf(), mmap, header_len, metadata })
    }

    fn view(&self, name: &str) -> Result<TensorView<'_>> {
        let info = self
            .metadata
            .info(name)
            .ok_or_else(|| weights_err(&self.path, format!("tensor `{name}` not found")))?;
        let start = 8 + self.header_len + info.data_offsets.0;
        let end = 8 + self.header_len + info.data_offsets.1;
        TensorView::new(info.dtype, info.shape.clone(), &self.mmap[start..end])
            .map_err(|e| weights_err(&self.path, format!("tensor `{name}`: {e}")))
    }
}

impl Checkpoint {
    /// Opens `dir/model.safetensors`, or the shards named by `dir/model.safetensors.index.json`.
    pub fn open(dir: &Path) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        if single.exists() {
            let shard = Shard::open(&single)?;
            let location = shard.metadata.tensors().into_keys().map(|name| (name, 0)).collect();
            return Ok(Checkpoint { shards: vec![shard], location });
        }
        if !index.exists() {
            return Err(weights_err(dir, "neither model.safetensors nor model.safetensors.index.json found"));
        }
        let text = std::fs::read_to_string(&index).map_err(|e| io_err(&index, e))?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| weights_err(&index, format!("invalid JSON: {e}")))?;
        let map = json
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| weights_err(&index, "missing object `weight_map`"))?;
        let mut shards = Vec::new();
        let mut shard_of_file = HashMap::new();
        let mut location = BTreeMap::new();
        for (name, file) in map {
            let file = file
                .as_str()
                .ok_or_else(|| weights_err(&index, format!("weight_map[`{name}`] must be a file name")))?;
            if file.contains('/') || file.contains('\\') || file == ".." {
                return Err(weights_err(&index, format!("weight_map[`{name}`] = `{file}` leaves the model directory")));
            }
            let shard = match shard_of_file.get(file) {
                Some(&i) => i,
                None => {
                    let path = dir.join(file);
                    if !path.exists() {
                        return Err(weights_err(&index, format!("shard `{file}` (holding `{name}`) is missing")));
                    }
                    shards.push(Shard::open(&path)?);
                    shard_of_file.insert(file.to_string(), shards.len() - 1);
                    shards.len() - 1
                }
            };
            if shards[shard].metadata.info(name).is_none() {
                return Err(weights_err(&shards[shard].path, format!("tensor `{name}` listed in the index is not in this shard")));
            }
            location.insert(name.clone(), shard);
        }
        Ok(Checkpoint { shards, location })
    }

    /// Every tensor name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.location.keys().map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.location.contains_key(name)
    }

    /// The dimensions of tensor `name`.
    pub fn dims(&self, name: &str) -> Result<Vec<usize>> {
        let shard = self.shard(name)?;
        Ok(shard.view(name)?.shape().to_vec())
    }

    fn shard(&self, name: &str) -> Result<&Shard> {
        let i = self.location.get(name).ok_or_else(|| {
            weights_err(&self.shards[0].path, format!("tensor `{name}` not found in the checkpoint"))
        })?;
        Ok(&self.shards[*i])
    }

    /// Reads tensor `name` as f32 (from f32, f16 or bf16 storage).
    pub fn read_f32(&self, name: &str) -> Result<HostTensor> {
        let shard = self.shard(name)?;
        let view = shard.view(name)?;
        let bytes = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Dtype::F16 => bytes.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::BF16 => bytes.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            other => {
                return Err(weights_err(
                    &shard.path,
                    format!("tensor `{name}` has dtype {other:?}; only F32, F16 and BF16 weights are supported"),
                ))
            }
        };
        Ok(HostTensor { dims: view.shape().to_vec(), data })
    }
}

/// Writes `tensors` to `path` as one safetensors file, atomically.
pub fn save(path: &Path, tensors: &[(String, HostTensor)], dtype: StorageDtype) -> Result<()> {
    let encoded: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let bytes: Vec<u8> = match dtype {
                StorageDtype::F32 => t.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
                StorageDtype::BF16 => t.data.iter().flat_map(|&x| bf16::from_f32(x).to_le_bytes()).collect(),
            };
            let st = if dtype == StorageDtype::F32 { Dtype::F32 } else { Dtype::BF16 };
            (name.clone(), st, t.dims.clone(), bytes)
        })
        .collect();
    let mut views = Vec::with_capacity(encoded.len());
    for (name, st, dims, bytes) in &encoded {
        let view = TensorView::new(*st, dims.clone(), bytes)
            .map_err(|e| weights_err(path, format!("tensor `{name}`: {e}")))?;
        views.push((name.as_str(), view));
    }
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let buffer = safetensors::serialize(views, Some(metadata))
        .map_err(|e| weights_err(path, format!("cannot serialise: {e}")))?;
    write_atomically(path, &buffer)
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, then renames it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    file.write_all(bytes).map_err(|e| io_err(&tmp, e))?;
    file.sync_all().map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}
