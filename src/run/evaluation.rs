//! What a run evaluates: the sliced W1 of 1-step samples against the held-out points, with the same
//! noise at every evaluation and after a resume, and at the end of the run 1- and 2-step samples
//! with their sliced W1 next to the data-vs-data floor. Samples are mapped to the data's units
//! first; a conditional model's samples are of the held-out points' classes, without guidance
//! (w = 1; MF's guidance in the target is part of the model).

use crate::data::DataUnits;
use crate::flow::model::{MlpParams, ModelConfig};
use crate::flow::sampling::{noise, sample_mean_flow_under, uniform_schedule, Conditions};
use crate::linalg::float::Float;
use crate::rng::Rng;
use crate::run::dataset::{DataSource, STREAM_EVAL_NOISE};
use crate::train::Trainer;
use crate::verify::metrics::{pool_floor, sliced_wasserstein1, toy_floor, Metric};
use ndarray::{s, Array2};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// How often a computation that a stop request abandons looks at the stop flag.
pub const STOP_POLL: Duration = Duration::from_millis(50);

/// How the evaluation samples are drawn: the noise, the rows' conditions and the units.
struct SampleSpec {
    noise: Array2<f64>,
    conditions: Conditions,
    units: DataUnits,
}

impl SampleSpec {
    /// Samples of `steps` mean-flow steps with `weights`, computed in `T`, in the data's units.
    fn samples<T: Float>(
        &self,
        model: ModelConfig,
        weights: &MlpParams<T>,
        steps: usize,
    ) -> Array2<f64> {
        let z = self.noise.mapv(T::from_f64);
        let samples = sample_mean_flow_under(
            model,
            weights,
            z.view(),
            &uniform_schedule(steps),
            self.conditions.clone(),
        );
        self.units.to_data(samples.mapv(|x| x.to_f64()).view())
    }
}

/// The weights a run samples and evaluates with: the EMA when it keeps one, else the parameters.
pub fn sampling_weights<T: Float>(trainer: &Trainer<T>) -> &MlpParams<T> {
    trainer.ema.as_ref().unwrap_or(&trainer.params)
}

/// What the evaluations compare: the held-out points and the noise of the 1-step samples (one row
/// per held-out point; with too few held-out points, rows for the pictures only).
pub struct Evaluation {
    held_out: Arc<Array2<f64>>,
    spec: Arc<SampleSpec>,
}

impl Evaluation {
    /// The evaluation of a run of `seed` on points of dimension `dim`: noise from the stream
    /// [`STREAM_EVAL_NOISE`], one row per held-out point, or min(`eval_samples`, `pool_rows`)
    /// rows (at least one) when fewer than two points are held out. The held-out points are in the
    /// data's units, `units` away from the model's; with `held_out_labels` (one per held-out
    /// point) the samples are of those classes, else of the null class.
    pub fn new(
        held_out: Array2<f64>,
        held_out_labels: Vec<usize>,
        units: DataUnits,
        eval_samples: usize,
        pool_rows: usize,
        dim: usize,
        seed: u64,
    ) -> Self {
        let rows = if held_out.nrows() >= 2 {
            held_out.nrows()
        } else {
            eval_samples.min(pool_rows).max(1)
        };
        let conditions = if held_out_labels.len() == rows {
            Conditions::classes(held_out_labels, 1.0)
        } else {
            Conditions::none()
        };
        Evaluation {
            spec: Arc::new(SampleSpec {
                noise: noise::<f64>(rows, dim, &mut Rng::stream(seed, STREAM_EVAL_NOISE)),
                conditions,
                units,
            }),
            held_out: Arc::new(held_out),
        }
    }

    /// Whether there are held-out points to compare with (at least two).
    pub fn possible(&self) -> bool {
        self.held_out.nrows() >= 2
    }

    /// The held-out points.
    pub fn held_out(&self) -> &Array2<f64> {
        &self.held_out
    }

    /// Sliced W1 of the 1-step samples against the held-out points, computed on a thread of its
    /// own; `None` when `stop` is set first (looked at every [`STOP_POLL`]). A stopped computation
    /// is abandoned: its thread finishes in the background and its result is dropped.
    pub fn sw1_unless_stopped<T: Float>(
        &self,
        model: ModelConfig,
        weights: &MlpParams<T>,
        stop: &AtomicBool,
    ) -> Option<f64> {
        let (weights, spec, held_out) = (
            weights.clone(),
            Arc::clone(&self.spec),
            Arc::clone(&self.held_out),
        );
        let (send, receive) = mpsc::channel();
        let worker = std::thread::spawn(move || {
            let samples = spec.samples(model, &weights, 1);
            let _ = send.send(sliced_wasserstein1(samples.view(), held_out.view()));
        });
        loop {
            if stop.load(Ordering::SeqCst) {
                return None;
            }
            match receive.recv_timeout(STOP_POLL) {
                Ok(sw1) => return Some(sw1),
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
                    // The worker ended without an answer: it panicked.
                    Err(panic) => std::panic::resume_unwind(panic),
                    Ok(()) => unreachable!("the worker sends before it ends"),
                },
            }
        }
    }

    /// The samples at the end of a run: 1- and 2-step samples from the evaluation noise, and the
    /// data drawn next to them (the held-out points, or with too few of them the first
    /// `eval_samples` points of `pool`, in the data's units).
    pub fn final_samples<T: Float>(
        &self,
        model: ModelConfig,
        weights: &MlpParams<T>,
        pool: &Array2<f64>,
        eval_samples: usize,
    ) -> FinalSamples {
        let one_step = self.spec.samples(model, weights, 1);
        let two_step = self.spec.samples(model, weights, 2);
        let data = if self.possible() {
            (*self.held_out).clone()
        } else {
            pool.slice(s![..pool.nrows().min(eval_samples), ..])
                .to_owned()
        };
        FinalSamples {
            one_step,
            two_step,
            data,
        }
    }

    /// Sliced W1 of the final samples against the n held-out points, and the data-vs-data floor
    /// (the sliced W1 between two draws of n data points: fresh draws of a built-in dataset, or
    /// disjoint draws from `pool`, in the data's units, when it holds 2n points); `None` without
    /// held-out points.
    pub fn final_sliced_w1(
        &self,
        samples: &FinalSamples,
        source: &DataSource,
        pool: &Array2<f64>,
        seed: u64,
    ) -> Option<FinalSlicedW1> {
        if !self.possible() {
            return None;
        }
        let held_out = &self.held_out;
        let n = held_out.nrows();
        let one_step = sliced_wasserstein1(samples.one_step.view(), held_out.view());
        let two_step = sliced_wasserstein1(samples.two_step.view(), held_out.view());
        let floor = match source {
            DataSource::Builtin(ds) => Some(toy_floor(Metric::SlicedW1, ds, n, 1, seed)),
            DataSource::File { .. } | DataSource::Digits if pool.nrows() >= 2 * n => {
                Some(pool_floor(Metric::SlicedW1, pool.view(), n, 1, seed))
            }
            DataSource::File { .. } | DataSource::Digits => None,
        };
        Some(FinalSlicedW1 {
            points: n,
            one_step,
            two_step,
            floor,
        })
    }
}

/// The samples at the end of a run ([`Evaluation::final_samples`]).
pub struct FinalSamples {
    pub one_step: Array2<f64>,
    pub two_step: Array2<f64>,
    /// The data points drawn next to the samples.
    pub data: Array2<f64>,
}

/// The final sliced W1s ([`Evaluation::final_sliced_w1`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FinalSlicedW1 {
    /// Held-out points compared with.
    pub points: usize,
    pub one_step: f64,
    pub two_step: f64,
    /// The data-vs-data floor, when it can be estimated.
    pub floor: Option<f64>,
}
