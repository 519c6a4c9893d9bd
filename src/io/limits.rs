//! The one size-limit policy of every file the crate reads: [`read_limited`] with an
//! [`InputKind`], each kind with its named limit.
//!
//! Why: a reader that takes whatever it is given (`verify /dev/zero`, `train --dataset /dev/zero`)
//! grows memory until the OS kills the process. Here the size is checked before the bytes are
//! allocated: a regular file's length from its metadata, and the read itself stops one byte past
//! the limit (a file that grows while it is read, a `/proc` file whose length says 0).
//!
//! Inputs are regular files. A pipe, a device, a socket, standard input (`-`, `/dev/stdin` when it
//! is a pipe or a terminal) is refused by name, before it is opened: every command reads its inputs
//! whole and some read them again later (`train --resume` re-reads the data file), opening a named
//! pipe for reading blocks until a writer comes, and a device may never end. `/dev/stdin`
//! redirected from a regular file (`< data.csv`) is that file and is read.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// One gibibyte.
const GIB: u64 = 1 << 30;

/// The most bytes of a point file (a dataset, `eval --samples` / `--data`): 2 GiB, about 100
/// million values of CSV text, beyond what a CPU run of this tool trains on or evaluates.
pub const MAX_POINT_FILE_BYTES: u64 = 2 * GIB;

/// The most bytes of a checkpoint: its four arrays (weights, EMA, Adam's two moments) of at most
/// [`MAX_PARAMETERS`](crate::train::MAX_PARAMETERS) = 2^27 values each in f64 are 4 GiB; 64 MiB
/// more for the header (names, shapes, the config and the metrics sums).
pub const MAX_CHECKPOINT_BYTES: u64 = 4 * GIB + 64 * (1 << 20);

/// The most bytes of a reference case (`verify`): 1 GiB, far beyond a case's batch, parameters
/// and expected values (the cases in tests/data are under 100 kB).
pub const MAX_REFERENCE_CASE_BYTES: u64 = GIB;

/// The most bytes of a run's config.json: 16 MiB, a thousand times what the largest model's
/// settings and per-column units take.
pub const MAX_RUN_CONFIG_BYTES: u64 = 16 << 20;

/// The most bytes of a safetensors header (the JSON after the 8-byte length), as the
/// `safetensors` crate's own limit: checked against the file's size before the header is read.
pub const MAX_SAFETENSORS_HEADER_BYTES: u64 = 100_000_000;

/// What a file is read as: its name in messages and its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// A CSV / NPY point file: a dataset or samples.
    PointFile,
    /// A training checkpoint.
    Checkpoint,
    /// A reference case for `verify`.
    ReferenceCase,
    /// A run folder's config.json.
    RunConfig,
}

impl InputKind {
    /// The most bytes a file of this kind may have.
    pub fn limit(self) -> u64 {
        match self {
            InputKind::PointFile => MAX_POINT_FILE_BYTES,
            InputKind::Checkpoint => MAX_CHECKPOINT_BYTES,
            InputKind::ReferenceCase => MAX_REFERENCE_CASE_BYTES,
            InputKind::RunConfig => MAX_RUN_CONFIG_BYTES,
        }
    }

    /// "a point file", for messages.
    pub fn name(self) -> &'static str {
        match self {
            InputKind::PointFile => "a point file",
            InputKind::Checkpoint => "a checkpoint",
            InputKind::ReferenceCase => "a reference case",
            InputKind::RunConfig => "a run's config.json",
        }
    }
}

/// Why an input could not be read; one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}: cannot read the file: {source}", path.display())]
    NotFound { path: PathBuf, source: io::Error },
    /// A pipe, a device, standard input: see the module doc.
    #[error("{}: is {what}, not a regular file; save it to a file and name that file", path.display())]
    NotRegular { path: PathBuf, what: &'static str },
    #[error("{}: larger than the {} {} may be", path.display(), human_bytes(*limit), kind.name())]
    TooLarge {
        path: PathBuf,
        limit: u64,
        kind: InputKind,
    },
    #[error("{}: cannot read the file: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl ReadError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ReadError::NotFound { path, .. }
            | ReadError::NotRegular { path, .. }
            | ReadError::TooLarge { path, .. }
            | ReadError::Io { path, .. } => path,
        }
    }

    /// The error as an I/O error whose message is the reason without the path, for a caller
    /// whose own message names the path (`DataError::Read`); not found stays `NotFound`.
    pub fn into_io(self) -> io::Error {
        let text = self.to_string();
        let reason = text
            .strip_prefix(&format!("{}: ", self.path().display()))
            .unwrap_or(&text)
            .to_string();
        match self {
            ReadError::Io { source, .. } | ReadError::NotFound { source, .. } => source,
            _ => io::Error::new(io::ErrorKind::InvalidInput, reason),
        }
    }
}

/// `2 GiB`, `1.2 MiB`, `100 bytes`: a limit in messages.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(GIB, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if n >= size {
            return if n.is_multiple_of(size) {
                format!("{} {unit}", n / size)
            } else {
                format!("{:.2} {unit}", n as f64 / size as f64)
            };
        }
    }
    format!("{n} bytes")
}

/// What a file that is not a regular file is, for messages: "a named pipe", "a device", ...
/// None for a regular file or a folder.
pub fn special_file_kind(meta: &std::fs::Metadata) -> Option<&'static str> {
    if meta.is_file() || meta.is_dir() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return Some("a pipe");
        }
        if t.is_char_device() || t.is_block_device() {
            return Some("a device");
        }
        if t.is_socket() {
            return Some("a socket");
        }
    }
    Some("not a regular file")
}

/// Reads the whole of `path`, a regular file of at most `kind.limit()` bytes (see the module doc).
pub fn read_limited(path: &Path, kind: InputKind) -> Result<Vec<u8>, ReadError> {
    read_limited_to(path, kind, kind.limit())
}

/// [`read_limited`] with an explicit `limit` (the kind only names the file in messages).
pub fn read_limited_to(path: &Path, kind: InputKind, limit: u64) -> Result<Vec<u8>, ReadError> {
    let io_error = |source: io::Error| {
        if source.kind() == io::ErrorKind::NotFound {
            ReadError::NotFound {
                path: path.to_path_buf(),
                source,
            }
        } else {
            ReadError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    if path.as_os_str() == "-" {
        return Err(ReadError::NotRegular {
            path: path.to_path_buf(),
            what: "standard input",
        });
    }
    // Asked before opening: opening a named pipe for reading would wait for a writer.
    let meta = std::fs::metadata(path).map_err(io_error)?;
    if meta.is_dir() {
        return Err(ReadError::Io {
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "is a folder"),
        });
    }
    if let Some(what) = special_file_kind(&meta) {
        return Err(ReadError::NotRegular {
            path: path.to_path_buf(),
            what,
        });
    }
    let too_large = || ReadError::TooLarge {
        path: path.to_path_buf(),
        limit,
        kind,
    };
    if meta.len() > limit {
        return Err(too_large());
    }
    let file = File::open(path).map_err(io_error)?;
    // The length is a hint only (a /proc file says 0, a file may grow): the read stops one byte
    // past the limit whatever the metadata said.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_named_in_round_units() {
        assert_eq!(human_bytes(MAX_POINT_FILE_BYTES), "2 GiB");
        assert_eq!(human_bytes(MAX_REFERENCE_CASE_BYTES), "1 GiB");
        assert_eq!(human_bytes(MAX_CHECKPOINT_BYTES), "4.06 GiB");
        assert_eq!(human_bytes(10), "10 bytes");
    }

    #[test]
    fn a_file_over_the_limit_is_refused_and_one_at_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.csv");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(
            read_limited_to(&p, InputKind::PointFile, 10).unwrap(),
            b"0123456789"
        );
        let e = read_limited_to(&p, InputKind::PointFile, 9).unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { limit: 9, .. }), "{e}");
        assert!(e
            .to_string()
            .contains("larger than the 9 bytes a point file may be"));
    }

    #[cfg(unix)]
    #[test]
    fn devices_and_standard_input_are_refused_by_name() {
        let e = read_limited(Path::new("/dev/zero"), InputKind::Checkpoint).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/dev/zero: is a device, not a regular file; save it to a file and name that file"
        );
        let e = read_limited(Path::new("-"), InputKind::PointFile).unwrap_err();
        assert!(e.to_string().starts_with("-: is standard input"), "{e}");
    }
}
