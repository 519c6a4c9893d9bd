//! One process owns a run folder: an OS file lock (`File::try_lock`: exclusive, non-blocking;
//! `flock(2)` on Unix, `LockFileEx` on Windows) on the folder's lock file [`LOCK_FILE`], held from
//! before the first write until the process ends. The file holds the owner's process id, for the
//! message a second process gets.
//!
//! A fresh run takes the lock inside its staging folder before writing anything there; the rename
//! that publishes the staging folder carries the lock file (and the lock on it) along. A resume
//! takes the lock before reading the run. So `train --out X` twice, or `train --resume X` while X is
//! trained, leaves exactly one process working in X; the others exit 2 with `run folder X is in
//! use by process N`. The OS drops the lock when its process ends, however it ends, so a killed
//! run never leaves a stale lock behind.

use std::fs::{File, FileTimes, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file of a run folder (and of a staging folder).
pub const LOCK_FILE: &str = ".lock";

/// A held run-folder lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    /// Where the lock file is now (it moves when its staging folder is renamed).
    path: PathBuf,
    /// The file's contents before this process wrote its id; None when this process created it.
    previous: Option<Vec<u8>>,
    /// The access and modification times to restore on [`RunLock::release_unchanged`]: the lock
    /// file's when it existed, else its folder's (which creating and removing it changes).
    times: Option<FileTimes>,
}

/// The access and modification times of `meta`, to be set back later.
fn times_of(meta: &std::fs::Metadata) -> Option<FileTimes> {
    Some(
        FileTimes::new()
            .set_accessed(meta.accessed().ok()?)
            .set_modified(meta.modified().ok()?),
    )
}

/// Why the lock of `folder` could not be taken; one line naming the folder.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds it: its id, when the lock file tells it.
    #[error("run folder {} is in use by {}", folder.display(), holder_name(*pid))]
    InUse { folder: PathBuf, pid: Option<u32> },
    /// The lock file could not be created, opened or locked.
    #[error("cannot lock the run folder {} ({}): {source}", folder.display(), folder.join(LOCK_FILE).display())]
    Io { folder: PathBuf, source: io::Error },
}

/// "process N", or "another process" when the lock file does not tell.
fn holder_name(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("process {pid}"),
        None => "another process".into(),
    }
}

/// Whether the exclusive lock of `file` could be taken now.
enum TryLock {
    Taken,
    HeldElsewhere,
    Failed(io::Error),
}

/// Takes the exclusive lock of `file` without waiting (released when every descriptor of this
/// open file is closed, or the process ends).
fn try_lock(file: &File) -> TryLock {
    match file.try_lock() {
        Ok(()) => TryLock::Taken,
        Err(std::fs::TryLockError::WouldBlock) => TryLock::HeldElsewhere,
        Err(std::fs::TryLockError::Error(e)) => TryLock::Failed(e),
    }
}

/// The holder's process id from the lock file. The holder writes it just after taking the lock,
/// so a reader that comes in between finds no id (a new lock file) or the previous holder's, whose
/// process has ended: the id is read again (for at most half a second) until it names a live
/// process.
fn read_pid(file: &mut File) -> Option<u32> {
    for _ in 0..50 {
        let mut text = String::new();
        let read = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_string(&mut text));
        if let (Ok(_), Ok(pid)) = (read, text.trim().parse()) {
            if process_alive(pid) {
                return Some(pid);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    None
}

/// The lock file's contents for process `pid`: the id padded to a fixed width, so that writing it
/// over an earlier holder's never leaves a moment with no id or a mix of two.
fn pid_contents(pid: u32) -> String {
    format!("{pid:<20}\n")
}

impl RunLock {
    /// Takes the lock of `folder` (an existing folder), creating its lock file when missing, and
    /// writes this process's id into it.
    pub fn acquire(folder: &Path) -> Result<RunLock, LockError> {
        let failed = |source: io::Error| LockError::Io {
            folder: folder.to_path_buf(),
            source,
        };
        let path = folder.join(LOCK_FILE);
        let existed = path.exists();
        let times = if existed {
            std::fs::metadata(&path)
        } else {
            std::fs::metadata(folder)
        }
        .ok()
        .and_then(|m| times_of(&m));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(failed)?;
        match try_lock(&file) {
            TryLock::Taken => {}
            TryLock::HeldElsewhere => {
                return Err(LockError::InUse {
                    folder: folder.to_path_buf(),
                    pid: read_pid(&mut file),
                })
            }
            TryLock::Failed(e) => return Err(failed(e)),
        }
        let previous = if existed {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).map_err(failed)?;
            Some(bytes)
        } else {
            None
        };
        let mut lock = RunLock {
            file,
            path,
            previous,
            times,
        };
        lock.write_contents(pid_contents(std::process::id()).as_bytes())
            .map_err(failed)?;
        Ok(lock)
    }

    /// Writes `bytes` over the file's contents: written first, then cut to length, so that a
    /// reader sees the old or the new contents (of the fixed-width ids) but never an empty file.
    fn write_contents(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(bytes)?;
        self.file.set_len(bytes.len() as u64)?;
        self.file.flush()
    }

    /// The lock file went with its folder to `folder` (the staging folder was renamed).
    pub fn moved_to(&mut self, folder: &Path) {
        self.path = folder.join(LOCK_FILE);
    }

    /// Releases the lock leaving the lock file as it was before [`RunLock::acquire`] (a refused
    /// resume changes nothing on disk): the previous contents written back with the previous
    /// access and modification times, or the file removed when this process created it and the
    /// folder's times set back.
    pub fn release_unchanged(mut self) {
        match self.previous.take() {
            Some(bytes) => {
                let _ = self.write_contents(&bytes);
                if let Some(times) = self.times {
                    let _ = self.file.set_times(times);
                }
            }
            None => {
                let _ = std::fs::remove_file(&self.path);
                let folder = self.path.parent().unwrap_or(Path::new("."));
                if let (Some(times), Ok(dir)) = (self.times, File::open(folder)) {
                    let _ = dir.set_times(times);
                }
            }
        }
    }
}

/// Whether a live process holds the lock of `folder`: `Some(pid)` (the id when known), `None` when
/// the folder has no lock file or nobody holds it.
pub fn holder(folder: &Path) -> Option<Option<u32>> {
    let mut file = File::open(folder.join(LOCK_FILE)).ok()?;
    match try_lock(&file) {
        TryLock::Taken | TryLock::Failed(_) => None,
        TryLock::HeldElsewhere => Some(read_pid(&mut file)),
    }
}

/// Whether the process `pid` exists (on Unix; elsewhere assumed to, which only keeps a stale
/// staging folder longer).
pub fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only asks whether the process exists; nothing is sent.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}
