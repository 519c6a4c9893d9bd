//! A run folder on disk: its files ([`RUN_FILES`] and the lock file), how a fresh one is staged
//! under a hidden name and published complete ([`StagedFolder`]), and the tidying of what a killed
//! process left behind (stale staging folders, temporary files).
//!
//! Layout: `config.json` (every setting, [`RunConfig`]), `metrics.jsonl` (one line per logged
//! step, [`metrics_log`](crate::run::metrics_log)), `checkpoint.safetensors`
//! ([`checkpoint`](crate::train::checkpoint), with the run's bookkeeping, see
//! [`checkpoint`](crate::run::checkpoint)), and at the end `samples.png` and `loss.png`;
//! `.lock` holds the lock of the process that owns the folder ([`super::lock`]).

use crate::io::atomic::{temporary_name, temporary_prefix, write_atomically};
use crate::io::target::missing_folder_before_parent_dir;
use crate::run::config::RunConfig;
use crate::run::lock::{self, LockError, RunLock, LOCK_FILE};
use std::fmt::Display;
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "config.json";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const SAMPLES_PNG: &str = "samples.png";
pub const LOSS_PNG: &str = "loss.png";

/// The files a run folder holds (besides its lock file [`LOCK_FILE`]).
pub const RUN_FILES: [&str; 5] = [
    CONFIG_FILE,
    METRICS_FILE,
    CHECKPOINT_FILE,
    SAMPLES_PNG,
    LOSS_PNG,
];

/// Why a run folder could not be created, published or written; one line naming the folder.
#[derive(Debug, thiserror::Error)]
pub enum RunFolderError {
    #[error("cannot create the run folder {}: {reason}", folder.display())]
    Create { folder: PathBuf, reason: String },
    /// Another process owns the folder.
    #[error(transparent)]
    InUse(LockError),
    /// The folder has files of its own.
    #[error("the folder {} exists and is not empty", folder.display())]
    NotEmpty { folder: PathBuf },
    #[error("{} exists and is not a folder", folder.display())]
    NotAFolder { folder: PathBuf },
    /// A file of a resumed run's folder could not be written.
    #[error("{}: cannot write the file: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The UTC time now as `YYYYmmdd-HHMMSS`, for default folder names (of runs and studies).
pub fn utc_timestamp() -> String {
    let format = time::macros::format_description!("[year][month][day]-[hour][minute][second]");
    time::OffsetDateTime::now_utc()
        .format(&format)
        .expect("a date formats with numbers only")
}

/// `folder`, or the first of `folder-2`, `folder-3`, ... that does not exist.
pub fn next_free_folder(folder: &Path) -> PathBuf {
    let mut candidate = folder.to_path_buf();
    let mut k = 2;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{}-{k}", folder.display()));
        k += 1;
    }
    candidate
}

/// The default folder of a run of the data `label` with the loss `preset`:
/// `runs/<label>-<preset>-<UTC time>`, or the next free name after it.
pub fn default_folder(label: &str, preset: &str) -> PathBuf {
    // The label is cut so that the name stays a valid file name (a long file name or
    // gaussian:SIGMA with many digits).
    let label: String = label
        .replace([':', ' ', '/'], "_")
        .chars()
        .take(100)
        .collect();
    let base = format!("{label}-{preset}-{}", utc_timestamp());
    next_free_folder(&Path::new("runs").join(base))
}

/// Checks that a fresh run can go into `folder`: it does not exist, or it is an empty folder; a
/// path through a missing folder (`x/../run`) is refused.
pub fn check_fresh_target(folder: &Path) -> Result<(), RunFolderError> {
    if let Some(e) = missing_folder_before_parent_dir(folder) {
        return Err(RunFolderError::Create {
            folder: folder.to_path_buf(),
            reason: e.to_string(),
        });
    }
    let non_empty = folder.is_dir()
        && std::fs::read_dir(folder)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true);
    if non_empty {
        if let Some(pid) = lock::holder(folder) {
            return Err(RunFolderError::InUse(LockError::InUse {
                folder: folder.to_path_buf(),
                pid,
            }));
        }
        return Err(RunFolderError::NotEmpty {
            folder: folder.to_path_buf(),
        });
    }
    if folder.exists() && !folder.is_dir() {
        return Err(RunFolderError::NotAFolder {
            folder: folder.to_path_buf(),
        });
    }
    // The checks every output folder gets (a link loop, a name over NAME_MAX, a read-only parent),
    // with their messages rather than the OS's at creation.
    crate::io::target::check_output_folder(folder).map_err(|e| RunFolderError::Create {
        folder: folder.to_path_buf(),
        reason: e.to_string(),
    })
}

/// A file of a run folder that could not be written.
#[derive(Debug)]
pub struct RunFileError {
    pub file: &'static str,
    pub source: std::io::Error,
}

/// Writes config.json (`run`) and metrics.jsonl (`metrics_lines`, the lines a resumed run keeps)
/// into `folder`, atomically.
pub fn write_config_and_metrics(
    folder: &Path,
    run: &RunConfig,
    metrics_lines: &[String],
) -> Result<(), RunFileError> {
    let mut config = serde_json::to_string_pretty(run).expect("a run config serialises");
    config.push('\n');
    write_atomically(&folder.join(CONFIG_FILE), config.as_bytes()).map_err(|source| {
        RunFileError {
            file: CONFIG_FILE,
            source,
        }
    })?;
    let mut text = metrics_lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    write_atomically(&folder.join(METRICS_FILE), text.as_bytes()).map_err(|source| RunFileError {
        file: METRICS_FILE,
        source,
    })
}

/// A fresh run folder being prepared under a hidden sibling name (`.NAME.tmpPID`, see
/// [`temporary_name`]), locked. It is renamed into place ([`StagedFolder::publish`]) once its lock
/// file, config.json, metrics.jsonl and the step-0 checkpoint are in it, so the run folder appears
/// complete or not at all, whenever the process is killed.
#[derive(Debug)]
pub struct StagedFolder {
    path: PathBuf,
    lock: RunLock,
}

/// Why a staging folder could not become the run folder.
enum PublishError {
    /// Another process owns the run folder.
    InUse(Option<u32>),
    /// The run folder has files of its own.
    NotEmpty,
    Io(std::io::Error),
}

impl StagedFolder {
    /// Creates, locks and fills the staging folder of the run folder `folder` (config.json from
    /// `run`, an empty metrics.jsonl), after removing stale staging folders of the same name.
    /// Errors name the run folder (the staging folder is gone by then).
    pub fn create(folder: &Path, run: &RunConfig) -> Result<StagedFolder, RunFolderError> {
        let cannot = |e: &dyn Display| RunFolderError::Create {
            folder: folder.to_path_buf(),
            reason: e.to_string(),
        };
        let target = if folder.exists() {
            std::fs::canonicalize(folder).map_err(|e| cannot(&e))?
        } else {
            folder.to_path_buf()
        };
        let name = target
            .file_name()
            .ok_or_else(|| cannot(&"not a folder name"))?
            .to_string_lossy()
            .into_owned();
        let parent = parent_of(&target);
        create_folders(parent).map_err(|reason| cannot(&reason))?;
        let staging = parent.join(temporary_name(&name, std::process::id()));
        remove_stale_staging(parent, &name);
        std::fs::create_dir(&staging).map_err(|e| cannot(&e))?;
        let lock = match RunLock::acquire(&staging) {
            Ok(lock) => lock,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(cannot(&e));
            }
        };
        if let Err(RunFileError { file, source }) = write_config_and_metrics(&staging, run, &[]) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(cannot(&format!("{file}: {source}")));
        }
        Ok(StagedFolder {
            path: staging,
            lock,
        })
    }

    /// The staging folder, for the files still to be written before publishing.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the staging folder (a run that could not start).
    pub fn discard(self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }

    /// Renames the complete staging folder to `folder` and returns the run folder's lock. When
    /// another run takes `folder` first and `take_next_free_name` is set (the folder is a default
    /// name, not one the user chose), the next free name is taken instead and `folder` becomes it.
    /// On failure the staging folder is removed.
    pub fn publish(
        mut self,
        folder: &mut PathBuf,
        take_next_free_name: bool,
    ) -> Result<RunLock, RunFolderError> {
        let mut published = self.publish_to(folder);
        while matches!(
            published,
            Err(PublishError::InUse(_) | PublishError::NotEmpty)
        ) && take_next_free_name
        {
            // Another run started in the same second under the same default name.
            *folder = next_free_folder(folder);
            published = self.publish_to(folder);
        }
        let error = match published {
            Ok(()) => return Ok(self.lock),
            Err(PublishError::InUse(pid)) => RunFolderError::InUse(LockError::InUse {
                folder: folder.clone(),
                pid,
            }),
            Err(PublishError::NotEmpty) => RunFolderError::NotEmpty {
                folder: folder.clone(),
            },
            Err(PublishError::Io(e)) => RunFolderError::Create {
                folder: folder.clone(),
                reason: e.to_string(),
            },
        };
        self.discard();
        Err(error)
    }

    /// One try of [`StagedFolder::publish`]: the rename replaces the empty folder `--out` may
    /// name, and the lock file goes along, the lock following it. Where an existing folder cannot
    /// be replaced (a mount point), its own lock is taken and the files are moved into it.
    fn publish_to(&mut self, folder: &Path) -> Result<(), PublishError> {
        let staging = &self.path;
        match std::fs::rename(staging, folder) {
            Ok(()) => self.lock.moved_to(folder),
            Err(e) if !folder.is_dir() => return Err(PublishError::Io(e)),
            Err(_) => {
                // Another run got there first (it renamed its staging folder into place), or the
                // folder cannot be replaced.
                if let Some(pid) = lock::holder(folder) {
                    return Err(PublishError::InUse(pid));
                }
                let folder_lock = RunLock::acquire(folder).map_err(|e| match e {
                    LockError::InUse { pid, .. } => PublishError::InUse(pid),
                    LockError::Io { source, .. } => PublishError::Io(source),
                })?;
                let empty = std::fs::read_dir(folder)
                    .map_err(PublishError::Io)?
                    .flatten()
                    .all(|f| f.file_name() == LOCK_FILE);
                if !empty {
                    folder_lock.release_unchanged();
                    return Err(PublishError::NotEmpty);
                }
                for name in [METRICS_FILE, CONFIG_FILE, CHECKPOINT_FILE] {
                    std::fs::rename(staging.join(name), folder.join(name))
                        .map_err(PublishError::Io)?;
                }
                std::fs::remove_dir_all(staging).map_err(PublishError::Io)?;
                self.lock = folder_lock;
            }
        }
        if let Ok(d) = std::fs::File::open(parent_of(folder)) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// "F is not a folder", F the nearest of `path` and its ancestors that exists, when it is a
/// file: what keeps `path` from being a folder, which `create_dir_all` reports only as "File
/// exists" (e.g. a run folder under a file).
pub fn file_in_the_way(path: &Path) -> Option<String> {
    path.ancestors()
        .find(|a| a.exists())
        .filter(|a| !a.is_dir())
        .map(|file| format!("{} is not a folder", file.display()))
}

/// Creates the folder `path` and its missing ancestors; the error says why, naming the file in
/// the way where there is one. A path that names a missing folder before a `..` (`x/../run`) is
/// refused as that folder missing, rather than creating it on the way
/// ([`missing_folder_before_parent_dir`]).
pub fn create_folders(path: &Path) -> Result<(), String> {
    if let Some(e) = missing_folder_before_parent_dir(path) {
        return Err(e.to_string());
    }
    std::fs::create_dir_all(path)
        .map_err(|e| file_in_the_way(path).unwrap_or_else(|| e.to_string()))
}

/// Whether `folder` is a run folder: it has a lock file, or a config.json and a checkpoint.
pub fn is_run_folder(folder: &Path) -> bool {
    folder.join(LOCK_FILE).is_file()
        || (folder.join(CONFIG_FILE).is_file() && folder.join(CHECKPOINT_FILE).is_file())
}

/// When `path` (a symbolic link followed) is one of the files that hold a run folder's state
/// (config.json, metrics.jsonl, checkpoint.safetensors, `.lock`) in a run folder: the file's name
/// and the folder. No other command's output may replace one.
pub fn run_state_file(path: &Path) -> Option<(&'static str, PathBuf)> {
    let resolved = crate::io::atomic::follow_symlinks(path);
    let name = resolved.file_name()?;
    let file = [CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE, LOCK_FILE]
        .into_iter()
        .find(|f| name == *f)?;
    let folder = parent_of(&resolved);
    is_run_folder(folder).then(|| (file, folder.to_path_buf()))
}

/// The folder `path` is in (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The digits after `prefix` when `name` is `prefix` followed by digits only (a process id).
fn digits_after<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    name.strip_prefix(prefix)
        .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes the staging folders of runs into the folder `name` of `parent` whose process died
/// during its setup: a staging folder goes only when no process holds its lock, the process named
/// in its name is gone, and it holds nothing but run files.
fn remove_stale_staging(parent: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let prefix = temporary_prefix(name);
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = digits_after(&entry_name, &prefix).and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        // The pid test covers a staging folder made but not yet locked.
        if lock::holder(&entry.path()).is_some() || lock::process_alive(pid) {
            continue;
        }
        let only_run_files = std::fs::read_dir(entry.path()).is_ok_and(|files| {
            files.flatten().all(|f| {
                let f = f.file_name().to_string_lossy().into_owned();
                RUN_FILES.contains(&f.as_str()) || f == LOCK_FILE || is_temporary_of_run_file(&f)
            })
        });
        if only_run_files {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `.FILE.tmpPID` for one of [`RUN_FILES`]: a temporary file of `write_atomically`.
fn is_temporary_of_run_file(name: &str) -> bool {
    RUN_FILES
        .iter()
        .any(|f| digits_after(name, &temporary_prefix(f)).is_some())
}

/// Removes the temporary files (`.NAME.tmpPID`) that a killed process may have left in a run
/// folder while writing one of its files. Nothing reads them; this only tidies up.
pub fn remove_stale_temporaries(folder: &Path) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_temporary_of_run_file(&name) && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Removes this process's temporary files of the pictures in `folder`: a picture abandoned while
/// being written.
pub fn remove_picture_temporaries(folder: &Path) {
    for picture in [SAMPLES_PNG, LOSS_PNG] {
        let temporary = temporary_name(picture, std::process::id());
        let _ = std::fs::remove_file(folder.join(temporary));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_shape() {
        let t = utc_timestamp();
        assert_eq!(t.len(), 15, "{t}");
        assert!(t.starts_with("20"), "{t}");
        assert_eq!(t.as_bytes()[8], b'-', "{t}");
    }

    #[test]
    fn temporaries_of_run_files() {
        assert!(is_temporary_of_run_file(&temporary_name(CONFIG_FILE, 42)));
        assert!(!is_temporary_of_run_file(&temporary_prefix(CONFIG_FILE)));
        assert!(!is_temporary_of_run_file(".notes.txt.tmp42"));
    }
}
