//! Generating samples from a trained model, all starting from noise z_1 ~ N(0, I).
//!
//! - one step:  x = z_1 - u(z_1, 0, 1)
//! - n steps on a schedule 1 = t_0 > t_1 > ... > t_n = 0:  z_{t_{k+1}} = z_{t_k} - (t_k - t_{k+1}) u(z_{t_k}, t_{k+1}, t_k)
//! - the flow-matching baseline: Euler on dz/dt = v(z, t) with v(z, t) = u(z, t, t), n equal steps.

use crate::autodiff::tape::Tape;
use crate::flow::model::{MlpParams, ModelConfig, ParamVars, TapeModel};
use crate::linalg::float::Float;
use crate::rng::Rng;
use ndarray::{Array2, ArrayView2};

/// Evaluates u(z, r, t) for whole arrays, reusing one tape across calls.
pub struct Evaluator<'a, T: Float> {
    config: ModelConfig,
    params: &'a MlpParams<T>,
    tape: Tape<T>,
}

impl<'a, T: Float> Evaluator<'a, T> {
    pub fn new(config: ModelConfig, params: &'a MlpParams<T>) -> Self {
        Evaluator {
            config,
            params,
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
            trunk: self.params.trunk.iter().map(&mut put).collect(),
            u_head: put(&self.params.u_head),
            v_head: self.params.v_head.as_ref().map(put),
            class_embed: None,
        }
    }

    /// u(z, r, t) with r and t given per row ([B, 1]).
    pub fn u(&mut self, z: ArrayView2<T>, r: ArrayView2<T>, t: ArrayView2<T>) -> Array2<T> {
        self.tape.clear();
        let vars = self.param_constants();
        let (z, r, t) = (
            self.tape.constant(z),
            self.tape.constant(r),
            self.tape.constant(t),
        );
        let net = TapeModel::new(self.config, &vars);
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

/// Average-velocity sampling along a decreasing schedule from 1 to 0 (one step: [1, 0]).
pub fn sample_mean_flow<T: Float>(
    config: ModelConfig,
    params: &MlpParams<T>,
    z1: ArrayView2<T>,
    schedule: &[f64],
) -> Array2<T> {
    assert!(
        schedule.len() >= 2 && schedule.windows(2).all(|w| w[0] > w[1]),
        "sample_mean_flow: the schedule must decrease and have at least two points, got {schedule:?}"
    );
    let mut eval = Evaluator::new(config, params);
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
    let schedule = uniform_schedule(steps);
    let mut eval = Evaluator::new(config, params);
    let mut z = z1.to_owned();
    for w in schedule.windows(2) {
        let (t, next) = (w[0], w[1]);
        let v = eval.velocity(z.view(), t);
        z.scaled_add(T::from_f64(-(t - next)), &v);
    }
    z
}
