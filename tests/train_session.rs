//! A training run through the library alone, as `meanflow train` drives it: a fresh run folder
//! staged and published, a session to the last step, and a session stopped by its flag (between
//! steps, and during an evaluation) and resumed from what it left, ending in the same checkpoint
//! bytes and metrics lines as the uninterrupted run.

mod common;

use meanflow::data::ToyDataset;
use meanflow::flow::loss::{LossConfig, LossPreset};
use meanflow::flow::model::ModelConfig;
use meanflow::flow::time_sampler::TimeSampler;
use meanflow::run::config::{RunConfig, RUN_FORMAT};
use meanflow::run::dataset::{self, DataSource, DataSplit};
use meanflow::run::folder::{CHECKPOINT_FILE, METRICS_FILE};
use meanflow::run::lock::RunLock;
use meanflow::run::metrics_log::{self, LogAccumulator, MetricsLine};
use meanflow::run::plan::RunPlan;
use meanflow::run::resume;
use meanflow::run::session::{Observer, Outcome, Session, StoppedIn};
use meanflow::train::checkpoint::Precision;
use meanflow::train::optim::AdamConfig;
use meanflow::train::TrainConfig;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

const STEPS: u64 = 40;

fn fresh_plan(folder: PathBuf) -> RunPlan {
    let source = DataSource::Builtin("two_moons".parse::<ToyDataset>().unwrap());
    let config = TrainConfig {
        model: ModelConfig {
            width: 16,
            depth: 2,
            ..ModelConfig::default()
        },
        loss: LossConfig::preset(LossPreset::Imf),
        time: TimeSampler::imf_default(),
        adam: AdamConfig::default(),
        batch: 32,
        ema_decay: Some(0.99),
        seed: 7,
        threads: 1,
    };
    let eval_samples = 64;
    let (pool_points, held_out_points) = DataSplit::sizes(&source, eval_samples);
    let run = RunConfig {
        format: RUN_FORMAT.into(),
        dataset: dataset::record(&source).unwrap(),
        loss_preset: LossPreset::Imf.name().into(),
        train: config,
        precision: Precision::F32,
        steps: STEPS,
        threads: 1,
        checkpoint_every: 0,
        eval_every: 20,
        eval_samples,
        log_every: 10,
        skip_nonfinite: false,
        pool_points,
        held_out_points,
        version: env!("CARGO_PKG_VERSION").into(),
        units: None,
    };
    RunPlan {
        run,
        config,
        source,
        folder,
        resume: None,
        kept_metrics: Vec::new(),
        accumulator: LogAccumulator::default(),
        lock: None,
        default_folder: false,
    }
}

/// The plan of resuming `folder`, read as `--resume` reads it, with the folder locked.
fn resume_plan(folder: &Path) -> RunPlan {
    let lock = RunLock::acquire(folder).unwrap();
    let (run, config) = resume::read_run_config(folder).unwrap();
    let (ck, accumulator) = resume::read_checkpoint(folder, &run, &config).unwrap();
    let source = dataset::load_recorded(&run.dataset, folder, run.precision).unwrap();
    let kept_metrics = metrics_log::kept_lines(&folder.join(METRICS_FILE), ck.step, &accumulator);
    RunPlan {
        run,
        config,
        source,
        folder: folder.to_path_buf(),
        resume: Some(ck),
        kept_metrics,
        accumulator,
        lock: Some(lock),
        default_folder: false,
    }
}

/// Sets the stop flag once step `at` is taken, and counts what it is told.
struct StopAt<'a> {
    at: Option<u64>,
    stop: &'a AtomicBool,
    steps: u64,
    lines: Vec<MetricsLine>,
}

impl Observer for StopAt<'_> {
    fn stepped(&mut self, step: u64) {
        self.steps += 1;
        if Some(step) == self.at {
            self.stop.store(true, Ordering::SeqCst);
        }
    }

    fn logged(&mut self, line: &MetricsLine) {
        self.lines.push(line.clone());
    }
}

/// What a session ended with and what its observer was told: the steps taken, and the step of
/// each metrics line with whether it has a sliced W1.
struct Ran {
    outcome: Outcome,
    steps: u64,
    lines: Vec<(u64, bool)>,
}

/// Runs a session of `plan` (writing its folder first), stopping after step `stop_at`.
fn run_session(mut plan: RunPlan, stop_at: Option<u64>) -> Ran {
    let staged = plan.prepare_folder().unwrap();
    let split = plan.split_data();
    let trainer = plan.trainer::<f32>(&split).unwrap();
    if let Some(staged) = staged {
        plan.publish(staged, &trainer).unwrap();
    }
    let stop = AtomicBool::new(false);
    let mut observer = StopAt {
        at: stop_at,
        stop: &stop,
        steps: 0,
        lines: Vec::new(),
    };
    let mut session = Session::new(&plan, trainer, split.held_out, split.held_out_labels).unwrap();
    let outcome = session.run(&mut observer, &stop).unwrap();
    Ran {
        outcome,
        steps: observer.steps,
        lines: observer
            .lines
            .iter()
            .map(|l| (l.step, l.sw1.is_some()))
            .collect(),
    }
}

#[test]
fn a_stopped_session_resumes_to_the_uninterrupted_checkpoint() {
    let dir = common::scratch("train_session", "stop_and_resume");
    let straight = dir.join("straight");
    let ran = run_session(fresh_plan(straight.clone()), None);
    assert!(
        matches!(ran.outcome, Outcome::Finished { steps: STEPS, .. }),
        "{:?}",
        ran.outcome
    );
    assert_eq!(ran.steps, STEPS);
    assert_eq!(
        ran.lines,
        [(10, false), (20, true), (30, false), (40, true)]
    );
    let reference = std::fs::read(straight.join(CHECKPOINT_FILE)).unwrap();

    for (name, stop_at, stopped_in) in [
        ("between_steps", 25, StoppedIn::Steps),
        ("in_evaluation", 20, StoppedIn::Evaluation),
    ] {
        let run = dir.join(name);
        let stopped = run_session(fresh_plan(run.clone()), Some(stop_at));
        assert_eq!(stopped.outcome, Outcome::Stopped(stopped_in), "{name}");
        let resumed = run_session(resume_plan(&run), None);
        assert!(
            matches!(resumed.outcome, Outcome::Finished { steps, .. } if steps == STEPS - stop_at),
            "{name}: {:?}",
            resumed.outcome
        );
        assert_eq!(resumed.steps, STEPS - stop_at, "{name}");
        assert!(
            std::fs::read(run.join(CHECKPOINT_FILE)).unwrap() == reference,
            "{name}: the resumed run's checkpoint differs from the uninterrupted run's"
        );
        assert_eq!(common::metrics(&run), common::metrics(&straight), "{name}");
    }
}
