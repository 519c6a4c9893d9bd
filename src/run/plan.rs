//! A training run decided before anything is written ([`RunPlan`]), and its start on disk: a fresh
//! run's folder staged and published with its step-0 checkpoint, a resumed run's folder rewritten
//! in place (config.json and the metrics lines it keeps).

use crate::io::tensor_file::TensorFileError;
use crate::linalg::float::Float;
use crate::run::checkpoint::write_run_checkpoint;
use crate::run::config::RunConfig;
use crate::run::dataset::{DataSource, DataSplit};
use crate::run::folder::{
    remove_stale_temporaries, write_config_and_metrics, RunFileError, RunFolderError, StagedFolder,
    CHECKPOINT_FILE,
};
use crate::run::lock::RunLock;
use crate::run::metrics_log::LogAccumulator;
use crate::train::checkpoint::{Checkpoint, CheckpointError};
use crate::train::{TrainConfig, Trainer, TrainingData};
use std::path::PathBuf;

/// Everything a run is, decided before anything is written.
pub struct RunPlan {
    /// config.json.
    pub run: RunConfig,
    pub config: TrainConfig,
    pub source: DataSource,
    pub folder: PathBuf,
    /// The checkpoint a resumed run continues from; `None` for a fresh run.
    pub resume: Option<Checkpoint>,
    /// metrics.jsonl lines to keep (resume: those up to the checkpoint's step).
    pub kept_metrics: Vec<String>,
    /// The metrics sums since the last line (resume: from the checkpoint).
    pub accumulator: LogAccumulator,
    /// The run folder's lock (resume: taken before reading the run; fresh: taken in the staging
    /// folder by [`RunPlan::prepare_folder`]).
    pub lock: Option<RunLock>,
    /// The folder is a default name (`runs/<dataset>-<loss>-<time>`), not one the user chose: when
    /// another run takes that name first, this one takes the next free name instead.
    pub default_folder: bool,
}

impl RunPlan {
    /// The training pool and held-out points of the run, with their classes only when the model
    /// is class-conditional: an unconditional model of labelled data (`--unconditional`) never
    /// sees a label, in training, evaluation or pictures.
    pub fn split_data(&self) -> DataSplit {
        let mut split = DataSplit::new(&self.source, self.config.seed, self.run.eval_samples);
        if self.config.model.classes == 0 {
            split.pool_labels.clear();
            split.held_out_labels.clear();
        }
        split
    }

    /// Releases the lock taken for a resume that is refused, leaving the folder as it was.
    pub fn release_lock_unchanged(&mut self) {
        if let Some(lock) = self.lock.take() {
            lock.release_unchanged();
        }
    }

    /// Writes the run folder's first files. A fresh run's go into a staging folder, returned to be
    /// published by [`RunPlan::publish`] once the trainer exists; an error then has created
    /// nothing. A resumed run's config.json and kept metrics lines are rewritten in place, after
    /// removing temporary files a killed process left.
    pub fn prepare_folder(&mut self) -> Result<Option<StagedFolder>, RunFolderError> {
        if self.resume.is_none() {
            return StagedFolder::create(&self.folder, &self.run).map(Some);
        }
        remove_stale_temporaries(&self.folder);
        write_config_and_metrics(&self.folder, &self.run, &self.kept_metrics).map_err(
            |RunFileError { file, source }| RunFolderError::Write {
                path: self.folder.join(file),
                source,
            },
        )?;
        Ok(None)
    }

    /// The trainer of the run, drawing batches from the pool of `split` (mapped to the model's
    /// units, with its labels for a conditional model): in the checkpoint's state for a resumed
    /// run, freshly initialised from the seed otherwise.
    pub fn trainer<T: Float>(&self, split: &DataSplit) -> Result<Trainer<T>, CheckpointError> {
        let points = self.run.units().to_model(split.pool.view());
        let pool = TrainingData {
            points,
            labels: split.pool_labels.clone(),
        };
        match &self.resume {
            Some(ck) => ck.trainer::<T>(pool),
            None => Ok(Trainer::<T>::new(self.config, pool)),
        }
    }

    /// Writes the step-0 checkpoint of `trainer` into the staged folder of a fresh run and
    /// publishes it as the run folder (the next free name when the default one was taken
    /// meanwhile: `folder` follows), keeping its lock. On failure nothing is left on disk.
    pub fn publish<T: Float>(
        &mut self,
        staged: StagedFolder,
        trainer: &Trainer<T>,
    ) -> Result<(), RunFolderError> {
        let written = write_run_checkpoint(
            &staged.path().join(CHECKPOINT_FILE),
            trainer,
            &self.accumulator,
            &self.run,
        );
        if let Err(e) = written {
            let reason = match e {
                CheckpointError::File(TensorFileError::Write { source, .. }) => {
                    format!("{CHECKPOINT_FILE}: {source}")
                }
                e => e.to_string(),
            };
            staged.discard();
            return Err(RunFolderError::Create {
                folder: self.folder.clone(),
                reason,
            });
        }
        let lock = staged.publish(&mut self.folder, self.default_folder)?;
        self.lock = Some(lock);
        Ok(())
    }
}
