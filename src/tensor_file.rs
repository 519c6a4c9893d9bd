//! Named tensors in the safetensors format (what PyTorch's and JAX's `safetensors` read and write):
//! reference cases and checkpoints. Tensors of rank 1 or 2, dtype F32 or F64, held here as
//! `Array2<f64>` (a rank-1 tensor `[n]` as a row `[1, n]`) together with their stored shape.
//! Writes are atomic: a temporary file in the same folder, flushed, then renamed over the target.

use ndarray::Array2;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
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
    pub fn to_bytes(&self, as_f32: bool) -> Vec<u8> {
        let buffers: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(name, t)| {
                let bytes = if as_f32 {
                    t.values
                        .iter()
                        .flat_map(|&v| (v as f32).to_le_bytes())
                        .collect()
                } else {
                    t.values.iter().flat_map(|&v| v.to_le_bytes()).collect()
                };
                (name.clone(), t.shape.clone(), bytes)
            })
            .collect();
        let dtype = if as_f32 { Dtype::F32 } else { Dtype::F64 };
        let views = buffers.iter().map(|(name, shape, bytes)| {
            let view = TensorView::new(dtype, shape.clone(), bytes)
                .expect("shape matches the data length");
            (name.clone(), view)
        });
        let metadata: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        safetensors::tensor::serialize(views, Some(metadata))
            .expect("serialising in-memory tensors cannot fail")
    }

    /// Writes the file atomically (temporary file in the same folder, flush, rename).
    pub fn write(&self, path: &Path, as_f32: bool) -> Result<(), TensorFileError> {
        write_atomically(path, &self.to_bytes(as_f32)).map_err(|source| TensorFileError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Writes `bytes` to `path` so that a crash at any moment leaves either the old file or the new
/// one, never a mix: write a temporary sibling, fsync it, rename it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name")
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
