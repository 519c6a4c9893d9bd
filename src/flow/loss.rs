//! The MeanFlow family of losses, one definition with named presets.
//!
//! ```text
//! z = (1 - t) x + t e,   v_c = e - x                      (conditional velocity)
//! v_g = v_c, or the guided velocity of flow::guidance     (the regression target)
//! v_hat = sg(u(z, t, t))   (v_source = boundary)  or  sg(v(z, t))  (v_source = head)
//! tangent = (1 - beta) v_g + beta v_hat
//! (u, dudt) = jvp(u, (z, r, t), (tangent, 0, 1))
//! delta = u + (t - r) sg(dudt) - v_g                      (exact: no sg on dudt)
//! ell_i = sum_j delta_ij^2,  w_i = sg((ell_i + c)^-p),  loss_u = mean_i w_i ell_i
//! heads = uv:  delta_v = v(z, t) - v_g,  loss_v likewise;  loss = loss_u (+ loss_v)
//! ```
//!
//! A conditional model (classes > 0) sees each row's class c (the null class C where the label was
//! dropped, with probability `label_dropout`) in every network evaluation above, and its scale w
//! too if it takes one (iMF's guidance as an input), and its guidance interval [t_min, t_max] if
//! it takes that too. The model's own velocity estimates (v_hat and the two velocities of the
//! guided target) are then evaluated with the interval [0, 1] and the scale w' (w inside the
//! row's interval, 1 outside), as Lyy-iiis/imeanflow `imf.py` (`guidance_fn`, `v_cond_fn`) does.
//!
//! beta = 0 is MeanFlow (MF) in velocity form: delta = u - sg(v_c - (t - r) dudt), the same value
//! and gradient as the classic |u - sg(u_tgt)|^2. beta = 1 with the boundary source is improved
//! MeanFlow (iMF): the tangent is the network's own velocity, a deterministic function of z.
//! `mse` = mean_i ell_i is reported beside the weighted loss, which sits near 1 when p = 1 (the presets use p = 0).

use crate::autodiff::elementwise::Elementwise;
use crate::autodiff::tape::{Tape, Var};
use crate::flow::guidance::{record_guided_target, Guidance, TargetInputs};
use crate::flow::model::{fill_one_hot, Heads, MlpParams, ModelConfig, ParamVars, TapeModel};
use crate::linalg::float::Float;
use ndarray::{Array2, ArrayViewMut2, Zip};

/// Where the iMF tangent's velocity v_hat comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VSource {
    /// v_hat = u(z, t, t), the boundary of the average velocity.
    Boundary,
    /// v_hat = v(z, t), the auxiliary v-head (needs heads = uv).
    Head,
}

crate::named_enum!(VSource, "v-source", { Boundary => "boundary", Head => "head" });

/// The loss options; see the module documentation for the formulas.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    /// Tangent blend: 0 = MF (noisy v_c), 1 = iMF (v_hat). In [0, 1].
    pub beta: f64,
    pub v_source: VSource,
    /// Keep the gradient through dudt (reverse over forward) instead of stopping it.
    pub exact: bool,
    /// Adaptive-weight power p >= 0 (0: plain mean squared error).
    pub p: f64,
    /// Adaptive-weight offset c > 0.
    pub c: f64,
    /// How guidance enters the target (a conditional model only).
    #[serde(default)]
    pub guidance: Guidance,
    /// The probability that a row's label is replaced by the null class during training (a
    /// conditional model only): the unconditional model that guidance needs.
    #[serde(default)]
    pub label_dropout: f64,
    /// MF's guidance interval [t_min, t_max]: the guided target applies on rows with
    /// t_min <= t <= t_max, v_c elsewhere (Gsunshine/meanflow `meanflow.py`,
    /// `jnp.where((t >= t_start) & (t <= t_end), omega, 1.0)`); None: every t.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guidance_interval: Option<[f64; 2]>,
}

/// The named presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossPreset {
    /// MeanFlow: beta = 0.
    Mf,
    /// Improved MeanFlow: beta = 1, v_hat = u(z, t, t).
    Imf,
    /// Improved MeanFlow with the v-head as the source of v_hat.
    ImfHead,
}

crate::named_enum!(LossPreset, "loss", { Mf => "mf", Imf => "imf", ImfHead => "imf-head" });

impl LossConfig {
    /// The preset's options, with plain squared error: p = 0 (c = 1e-3 is used only if p > 0).
    ///
    /// The papers train images with p = 1. On the low-dimensional data this engine is for, p = 1
    /// turns least squares into a robust, mode-seeking fit (each row weighs about ell/(ell + c)),
    /// so u no longer converges to the conditional mean the identity needs (docs/math.md, 4).
    /// Measured (10k steps, 3 x 128, SW1 of 1-step samples, floor 0.030 / 0.051): iMF two_moons
    /// p = 0: 0.075, p = 1: 0.154; iMF checkerboard 0.084 vs 0.380; MF two_moons 0.074 vs 0.077.
    pub fn preset(preset: LossPreset) -> Self {
        let (beta, v_source) = match preset {
            LossPreset::Mf => (0.0, VSource::Boundary),
            LossPreset::Imf => (1.0, VSource::Boundary),
            LossPreset::ImfHead => (1.0, VSource::Head),
        };
        LossConfig {
            beta,
            v_source,
            exact: false,
            p: 0.0,
            c: 1e-3,
            guidance: Guidance::None,
            label_dropout: 0.0,
            guidance_interval: None,
        }
    }

    /// Checks the options against each other and the model; the message names the bad option.
    pub fn validate(&self, model: &ModelConfig) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.beta) {
            return Err(format!("beta must be in [0, 1], got {}", self.beta));
        }
        if !(self.p >= 0.0 && self.p.is_finite()) {
            return Err(format!("p must be finite and >= 0, got {}", self.p));
        }
        if !(self.c > 0.0 && self.c.is_finite()) {
            return Err(format!("c must be finite and > 0, got {}", self.c));
        }
        if self.v_source == VSource::Head && model.heads != Heads::UV {
            return Err("v-source 'head' needs a model with heads = uv".to_string());
        }
        if !(0.0..=1.0).contains(&self.label_dropout) {
            return Err(format!(
                "label dropout must be in [0, 1], got {}",
                self.label_dropout
            ));
        }
        if self.label_dropout > 0.0 && model.classes == 0 {
            return Err("label dropout needs a class-conditional model".to_string());
        }
        self.guidance.validate()?;
        if let Some([lo, hi]) = self.guidance_interval {
            if !matches!(self.guidance, Guidance::Target { .. }) {
                return Err(
                    "a guidance interval applies to guidance in the target (target:W); with guidance as an input (input:WMAX) the interval is drawn per row and given to the network (--guidance-interval random)".to_string(),
                );
            }
            if !(0.0 <= lo && lo < hi && hi <= 1.0) {
                return Err(format!(
                    "the guidance interval [{lo}, {hi}] must satisfy 0 <= t_min < t_max <= 1"
                ));
            }
        }
        if self.guidance != Guidance::None {
            if model.classes == 0 {
                return Err("guidance needs a class-conditional model".to_string());
            }
            if self.label_dropout == 0.0 {
                return Err(
                    "guidance needs label dropout > 0: it combines the class's velocity with the null class's, which only dropped labels train"
                        .to_string(),
                );
            }
        }
        if model.guidance_interval_input && !model.guidance_input {
            return Err(
                "the guidance interval as an input needs a model with a guidance input (input:WMAX)"
                    .to_string(),
            );
        }
        if model.guidance_input != self.guidance.is_input() {
            return Err(if model.guidance_input {
                "a model with a guidance input needs guidance as an input (iMF's)".to_string()
            } else {
                "guidance as an input needs a model with a guidance input".to_string()
            });
        }
        Ok(())
    }
}

/// One batch: data x [B, d], noise e [B, d], times t and r [B, 1] with r <= t; for a conditional
/// model each row's class (`labels`, the null class C for a dropped label; empty otherwise), for
/// a model with a guidance input each row's scale w >= 1 (`scales` [B, 1]; [0, 1] otherwise) and
/// for a model with the guidance interval as an input each row's [t_min, t_max] (`intervals`
/// [B, 2], 0 <= t_min <= t_max <= 1; [0, 2] otherwise).
#[derive(Clone, Debug, PartialEq)]
pub struct Batch<T> {
    pub x: Array2<T>,
    pub e: Array2<T>,
    pub t: Array2<T>,
    pub r: Array2<T>,
    pub labels: Vec<usize>,
    pub scales: Array2<T>,
    pub intervals: Array2<T>,
}

impl<T: Float> Batch<T> {
    /// An unconditional batch (no labels, no scales).
    pub fn new(x: Array2<T>, e: Array2<T>, t: Array2<T>, r: Array2<T>) -> Self {
        Batch {
            x,
            e,
            t,
            r,
            labels: Vec::new(),
            scales: Array2::zeros((0, 1)),
            intervals: Array2::zeros((0, 2)),
        }
    }

    /// Zeros of `rows` x `dim` with the labels and scales `model` needs.
    pub fn zeros(rows: usize, model: &ModelConfig) -> Self {
        let mut batch = Self::new(
            Array2::zeros((rows, model.dim)),
            Array2::zeros((rows, model.dim)),
            Array2::zeros((rows, 1)),
            Array2::zeros((rows, 1)),
        );
        if model.classes > 0 {
            batch.labels = vec![model.classes; rows];
        }
        if model.guidance_input {
            batch.scales = Array2::ones((rows, 1));
        }
        if model.guidance_interval_input {
            batch.intervals = Array2::from_shape_fn((rows, 2), |(_, j)| T::from_f64(j as f64));
        }
        batch
    }

    /// Whether row i's t is inside its guidance interval, t_min <= t <= t_max (true without
    /// intervals).
    pub fn inside_interval(&self, i: usize) -> bool {
        self.intervals.nrows() == 0 || {
            let t = self.t[[i, 0]];
            self.intervals[[i, 0]] <= t && t <= self.intervals[[i, 1]]
        }
    }

    /// The scale w' of row i's velocity estimates: its w inside its guidance interval, 1 outside
    /// (Lyy-iiis/imeanflow `imf.py`, `w = jnp.where((t >= t_min) & (t <= t_max), w, 1.0)`).
    pub fn estimate_scale(&self, i: usize) -> T {
        if self.inside_interval(i) {
            self.scales[[i, 0]]
        } else {
            T::one()
        }
    }

    pub fn len(&self) -> usize {
        self.x.nrows()
    }
    pub fn is_empty(&self) -> bool {
        self.x.nrows() == 0
    }
    /// z = (1 - t) x + t e.
    pub fn z(&self) -> Array2<T> {
        let mut z = Array2::zeros(self.x.dim());
        self.write_z(z.view_mut());
        z
    }
    /// out <- z = (1 - t) x + t e.
    pub fn write_z(&self, out: ArrayViewMut2<T>) {
        Zip::from(out)
            .and(&self.x)
            .and(&self.e)
            .and_broadcast(&self.t)
            .for_each(|z, &x, &e, &t| *z = (T::one() - t) * x + t * e);
    }
    /// v_c = e - x.
    pub fn v_c(&self) -> Array2<T> {
        let mut v = Array2::zeros(self.x.dim());
        self.write_v_c(v.view_mut());
        v
    }
    /// out <- v_c = e - x.
    pub fn write_v_c(&self, out: ArrayViewMut2<T>) {
        Zip::from(out)
            .and(&self.x)
            .and(&self.e)
            .for_each(|v, &x, &e| *v = e - x);
    }
    /// Panics, naming the shapes, unless the batch fits `model`: x, e [B, d], t, r [B, 1], B labels
    /// in 0..=C for a conditional model (none otherwise), scales [B, 1] of w >= 1 for a model with
    /// a guidance input ([0, 1] otherwise).
    pub fn check(&self, model: &ModelConfig) {
        let (b, d) = self.x.dim();
        assert!(
            d == model.dim
                && self.e.dim() == (b, d)
                && self.t.dim() == (b, 1)
                && self.r.dim() == (b, 1),
            "Batch: x {:?}, e {:?}, t {:?}, r {:?}: need x, e [B, {}] and t, r [B, 1]",
            self.x.dim(),
            self.e.dim(),
            self.t.dim(),
            self.r.dim(),
            model.dim
        );
        let labels = if model.classes > 0 { b } else { 0 };
        assert!(
            self.labels.len() == labels,
            "Batch: {} labels for {b} rows of a model with {} classes: need {labels}",
            self.labels.len(),
            model.classes
        );
        if let Some(i) = self.labels.iter().position(|&c| c > model.classes) {
            panic!(
                "Batch: label {} at row {i} is beyond the null class {}",
                self.labels[i], model.classes
            );
        }
        let scale_rows = if model.guidance_input { b } else { 0 };
        assert!(
            self.scales.dim() == (scale_rows, 1),
            "Batch: scales {:?} for {b} rows: need [{scale_rows}, 1]",
            self.scales.dim()
        );
        if let Some(w) = self
            .scales
            .iter()
            .find(|w| w.to_f64().partial_cmp(&1.0).is_none_or(|o| o.is_lt()))
        {
            panic!("Batch: guidance scale {w} is below 1");
        }
        let interval_rows = if model.guidance_interval_input { b } else { 0 };
        assert!(
            self.intervals.dim() == (interval_rows, 2),
            "Batch: intervals {:?} for {b} rows: need [{interval_rows}, 2]",
            self.intervals.dim()
        );
        for (i, row) in self.intervals.rows().into_iter().enumerate() {
            let (lo, hi) = (row[0].to_f64(), row[1].to_f64());
            assert!(
                0.0 <= lo && lo <= hi && hi <= 1.0,
                "Batch: guidance interval [{lo}, {hi}] at row {i}: need 0 <= t_min <= t_max <= 1"
            );
        }
    }
}

/// The tape nodes of every quantity of the loss (names as in the reference cases).
#[derive(Clone, Copy, Debug)]
pub struct LossNodes {
    pub z: Var,
    pub v_c: Var,
    /// The regression target v_g: v_c, or the guided velocity (flow::guidance).
    pub v_target: Var,
    /// Rows 0..`tangent_rows` (see [`tangent_rows`]); None where beta = 0 (MF: the tangent does
    /// not use it, so it is not computed).
    pub v_hat: Option<Var>,
    /// Rows 0..`tangent_rows`: the JVP's tangent; past them it is not needed.
    pub tangent: Var,
    /// How many leading rows carry a tangent: every row from the last with r != t on has
    /// t - r = 0, where (t - r) dudt vanishes whatever dudt is.
    pub tangent_rows: usize,
    pub u: Var,
    pub dudt: Var,
    pub delta: Var,
    /// [B, 1]
    pub ell: Var,
    /// [B, 1]
    pub w: Var,
    pub loss_u: Var,
    pub v_head: Option<VHeadNodes>,
    pub loss: Var,
    /// mean_i ell_i, unweighted.
    pub mse: Var,
}

/// The v-head's part of the loss.
#[derive(Clone, Copy, Debug)]
pub struct VHeadNodes {
    pub v_head: Var,
    pub delta_v: Var,
    pub ell_v: Var,
    pub w_v: Var,
    pub loss_v: Var,
}

/// ell = sum_j delta^2 [B, 1], w = sg((ell + c)^-p), loss = mean(w ell).
fn weighted_squared_error<T: Float>(
    tape: &mut Tape<T>,
    delta: Var,
    loss: &LossConfig,
) -> (Var, Var, Var) {
    let sq = tape.square(delta);
    let ell = tape.sum_cols(sq);
    let shifted = tape.add_scalar(ell, loss.c);
    let w = tape.map(shifted, Elementwise::Pow(-loss.p));
    let w = tape.stop_gradient(w);
    let weighted = tape.mul(w, ell);
    let mean = tape.mean(weighted);
    (ell, w, mean)
}

/// The rows of a batch that need the JVP: 0..k with k one past the last row with r != t (at
/// least 1, so that the nodes are never empty). The batch sampler puts those rows first, so k is
/// the number of rows with r != t there; a tape whose `row_prefix_tangents` is off uses every row.
pub fn tangent_rows<T: Float>(tape: &Tape<T>, batch: &Batch<T>) -> usize {
    let b = batch.len();
    if !tape.optimizations().row_prefix_tangents {
        return b;
    }
    let last_gap = (0..b).rev().find(|&i| batch.t[[i, 0]] != batch.r[[i, 0]]);
    last_gap.map_or(1, |i| i + 1).min(b)
}

/// The rows' conditions as tape constants, the network `net` of `params` sees: one-hot classes
/// [B, C + 1] (a conditional model), scales [B, 1] (a model with a guidance input) and intervals
/// (t_min, t_max) (a model with the interval input).
fn row_net<'p, T: Float>(
    tape: &mut Tape<T>,
    model: &ModelConfig,
    params: &'p ParamVars,
    batch: &Batch<T>,
) -> TapeModel<'p> {
    let classes = (model.classes > 0).then(|| {
        tape.constant_from_fn((batch.len(), model.classes + 1), |onehot| {
            fill_one_hot(onehot, &batch.labels)
        })
    });
    let scales = model
        .guidance_input
        .then(|| tape.constant(batch.scales.view()));
    let intervals = model.guidance_interval_input.then(|| {
        let column = |tape: &mut Tape<T>, j: usize| {
            tape.constant_from_fn((batch.len(), 1), |mut col| {
                col.column_mut(0).assign(&batch.intervals.column(j))
            })
        };
        (column(tape, 0), column(tape, 1))
    });
    TapeModel {
        config: *model,
        params,
        classes,
        scales,
        intervals,
    }
}

/// The network of the model's own velocity estimates on the rows (v_hat and v^(c) of the guided
/// target): `net` itself, but for a model with the interval input the interval [0, 1] and the
/// scale w' of [`Batch::estimate_scale`] (w inside the row's interval, 1 outside).
fn estimate_net<'p, T: Float>(
    tape: &mut Tape<T>,
    net: &TapeModel<'p>,
    batch: &Batch<T>,
) -> TapeModel<'p> {
    if !net.config.guidance_interval_input {
        return TapeModel { ..*net };
    }
    let rows = batch.len();
    let scales = tape.constant_from_fn((rows, 1), |mut col| {
        for (i, w) in col.iter_mut().enumerate() {
            *w = batch.estimate_scale(i);
        }
    });
    let lo = tape.full((rows, 1), T::zero());
    let hi = tape.full((rows, 1), T::one());
    TapeModel {
        scales: Some(scales),
        intervals: Some((lo, hi)),
        ..*net
    }
}

/// The null class on every row, at scale 1 (and interval [0, 1]): the unconditional model
/// guidance contrasts with.
fn null_net<'p, T: Float>(
    tape: &mut Tape<T>,
    model: &ModelConfig,
    params: &'p ParamVars,
    rows: usize,
) -> TapeModel<'p> {
    let classes = tape.constant_from_fn((rows, model.classes + 1), |mut onehot| {
        onehot.fill(T::zero());
        onehot.column_mut(model.classes).fill(T::one());
    });
    let scales = model.guidance_input.then(|| tape.full((rows, 1), T::one()));
    let intervals = model.guidance_interval_input.then(|| {
        (
            tape.full((rows, 1), T::zero()),
            tape.full((rows, 1), T::one()),
        )
    });
    TapeModel {
        config: *model,
        params,
        classes: Some(classes),
        scales,
        intervals,
    }
}

/// sg(v^(z, t)): the model's velocity estimate, u(z, t, t) (boundary) or the v-head (head; its
/// node `v_head` when it was recorded already for these rows and conditions).
fn velocity_estimate<T: Float>(
    tape: &mut Tape<T>,
    net: &TapeModel,
    source: VSource,
    z: Var,
    t: Var,
    v_head: Option<Var>,
) -> Var {
    let v = match (source, v_head) {
        (VSource::Head, Some(v)) => v,
        (VSource::Head, None) => net.v_head(tape, z, t),
        (VSource::Boundary, _) => net.u(tape, z, t, t),
    };
    tape.stop_gradient(v)
}

/// Records the loss on the tape; `backward(nodes.loss)` then gives every parameter's gradient.
/// The JVP runs on rows 0..[`tangent_rows`] alone (a row-prefix tangent), the boundary pass
/// u(z, t, t) that gives v_hat on those rows too (on every row when guidance needs it anyway).
pub fn record_loss<T: Float>(
    tape: &mut Tape<T>,
    model: &ModelConfig,
    params: &ParamVars,
    loss: &LossConfig,
    batch: &Batch<T>,
) -> LossNodes {
    batch.check(model);
    let net = row_net(tape, model, params, batch);
    let z = tape.constant_from_fn(batch.x.dim(), |z| batch.write_z(z));
    let v_c = tape.constant_from_fn(batch.x.dim(), |v| batch.write_v_c(v));
    let t = tape.constant(batch.t.view());
    let r = tape.constant(batch.r.view());

    // The v-head pass (trained by loss_v) comes first: no tangent is seeded yet.
    let v_head = model.heads.eq(&Heads::UV).then(|| net.v_head(tape, z, t));
    let k = tangent_rows(tape, batch);

    // The target v_g; with guidance also v^ of the rows' own conditions on every row, which
    // serves as v_hat on rows 0..k too. With the interval input the estimates see other
    // conditions than the rows' (estimate_net), so the v-head pass above is not one of them.
    let interval_input = model.guidance_interval_input;
    let est = estimate_net(tape, &net, batch);
    let reusable_v_head = v_head.filter(|_| !interval_input);
    let guided = loss.guidance != Guidance::None;
    let own = (guided && (loss.guidance.needs_own_velocity() || loss.beta > 0.0))
        .then(|| velocity_estimate(tape, &est, loss.v_source, z, t, reusable_v_head));
    let v_target = if guided {
        let null_net = null_net(tape, model, params, batch.len());
        let null = velocity_estimate(tape, &null_net, loss.v_source, z, t, None);
        let inputs = TargetInputs { v_c, own, null };
        record_guided_target(
            tape,
            &loss.guidance,
            loss.guidance_interval,
            &batch.labels,
            model.classes,
            batch.t.view(),
            batch.scales.view(),
            interval_input.then(|| batch.intervals.view()),
            &inputs,
        )
    } else {
        v_c
    };

    let (z_k, t_k, v_target_k) = (
        tape.rows(z, 0, k),
        tape.rows(t, 0, k),
        tape.rows(v_target, 0, k),
    );
    let v_hat = (loss.beta > 0.0).then(|| match (own, loss.v_source, reusable_v_head) {
        (Some(own), _, _) => tape.rows(own, 0, k),
        (None, VSource::Head, Some(v)) => {
            let v_k = tape.rows(v, 0, k);
            tape.stop_gradient(v_k)
        }
        (None, VSource::Head, None) if v_head.is_none() => {
            panic!("record_loss: v_source = head needs heads = uv")
        }
        (None, source, _) => {
            let est_k = est.rows(tape, k);
            velocity_estimate(tape, &est_k, source, z_k, t_k, None)
        }
    });
    let noisy = tape.scale(v_target_k, 1.0 - loss.beta);
    let tangent = match v_hat {
        Some(v_hat) => {
            let own = tape.scale(v_hat, loss.beta);
            tape.add(noisy, own)
        }
        None => noisy,
    };
    let tangent = tape.stop_gradient(tangent);

    // Forward mode along (tangent, 0, 1) on (z, r, t), on rows 0..k.
    let ones = tape.full((k, 1), T::one());
    tape.set_tangent(z, tangent);
    tape.set_tangent(t, ones);
    let u = net.u(tape, z, r, t);
    let dudt = tape.tangent_or_zeros(u);

    let dudt_in_loss = if loss.exact {
        dudt
    } else {
        tape.stop_gradient(dudt)
    };
    let h = tape.sub(t, r);
    let correction = tape.mul(h, dudt_in_loss);
    let u_plus = tape.add(u, correction);
    let delta = tape.sub(u_plus, v_target);
    let (ell, w, loss_u) = weighted_squared_error(tape, delta, loss);
    let mse = tape.mean(ell);

    let v_head = v_head.map(|v| {
        let delta_v = tape.sub(v, v_target);
        let (ell_v, w_v, loss_v) = weighted_squared_error(tape, delta_v, loss);
        VHeadNodes {
            v_head: v,
            delta_v,
            ell_v,
            w_v,
            loss_v,
        }
    });
    let total = match v_head {
        Some(vh) => tape.add(loss_u, vh.loss_v),
        None => loss_u,
    };
    LossNodes {
        z,
        v_c,
        v_target,
        v_hat,
        tangent,
        tangent_rows: k,
        u,
        dudt,
        delta,
        ell,
        w,
        loss_u,
        v_head,
        loss: total,
        mse,
    }
}

/// The scalars of one loss evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossValues {
    /// loss_u (+ loss_v): what the gradient is of.
    pub loss: f64,
    pub loss_u: f64,
    pub loss_v: Option<f64>,
    /// mean_i |delta_i|^2, unweighted.
    pub mse: f64,
}

/// Loss values and d loss / d parameters, on a reusable tape (cleared first).
pub fn loss_and_gradients<T: Float>(
    tape: &mut Tape<T>,
    model: &ModelConfig,
    params: &MlpParams<T>,
    loss: &LossConfig,
    batch: &Batch<T>,
) -> (LossValues, MlpParams<T>) {
    let mut grads = params.zeros_like();
    let mut vars = ParamVars::default();
    let values = loss_and_gradients_into(tape, &mut vars, model, params, loss, batch, &mut grads);
    (values, grads)
}

/// As [`loss_and_gradients`], writing the gradient into `grads` (of the parameters' shapes) and
/// reusing `vars` for the parameter nodes: nothing is allocated once the tape is warmed up.
pub fn loss_and_gradients_into<T: Float>(
    tape: &mut Tape<T>,
    vars: &mut ParamVars,
    model: &ModelConfig,
    params: &MlpParams<T>,
    loss: &LossConfig,
    batch: &Batch<T>,
    grads: &mut MlpParams<T>,
) -> LossValues {
    let values = record_loss_and_backward(tape, vars, model, params, loss, batch);
    grads.gradients_into(tape, vars);
    values
}

/// Records the loss of `batch` on `tape` (cleared first; the parameters as the leaves `vars`)
/// and runs backward: afterwards `tape.grad(v)` holds d loss / d v for each parameter node.
pub fn record_loss_and_backward<T: Float>(
    tape: &mut Tape<T>,
    vars: &mut ParamVars,
    model: &ModelConfig,
    params: &MlpParams<T>,
    loss: &LossConfig,
    batch: &Batch<T>,
) -> LossValues {
    tape.clear();
    params.on_tape_into(tape, vars);
    let nodes = record_loss(tape, model, vars, loss, batch);
    tape.backward(nodes.loss);
    LossValues {
        loss: tape.scalar(nodes.loss).to_f64(),
        loss_u: tape.scalar(nodes.loss_u).to_f64(),
        loss_v: nodes.v_head.map(|v| tape.scalar(v.loss_v).to_f64()),
        mse: tape.scalar(nodes.mse).to_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autodiff::elementwise::Elementwise;

    fn model() -> ModelConfig {
        ModelConfig {
            width: 3,
            depth: 1,
            activation: Elementwise::Tanh,
            ..ModelConfig::default()
        }
    }

    /// A batch whose shapes do not fit is refused, naming every shape.
    #[test]
    #[should_panic(expected = "Batch: x (4, 2), e (4, 3), t (4, 1), r (4, 1)")]
    fn a_misshapen_batch_is_refused() {
        let batch = Batch::<f64>::new(
            Array2::zeros((4, 2)),
            Array2::zeros((4, 3)),
            Array2::zeros((4, 1)),
            Array2::zeros((4, 1)),
        );
        batch.check(&model());
    }

    #[test]
    #[should_panic(expected = "Batch: x (3, 2), e (3, 2), t (3, 1), r (2, 1)")]
    fn a_batch_with_too_few_times_is_refused() {
        let batch = Batch::<f64>::new(
            Array2::zeros((3, 2)),
            Array2::zeros((3, 2)),
            Array2::zeros((3, 1)),
            Array2::zeros((2, 1)),
        );
        batch.check(&model());
    }

    #[test]
    fn zeros_fit_their_model_and_report_their_length() {
        let mut m = model();
        m.classes = 3;
        m.class_dim = 2;
        m.guidance_input = true;
        let batch = Batch::<f32>::zeros(5, &m);
        batch.check(&m);
        assert_eq!((batch.len(), batch.is_empty()), (5, false));
        assert_eq!(batch.labels, vec![3; 5]);
        assert!(Batch::<f32>::zeros(0, &model()).is_empty());
    }
}
