//! A run's checkpoint: the trainer's [`Checkpoint`] with the run's bookkeeping in two metadata
//! entries, [`TRAIN_LOG_KEY`] (the metrics sums since the last line, [`LogAccumulator`]) and
//! [`RUN_KEY`] (the run's config.json, [`RunConfig`]).

use crate::linalg::float::Float;
use crate::run::config::RunConfig;
use crate::run::metrics_log::LogAccumulator;
use crate::train::checkpoint::{Checkpoint, CheckpointError};
use crate::train::Trainer;
use std::path::Path;

/// The metadata entry of the metrics sums.
pub const TRAIN_LOG_KEY: &str = "train_log";
/// The metadata entry of the run config.
pub const RUN_KEY: &str = "run";

/// Writes the checkpoint of `trainer` with the sums `accumulator` and the config `run` to `path`,
/// atomically.
pub fn write_run_checkpoint<T: Float>(
    path: &Path,
    trainer: &Trainer<T>,
    accumulator: &LogAccumulator,
    run: &RunConfig,
) -> Result<(), CheckpointError> {
    let mut ck = Checkpoint::from_trainer(trainer);
    ck.extra.insert(
        TRAIN_LOG_KEY.into(),
        serde_json::to_string(accumulator).expect("the sums serialise"),
    );
    ck.extra.insert(
        RUN_KEY.into(),
        serde_json::to_string(run).expect("a run config serialises"),
    );
    ck.write(path)
}

/// The metrics sums stored in `ck`, read from `path` (zero sums when it stores none), refused
/// when no run can have them at the checkpoint's step.
pub fn train_log(ck: &Checkpoint, path: &Path) -> Result<LogAccumulator, CheckpointError> {
    let bad = |reason: String| CheckpointError::BadMetadata {
        path: path.to_path_buf(),
        key: TRAIN_LOG_KEY.into(),
        reason,
    };
    let accumulator: LogAccumulator = match ck.extra.get(TRAIN_LOG_KEY) {
        Some(text) => serde_json::from_str(text).map_err(|e| bad(e.to_string()))?,
        None => LogAccumulator::default(),
    };
    accumulator.check(ck.step).map_err(bad)?;
    Ok(accumulator)
}
