//! Named tensors in the safetensors format (what PyTorch's and JAX's `safetensors` read and write):
//! reference cases and checkpoints. Tensors of rank 1 or 2, dtype F32 or F64, held here as
//! `Array2<f64>` (a rank-1 tensor `[n]` as a row `[1, n]`) together with their stored shape.
//! Writes go through [`write_atomically`]; reads through [`read_limited`], within the limit of
//! what the file is read as.
//!
//! Our writer stores a checksum of the data section (every tensor's bytes, in file order) in the
//! metadata as [`CHECKSUM_KEY`] = `fnv1a64:<16 hex digits>`: the header is JSON and checked as
//! such, but a flipped bit in the data is a plausible number that no other check can see. A file
//! with the entry is verified on reading and the entry is removed from [`TensorFile::metadata`]
//! (so a file reads back to what was written); a file without it (PyTorch's, JAX's, an older
//! meanflow's) is read as before.

use crate::io::atomic::write_atomically;
use crate::io::limits::{read_limited, InputKind, ReadError, MAX_SAFETENSORS_HEADER_BYTES};
use ndarray::Array2;
use safetensors::tensor::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What can be wrong with a tensor file; each message is one line naming the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum TensorFileError {
    #[error("{path}: cannot read the file: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Missing, not a regular file, over the size limit of its kind ([`read_limited`]).
    #[error(transparent)]
    Input(#[from] ReadError),
    /// The data section does not match the checksum our writer stored ([`CHECKSUM_KEY`]).
    #[error(
        "{path}: the tensor data is corrupted (its checksum is {computed}, the file says {stored})"
    )]
    Corrupted {
        path: PathBuf,
        stored: String,
        computed: String,
    },
    #[error("{path}: cannot write the file: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid safetensors file: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("{path}: tensor '{name}' has dtype {dtype}, expected F32 or F64")]
    Dtype {
        path: PathBuf,
        name: String,
        dtype: String,
    },
    #[error("{path}: tensor '{name}' has shape {shape:?}, expected 1 or 2 dimensions")]
    Rank {
        path: PathBuf,
        name: String,
        shape: Vec<usize>,
    },
    #[error("{path}: tensor '{name}' holds a non-finite value ({value})")]
    NonFinite {
        path: PathBuf,
        name: String,
        value: f64,
    },
}

/// One stored tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredTensor {
    /// The shape as stored (`[n]` or `[m, n]`).
    pub shape: Vec<usize>,
    /// The values, a rank-1 tensor as [1, n].
    pub values: Array2<f64>,
    /// True if stored as F32.
    pub was_f32: bool,
}

/// The contents of a safetensors file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TensorFile {
    pub metadata: BTreeMap<String, String>,
    pub tensors: BTreeMap<String, StoredTensor>,
}

impl TensorFile {
    /// Reads and validates a file: every tensor F32/F64, rank 1 or 2, finite; within the limit of
    /// the largest kind read as tensors (a checkpoint's). See [`TensorFile::read_as`].
    pub fn read(path: &Path) -> Result<Self, TensorFileError> {
        Self::read_as(path, InputKind::Checkpoint)
    }

    /// [`TensorFile::read`] of a file read as `kind`: a regular file within `kind`'s size limit,
    /// checked before it is read ([`read_limited`]).
    pub fn read_as(path: &Path, kind: InputKind) -> Result<Self, TensorFileError> {
        let bytes = read_limited(path, kind)?;
        Self::parse(&bytes, path)
    }

    /// Parses the bytes of a file; `path` only names it in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, TensorFileError> {
        let format = |reason: String| TensorFileError::Format {
            path: path.to_path_buf(),
            reason,
        };
        let data_start = header_end(bytes).map_err(format)?;
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| format(e.to_string()))?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| format(e.to_string()))?;
        let mut metadata = meta
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect::<BTreeMap<_, _>>();
        if let Some(stored) = metadata.remove(CHECKSUM_KEY) {
            let computed = checksum(&bytes[data_start..]);
            if stored != computed {
                return Err(TensorFileError::Corrupted {
                    path: path.to_path_buf(),
                    stored,
                    computed,
                });
            }
        }
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let shape = view.shape().to_vec();
            let (rows, cols) = match shape.as_slice() {
                [n] => (1, *n),
                [m, n] => (*m, *n),
                _ => {
                    return Err(TensorFileError::Rank {
                        path: path.to_path_buf(),
                        name,
                        shape,
                    })
                }
            };
            let data = view.data();
            let (values, was_f32): (Vec<f64>, bool) = match view.dtype() {
                Dtype::F64 => (
                    data.chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().expect("chunk of 8")))
                        .collect(),
                    false,
                ),
                Dtype::F32 => (
                    data.chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().expect("chunk of 4")) as f64)
                        .collect(),
                    true,
                ),
                other => {
                    return Err(TensorFileError::Dtype {
                        path: path.to_path_buf(),
                        name,
                        dtype: format!("{other:?}"),
                    })
                }
            };
            if let Some(&bad) = values.iter().find(|v| !v.is_finite()) {
                return Err(TensorFileError::NonFinite {
                    path: path.to_path_buf(),
                    name,
                    value: bad,
                });
            }
            let values = Array2::from_shape_vec((rows, cols), values)
                .map_err(|e| format(format!("tensor '{name}': {e}")))?;
            tensors.insert(
                name,
                StoredTensor {
                    shape,
                    values,
                    was_f32,
                },
            );
        }
        Ok(TensorFile { metadata, tensors })
    }

    /// Serialises to safetensors bytes; each tensor in `as_f32` precision or F64.
    ///
    /// The bytes depend only on the contents: the header lists the metadata (keys sorted) and then
    /// the tensors in name order, each tensor's data follow in the same order, and the header is
    /// padded with spaces to a multiple of 8 bytes (as the `safetensors` crate and Python package
    /// write it). So the same checkpoint is the same file, byte for byte. The metadata gains
    /// [`CHECKSUM_KEY`], the checksum of the data section (see the module doc).
    pub fn to_bytes(&self, as_f32: bool) -> Vec<u8> {
        let (dtype, size) = if as_f32 { ("F32", 4) } else { ("F64", 8) };
        let mut data = Vec::new();
        for t in self.tensors.values() {
            for &v in t.values.iter() {
                if as_f32 {
                    data.extend_from_slice(&(v as f32).to_le_bytes());
                } else {
                    data.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        let mut metadata = self.metadata.clone();
        metadata.insert(CHECKSUM_KEY.into(), checksum(&data));
        let mut header = String::from("{\"__metadata__\":");
        header.push_str(&json(&metadata));
        let mut offset = 0usize;
        for (name, t) in &self.tensors {
            assert_eq!(
                t.shape.iter().product::<usize>(),
                t.values.len(),
                "tensor '{name}': shape {:?} does not hold {} values",
                t.shape,
                t.values.len()
            );
            let end = offset + t.values.len() * size;
            header.push_str(&format!(
                ",{}:{{\"dtype\":\"{dtype}\",\"shape\":{},\"data_offsets\":[{offset},{end}]}}",
                json(name),
                json(&t.shape)
            ));
            offset = end;
        }
        header.push('}');
        while header.len() % 8 != 0 {
            header.push(' ');
        }
        let mut out = Vec::with_capacity(8 + header.len() + data.len());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&data);
        out
    }

    /// Writes the file atomically ([`write_atomically`]).
    pub fn write(&self, path: &Path, as_f32: bool) -> Result<(), TensorFileError> {
        write_atomically(path, &self.to_bytes(as_f32)).map_err(|source| TensorFileError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// The metadata entry of the data section's checksum (see the module doc).
pub const CHECKSUM_KEY: &str = "data_checksum";

/// `fnv1a64:<16 hex digits>`: FNV-1a (64-bit) of `data`. Our own few lines rather than a crate:
/// it detects any single flipped bit or byte for certain (each step is a bijection of the state),
/// which is what a checksum of a file on disk is for; it is not meant against deliberate edits.
pub fn checksum(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("fnv1a64:{h:016x}")
}

/// Where the data section of safetensors `bytes` starts (8 + the header length), or why the
/// header length cannot be right: checked against the file's size and
/// [`MAX_SAFETENSORS_HEADER_BYTES`] before the header is parsed.
fn header_end(bytes: &[u8]) -> Result<usize, String> {
    let Some(len) = bytes.get(..8) else {
        return Err(format!(
            "{} bytes, shorter than the 8-byte header length",
            bytes.len()
        ));
    };
    let n = u64::from_le_bytes(len.try_into().expect("8 bytes"));
    let room = bytes.len() as u64 - 8;
    if n > room || n > MAX_SAFETENSORS_HEADER_BYTES {
        return Err(format!(
            "the header length {n} is beyond the {room} bytes after it{}",
            if n > MAX_SAFETENSORS_HEADER_BYTES {
                format!(" and the {MAX_SAFETENSORS_HEADER_BYTES}-byte limit of a header")
            } else {
                String::new()
            }
        ));
    }
    Ok(8 + n as usize)
}

/// Whether `bytes` begin as a safetensors file does: a header length that fits, then `{`.
pub fn is_safetensors_bytes(bytes: &[u8]) -> bool {
    header_end(bytes).is_ok_and(|end| end > 8 && bytes[8] == b'{')
}

/// Whether the file at `path` is a safetensors file: an 8-byte header length that fits the file,
/// followed by a JSON object. Reads at most the header.
pub fn is_safetensors_file(path: &Path) -> bool {
    use std::io::Read;
    // Only a regular file is opened: opening a named pipe would wait for a writer.
    let size = match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => meta.len(),
        _ => return false,
    };
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let mut len = [0u8; 8];
    if file.read_exact(&mut len).is_err() {
        return false;
    }
    let n = u64::from_le_bytes(len);
    if n < 2 || n > size.saturating_sub(8) || n > MAX_SAFETENSORS_HEADER_BYTES {
        return false;
    }
    let mut header = Vec::new();
    if file.take(n).read_to_end(&mut header).is_err() {
        return false;
    }
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&header).is_ok()
}

/// A value as compact JSON (strings escaped as JSON requires).
fn json<T: serde::Serialize + ?Sized>(x: &T) -> String {
    serde_json::to_string(x).expect("strings, maps of strings and integers serialise")
}
