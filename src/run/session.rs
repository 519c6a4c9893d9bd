//! A training session: the steps from the run's checkpoint (or step 0) to its last step, with a
//! metrics line every `log_every` steps, an evaluation every `eval_every` steps and a checkpoint
//! every `checkpoint_every` steps, and the checkpoint at the end.
//!
//! Lines, evaluations and checkpoints fall on a fixed grid of steps, not on the ends of sessions,
//! so that a run stopped at any step and resumed writes the same metrics and the same checkpoint
//! bytes as one that was not. The caller sees progress through an [`Observer`] and stops the
//! session with a flag ([`Session::run`]); the session knows nothing of signals or terminals.

use crate::flow::model::Heads;
use crate::linalg::float::Float;
use crate::run::checkpoint::write_run_checkpoint;
use crate::run::divergence::{DivergenceGuard, Verdict};
use crate::run::evaluation::{sampling_weights, Evaluation};
use crate::run::folder::{CHECKPOINT_FILE, METRICS_FILE};
use crate::run::metrics_log::{LogAccumulator, MetricsFile, MetricsFileError, MetricsLine};
use crate::run::plan::RunPlan;
use crate::train::checkpoint::CheckpointError;
use crate::train::{NonFiniteStep, Trainer};
use ndarray::Array2;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A run that skips non-finite steps still stops after this many in a row.
pub const MAX_CONSECUTIVE_SKIPS: u64 = 100;

/// What a session reports as it goes (the command-line tool draws its progress from it). Every
/// method does nothing by default.
pub trait Observer {
    /// Step `step` was taken.
    fn stepped(&mut self, _step: u64) {}
    /// A metrics line of this session's steps was written.
    fn logged(&mut self, _line: &MetricsLine) {}
    /// A step was skipped: its loss or gradient was not finite (the run skips such steps).
    fn skipped(&mut self, _error: &NonFiniteStep) {}
}

/// An observer that wants nothing.
impl Observer for () {}

/// What the session was doing when a stop request ended it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoppedIn {
    /// Between two steps.
    Steps,
    /// The evaluation of a metrics line, abandoned; the checkpoint marks the line as pending, and
    /// the resumed run writes it first.
    Evaluation,
}

/// How a session ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    /// The run reached its last step; the checkpoint is written.
    Finished {
        /// Steps taken in this session.
        steps: u64,
        /// Seconds from the first step to the final checkpoint.
        elapsed: f64,
    },
    /// A stop request ended the session; the checkpoint is written.
    Stopped(StoppedIn),
}

/// Why a session failed; one line naming the file or the step.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Metrics(#[from] MetricsFileError),
    /// A non-finite step in a run that does not skip them.
    #[error("{error}; training stopped. The last good checkpoint (step {last_checkpoint}) is {}", checkpoint.display())]
    NonFinite {
        error: NonFiniteStep,
        last_checkpoint: u64,
        checkpoint: PathBuf,
    },
    /// The loss exploded while staying finite ([`crate::run::divergence`]).
    #[error("step {step}: the loss diverged (mean |delta|^2 {mse:.3e} in the last metrics line; {windows} lines in a row above {factor}x the run's median {median:.3e}); training stopped. The last good checkpoint (step {last_checkpoint}) is {}", checkpoint.display())]
    Diverged {
        step: u64,
        mse: f64,
        median: f64,
        windows: u32,
        factor: f64,
        last_checkpoint: u64,
        checkpoint: PathBuf,
    },
    #[error("{count} non-finite steps in a row (the last: {error}); training stopped. The last good checkpoint (step {last_checkpoint}) is {}", checkpoint.display())]
    TooManyNonFinite {
        count: u64,
        error: NonFiniteStep,
        last_checkpoint: u64,
        checkpoint: PathBuf,
    },
}

/// A run's training in its (published) run folder.
pub struct Session<'a, T: Float> {
    plan: &'a RunPlan,
    trainer: Trainer<T>,
    accumulator: LogAccumulator,
    metrics: MetricsFile,
    evaluation: Evaluation,
    /// The step of the last checkpoint written.
    last_checkpoint: u64,
    divergence: DivergenceGuard,
}

impl<'a, T: Float> Session<'a, T> {
    /// The session of `plan` with `trainer` (at the plan's checkpoint, or step 0), evaluating
    /// against `held_out`; metrics.jsonl is opened to append to.
    pub fn new(
        plan: &'a RunPlan,
        trainer: Trainer<T>,
        held_out: Array2<f64>,
        held_out_labels: Vec<usize>,
    ) -> Result<Self, SessionError> {
        let metrics = MetricsFile::open_append(&plan.folder.join(METRICS_FILE))?;
        let evaluation = Evaluation::new(
            held_out,
            held_out_labels,
            plan.run.units(),
            plan.run.eval_samples,
            trainer.sampler.data.nrows(),
            plan.config.model.dim,
            plan.config.seed,
        );
        // The errors of the lines a resume keeps: the guard decides as in an uninterrupted run.
        let divergence = DivergenceGuard::with_history(
            plan.kept_metrics
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|line| line.get("mse")?.as_f64()),
        );
        Ok(Session {
            plan,
            divergence,
            last_checkpoint: trainer.step_count(),
            trainer,
            accumulator: plan.accumulator.clone(),
            metrics,
            evaluation,
        })
    }

    pub fn trainer(&self) -> &Trainer<T> {
        &self.trainer
    }

    pub fn evaluation(&self) -> &Evaluation {
        &self.evaluation
    }

    /// The run's checkpoint file.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.plan.folder.join(CHECKPOINT_FILE)
    }

    fn write_checkpoint(&mut self) -> Result<(), CheckpointError> {
        write_run_checkpoint(
            &self.checkpoint_path(),
            &self.trainer,
            &self.accumulator,
            &self.plan.run,
        )?;
        self.last_checkpoint = self.trainer.step_count();
        Ok(())
    }

    /// Trains to the run's last step. `stop` asks the session to stop: it finishes the step it is
    /// taking (an evaluation in progress is abandoned within
    /// [`STOP_POLL`](crate::run::evaluation::STOP_POLL)) and writes the checkpoint.
    pub fn run(
        &mut self,
        observer: &mut impl Observer,
        stop: &AtomicBool,
    ) -> Result<Outcome, SessionError> {
        let plan = self.plan;
        let run = &plan.run;
        let total = run.steps;
        let can_eval = self.evaluation.possible();
        let start_step = self.trainer.step_count();
        if self.accumulator.pending_line {
            // A stop request ended the previous session during the evaluation of this step's line.
            let evaluate = can_eval && start_step.checked_rem(run.eval_every) == Some(0);
            self.accumulator.pending_line = false;
            let Some(line) = self.log_line(start_step, evaluate, 0.0, stop)? else {
                return Ok(Outcome::Stopped(StoppedIn::Evaluation));
            };
            // Judged as the uninterrupted run judged it.
            self.judge(&line)?;
            // The checkpoint on disk still says the line is pending.
            self.write_checkpoint()?;
        }
        let session_start = Instant::now();
        let mut interval_start = Instant::now();
        let mut interval_steps = 0u64;
        let mut consecutive_skips = 0u64;

        loop {
            if stop.load(Ordering::SeqCst) {
                // (A checkpoint of this very step is already there when the stop came before the
                // first step: writing a large model's again would only delay the exit.)
                if self.last_checkpoint != self.trainer.step_count() {
                    self.write_checkpoint()?;
                }
                return Ok(Outcome::Stopped(StoppedIn::Steps));
            }
            if self.trainer.step_count() >= total {
                break;
            }
            match self.trainer.step() {
                Ok(stats) => {
                    consecutive_skips = 0;
                    self.accumulator.add(&stats);
                    interval_steps += 1;
                    let step = stats.step;
                    observer.stepped(step);
                    let evaluate = can_eval && run.eval_every > 0 && step % run.eval_every == 0;
                    if step % run.log_every == 0 || evaluate {
                        let steps_per_s = interval_steps as f64
                            / interval_start.elapsed().as_secs_f64().max(1e-9);
                        let Some(line) = self.log_line(step, evaluate, steps_per_s, stop)? else {
                            return Ok(Outcome::Stopped(StoppedIn::Evaluation));
                        };
                        observer.logged(&line);
                        interval_start = Instant::now();
                        interval_steps = 0;
                        self.judge(&line)?;
                    }
                    // No periodic checkpoint while the loss climbs: the last one stays good.
                    if run.checkpoint_every > 0
                        && step % run.checkpoint_every == 0
                        && step < total
                        && !self.divergence.is_suspect()
                    {
                        self.write_checkpoint()?;
                    }
                }
                Err(error) => {
                    if !run.skip_nonfinite {
                        return Err(SessionError::NonFinite {
                            error,
                            last_checkpoint: self.last_checkpoint,
                            checkpoint: self.checkpoint_path(),
                        });
                    }
                    self.accumulator.skipped += 1;
                    consecutive_skips += 1;
                    observer.skipped(&error);
                    if consecutive_skips >= MAX_CONSECUTIVE_SKIPS {
                        return Err(SessionError::TooManyNonFinite {
                            count: consecutive_skips,
                            error,
                            last_checkpoint: self.last_checkpoint,
                            checkpoint: self.checkpoint_path(),
                        });
                    }
                }
            }
        }
        // The run's last step always has a line (a run shorter than log_every has one too): the
        // means since the last grid line, whose sums stay in the checkpoint, so that a resume with
        // more steps drops this line and continues the sums as an uninterrupted run would.
        if self.accumulator.steps > 0 {
            let steps_per_s =
                interval_steps as f64 / interval_start.elapsed().as_secs_f64().max(1e-9);
            let line = self.accumulator.peek_line(
                total,
                self.has_v(),
                plan.config.adam.lr_at(total),
                steps_per_s,
                None,
            );
            self.metrics.write_line(&line)?;
            observer.logged(&line);
        }
        self.write_checkpoint()?;
        Ok(Outcome::Finished {
            steps: self.trainer.step_count() - start_step,
            elapsed: session_start.elapsed().as_secs_f64(),
        })
    }

    /// Hands a metrics line to the divergence guard; the error when the run has diverged.
    fn judge(&mut self, line: &MetricsLine) -> Result<(), SessionError> {
        match self.divergence.observe(line.mse) {
            Verdict::Diverged { median } => Err(SessionError::Diverged {
                step: line.step,
                mse: line.mse,
                median,
                windows: crate::run::divergence::SUSPECT_WINDOWS,
                factor: crate::run::divergence::FACTOR,
                last_checkpoint: self.last_checkpoint,
                checkpoint: self.checkpoint_path(),
            }),
            Verdict::Fine | Verdict::Suspect => Ok(()),
        }
    }

    /// Whether the metrics lines have the v-head's loss.
    fn has_v(&self) -> bool {
        self.plan.config.model.heads == Heads::UV
    }

    /// The metrics line of `step` (with the sliced W1 when `evaluate`), written to metrics.jsonl.
    /// `None` when `stop` came during the evaluation: the checkpoint is written with the line
    /// marked pending (the resumed run writes it first), and the evaluation is abandoned.
    fn log_line(
        &mut self,
        step: u64,
        evaluate: bool,
        steps_per_s: f64,
        stop: &AtomicBool,
    ) -> Result<Option<MetricsLine>, SessionError> {
        let sw1 = if evaluate {
            let weights = sampling_weights(&self.trainer);
            let model = self.trainer.config.model;
            match self.evaluation.sw1_unless_stopped(model, weights, stop) {
                Some(sw1) => Some(sw1),
                None => {
                    let mut pending = self.accumulator.clone();
                    pending.pending_line = true;
                    write_run_checkpoint(
                        &self.checkpoint_path(),
                        &self.trainer,
                        &pending,
                        &self.plan.run,
                    )?;
                    return Ok(None);
                }
            }
        } else {
            None
        };
        let lr = self.plan.config.adam.lr_at(step);
        let line = self
            .accumulator
            .take_line(step, self.has_v(), lr, steps_per_s, sw1);
        self.metrics.write_line(&line)?;
        Ok(Some(line))
    }
}
