//! A run's checkpoint: the trainer's [`Checkpoint`] with the run's bookkeeping in two metadata
//! entries, [`TRAIN_LOG_KEY`] (the metrics sums since the last line, [`LogAccumulator`]) and
//! [`RUN_KEY`] (the run's config.json, [`RunConfig`]).

use crate::data::DataUnits;
use crate::linalg::float::Float;
use crate::run::config::{DatasetJson, RunConfig};
use crate::run::dataset::DIGITS_NAME;
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

/// The run config a run's checkpoint stores (None for a checkpoint written outside a run, or with
/// an entry that does not parse).
pub fn recorded_run(ck: &Checkpoint) -> Option<RunConfig> {
    serde_json::from_str(ck.extra.get(RUN_KEY)?).ok()
}

/// Whether the checkpoint's run trained on the built-in digits.
pub fn trained_on_digits(ck: &Checkpoint) -> bool {
    recorded_run(ck).is_some_and(
        |run| matches!(run.dataset, DatasetJson::Builtin { ref name } if name == DIGITS_NAME),
    )
}

/// The units the checkpoint's model works in, against its data's: those its run recorded
/// ([`RunConfig::units`]), the data's own for a checkpoint written outside a run.
pub fn model_units(ck: &Checkpoint) -> DataUnits {
    recorded_run(ck).map_or_else(
        || DataUnits::identity(ck.config.model.dim),
        |run| run.units(),
    )
}
