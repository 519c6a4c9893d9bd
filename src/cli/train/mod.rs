//! `meanflow train`: a training run in a run folder, resumable bit for bit.
//!
//! The flags become a [`RunPlan`] ([`fresh`], or [`resume`] for `--resume`); the library does the
//! rest ([`meanflow::run::session`] and the modules around it: the run folder's layout,
//! staging, lock, metrics, checkpoint and pictures). This module registers the stop signals
//! ([`crate::cli::stop_signal`]), draws the progress, prints the start line, the summary and how
//! to resume an interrupted run, and turns errors into exit codes.

mod args;
mod fresh;
mod resume;
mod settings;

pub use args::TrainArgs;

use super::common::{check_builtin_magnitude, format_duration};
use super::output::{errln, outln};
use super::progress::{Progress, Snapshot};
use super::stop_signal::{interruptible, StopSignal};
use super::{exit_code_for_signal, signal_name, CliError, CliResult};
use meanflow::flow::model::{MlpParams, ModelConfig};
use meanflow::linalg::float::Float;
use meanflow::linalg::matmul::set_matmul_threads;
use meanflow::run::dataset::{DataSource, DataSplit};
use meanflow::run::evaluation::{sampling_weights, Evaluation};
use meanflow::run::folder::{remove_picture_temporaries, RunFolderError, StagedFolder};
use meanflow::run::metrics_log::MetricsLine;
use meanflow::run::pictures::{image_grid, write_run_pictures};
use meanflow::run::plan::RunPlan;
use meanflow::run::session::{Observer, Outcome, Session, SessionError, StoppedIn};
use meanflow::train::checkpoint::Precision;
use meanflow::train::NonFiniteStep;
use ndarray::Array2;
use settings::{usage, FOR_A_RUN};

/// `meanflow train`.
pub fn run(args: TrainArgs) -> CliResult<i32> {
    // Installed first: until the run writes anything, a signal ends the process at once (there is
    // nothing to save); from the first write on it stops the run cleanly (see StopSignal).
    let stop = StopSignal::install();
    let mut plan = match &args.resume {
        Some(folder) => resume::resolve_resume(&args, folder)?,
        None => fresh::resolve_fresh(&args)?,
    };
    let split = match check_before_writing(&mut plan) {
        Ok(split) => split,
        Err(e) => {
            plan.release_lock_unchanged();
            return Err(e);
        }
    };

    // Everything is checked: now write.
    stop.stop_cleanly();
    let staged = plan.prepare_folder().map_err(folder_error)?;
    match plan.run.precision {
        Precision::F32 => train_with::<f32>(plan, split, staged, &stop),
        Precision::F64 => train_with::<f64>(plan, split, staged, &stop),
    }
}

/// A run-folder error as bad input; the messages about the folder `--out` names name the flag.
fn folder_error(e: RunFolderError) -> CliError {
    match e {
        RunFolderError::NotEmpty { folder } => CliError::usage(format!(
            "--out {}: the folder exists and is not empty; choose another, or continue that run with --resume {}",
            folder.display(),
            folder.display()
        )),
        RunFolderError::NotAFolder { folder } => CliError::usage(format!(
            "--out {}: exists and is not a folder",
            folder.display()
        )),
        e => usage(e),
    }
}

/// The last checks, which need the data drawn: the training pool and held-out points, with a
/// built-in dataset's values within what the run's precision takes (a data file's were checked
/// when it was read).
fn check_before_writing(plan: &mut RunPlan) -> CliResult<DataSplit> {
    plan.config.threads = plan.run.threads;
    // Threads split the batch; each runs single-threaded products (set before any product).
    if !set_matmul_threads(1) {
        errln!("warning: could not set the matmul thread count to 1");
    }
    let split = plan.split_data();
    if let DataSource::Builtin(ds) = &plan.source {
        for points in [&split.pool, &split.held_out] {
            check_builtin_magnitude(ds, points.view(), plan.run.precision, FOR_A_RUN)?;
        }
    }
    Ok(split)
}

/// The progress bar, fed by the session.
impl Observer for Progress {
    fn stepped(&mut self, step: u64) {
        self.tick(step);
    }

    fn logged(&mut self, line: &MetricsLine) {
        self.update(Snapshot {
            step: line.step,
            loss: line.loss,
            mse: line.mse,
            steps_per_s: line.steps_per_s,
            sw1: line.sw1,
        });
    }

    fn skipped(&mut self, error: &NonFiniteStep) {
        self.println(&format!("warning: {error}; skipped"));
    }
}

/// What to try when a run's loss explodes.
const DIVERGENCE_REMEDIES: &str =
    "try a lower --lr, gradient clipping (--clip 1) or the adaptive loss weight (--p 1)";

/// A session error as a failed run (exit 1); `unscaled_file`: the run trains a data file in its
/// own units (`--no-standardize`), the likely cause of an overflow.
fn session_error(e: SessionError, unscaled_file: bool) -> CliError {
    match e {
        SessionError::NonFinite { error, .. } if error.is_overflow() && unscaled_file => {
            CliError::failed(format!(
                "{e}; data this far from unit scale do not train in {}: standardise them (the default; drop --no-standardize) or use --precision f64",
                error.precision
            ))
        }
        SessionError::NonFinite { error, .. } if error.is_overflow() => {
            CliError::failed(format!("{e}; the loss diverged: {DIVERGENCE_REMEDIES}"))
        }
        SessionError::Diverged { .. } => CliError::failed(format!("{e}; {DIVERGENCE_REMEDIES}")),
        SessionError::NonFinite { .. } => {
            CliError::failed(format!("{e}; --skip-nonfinite skips such steps"))
        }
        e => CliError::failed(e.to_string()),
    }
}

/// "interrupted at step N (SIGTERM): checkpoint written to ...; continue with: ...".
fn report_interruption<T: Float>(session: &Session<T>, plan: &RunPlan, signal: i32, during: &str) {
    errln!(
        "interrupted at step {}{during} ({}): checkpoint written to {}; continue with: meanflow train --resume {}",
        session.trainer().step_count(),
        signal_name(signal),
        session.checkpoint_path().display(),
        plan.folder.display()
    );
}

/// Trains; `staged` is the prepared folder of a fresh run, which gets the step-0 checkpoint and
/// becomes the run folder before the first step.
fn train_with<T: Float>(
    mut plan: RunPlan,
    split: DataSplit,
    staged: Option<StagedFolder>,
    stop: &StopSignal,
) -> CliResult<i32> {
    let trainer = plan.trainer::<T>(&split).map_err(usage)?;
    let DataSplit {
        pool,
        held_out,
        held_out_labels,
        ..
    } = split;
    if let Some(staged) = staged {
        plan.publish(staged, &trainer).map_err(folder_error)?;
    }
    let plan = &plan;
    let unscaled_file =
        matches!(plan.source, DataSource::File { .. }) && plan.run.units().is_identity();
    let mut session = Session::new(plan, trainer, held_out, held_out_labels.clone())
        .map_err(|e| session_error(e, unscaled_file))?;
    let run = &plan.run;
    if run.eval_every > 0 && !session.evaluation().possible() {
        if let DataSource::File { data, .. } = &plan.source {
            errln!(
                "note: the data file has too few rows for a held-out set ({} rows; a fifth of them are held out, and at least 2 are needed): no evaluation",
                data.nrows()
            );
        }
    }
    let start_step = session.trainer().step_count();
    errln!(
        "{} {}: {} ({}-D), loss {}, {} parameters, batch {}, steps {}..{}, {}, {} thread{}",
        if plan.resume.is_some() {
            "resuming"
        } else {
            "training"
        },
        plan.folder.display(),
        plan.source.label(),
        plan.config.model.dim,
        run.loss_preset,
        plan.config.model.parameter_count(),
        plan.config.batch,
        start_step,
        run.steps,
        run.precision,
        run.threads,
        if run.threads == 1 { "" } else { "s" }
    );
    let mut progress = Progress::new(start_step, run.steps);
    let outcome = session.run(&mut progress, stop.flag());
    progress.finish();
    let (done, elapsed) = match outcome.map_err(|e| session_error(e, unscaled_file))? {
        Outcome::Finished { steps, elapsed } => (steps, elapsed),
        Outcome::Stopped(stopped_in) => {
            let signal = stop.received().expect("a session stops on a signal only");
            let during = match stopped_in {
                StoppedIn::Steps => "",
                StoppedIn::Evaluation => " during its evaluation",
            };
            report_interruption(&session, plan, signal, during);
            return Ok(exit_code_for_signal(signal));
        }
    };
    let trainer = session.trainer();
    let summary = Summary {
        plan,
        model: trainer.config.model,
        weights: sampling_weights(trainer),
        has_ema: trainer.ema.is_some(),
        step: trainer.step_count(),
        pool: &pool,
        held_out_labels: &held_out_labels,
        evaluation: session.evaluation(),
        done,
        elapsed,
    };
    // The checkpoint is written: a signal now only costs the summary and the pictures, which a
    // resume with the same --steps writes again.
    interruptible(
        stop,
        || summary.print_and_draw(),
        |signal| {
            remove_picture_temporaries(&plan.folder);
            report_interruption(
                &session,
                plan,
                signal,
                " during the final evaluation and pictures",
            );
            exit_code_for_signal(signal)
        },
    )?;
    Ok(0)
}

/// What the end of a run reports and draws: the closing summary and the pictures.
struct Summary<'a, T: Float> {
    plan: &'a RunPlan,
    model: ModelConfig,
    weights: &'a MlpParams<T>,
    has_ema: bool,
    step: u64,
    /// The training pool, in the data's units.
    pool: &'a Array2<f64>,
    held_out_labels: &'a [usize],
    evaluation: &'a Evaluation,
    /// Steps taken in this session, in `elapsed` seconds.
    done: u64,
    elapsed: f64,
}

impl<T: Float> Summary<'_, T> {
    /// Prints the summary (the final sliced W1 against the held-out points) and writes
    /// samples.png and loss.png.
    fn print_and_draw(&self) -> CliResult<()> {
        let plan = self.plan;
        let (step, done, elapsed) = (self.step, self.done, self.elapsed);
        let samples = self.evaluation.final_samples(
            self.model,
            self.weights,
            self.pool,
            plan.run.eval_samples,
        );
        outln!("run folder: {}", plan.folder.display());
        outln!(
            "steps: {step} ({done} in this session, {}, {:.0} steps/s)",
            format_duration(elapsed),
            done as f64 / elapsed.max(1e-9)
        );
        let sw1 =
            self.evaluation
                .final_sliced_w1(&samples, &plan.source, self.pool, plan.config.seed);
        if let Some(sw1) = sw1 {
            let floor = sw1
                .floor
                .map_or(String::new(), |f| format!(", data-vs-data floor {f:.4}"));
            let weights = if self.has_ema {
                "EMA weights"
            } else {
                "weights"
            };
            outln!(
                "sliced W1 vs {} held-out points ({weights}): 1-step {:.4}, 2-step {:.4}{floor}",
                sw1.points,
                sw1.one_step,
                sw1.two_step
            );
        }
        let title = format!(
            "{} - {} - step {step}",
            plan.source.label(),
            plan.run.loss_preset
        );
        let grid = image_grid(
            &plan.source,
            &plan.run.units(),
            self.model,
            self.weights,
            self.evaluation.held_out().view(),
            self.held_out_labels,
            plan.config.seed,
        );
        let pictures = write_run_pictures(&plan.folder, &title, &samples, grid.as_ref())
            .map_err(|e| CliError::failed(e.to_string()))?;
        for path in pictures {
            outln!("wrote {}", path.display());
        }
        Ok(())
    }
}
