//! Named tensors in the safetensors format (what PyTorch's and JAX's `safetensors` read and write):
//! reference cases and checkpoints. Tensors of rank 1 or 2, dtype F32 or F64, held here as
//! `Array2<f64>` (a rank-1 tensor `[n]` as a row `[1, n]`) together with their stored shape.
//! Writes go through [`write_atomically`].

use crate::io::atomic::write_atomically;
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
    /// Reads and validates a file: every tensor F32/F64, rank 1 or 2, finite.
    pub fn read(path: &Path) -> Result<Self, TensorFileError> {
        let bytes = std::fs::read(path).map_err(|source| TensorFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&bytes, path)
    }

    /// Parses the bytes of a file; `path` only names it in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, TensorFileError> {
        let format = |reason: String| TensorFileError::Format {
            path: path.to_path_buf(),
            reason,
        };
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| format(e.to_string()))?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| format(e.to_string()))?;
        let metadata = meta
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect::<BTreeMap<_, _>>();
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
    /// write it). So the same checkpoint is the same file, byte for byte.
    pub fn to_bytes(&self, as_f32: bool) -> Vec<u8> {
        let (dtype, size) = if as_f32 { ("F32", 4) } else { ("F64", 8) };
        let mut header = String::from("{\"__metadata__\":");
        header.push_str(&json(&self.metadata));
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
        let mut out = Vec::with_capacity(8 + header.len() + offset);
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        for t in self.tensors.values() {
            for &v in t.values.iter() {
                if as_f32 {
                    out.extend_from_slice(&(v as f32).to_le_bytes());
                } else {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
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

/// A value as compact JSON (strings escaped as JSON requires).
fn json<T: serde::Serialize + ?Sized>(x: &T) -> String {
    serde_json::to_string(x).expect("strings, maps of strings and integers serialise")
}
