//! Generating samples from a trained model, all starting from noise z_1 ~ N(0, I).
//!
//! - one step:  x = z_1 - u(z_1, 0, 1)
//! - n steps on a schedule 1 = t_0 > t_1 > ... > t_n = 0:  z_{t_{k+1}} = z_{t_k} - (t_k - t_{k+1}) u(z_{t_k}, t_{k+1}, t_k)
//! - the flow-matching baseline: Euler on dz/dt = v(z, t) with v(z, t) = u(z, t, t), n equal steps.
//!
//! A conditional model samples under [`Conditions`]: each row's class (the null class when none is
//! given: unconditional samples) and, for a model with a guidance input, the guidance scale w;
//! for a model with the guidance interval as an input, the interval [t_min, t_max] where w applies
//! too (iMF: the network is given (w, t_min, t_max), one evaluation per step, Lyy-iiis/imeanflow
//! `imf.py`, `sample_one_step`).

use crate::autodiff::tape::Tape;
use crate::flow::model::{class_rows, MlpParams, ModelConfig, ParamVars, TapeModel};
use crate::linalg::float::Float;
use crate::rng::Rng;
use ndarray::{Array2, ArrayView2};

/// What samples of a conditional model are drawn under.
#[derive(Clone, Debug, PartialEq)]
pub struct Conditions {
    /// The class of each row; None: the null class on every row (unconditional samples).
    pub labels: Option<Vec<usize>>,
    /// The guidance scale w >= 1 given to a model with a guidance input (1: no guidance).
    pub guidance: f64,
    /// The guidance interval [t_min, t_max] given to a model with the interval input ([0, 1]:
    /// every t; a model without that input takes only [0, 1]).
    pub interval: [f64; 2],
}

impl Conditions {
    /// No class, no guidance: what an unconditional model always samples under.
    pub fn none() -> Self {
        Conditions {
            labels: None,
            guidance: 1.0,
            interval: [0.0, 1.0],
        }
    }

    /// Rows of classes `labels` at guidance scale `guidance`.
    pub fn classes(labels: Vec<usize>, guidance: f64) -> Self {
        Conditions {
            labels: Some(labels),
            guidance,
            interval: [0.0, 1.0],
        }
    }

    /// The same conditions with the guidance interval [t_min, t_max].
    pub fn with_interval(self, interval: [f64; 2]) -> Self {
        Conditions { interval, ..self }
    }
}

/// Evaluates u(z, r, t | c, w) for whole arrays, reusing one tape across calls.
pub struct Evaluator<'a, T: Float> {
    config: ModelConfig,
    params: &'a MlpParams<T>,
    conditions: Conditions,
    tape: Tape<T>,
}

impl<'a, T: Float> Evaluator<'a, T> {
    /// An evaluator without conditions (a conditional model's null class, scale 1).
    pub fn new(config: ModelConfig, params: &'a MlpParams<T>) -> Self {
        Self::conditioned(config, params, Conditions::none())
    }

    /// An evaluator whose rows are of `conditions` (ignored by an unconditional model).
    ///
    /// # Panics
    /// If a label is not below the model's classes, the scale is below 1, or the interval is not
    /// 0 <= t_min <= t_max <= 1 or is other than [0, 1] for a model without the interval input.
    pub fn conditioned(
        config: ModelConfig,
        params: &'a MlpParams<T>,
        conditions: Conditions,
    ) -> Self {
        if let Some(labels) = &conditions.labels {
            if let Some(&c) = labels.iter().find(|&&c| c >= config.classes.max(1)) {
                panic!(
                    "Evaluator: class {c} of a model with {} classes",
                    config.classes
                );
            }
        }
        assert!(
            conditions.guidance >= 1.0,
            "Evaluator: guidance scale {} is below 1",
            conditions.guidance
        );
        let [lo, hi] = conditions.interval;
        assert!(
            0.0 <= lo && lo <= hi && hi <= 1.0,
            "Evaluator: guidance interval [{lo}, {hi}]: need 0 <= t_min <= t_max <= 1"
        );
        assert!(
            config.guidance_interval_input || conditions.interval == [0.0, 1.0],
            "Evaluator: guidance interval [{lo}, {hi}] for a model without the interval input"
        );
        Evaluator {
            config,
            params,
            conditions,
            tape: Tape::new(),
        }
    }

    /// Parameters as constants: nothing is kept for a backward pass.
    fn param_constants(&mut self) -> ParamVars {
        let tape = &mut self.tape;
        let mut put = |l: &crate::flow::model::Linear<T>| {
            (tape.constant(l.weight.view()), tape.constant(l.bias.view()))
        };
        ParamVars {
            architecture: self.params.architecture,
            trunk: self.params.trunk.iter().map(&mut put).collect(),
            u_head: put(&self.params.u_head),
            v_head: self.params.v_head.as_ref().map(put),
            class_embed: self
                .params
                .class_embed
                .as_ref()
                .map(|e| tape.constant(e.view())),
        }
    }

    /// u(z, r, t) with r and t given per row ([B, 1]).
    pub fn u(&mut self, z: ArrayView2<T>, r: ArrayView2<T>, t: ArrayView2<T>) -> Array2<T> {
        self.tape.clear();
        let vars = self.param_constants();
        let rows = z.nrows();
        let (z, r, t) = (
            self.tape.constant(z),
            self.tape.constant(r),
            self.tape.constant(t),
        );
        let mut net = TapeModel::new(self.config, &vars);
        if self.config.classes > 0 {
            let null = vec![self.config.classes; rows];
            let labels = self.conditions.labels.as_ref().unwrap_or(&null);
            assert_eq!(
                labels.len(),
                rows,
                "Evaluator: {} labels for {rows} rows",
                labels.len()
            );
            let onehot = self
                .tape
                .constant(class_rows::<T>(labels, self.config.classes).view());
            net.classes = Some(onehot);
        }
        if self.config.guidance_input {
            let w = self.conditions.guidance;
            net.scales = Some(self.tape.full((rows, 1), T::from_f64(w)));
        }
        if self.config.guidance_interval_input {
            let [lo, hi] = self.conditions.interval;
            let lo = self.tape.full((rows, 1), T::from_f64(lo));
            let hi = self.tape.full((rows, 1), T::from_f64(hi));
            net.intervals = Some((lo, hi));
        }
        let u = net.u(&mut self.tape, z, r, t);
        self.tape.value(u).to_owned()
    }

    /// u(z, r, t) with the same r and t for every row.
    pub fn u_at(&mut self, z: ArrayView2<T>, r: f64, t: f64) -> Array2<T> {
        let b = z.nrows();
        let rs = Array2::from_elem((b, 1), T::from_f64(r));
        let ts = Array2::from_elem((b, 1), T::from_f64(t));
        self.u(z, rs.view(), ts.view())
    }

    /// The instantaneous velocity v(z, t) = u(z, t, t) (the v-head is a separate training aid).
    pub fn velocity(&mut self, z: ArrayView2<T>, t: f64) -> Array2<T> {
        self.u_at(z, t, t)
    }
}

/// N(0, I) noise of shape [n, d].
pub fn noise<T: Float>(n: usize, d: usize, rng: &mut Rng) -> Array2<T> {
    Array2::from_shape_simple_fn((n, d), || T::from_f64(rng.normal()))
}

/// The schedule t_k = 1 - k/n, k = 0..n (n + 1 points from 1 to 0).
pub fn uniform_schedule(steps: usize) -> Vec<f64> {
    assert!(steps > 0, "uniform_schedule: steps must be positive");
    (0..=steps).map(|k| 1.0 - k as f64 / steps as f64).collect()
}

/// Average-velocity sampling along a decreasing schedule from 1 to 0 (one step: [1, 0]), without
/// conditions.
pub fn sample_mean_flow<T: Float>(
    config: ModelConfig,
    params: &MlpParams<T>,
    z1: ArrayView2<T>,
    schedule: &[f64],
) -> Array2<T> {
    sample_mean_flow_under(config, params, z1, schedule, Conditions::none())
}

/// [`sample_mean_flow`] under `conditions`.
pub fn sample_mean_flow_under<T: Float>(
    config: ModelConfig,
    params: &MlpParams<T>,
    z1: ArrayView2<T>,
    schedule: &[f64],
    conditions: Conditions,
) -> Array2<T> {
    assert!(
        schedule.len() >= 2 && schedule.windows(2).all(|w| w[0] > w[1]),
        "sample_mean_flow: the schedule must decrease and have at least two points, got {schedule:?}"
    );
    let mut eval = Evaluator::conditioned(config, params, conditions);
    let mut z = z1.to_owned();
    for w in schedule.windows(2) {
        let (t, r) = (w[0], w[1]);
        let u = eval.u_at(z.view(), r, t);
        z.scaled_add(T::from_f64(-(t - r)), &u);
    }
    z
}

/// The flow-matching baseline: `steps` Euler steps of dz/dt = u(z, t, t) from t = 1 to 0.
pub fn sample_euler_flow<T: Float>(
    config: ModelConfig,
    params: &MlpParams<T>,
    z1: ArrayView2<T>,
    steps: usize,
) -> Array2<T> {
    sample_euler_flow_under(config, params, z1, steps, Conditions::none())
}

/// [`sample_euler_flow`] under `conditions`.
pub fn sample_euler_flow_under<T: Float>(
    config: ModelConfig,
    params: &MlpParams<T>,
    z1: ArrayView2<T>,
    steps: usize,
    conditions: Conditions,
) -> Array2<T> {
    let schedule = uniform_schedule(steps);
    let mut eval = Evaluator::conditioned(config, params, conditions);
    let mut z = z1.to_owned();
    for w in schedule.windows(2) {
        let (t, next) = (w[0], w[1]);
        let v = eval.velocity(z.view(), t);
        z.scaled_add(T::from_f64(-(t - next)), &v);
    }
    z
}
