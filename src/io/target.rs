//! Whether an output path can be written, asked before any work and without touching the disk:
//! [`check_output_file`]. The checks create no file, open nothing for writing and change no
//! modification time, so a refused command leaves the disk as it was; a named pipe is never opened
//! here (an open and close would hand its reader an end of file before the real write).

use super::atomic::{is_symlink_loop, resolve_symlinks};
use super::limits::special_file_kind;
use std::io;
use std::path::{Component, Path, PathBuf};

/// How an output path that passed [`check_output_file`] will be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputTarget {
    /// A regular file, new or replaced through a temporary sibling and a rename.
    File,
    /// A device or a named pipe, written in place once ([`super::atomic::write_atomically`]).
    InPlace,
}

/// Why an output path cannot be written; the message follows the flag and the path.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("the folder {} does not exist", .0.display())]
    MissingFolder(PathBuf),
    #[error("{} is not a folder", .0.display())]
    NotAFolder(PathBuf),
    #[error("is a folder, not a file name")]
    IsAFolder,
    /// An existing file without write permission: refused rather than replaced (a rename would
    /// replace it and leave a writable file, which `cp` and the shell's `>` do not do).
    #[error("is read-only")]
    ReadOnly,
    #[error("cannot write: {0}")]
    CannotWrite(String),
    #[error("cannot write in the folder {}: {reason}", folder.display())]
    CannotWriteFolder { folder: PathBuf, reason: String },
    /// A chain of symbolic links that never ends (`a.csv -> b.csv -> a.csv`).
    #[error("too many levels of symbolic links")]
    SymlinkLoop,
    /// A name in the path longer than a file name may be ([`NAME_MAX`]).
    #[error(
        "the name {name} is {bytes} bytes long; a file or folder name has at most {NAME_MAX} bytes"
    )]
    NameTooLong { name: String, bytes: usize },
    /// A path longer than the OS takes ([`PATH_MAX`]).
    #[error("the path is {bytes} bytes long; at most {} bytes are allowed", PATH_MAX - 1)]
    PathTooLong { bytes: usize },
}

/// The most bytes in a file or folder name (one component of a path) on common file systems
/// (ext4, XFS, btrfs, APFS, NTFS): Linux's `NAME_MAX`.
pub const NAME_MAX: usize = 255;

/// The most bytes in a path the OS takes, with its terminating NUL: Linux's `PATH_MAX`.
pub const PATH_MAX: usize = 4096;

/// A name cut for a message: its first 40 characters, then `...`.
fn short_name(name: &str) -> String {
    match name.char_indices().nth(40) {
        Some((cut, _)) => format!("'{}...'", &name[..cut]),
        None => format!("'{name}'"),
    }
}

/// Whether the OS could take `path` as a name to create: every component at most [`NAME_MAX`]
/// bytes, the whole under [`PATH_MAX`] (`ENAMETOOLONG`, which the write would otherwise meet only
/// after the work).
pub fn check_path_limits(path: &Path) -> Result<(), TargetError> {
    let bytes = path.as_os_str().len();
    if bytes >= PATH_MAX {
        return Err(TargetError::PathTooLong { bytes });
    }
    for component in path.components() {
        if let Component::Normal(name) = component {
            if name.len() > NAME_MAX {
                return Err(TargetError::NameTooLong {
                    name: short_name(&name.to_string_lossy()),
                    bytes: name.len(),
                });
            }
        }
    }
    Ok(())
}

/// The path an output is written at: `path` with its symbolic links followed
/// ([`resolve_symlinks`]), checked against the OS's limits as given and as resolved (a link may
/// name a file whose name is too long); a loop of links is refused.
fn resolved_output(path: &Path) -> Result<PathBuf, TargetError> {
    check_path_limits(path)?;
    let resolved = resolve_symlinks(path).map_err(|e| {
        if is_symlink_loop(&e) {
            TargetError::SymlinkLoop
        } else {
            TargetError::CannotWrite(e.to_string())
        }
    })?;
    check_path_limits(&resolved)?;
    Ok(resolved)
}

/// Whether this process may write `path` (`access(2)` with `W_OK` on the effective ids; nothing
/// is opened or created).
#[cfg(unix)]
pub fn may_write(path: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a NUL-terminated path that outlives the call; faccessat only reads it.
    let r = unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::W_OK, libc::AT_EACCESS) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether this process may write `path` (elsewhere: the read-only attribute).
#[cfg(not(unix))]
pub fn may_write(path: &Path) -> io::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().readonly() => {
            Err(io::Error::from(io::ErrorKind::PermissionDenied))
        }
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether the existing regular file behind `meta` is read-only: no write permission bit for
/// anyone (which root's `access(2)` would not report), or this process may not write it.
pub fn is_read_only(path: &Path, meta: &std::fs::Metadata) -> bool {
    meta.permissions().readonly() || may_write(path).is_err()
}

/// The first folder that `path` goes through by name and that is missing or not a folder, when
/// the path then climbs out of it with `..` (`./x/../run`: `x`). The OS resolves `x/..` only when
/// `x` exists, but `create_dir_all` would make `x` on the way: such a path is refused instead, as
/// for any other missing folder.
pub fn missing_folder_before_parent_dir(path: &Path) -> Option<TargetError> {
    let mut prefix = PathBuf::new();
    for component in path.components() {
        if component == Component::ParentDir && !prefix.as_os_str().is_empty() {
            // The shortest prefix that is not a folder is the one to name.
            let mut walked = PathBuf::new();
            for c in prefix.components() {
                walked.push(c);
                if matches!(
                    c,
                    Component::CurDir | Component::RootDir | Component::Prefix(_)
                ) {
                    continue;
                }
                match std::fs::metadata(&walked) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => return Some(TargetError::NotAFolder(walked)),
                    Err(_) => return Some(TargetError::MissingFolder(walked)),
                }
            }
        }
        prefix.push(component);
    }
    None
}

/// The folder `path` is in (`.` for a bare name).
fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Checks that `path` can take an output file, touching nothing (see the module doc):
///
/// - a device or a named pipe: writable by this process; it is written in place
///   ([`OutputTarget::InPlace`]);
/// - an existing regular file (a symbolic link is followed): not read-only;
/// - otherwise a new file: its folder exists (also every folder the path names before a `..`) and
///   this process may create files in it;
/// - in every case: no loop of symbolic links, and no name longer than the OS takes
///   ([`check_path_limits`], on the path as given and with its links followed).
pub fn check_output_file(path: &Path) -> Result<OutputTarget, TargetError> {
    if let Some(e) = missing_folder_before_parent_dir(path) {
        return Err(e);
    }
    let resolved = resolved_output(path)?;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.is_dir() {
            return Err(TargetError::IsAFolder);
        }
        if special_file_kind(&meta).is_some() {
            may_write(path).map_err(|e| TargetError::CannotWrite(e.to_string()))?;
            return Ok(OutputTarget::InPlace);
        }
        if is_read_only(path, &meta) {
            return Err(TargetError::ReadOnly);
        }
    }
    let folder = folder_of(&resolved);
    match std::fs::metadata(folder) {
        // A folder without write permission for anyone (`/proc`, a 0555 folder) is read-only even
        // to root, whom access(2) would let through.
        Ok(m) if m.is_dir() && m.permissions().readonly() => {
            return Err(TargetError::CannotWriteFolder {
                folder: folder.to_path_buf(),
                reason: "the folder is read-only".into(),
            })
        }
        Ok(m) if m.is_dir() => {}
        Err(e) if is_symlink_loop(&e) => return Err(TargetError::SymlinkLoop),
        _ => {
            // The nearest existing ancestor: a file in the way, or the folder is missing.
            let in_the_way = folder
                .ancestors()
                .find(|a| !a.as_os_str().is_empty() && a.exists())
                .filter(|a| !a.is_dir());
            return Err(match in_the_way {
                Some(file) => TargetError::NotAFolder(file.to_path_buf()),
                None => TargetError::MissingFolder(folder.to_path_buf()),
            });
        }
    }
    may_write(folder).map_err(|e| TargetError::CannotWriteFolder {
        folder: folder.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(OutputTarget::File)
}

/// Checks that `path` can be (or already is) a folder that takes output files, touching nothing:
/// the path within the OS's limits and through no loop of links or missing folder before a `..`;
/// an existing folder writable by this process, or else the nearest existing folder above it (where
/// the missing ones will be created) a writable folder. For a study's `--out`, before any work.
pub fn check_output_folder(path: &Path) -> Result<(), TargetError> {
    if let Some(e) = missing_folder_before_parent_dir(path) {
        return Err(e);
    }
    let resolved = resolved_output(path)?;
    let writable = |folder: &Path, meta: &std::fs::Metadata| {
        if meta.permissions().readonly() {
            return Err(TargetError::CannotWriteFolder {
                folder: folder.to_path_buf(),
                reason: "the folder is read-only".into(),
            });
        }
        may_write(folder).map_err(|e| TargetError::CannotWriteFolder {
            folder: folder.to_path_buf(),
            reason: e.to_string(),
        })
    };
    match std::fs::metadata(&resolved) {
        Ok(m) if m.is_dir() => return writable(path, &m),
        Ok(_) => return Err(TargetError::NotAFolder(path.to_path_buf())),
        Err(e) if is_symlink_loop(&e) => return Err(TargetError::SymlinkLoop),
        Err(_) => {}
    }
    for above in resolved.ancestors().skip(1) {
        let above = if above.as_os_str().is_empty() {
            Path::new(".")
        } else {
            above
        };
        match std::fs::metadata(above) {
            Ok(m) if m.is_dir() => return writable(above, &m),
            Ok(_) => return Err(TargetError::NotAFolder(above.to_path_buf())),
            Err(e) if is_symlink_loop(&e) => return Err(TargetError::SymlinkLoop),
            Err(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_through_a_missing_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let x = dir.path().join("x");
        let through = dir.path().join("x/../out.csv");
        assert_eq!(
            check_output_file(&through),
            Err(TargetError::MissingFolder(x.clone()))
        );
        std::fs::create_dir(&x).unwrap();
        assert_eq!(check_output_file(&through), Ok(OutputTarget::File));
        assert_eq!(
            check_output_file(&dir.path().join("y/out.csv")),
            Err(TargetError::MissingFolder(dir.path().join("y")))
        );
    }

    #[cfg(unix)]
    #[test]
    fn read_only_files_are_refused_and_devices_written_in_place() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("out.csv");
        std::fs::write(&f, b"1,2\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o444)).unwrap();
        assert_eq!(check_output_file(&f), Err(TargetError::ReadOnly));
        assert_eq!(
            check_output_file(Path::new("/dev/null")),
            Ok(OutputTarget::InPlace)
        );
    }
}
