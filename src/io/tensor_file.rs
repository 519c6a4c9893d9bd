//! Named tensors in the safetensors format (what PyTorch's and JAX's `safetensors` read and write):
//! reference cases and checkpoints. Tensors of rank 1 or 2, dtype F32 or F64, held here as
//! `Array2<f64>` (a rank-1 tensor `[n]` as a row `[1, n]`) together with their stored shape.
//! Writes are atomic: a temporary file in the same folder, flushed, then renamed over the target.

use ndarray::Array2;
use safetensors::tensor::{Dtype, SafeTensors};
use std::collections::BTreeMap;
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

    /// Writes the file atomically (temporary file in the same folder, flush, rename).
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

/// The most bytes a file name may have on common file systems (ext4, XFS, APFS, NTFS).
const MAX_NAME_BYTES: usize = 255;

/// The start of the hidden temporary sibling of `name`: `.NAME.tmp`, followed by a process id in
/// [`temporary_name`]. When that would not fit in a file name (NAME of about 240 bytes or more),
/// NAME is cut at a character boundary and a hash of the whole name keeps it unique:
/// `.CUT~HASH.tmp`.
pub fn temporary_prefix(name: &str) -> String {
    // Room for ".", ".tmp" and a 10-digit process id.
    let room = MAX_NAME_BYTES - 1 - 4 - 10;
    if name.len() <= room {
        return format!(".{name}.tmp");
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut cut = room - 17;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(".{}~{hash:016x}.tmp", &name[..cut])
}

/// The hidden temporary sibling name of `name` for process `pid` (see [`temporary_prefix`]).
pub fn temporary_name(name: &str, pid: u32) -> String {
    format!("{}{pid}", temporary_prefix(name))
}

/// `path` with symbolic links followed to the file they name: an output path that is a link is
/// written where the link points, and the link stays. An existing path is canonicalized; a link to
/// a file that does not exist yet is followed by hand (at most 40 links, as the OS does).
pub fn follow_symlinks(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::read_link(&p) {
            Ok(target) if target.is_absolute() => p = target,
            Ok(target) => {
                let dir = p
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                p = dir.join(target);
            }
            Err(_) => break,
        }
    }
    p
}

/// Writes `bytes` to `path` so that a crash at any moment leaves either the old file or the new
/// one, never a mix: write a temporary sibling ([`temporary_name`]), fsync it, rename it over
/// `path`. A `path` that is a symbolic link is followed: the file it points to is replaced. An
/// existing `path` that is not a regular file (`/dev/stdout`, a named pipe) is written in place,
/// as the shell's `>` would: a rename would replace the device or pipe itself.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() && !meta.is_dir() {
            let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
            return f.write_all(bytes).and_then(|_| f.flush());
        }
    }
    let path = &follow_symlinks(path);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name")
    })?;
    let tmp = dir.join(temporary_name(
        &file_name.to_string_lossy(),
        std::process::id(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_fit_in_a_file_name() {
        assert_eq!(temporary_name("config.json", 42), ".config.json.tmp42");
        let long = "é".repeat(127); // 254 bytes
        let other = format!("{}x", "é".repeat(126));
        for name in [&long, &other] {
            let t = temporary_name(name, u32::MAX);
            assert!(t.len() <= MAX_NAME_BYTES, "{} bytes", t.len());
            assert!(t.starts_with(&temporary_prefix(name)));
        }
        assert_ne!(temporary_prefix(&long), temporary_prefix(&other));
    }
}
