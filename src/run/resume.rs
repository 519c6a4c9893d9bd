//! Reading a run folder to continue its run: config.json, then the checkpoint and its bookkeeping,
//! each checked against the other, so that a resumed run continues bit for bit or is refused
//! before anything is written. The caller holds the folder's lock
//! ([`RunLock`](crate::run::lock::RunLock)) while it reads, so no live run rewrites these
//! files meanwhile.

use crate::io::limits::{read_limited, InputKind};
use crate::run::checkpoint::train_log;
use crate::run::config::{RunConfig, RunConfigError};
use crate::run::folder::{CHECKPOINT_FILE, CONFIG_FILE};
use crate::run::metrics_log::LogAccumulator;
use crate::train::checkpoint::{Checkpoint, CheckpointError};
use crate::train::TrainConfig;
use std::path::{Path, PathBuf};

/// Why a run folder cannot be resumed; one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("{}: cannot read the run config: not a file (is {} a run folder?)", config.display(), folder.display())]
    NotARunFolder { config: PathBuf, folder: PathBuf },
    #[error("{}: cannot read the run config: {source}", config.display())]
    ReadConfig {
        config: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", config.display())]
    BadConfig {
        config: PathBuf,
        source: RunConfigError,
    },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{}: the checkpoint has no Adam moments (adam.m.*, adam.v.*): it cannot resume training", checkpoint.display())]
    NoOptimizerState { checkpoint: PathBuf },
    #[error("{} does not match {} (a different run's checkpoint?)", checkpoint.display(), config.display())]
    OtherRun {
        checkpoint: PathBuf,
        config: PathBuf,
    },
    #[error("{}: metadata 'step' is {step}, beyond the run's {steps} steps ({})", checkpoint.display(), config.display())]
    StepBeyondRun {
        checkpoint: PathBuf,
        step: u64,
        steps: u64,
        config: PathBuf,
    },
}

/// Checks that `folder` has a config.json to resume from (before its lock is taken, so that a
/// folder that is no run is not given a lock file).
pub fn check_run_folder(folder: &Path) -> Result<(), ResumeError> {
    let config = folder.join(CONFIG_FILE);
    if !config.is_file() {
        return Err(ResumeError::NotARunFolder {
            config,
            folder: folder.to_path_buf(),
        });
    }
    Ok(())
}

/// The run config of `folder` and its validated training config.
pub fn read_run_config(folder: &Path) -> Result<(RunConfig, TrainConfig), ResumeError> {
    let config = folder.join(CONFIG_FILE);
    let read_error = |source| ResumeError::ReadConfig {
        config: config.clone(),
        source,
    };
    let bytes = read_limited(&config, InputKind::RunConfig).map_err(|e| read_error(e.into_io()))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| read_error(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    RunConfig::parse(&text).map_err(|source| ResumeError::BadConfig { config, source })
}

/// The checkpoint of `folder` and the metrics sums stored in it, checked against the run's
/// config.json (`run`, `config`): the same training config and precision, Adam moments to
/// continue with, and a step within the run's steps.
pub fn read_checkpoint(
    folder: &Path,
    run: &RunConfig,
    config: &TrainConfig,
) -> Result<(Checkpoint, LogAccumulator), ResumeError> {
    let path = folder.join(CHECKPOINT_FILE);
    let ck = Checkpoint::read(&path)?;
    if ck.adam.is_none() {
        return Err(ResumeError::NoOptimizerState { checkpoint: path });
    }
    let accumulator = train_log(&ck, &path)?;
    if ck.config != *config || ck.precision != run.precision {
        return Err(ResumeError::OtherRun {
            checkpoint: path,
            config: folder.join(CONFIG_FILE),
        });
    }
    if ck.step > run.steps {
        return Err(ResumeError::StepBeyondRun {
            checkpoint: path,
            step: ck.step,
            steps: run.steps,
            config: folder.join(CONFIG_FILE),
        });
    }
    Ok((ck, accumulator))
}
