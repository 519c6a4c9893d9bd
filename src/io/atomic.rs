//! The one way this crate writes a file: [`write_atomically`]. Checkpoints, reference cases,
//! datasets, pictures, configs, metrics and study tables all go through it, so a crash or a full
//! disk never leaves half a file where a whole one was.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

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

/// The most symbolic links followed in a row before a path is a loop (Linux's `MAXSYMLINKS`).
pub const MAX_LINKS: usize = 40;

/// The error of a chain of symbolic links that never ends (`a -> b -> a`, or more than
/// [`MAX_LINKS`] links): `ELOOP`, "too many levels of symbolic links".
pub fn symlink_loop_error() -> io::Error {
    #[cfg(unix)]
    {
        io::Error::from_raw_os_error(libc::ELOOP)
    }
    #[cfg(not(unix))]
    {
        io::Error::other("too many levels of symbolic links")
    }
}

/// Whether `e` says a path went through too many symbolic links (a loop).
pub fn is_symlink_loop(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        e.raw_os_error() == Some(libc::ELOOP)
    }
    #[cfg(not(unix))]
    {
        e.to_string() == "too many levels of symbolic links"
    }
}

/// `path` with symbolic links followed to the file they name: an output path that is a link is
/// written where the link points, and the link stays. An existing path is canonicalized; a link to
/// a file that does not exist yet (a dangling link, or a chain of them) is followed by hand to the
/// name the OS would create. A loop (`a.csv -> b.csv -> a.csv`, a folder of the path that is one,
/// or more than 40 links in a row) is an error ([`is_symlink_loop`]), never a name to write:
/// renaming over a link of the loop would replace the link with a file.
pub fn resolve_symlinks(path: &Path) -> io::Result<PathBuf> {
    match fs::canonicalize(path) {
        Ok(p) => return Ok(p),
        Err(e) if is_symlink_loop(&e) => return Err(e),
        Err(_) => {}
    }
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::read_link(&p) {
            Ok(target) if target.is_absolute() => p = target,
            Ok(target) => {
                let dir = p
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                p = dir.join(target);
            }
            Err(e) if is_symlink_loop(&e) => return Err(e),
            // Not a link (or nothing there): the name to write.
            Err(_) => return Ok(p),
        }
    }
    Err(symlink_loop_error())
}

/// [`resolve_symlinks`], or `path` itself when it goes through a loop (for callers that only look
/// at the name; a write through [`write_atomically`] refuses the loop).
pub fn follow_symlinks(path: &Path) -> PathBuf {
    resolve_symlinks(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Writes `bytes` to `path` so that a crash, a kill or a full disk at any moment leaves at `path`
/// either the old file, whole, or the new one, whole: never a mix, never a truncated file.
///
/// How: the bytes go to a hidden temporary sibling in the same folder ([`temporary_name`]; the same
/// folder, so that the rename cannot cross file systems), that file is fsynced (its bytes are on
/// disk before its name is), renamed over `path` (atomic on POSIX), and the folder is fsynced (the
/// rename itself survives a power cut). If any step fails, the temporary file is removed and `path`
/// is untouched.
///
/// A `path` that is a symbolic link is followed: the file it points to is replaced and the link
/// stays; a loop of links is an error (`ELOOP`), and no link of it is replaced. An existing `path` that is not a regular file (`/dev/stdout`, a named pipe) is written in
/// place, as the shell's `>` would: a rename would replace the device or pipe itself, so there the
/// guarantee is only that of the device. It is opened once and written whole (a named pipe's
/// reader sees one end of file, after the last byte).
///
/// Refused, leaving `path` as it is (`PermissionDenied`): an existing file that is read-only (a
/// rename would replace it with a writable one), and a safetensors file (a checkpoint) replaced by
/// bytes that are not one (`--json RUN/checkpoint.safetensors`): the commands check their outputs
/// before any work ([`super::target`]), and this keeps a checkpoint safe from any writer that
/// does not.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Ok(meta) = fs::metadata(path) {
        if !meta.is_file() && !meta.is_dir() {
            let mut f = OpenOptions::new().write(true).open(path)?;
            return f.write_all(bytes).and_then(|_| f.flush());
        }
        if meta.is_file() && super::target::is_read_only(path, &meta) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "is read-only",
            ));
        }
        if meta.is_file()
            && !super::tensor_file::is_safetensors_bytes(bytes)
            && super::tensor_file::is_safetensors_file(path)
        {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "is a safetensors file (a checkpoint); refusing to replace it with another kind of file",
            ));
        }
    }
    let path = &resolve_symlinks(path)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(temporary_name(
        &file_name.to_string_lossy(),
        std::process::id(),
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // The new name is in place; fsyncing the folder makes it durable. Some file systems refuse
        // to open or fsync a folder: the write has happened all the same, so that is not an error.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder (tempfile's, removed on drop) and the names in it.
    struct Scratch(tempfile::TempDir);

    impl Scratch {
        fn new(tag: &str) -> Self {
            Scratch(tempfile::Builder::new().prefix(tag).tempdir().unwrap())
        }

        fn path(&self) -> &Path {
            self.0.path()
        }

        fn entries(&self) -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(self.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }
    }

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

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let s = Scratch::new("replace");
        let p = s.path().join("out.txt");
        write_atomically(&p, b"first, longer contents").unwrap();
        write_atomically(&p, b"second").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second");
        assert_eq!(s.entries(), vec!["out.txt"]);
    }

    #[test]
    fn a_failed_write_leaves_nothing() {
        let s = Scratch::new("fail");
        let p = s.path().join("no/such/folder/out.txt");
        assert!(write_atomically(&p, b"x").is_err());
        // A folder in the way of the rename: the old folder stays, the temporary file is gone.
        fs::create_dir(s.path().join("taken")).unwrap();
        assert!(write_atomically(&s.path().join("taken"), b"x").is_err());
        assert!(s.path().join("taken").is_dir());
        assert_eq!(s.entries(), vec!["taken"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_is_followed_and_stays() {
        let s = Scratch::new("link");
        let target = s.path().join("target.txt");
        let link = s.path().join("link.txt");
        fs::write(&target, b"old").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomically(&link, b"new").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        // A link to a file that does not exist yet creates that file.
        let dangling = s.path().join("dangling.txt");
        std::os::unix::fs::symlink(s.path().join("later.txt"), &dangling).unwrap();
        write_atomically(&dangling, b"made").unwrap();
        assert_eq!(fs::read(s.path().join("later.txt")).unwrap(), b"made");
        assert!(fs::symlink_metadata(&dangling)
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
