//! An independent oracle for the MeanFlow losses (flow::loss, flow::guidance): the network written
//! out as loops over scalars (its activations and time embedding too, not the engine's
//! `Elementwise` or `Conditioning` code), its JVP taken with dual numbers (forward mode, no tape),
//! and the loss with its stop-gradient quantities frozen at base parameters (the definition of
//! sg). It shares no code with `record_loss` beyond the parameter and batch types and the dual
//! numbers' elementary functions, which tests/dual.rs checks against closed forms.
//!
//! Included with `#[path = "common/loss_oracle.rs"] mod loss_oracle;` by the loss test files.
#![allow(dead_code)]
// `Real` has no `AddAssign`; the oracle's helpers take the row's pieces one by one.
#![allow(clippy::assign_op_pattern, clippy::too_many_arguments)]

use meanflow::autodiff::dual::Dual;
use meanflow::autodiff::elementwise::Elementwise;
use meanflow::flow::guidance::Guidance;
use meanflow::flow::loss::{Batch, LossConfig, VSource};
use meanflow::flow::model::{
    Architecture, Conditioning, Linear, MlpParams, ModelConfig, LAYER_NORM_EPS,
};
use meanflow::linalg::real::Real;

/// What a loss evaluation depends on besides the parameters.
#[derive(Clone, Copy)]
pub struct Problem<'a> {
    pub model: &'a ModelConfig,
    pub loss: &'a LossConfig,
    pub batch: &'a Batch<f64>,
}

/// The activation from its textbook formula (not `Elementwise::eval`).
fn activate<R: Real>(f: Elementwise, x: R) -> R {
    let one = R::constant(1.0);
    match f {
        Elementwise::Silu => x / (one + (-x).exp()),
        Elementwise::Tanh => x.tanh(),
        Elementwise::GeluTanh => {
            let k = R::constant((2.0 / std::f64::consts::PI).sqrt());
            R::constant(0.5) * x * (one + (k * (x + R::constant(0.044715) * x * x * x)).tanh())
        }
        Elementwise::Softplus => x.exp().ln_1p(),
        Elementwise::Sigmoid => one / (one + (-x).exp()),
        Elementwise::Relu => {
            if x.primal_f64() > 0.0 {
                x
            } else {
                R::constant(0.0)
            }
        }
        other => panic!("loss oracle: {other} is not an activation"),
    }
}

/// The time embedding of one scalar s: [s] (raw), or [s, sin(2^k pi s)_k, cos(2^k pi s)_k].
fn embed<R: Real>(conditioning: Conditioning, s: R) -> Vec<R> {
    match conditioning {
        Conditioning::Raw | Conditioning::RawH => vec![s],
        Conditioning::Fourier { frequencies } | Conditioning::FourierH { frequencies } => {
            let phases: Vec<R> = (0..frequencies)
                .map(|k| s * R::constant(std::f64::consts::PI * 2f64.powi(k as i32)))
                .collect();
            let mut out = vec![s];
            out.extend(phases.iter().map(|p| p.sin()));
            out.extend(phases.iter().map(|p| p.cos()));
            out
        }
    }
}

/// W a + b of one row.
fn affine<R: Real>(layer: &Linear<f64>, a: &[R]) -> Vec<R> {
    (0..layer.weight.nrows())
        .map(|o| {
            let mut sum = R::constant(layer.bias[[0, o]]);
            for (i, &x) in a.iter().enumerate() {
                sum = sum + R::constant(layer.weight[[o, i]]) * x;
            }
            sum
        })
        .collect()
}

/// [`net_in`] with the guidance interval [0, 1] (what a model without the interval input ignores).
pub fn net<R: Real>(
    config: &ModelConfig,
    params: &MlpParams<f64>,
    z: &[R],
    r: R,
    t: R,
    class: usize,
    w: f64,
) -> (Vec<R>, Option<Vec<R>>) {
    net_in(config, params, z, r, t, class, w, [0.0, 1.0])
}

/// One scalar network evaluation: (u(z, r, t | class, w, interval), v(z, t | class, w,
/// interval)) of a row, on any [`Real`]. The trunk's input is [z, emb(t), emb(t - r),
/// emb(1 - 1/w) (a guidance input), emb(t_min), emb(t_max) (the interval input), E[class] (a
/// conditional model)]; v is the v-head on the trunk at h = 0.
pub fn net_in<R: Real>(
    config: &ModelConfig,
    params: &MlpParams<f64>,
    z: &[R],
    r: R,
    t: R,
    class: usize,
    w: f64,
    [t_min, t_max]: [f64; 2],
) -> (Vec<R>, Option<Vec<R>>) {
    let trunk = |h: R| {
        // The condition c: the h- variants (improved MeanFlow's) give the network h alone.
        let mut c: Vec<R> = Vec::new();
        if matches!(
            config.conditioning,
            Conditioning::Raw | Conditioning::Fourier { .. }
        ) {
            c.extend(embed(config.conditioning, t));
        }
        c.extend(embed(config.conditioning, h));
        if config.guidance_input {
            c.extend(embed(config.conditioning, R::constant(1.0 - 1.0 / w)));
        }
        if config.guidance_interval_input {
            c.extend(embed(config.conditioning, R::constant(t_min)));
            c.extend(embed(config.conditioning, R::constant(t_max)));
        }
        if let Some(table) = &params.class_embed {
            c.extend(table.row(class).iter().map(|&e| R::constant(e)));
        }
        let mut a: Vec<R> = z.iter().copied().chain(c.iter().copied()).collect();
        let act = |x: Vec<R>| -> Vec<R> {
            x.into_iter()
                .map(|x| activate(config.activation, x))
                .collect()
        };
        match config.architecture {
            Architecture::Mlp => {
                for layer in &params.trunk {
                    a = act(affine(layer, &a));
                }
                a
            }
            Architecture::Residual => {
                a = affine(&params.trunk[0], &a);
                for block in params.trunk[1..].chunks(2) {
                    let mut input = layer_norm(&a);
                    input.extend(c.iter().copied());
                    let update = affine(&block[1], &act(affine(&block[0], &input)));
                    a = a.iter().zip(&update).map(|(&x, &d)| x + d).collect();
                }
                layer_norm(&a)
            }
        }
    };
    let u = affine(&params.u_head, &trunk(t - r));
    let v = params
        .v_head
        .as_ref()
        .map(|l| affine(l, &trunk(R::constant(0.0))));
    (u, v)
}

/// (x - mean) / sqrt(var + eps) over the row, the mean and the variance in two passes.
fn layer_norm<R: Real>(x: &[R]) -> Vec<R> {
    let n = R::constant(x.len() as f64);
    let mean = x.iter().fold(R::constant(0.0), |s, &v| s + v) / n;
    let var = x
        .iter()
        .fold(R::constant(0.0), |s, &v| s + (v - mean) * (v - mean))
        / n;
    let sd = (var + R::constant(LAYER_NORM_EPS)).sqrt();
    x.iter().map(|&v| (v - mean) / sd).collect()
}

/// [`jvp_in`] with the guidance interval [0, 1].
pub fn jvp(
    config: &ModelConfig,
    params: &MlpParams<f64>,
    z: &[f64],
    tangent: &[f64],
    r: f64,
    t: f64,
    class: usize,
    w: f64,
) -> (Vec<f64>, Vec<f64>) {
    jvp_in(config, params, z, tangent, r, t, class, w, [0.0, 1.0])
}

/// u and du/dt along (tangent, 0, 1) of one row, by dual numbers.
pub fn jvp_in(
    config: &ModelConfig,
    params: &MlpParams<f64>,
    z: &[f64],
    tangent: &[f64],
    r: f64,
    t: f64,
    class: usize,
    w: f64,
    interval: [f64; 2],
) -> (Vec<f64>, Vec<f64>) {
    let zd: Vec<Dual<f64>> = z
        .iter()
        .zip(tangent)
        .map(|(&x, &dx)| Dual::new(x, dx))
        .collect();
    let (u, _) = net_in(
        config,
        params,
        &zd,
        Dual::constant_of(r),
        Dual::new(t, 1.0),
        class,
        w,
        interval,
    );
    (
        u.iter().map(|d| d.value).collect(),
        u.iter().map(|d| d.tangent).collect(),
    )
}

/// z_i = (1 - t_i) x_i + t_i e_i.
pub fn z_row(batch: &Batch<f64>, i: usize) -> Vec<f64> {
    let t = batch.t[[i, 0]];
    (0..batch.x.ncols())
        .map(|j| (1.0 - t) * batch.x[[i, j]] + t * batch.e[[i, j]])
        .collect()
}

/// v_c,i = e_i - x_i.
pub fn v_c_row(batch: &Batch<f64>, i: usize) -> Vec<f64> {
    (0..batch.x.ncols())
        .map(|j| batch.e[[i, j]] - batch.x[[i, j]])
        .collect()
}

impl Problem<'_> {
    /// Row i's class: its label, or (an unconditional model) 0 = the model's "null class" count.
    pub fn class(&self, i: usize) -> usize {
        self.batch
            .labels
            .get(i)
            .copied()
            .unwrap_or(self.model.classes)
    }

    /// Row i's guidance scale w (1 without a guidance input).
    pub fn scale(&self, i: usize) -> f64 {
        if self.model.guidance_input {
            self.batch.scales[[i, 0]]
        } else {
            1.0
        }
    }

    /// Row i's guidance interval [t_min, t_max] ([0, 1] without the interval input).
    pub fn interval(&self, i: usize) -> [f64; 2] {
        if self.model.guidance_interval_input {
            [self.batch.intervals[[i, 0]], self.batch.intervals[[i, 1]]]
        } else {
            [0.0, 1.0]
        }
    }

    /// The scale of row i's velocity estimates: w inside its interval, 1 outside (iMF's w').
    pub fn estimate_scale(&self, i: usize) -> f64 {
        let ([lo, hi], t) = (self.interval(i), self.batch.t[[i, 0]]);
        if lo <= t && t <= hi {
            self.scale(i)
        } else {
            1.0
        }
    }

    /// v^(z, t | class, w, [0, 1]) of row i: u(z, t, t) or the v-head, the interval [0, 1].
    fn velocity(&self, params: &MlpParams<f64>, i: usize, class: usize, w: f64) -> Vec<f64> {
        let (z, t) = (z_row(self.batch, i), self.batch.t[[i, 0]]);
        let (u, v) = net(self.model, params, &z, t, t, class, w);
        match self.loss.v_source {
            VSource::Boundary => u,
            VSource::Head => v.expect("v-source head needs a v-head"),
        }
    }

    /// The regression target v_g of row i: v_c, or the guided velocity (v_c outside MF's fixed
    /// interval; with iMF's interval input at w' = [`Self::estimate_scale`], so v_c outside the
    /// row's interval too).
    fn target(&self, params: &MlpParams<f64>, i: usize) -> Vec<f64> {
        let v_c = v_c_row(self.batch, i);
        let (class, w, classes) = (self.class(i), self.estimate_scale(i), self.model.classes);
        let t = self.batch.t[[i, 0]];
        let outside = self
            .loss
            .guidance_interval
            .is_some_and(|[lo, hi]| t < lo || t > hi);
        if class == classes || outside {
            return v_c;
        }
        let d = v_c.len();
        match self.loss.guidance {
            Guidance::None => v_c,
            Guidance::Target { w: scale, kappa } => {
                let own = self.velocity(params, i, class, w);
                let null = self.velocity(params, i, classes, 1.0);
                (0..d)
                    .map(|j| scale * v_c[j] + kappa * own[j] + (1.0 - scale - kappa) * null[j])
                    .collect()
            }
            Guidance::Input { .. } => {
                let own = self.velocity(params, i, class, w);
                let null = self.velocity(params, i, classes, 1.0);
                (0..d)
                    .map(|j| v_c[j] + (1.0 - 1.0 / w) * (own[j] - null[j]))
                    .collect()
            }
        }
    }
}

/// The stop-gradient quantities of every row at the base parameters, and u there.
pub struct Frozen {
    pub v_target: Vec<Vec<f64>>,
    pub tangent: Vec<Vec<f64>>,
    pub u: Vec<Vec<f64>>,
    pub dudt: Vec<Vec<f64>>,
    /// w_i = (ell_i + c)^-p of the u-loss.
    pub w: Vec<f64>,
    /// The v-head's weights (empty without a v-head).
    pub w_v: Vec<f64>,
}

/// sum_j a_j^2.
fn squared_norm(a: impl Iterator<Item = f64>) -> f64 {
    a.map(|x| x * x).sum()
}

/// Every row's target, tangent = (1 - beta) v_g + beta v^, (u, dudt) along (tangent, 0, 1), and
/// the weights of ell = |u + (t - r) dudt - v_g|^2 (and of the v-head's |v - v_g|^2).
pub fn freeze(problem: &Problem, params: &MlpParams<f64>) -> Frozen {
    let (model, loss, batch) = (problem.model, problem.loss, problem.batch);
    let mut frozen = Frozen {
        v_target: vec![],
        tangent: vec![],
        u: vec![],
        dudt: vec![],
        w: vec![],
        w_v: vec![],
    };
    let weight = |ell: f64| (ell + loss.c).powf(-loss.p);
    for i in 0..batch.len() {
        let (class, w, interval) = (problem.class(i), problem.scale(i), problem.interval(i));
        let (r, t) = (batch.r[[i, 0]], batch.t[[i, 0]]);
        let v_g = problem.target(params, i);
        let own = problem.velocity(params, i, class, problem.estimate_scale(i));
        let tangent: Vec<f64> = (0..model.dim)
            .map(|j| (1.0 - loss.beta) * v_g[j] + loss.beta * own[j])
            .collect();
        let z = z_row(batch, i);
        let (u, dudt) = jvp_in(model, params, &z, &tangent, r, t, class, w, interval);
        frozen.w.push(weight(squared_norm(
            (0..model.dim).map(|j| u[j] + (t - r) * dudt[j] - v_g[j]),
        )));
        if let (_, Some(v)) = net_in(model, params, &z, t, t, class, w, interval) {
            frozen
                .w_v
                .push(weight(squared_norm((0..model.dim).map(|j| v[j] - v_g[j]))));
        }
        frozen.v_target.push(v_g);
        frozen.tangent.push(tangent);
        frozen.u.push(u);
        frozen.dudt.push(dudt);
    }
    frozen
}

/// The loss at `params` with the sg quantities of `frozen`:
/// mean_i w_i |u_i + (t_i - r_i) dudt_i - v_g,i|^2 (+ the v-head's mean_i w_v,i |v_i - v_g,i|^2),
/// where dudt is frozen too unless the variant is exact (then it is the JVP at `params` along the
/// frozen tangent).
pub fn frozen_loss(problem: &Problem, frozen: &Frozen, params: &MlpParams<f64>) -> f64 {
    let (model, batch) = (problem.model, problem.batch);
    let b = batch.len();
    let mut total = 0.0;
    for i in 0..b {
        let (r, t) = (batch.r[[i, 0]], batch.t[[i, 0]]);
        let (class, w, interval) = (problem.class(i), problem.scale(i), problem.interval(i));
        let z = z_row(batch, i);
        let (u, dudt) = if problem.loss.exact {
            jvp_in(
                model,
                params,
                &z,
                &frozen.tangent[i],
                r,
                t,
                class,
                w,
                interval,
            )
        } else {
            let (u, _) = net_in(model, params, &z, r, t, class, w, interval);
            (u, frozen.dudt[i].clone())
        };
        let target = &frozen.v_target[i];
        total += frozen.w[i]
            * squared_norm((0..model.dim).map(|j| u[j] + (t - r) * dudt[j] - target[j]));
        if let (_, Some(v)) = net_in(model, params, &z, t, t, class, w, interval) {
            total += frozen.w_v[i] * squared_norm((0..model.dim).map(|j| v[j] - target[j]));
        }
    }
    total / b as f64
}
