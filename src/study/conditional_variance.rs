//! Instrument 1: the variance, given z_t, of every random quantity of the MeanFlow losses, at fixed
//! parameters.
//!
//! At a point z = z_t with times r < t, the only randomness left in a training row is x | z_t (and
//! with it e = (z - (1 - t) x) / t and v_c = (z - x) / t; [`super::posterior`]). With the network
//! fixed, everything else is a function of v_c:
//!
//! ```text
//! tangent  = (1 - beta) v_c + beta v_hat,            v_hat = u(z, t, t)            (fixed given z)
//! dudt     = J tangent + d_t u,                      J = d u(z, r, t) / dz,  d_t u = d u / dt (fixed)
//! jvp term = (t - r) dudt
//! target   = v_c - (t - r) dudt                      (u's regression target in u-form, sg)
//! delta    = u - target,   ell = |delta|^2,   loss = w ell,   w = (ell + c)^-p   (sg)
//! gradient = d loss / d theta = 2 w J_theta^T delta, J_theta = d u(z, r, t) / d theta  (d x P)
//! ```
//!
//! dudt is linear in the tangent (a JVP is), so one Jacobian J per point gives dudt for every redraw
//! and every beta exactly; likewise the per-sample gradient is J_theta^T y with y = 2 w delta, so
//!
//! ```text
//! tr Cov[gradient | z] = tr(J_theta^T Cov[y | z] J_theta) = sum_ab G_ab Cov[y | z]_ab,   G = J_theta J_theta^T (d x d)
//! ```
//!
//! which needs only d backward passes per point, not one per redraw (tests/study_variance.rs checks
//! both identities against `record_loss` on batch-1 tapes).
//!
//! Each point's variance is the unbiased sample variance of its K redraws; a trace sums it over the
//! coordinates. Averages over points (and their standard errors, from the spread over points, which
//! includes the redraw noise) estimate E_z[Var[. | z]]. The model is anything that gives u, J, d_t u
//! and v_hat at a batch of points ([`AverageVelocity`]): the MLP ([`MlpVelocity`]) or the exact
//! average velocity of Gaussian data ([`super::gaussian::GaussianFlow`]).
//!
//! The instrument ([`run_variance`]) runs the estimator at the shared models' initial, MF-trained
//! and iMF-trained parameters on one set of draws per dataset, and reports each quantity's mean
//! over z_t ([`DatasetResult::averages`]), binned by t and by t - r ([`DatasetResult::binned_rows`]),
//! and MF against iMF at the same parameters ([`DatasetResult::summaries`]).
//!
//! Closed-form expectations: MF (beta = 0) target variance tr((I - (t - r) J) Cov[v_c|z] (I - (t - r) J)^T);
//! iMF (beta = 1): dudt is deterministic given z, so Var[target | z] = Var[v_c | z] and the tangent
//! and JVP-term variances are 0; a blend scales the tangent's variance by (1 - beta)^2 and the JVP
//! term's by (1 - beta)^2 (t - r)^2 Var[J v_c | z].

use super::dataset::StudyDataset;
use super::fixture::{ModelCache, TrainedModel};
use super::posterior::{draw_points, DataSource, PosteriorDraws};
use super::{parallel_map, stream_index};
use crate::autodiff::tape::{Tape, Var};
use crate::flow::loss::{LossConfig, LossPreset};
use crate::flow::model::{Linear, MlpParams, ModelConfig, ParamVars, TapeModel};
use crate::rng::Rng;
use crate::verify::metrics::median;
use ndarray::{s, Array2, Array3, ArrayView2, Axis};
use serde::Serialize;

/// A model of the average velocity u at a batch of points, with what the estimator needs.
pub trait AverageVelocity {
    /// The data dimension d.
    fn dim(&self) -> usize;
    /// u, v_hat = u(z, t, t), J = du/dz and d_t u at every point (z [n, d], r and t of length n).
    fn linearize(&mut self, z: ArrayView2<f64>, r: &[f64], t: &[f64]) -> Linearization;
    /// Per point, G = J_theta J_theta^T [n, d, d], J_theta = d u(z, r, t) / d theta (d x P);
    /// None (the default) when the model has no parameters.
    fn parameter_gram(
        &mut self,
        _z: ArrayView2<f64>,
        _r: &[f64],
        _t: &[f64],
    ) -> Option<Array3<f64>> {
        None
    }
}

/// u and its derivatives at a batch of points.
#[derive(Clone, Debug, PartialEq)]
pub struct Linearization {
    /// u(z, r, t), [n, d].
    pub u: Array2<f64>,
    /// v_hat = u(z, t, t), [n, d].
    pub v_hat: Array2<f64>,
    /// jac[i, a, b] = d u_a / d z_b at point i, [n, d, d].
    pub jac: Array3<f64>,
    /// d u / d t at fixed (z, r), [n, d].
    pub dt: Array2<f64>,
}

/// The MLP u(z, r, t) of [`crate::flow::model`] in f64, evaluated on a tape (forward mode for J and d_t u,
/// reverse mode on batch-1 tapes for the parameter Gram matrix).
pub struct MlpVelocity<'a> {
    pub config: ModelConfig,
    pub params: &'a MlpParams<f64>,
    tape: Tape<f64>,
}

/// Rows per tape recording in [`MlpVelocity::linearize`] (bounds the tape's memory).
const CHUNK: usize = 512;

impl<'a> MlpVelocity<'a> {
    pub fn new(config: ModelConfig, params: &'a MlpParams<f64>) -> Self {
        MlpVelocity {
            config,
            params,
            tape: Tape::new(),
        }
    }

    fn constants(tape: &mut Tape<f64>, params: &MlpParams<f64>) -> ParamVars {
        let mut put =
            |l: &Linear<f64>| (tape.constant(l.weight.view()), tape.constant(l.bias.view()));
        ParamVars {
            architecture: params.architecture,
            trunk: params.trunk.iter().map(&mut put).collect(),
            u_head: put(&params.u_head),
            v_head: params.v_head.as_ref().map(put),
            class_embed: None,
        }
    }

    /// u(z, r, t) and, if a tangent is given, its JVP along (z_dot, 0, t_dot) (t_dot = 1 or 0).
    fn pass(
        &mut self,
        z: ArrayView2<f64>,
        r: ArrayView2<f64>,
        t: ArrayView2<f64>,
        z_dot: Option<ArrayView2<f64>>,
        t_dot: bool,
    ) -> (Array2<f64>, Array2<f64>) {
        let tape = &mut self.tape;
        tape.clear();
        let vars = Self::constants(tape, self.params);
        let (zv, rv, tv) = (tape.constant(z), tape.constant(r), tape.constant(t));
        if let Some(zd) = z_dot {
            let zd = tape.constant(zd);
            tape.set_tangent(zv, zd);
        }
        if t_dot {
            let ones = tape.full(t.dim(), 1.0);
            tape.set_tangent(tv, ones);
        }
        let net = TapeModel::new(self.config, &vars);
        let u = net.u(tape, zv, rv, tv);
        let dot = match tape.tangent(u) {
            Some(d) => tape.value(d).to_owned(),
            None => Array2::zeros(tape.shape(u)),
        };
        (tape.value(u).to_owned(), dot)
    }
}

fn column(values: &[f64]) -> Array2<f64> {
    Array2::from_shape_vec((values.len(), 1), values.to_vec()).expect("n x 1")
}

impl AverageVelocity for MlpVelocity<'_> {
    fn dim(&self) -> usize {
        self.config.dim
    }

    /// J e_b by forward mode along (e_b, 0, 0), d_t u along (0, 0, 1), v_hat by a plain pass at r = t.
    fn linearize(&mut self, z: ArrayView2<f64>, r: &[f64], t: &[f64]) -> Linearization {
        let (n, d) = z.dim();
        let mut out = Linearization {
            u: Array2::zeros((n, d)),
            v_hat: Array2::zeros((n, d)),
            jac: Array3::zeros((n, d, d)),
            dt: Array2::zeros((n, d)),
        };
        for start in (0..n).step_by(CHUNK) {
            let end = (start + CHUNK).min(n);
            let zc = z.slice(s![start..end, ..]);
            let (rc, tc) = (column(&r[start..end]), column(&t[start..end]));
            let (v_hat, _) = self.pass(zc, tc.view(), tc.view(), None, false);
            out.v_hat.slice_mut(s![start..end, ..]).assign(&v_hat);
            let (u, dt) = self.pass(zc, rc.view(), tc.view(), None, true);
            out.u.slice_mut(s![start..end, ..]).assign(&u);
            out.dt.slice_mut(s![start..end, ..]).assign(&dt);
            for b in 0..d {
                let mut e_b = Array2::zeros((end - start, d));
                e_b.column_mut(b).fill(1.0);
                let (_, col) = self.pass(zc, rc.view(), tc.view(), Some(e_b.view()), false);
                out.jac.slice_mut(s![start..end, .., b]).assign(&col.view());
            }
        }
        out
    }

    /// For each point, a batch-1 tape with the parameters as leaves: backward from u seeded with e_a
    /// gives row a of J_theta (every parameter, flattened); G_ab = <row a, row b>.
    ///
    /// Up to [`DIRECT_GRAM_MAX_DIM`] dimensions G is those d (d + 1) / 2 dot products over every
    /// parameter. Above, it is the same matrix by layers (`layered_gram`): each layer's weight is
    /// used once, by a dense layer on one row h, so its gradient for output a is h^T delta_a (delta_a
    /// = the bias gradient) and G = sum over layers of (|h|^2 + 1) Delta Delta^T, with Delta the
    /// d x width matrix of the deltas: d^2 x (total width) operations instead of d^2 x parameters
    /// (a 3 x 256 MLP on the 64-D digits: 3.4 M instead of 340 M per point).
    fn parameter_gram(&mut self, z: ArrayView2<f64>, r: &[f64], t: &[f64]) -> Option<Array3<f64>> {
        let (n, d) = z.dim();
        let mut gram = Array3::zeros((n, d, d));
        let direct = d <= DIRECT_GRAM_MAX_DIM;
        let mut rows: Vec<Vec<f64>> = vec![Vec::new(); d];
        let mut layers: Vec<LayerGradients> = Vec::new();
        for i in 0..n {
            let tape = &mut self.tape;
            tape.clear();
            let vars = self.params.on_tape(tape);
            let pairs: Vec<(Var, Var)> = vars
                .trunk
                .iter()
                .chain(std::iter::once(&vars.u_head))
                .chain(vars.v_head.iter())
                .copied()
                .collect();
            let zv = tape.constant(z.slice(s![i..i + 1, ..]));
            let rv = tape.full((1, 1), r[i]);
            let tv = tape.full((1, 1), t[i]);
            let net = TapeModel::new(self.config, &vars);
            let u = net.u(tape, zv, rv, tv);
            if !direct {
                layers.clear();
                layers.resize_with(pairs.len(), LayerGradients::default);
            }
            for (a, row) in rows.iter_mut().enumerate() {
                let mut seed = Array2::zeros((1, d));
                seed[[0, a]] = 1.0;
                tape.backward_with(u, seed.view());
                if direct {
                    row.clear();
                    for leaf in pairs.iter().flat_map(|&(w, b)| [w, b]) {
                        match tape.grad(leaf) {
                            Some(g) => row.extend(g.iter().copied()),
                            None => row.resize(row.len() + tape.value(leaf).len(), 0.0),
                        }
                    }
                } else {
                    for (layer, &(w, b)) in layers.iter_mut().zip(&pairs) {
                        // A layer u does not use (the v-head) has no gradient: no column of G.
                        if let (Some(gw), Some(gb)) = (tape.grad(w), tape.grad(b)) {
                            layer.weight_sq += gw.iter().map(|g| g * g).sum::<f64>();
                            layer.bias_sq += gb.iter().map(|g| g * g).sum::<f64>();
                            layer.deltas.extend(gb.iter().copied());
                        }
                    }
                }
            }
            let mut g = gram.index_axis_mut(Axis(0), i);
            if direct {
                for a in 0..d {
                    for b in 0..=a {
                        let v = ndarray::aview1(&rows[a]).dot(&ndarray::aview1(&rows[b]));
                        g[[a, b]] = v;
                        g[[b, a]] = v;
                    }
                }
            } else {
                layered_gram(&layers, d, &mut g);
            }
        }
        Some(gram)
    }
}

/// Up to this data dimension [`MlpVelocity::parameter_gram`] takes the dot products of the full
/// rows of J_theta (the toys, d <= 2, keep their numbers to the last bit); above, the layered form.
pub const DIRECT_GRAM_MAX_DIM: usize = 8;

/// One dense layer's gradients of u_a, a = 0..d, at one point (batch 1).
#[derive(Clone, Debug, Default)]
struct LayerGradients {
    /// delta_a (the bias gradient of u_a), a = 0..d, one after another ([d, width] row-major);
    /// empty if u does not use the layer.
    deltas: Vec<f64>,
    /// sum_a |weight gradient of u_a|^2 = |h|^2 sum_a |delta_a|^2.
    weight_sq: f64,
    /// sum_a |delta_a|^2.
    bias_sq: f64,
}

/// G = sum over layers of (|h|^2 + 1) Delta Delta^T into `g` (d x d): the weight gradient of u_a
/// is the outer product of the layer's input h with delta_a, so <dW_a, dW_b> = |h|^2 <delta_a,
/// delta_b> and <db_a, db_b> = <delta_a, delta_b>. |h|^2 = weight_sq / bias_sq (0 when every delta
/// is 0, where the layer adds nothing).
fn layered_gram(layers: &[LayerGradients], d: usize, g: &mut ndarray::ArrayViewMut2<f64>) {
    g.fill(0.0);
    for layer in layers.iter().filter(|l| !l.deltas.is_empty()) {
        let width = layer.deltas.len() / d;
        let h_sq = if layer.bias_sq > 0.0 {
            layer.weight_sq / layer.bias_sq
        } else {
            0.0
        };
        let delta = |a: usize| &layer.deltas[a * width..(a + 1) * width];
        for a in 0..d {
            for b in 0..=a {
                let dot: f64 = delta(a).iter().zip(delta(b)).map(|(x, y)| x * y).sum();
                let v = (h_sq + 1.0) * dot;
                g[[a, b]] += v;
                if b != a {
                    g[[b, a]] += v;
                }
            }
        }
    }
}

/// The quantities whose conditional variance is estimated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Quantity {
    /// tr Cov[tangent | z].
    Tangent,
    /// tr Cov[(t - r) dudt | z].
    JvpTerm,
    /// tr Cov[v_c - (t - r) dudt | z].
    Target,
    /// Var[ell | z], ell = |delta|^2 (the unweighted per-sample loss).
    Ell,
    /// Var[w ell | z] (the weighted per-sample loss, w = (ell + c)^-p).
    Loss,
    /// tr Cov[d(w ell)/d theta | z] over all parameters (NaN for a model without parameters).
    Gradient,
}

impl Quantity {
    pub const ALL: [Quantity; 6] = [
        Quantity::Tangent,
        Quantity::JvpTerm,
        Quantity::Target,
        Quantity::Ell,
        Quantity::Loss,
        Quantity::Gradient,
    ];

    /// Column / file name.
    pub fn name(self) -> &'static str {
        match self {
            Quantity::Tangent => "tangent",
            Quantity::JvpTerm => "jvp_term",
            Quantity::Target => "target",
            Quantity::Ell => "ell",
            Quantity::Loss => "loss",
            Quantity::Gradient => "gradient",
        }
    }

    /// The value of this quantity in one point's estimates.
    pub fn of(self, p: &PointVariance) -> f64 {
        match self {
            Quantity::Tangent => p.tangent,
            Quantity::JvpTerm => p.jvp_term,
            Quantity::Target => p.target,
            Quantity::Ell => p.ell,
            Quantity::Loss => p.loss,
            Quantity::Gradient => p.gradient,
        }
    }
}

/// One point's conditional variances (unbiased over its K redraws) for one beta.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PointVariance {
    pub tangent: f64,
    pub jvp_term: f64,
    pub target: f64,
    pub ell: f64,
    pub loss: f64,
    pub gradient: f64,
    /// E[ell | z] (mean over the redraws): the per-sample squared error the loss averages.
    pub mean_ell: f64,
    /// |I - (t - r) J|_F^2 / d: the mean squared singular value of the Jacobian of the model's
    /// own map z_t -> z_r = z_t - (t - r) u(z_t, r, t), the factor MF's target applies to v_c
    /// (< 1: the map contracts; the same for every beta).
    pub map_gain: f64,
}

/// The estimates of one beta at every point.
#[derive(Clone, Debug, PartialEq)]
pub struct BetaVariances {
    pub beta: f64,
    pub points: Vec<PointVariance>,
}

/// Sum over coordinates of the unbiased sample variance of `rows` ([K, d] flattened row-major).
fn trace_variance(rows: &[f64], k: usize, d: usize) -> f64 {
    let mut total = 0.0;
    for j in 0..d {
        let mean = (0..k).map(|m| rows[m * d + j]).sum::<f64>() / k as f64;
        total += (0..k)
            .map(|m| (rows[m * d + j] - mean).powi(2))
            .sum::<f64>();
    }
    total / (k - 1) as f64
}

fn variance(values: &[f64]) -> f64 {
    trace_variance(values, values.len(), 1)
}

/// The unbiased sample covariance of the rows of `rows` ([K, d]), contracted with G: sum_ab G_ab C_ab.
///
/// `centred` is a reusable buffer: the rows minus their means, stored column by column ([d, K]),
/// so that each C_ab is one pass over two contiguous columns.
fn gram_contracted_covariance(
    rows: &[f64],
    k: usize,
    d: usize,
    gram: ArrayView2<f64>,
    centred: &mut Vec<f64>,
) -> f64 {
    centred.clear();
    for j in 0..d {
        let mean = (0..k).map(|m| rows[m * d + j]).sum::<f64>() / k as f64;
        centred.extend((0..k).map(|m| rows[m * d + j] - mean));
    }
    let mut total = 0.0;
    for a in 0..d {
        let col_a = &centred[a * k..(a + 1) * k];
        for b in 0..d {
            let col_b = &centred[b * k..(b + 1) * k];
            let c: f64 = col_a.iter().zip(col_b).map(|(x, y)| x * y).sum();
            total += gram[[a, b]] * c;
        }
    }
    total / (k - 1) as f64
}

/// The estimator: for every point of `draws` and every beta, the conditional variances of the
/// module's quantities, from the model's linearisation at the point and the K redraws
/// v_c = (z - x_k) / t. `p` and `c` are the adaptive weight's power and offset.
///
/// Per point (u, v_hat, J, d_t u from [`AverageVelocity::linearize`], h = t - r) and redraw k:
///
/// ```text
/// tangent_k = (1 - beta) v_c,k + beta v_hat
/// dudt_k    = J tangent_k + d_t u                 (= the JVP along (tangent_k, 0, 1): linear in the tangent)
/// jvp_k     = h dudt_k,   target_k = v_c,k - jvp_k,   delta_k = u - target_k
/// ell_k     = |delta_k|^2,   w_k = (ell_k + c)^-p,   loss_k = w_k ell_k
/// y_k       = 2 w_k delta_k                        (per-sample gradient = J_theta^T y_k)
/// ```
///
/// and the point's estimates are the unbiased variances over k: tr Cov of tangent, jvp and target
/// (sum over coordinates of 1/(K-1) sum_k (. - mean_k .)^2), Var of ell and loss, and
/// tr Cov\[gradient\] = sum_ab G_ab Cov_k\[y\]_ab with G = J_theta J_theta^T
/// ([`AverageVelocity::parameter_gram`]; NaN without parameters). Also per point: mean_k ell_k and
/// the map gain |I - h J|_F^2 / d.
pub fn estimate(
    model: &mut dyn AverageVelocity,
    draws: &PosteriorDraws,
    betas: &[f64],
    p: f64,
    c: f64,
) -> Vec<BetaVariances> {
    let (n, k, d) = (draws.len(), draws.draws(), draws.dim());
    assert_eq!(model.dim(), d, "estimate: model and data dimensions differ");
    assert!(k >= 2, "estimate: need at least 2 redraws per point");
    let lin = model.linearize(draws.z.view(), &draws.r, &draws.t);
    let gram = model.parameter_gram(draws.z.view(), &draws.r, &draws.t);
    let mut out: Vec<BetaVariances> = betas
        .iter()
        .map(|&beta| BetaVariances {
            beta,
            points: Vec::with_capacity(n),
        })
        .collect();
    let mut v_c = vec![0.0; k * d];
    let (mut tangent, mut jvp, mut target, mut y) = (
        vec![0.0; k * d],
        vec![0.0; k * d],
        vec![0.0; k * d],
        vec![0.0; k * d],
    );
    let (mut ell, mut loss) = (vec![0.0; k], vec![0.0; k]);
    let mut dudt = vec![0.0; d];
    let mut centred = Vec::with_capacity(k * d);
    for i in 0..n {
        let (r, t) = (draws.r[i], draws.t[i]);
        let h = t - r;
        // J at point i, row-major (a d x d block of the standard-layout [n, d, d] array).
        let jac_i = lin.jac.index_axis(Axis(0), i);
        let jac = jac_i
            .as_slice()
            .expect("linearize returns a standard-layout Jacobian");
        let mut map_gain = 0.0;
        for a in 0..d {
            for b in 0..d {
                let m = f64::from(u8::from(a == b)) - h * jac[a * d + b];
                map_gain += m * m;
            }
        }
        map_gain /= d as f64;
        for m in 0..k {
            for j in 0..d {
                v_c[m * d + j] = (draws.z[[i, j]] - draws.x[[i, m, j]]) / t;
            }
        }
        for bv in out.iter_mut() {
            let beta = bv.beta;
            for m in 0..k {
                let row = m * d..(m + 1) * d;
                for j in 0..d {
                    tangent[m * d + j] = (1.0 - beta) * v_c[m * d + j] + beta * lin.v_hat[[i, j]];
                }
                let tangent_m = &tangent[m * d..(m + 1) * d];
                for (a, slot) in dudt.iter_mut().enumerate() {
                    *slot = lin.dt[[i, a]]
                        + jac[a * d..(a + 1) * d]
                            .iter()
                            .zip(tangent_m)
                            .map(|(j, tb)| j * tb)
                            .sum::<f64>();
                }
                let mut sq = 0.0;
                for j in 0..d {
                    jvp[m * d + j] = h * dudt[j];
                    target[m * d + j] = v_c[m * d + j] - jvp[m * d + j];
                    let delta = lin.u[[i, j]] - target[m * d + j];
                    y[m * d + j] = delta;
                    sq += delta * delta;
                }
                let w = (sq + c).powf(-p);
                ell[m] = sq;
                loss[m] = w * sq;
                y[row].iter_mut().for_each(|v| *v *= 2.0 * w);
            }
            let gradient = match &gram {
                Some(g) => {
                    gram_contracted_covariance(&y, k, d, g.slice(s![i, .., ..]), &mut centred)
                }
                None => f64::NAN,
            };
            bv.points.push(PointVariance {
                tangent: trace_variance(&tangent, k, d),
                jvp_term: trace_variance(&jvp, k, d),
                target: trace_variance(&target, k, d),
                ell: variance(&ell),
                loss: variance(&loss),
                gradient,
                mean_ell: ell.iter().sum::<f64>() / k as f64,
                map_gain,
            });
        }
    }
    out
}

/// A mean over points with its standard error (sample standard deviation / sqrt(n)).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct MeanSe {
    pub mean: f64,
    pub se: f64,
    pub n: usize,
}

/// The mean of the finite `values` and its standard error; NaN mean if there are none.
pub fn mean_se(values: impl IntoIterator<Item = f64>) -> MeanSe {
    let v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    let n = v.len();
    if n == 0 {
        return MeanSe {
            mean: f64::NAN,
            se: f64::NAN,
            n,
        };
    }
    let mean = v.iter().sum::<f64>() / n as f64;
    let se = if n > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64 / n as f64).sqrt()
    } else {
        f64::NAN
    };
    MeanSe { mean, se, n }
}

/// `bins` equal bins of [lo, hi): for each, the [`mean_se`] of the values whose key falls in it
/// (keys equal to hi go to the last bin).
pub fn binned(values: &[f64], keys: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<MeanSe> {
    let mut groups: Vec<Vec<f64>> = vec![Vec::new(); bins];
    for (&v, &k) in values.iter().zip(keys) {
        let b = ((k - lo) / (hi - lo) * bins as f64).floor();
        if b >= 0.0 && k <= hi {
            groups[(b as usize).min(bins - 1)].push(v);
        }
    }
    groups.into_iter().map(mean_se).collect()
}

/// The centres of `bins` equal bins of [lo, hi).
pub fn bin_centres(lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    (0..bins)
        .map(|b| lo + (b as f64 + 0.5) * (hi - lo) / bins as f64)
        .collect()
}

// ----- the instrument: settings, the runs on the shared models, and what the report shows -----

/// Points whose posterior effective sample size is below this are flagged, and left out of the
/// `ess_ok` averages: at small t the pool's own posterior collapses onto a few points and its
/// redraw variance is near zero, whatever the population's.
pub const ESS_MIN: f64 = 10.0;

/// How much instrument 1 computes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VarianceSettings {
    /// Points z_t per dataset.
    pub points: usize,
    /// Points z_t on the 64-D digits instead of `points`: each point costs d forward passes for J
    /// and d backward passes plus a d x d Gram matrix over every parameter for the gradient.
    pub digits_points: usize,
    /// Posterior redraws of x per point.
    pub draws: usize,
    /// The tangent blends: 0 = MF, 1 = iMF.
    pub betas: Vec<f64>,
    /// Bins of t and of t - r.
    pub bins: usize,
}

impl VarianceSettings {
    /// The study's default: 2048 points (1024 on the digits) x 128 redraws, betas 0, 0.25, ..., 1,
    /// 10 bins.
    pub fn standard() -> Self {
        VarianceSettings {
            points: 2048,
            digits_points: 1024,
            draws: 128,
            betas: vec![0.0, 0.25, 0.5, 0.75, 1.0],
            bins: 10,
        }
    }

    /// Seconds: 96 points (also on the digits) x 16 redraws, betas 0, 0.5, 1, 5 bins.
    pub fn quick() -> Self {
        VarianceSettings {
            points: 96,
            digits_points: 96,
            draws: 16,
            betas: vec![0.0, 0.5, 1.0],
            bins: 5,
        }
    }

    /// The points z_t on `dataset`: `digits_points` on the digits, else `points`.
    pub fn points_for(&self, dataset: &StudyDataset) -> usize {
        match dataset {
            StudyDataset::Toy(_) => self.points,
            StudyDataset::Digits => self.digits_points,
        }
    }
}

/// The estimates of one parameter set on one dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamsResult {
    /// "initial", "initial-imf", "mf" or "imf".
    pub label: &'static str,
    pub by_beta: Vec<BetaVariances>,
}

impl ParamsResult {
    /// E_z of `quantity` (mean over the points, +- SE) at each beta, in the settings' order.
    pub fn means_by_beta(&self, quantity: Quantity) -> Vec<(f64, MeanSe)> {
        self.by_beta
            .iter()
            .map(|bv| (bv.beta, mean_se(bv.points.iter().map(|p| quantity.of(p)))))
            .collect()
    }

    /// E_z |I - (t - r) J|_F^2 / d, the map gain (the same at every beta; NaN without estimates).
    pub fn map_gain(&self) -> MeanSe {
        mean_se(
            self.by_beta
                .first()
                .map(|b| b.points.iter().map(|q| q.map_gain).collect::<Vec<_>>())
                .unwrap_or_default(),
        )
    }
}

/// Instrument 1 on one dataset: the draws and, per parameter set, the estimates.
#[derive(Clone, Debug)]
pub struct DatasetResult {
    pub name: String,
    pub draws: PosteriorDraws,
    pub params: Vec<ParamsResult>,
}

/// The mean over z_t of one (parameter set, beta, quantity), E_z\[q\] ~ (1/n) sum_{i in S} q_i with
/// SE = sd_S(q) / sqrt(n), n = |S|, for three selections S: all points, the points with
/// ESS >= [`ESS_MIN`], and the points with t - r > 1/2 (where (t - r) J weighs most).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AverageRow {
    pub params: &'static str,
    pub beta: f64,
    pub quantity: &'static str,
    pub all: MeanSe,
    pub ess_ok: MeanSe,
    pub gap_over_half: MeanSe,
}

/// Every [`AverageRow`] of one dataset, with its posterior ESS statistics.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DatasetAverages {
    pub dataset: String,
    /// Median over the points of ESS = (sum w)^2 / sum w^2.
    pub ess_median: f64,
    /// Fraction of the points with ESS < [`ESS_MIN`].
    pub ess_below_min_fraction: f64,
    pub averages: Vec<AverageRow>,
}

/// The mean of one quantity over the points whose key (t or t - r) falls in [lo, hi).
#[derive(Clone, Debug, PartialEq)]
pub struct BinnedRow {
    pub params: &'static str,
    pub beta: f64,
    pub quantity: Quantity,
    pub lo: f64,
    pub hi: f64,
    pub stats: MeanSe,
    /// The median posterior ESS of the bin's points.
    pub ess_median: f64,
}

/// What the report's table says of one parameter set: E_z Var[. | z_t] for MF (beta = 0) and iMF
/// (beta = 1) at the same parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamsSummary {
    pub dataset: String,
    pub params: &'static str,
    /// tr Var[target | z_t], MF and iMF.
    pub target: (MeanSe, MeanSe),
    /// The same over the points with t - r > 1/2.
    pub target_gap_over_half: (MeanSe, MeanSe),
    /// tr Var[(t - r) dudt | z_t] of MF (iMF's is 0).
    pub jvp_term_mf: MeanSe,
    /// tr Var[gradient | z_t], MF and iMF.
    pub gradient: (MeanSe, MeanSe),
    /// Var[loss | z_t], MF and iMF.
    pub loss: (MeanSe, MeanSe),
    pub map_gain: MeanSe,
    pub ess_median: f64,
    /// Fraction of points with ESS < [`ESS_MIN`].
    pub ess_below_min_fraction: f64,
}

impl ParamsSummary {
    /// Whether MF's target is less noisy than iMF's: rho < 1 on average, where the model's own map
    /// z_t -> z_r contracts.
    pub fn mf_lower(&self) -> bool {
        self.target.0.mean < self.target.1.mean
    }

    /// MF / iMF of E_z tr Var[target | z_t]: E_z tr Var[(I - (t - r) J) v_c | z_t] over
    /// E_z tr Var[v_c | z_t].
    pub fn target_ratio(&self) -> f64 {
        self.target.0.mean / self.target.1.mean
    }
}

impl DatasetResult {
    /// The estimates of `quantity` at `beta` for parameter set `label`, one per point.
    pub fn values(&self, label: &str, beta: f64, quantity: Quantity) -> Vec<f64> {
        self.params
            .iter()
            .find(|p| p.label == label)
            .and_then(|p| p.by_beta.iter().find(|b| b.beta == beta))
            .map(|b| b.points.iter().map(|p| quantity.of(p)).collect())
            .unwrap_or_default()
    }

    /// Mean over the points selected by `keep(i)`.
    pub fn mean_where(
        &self,
        label: &str,
        beta: f64,
        quantity: Quantity,
        keep: impl Fn(usize) -> bool,
    ) -> MeanSe {
        let v = self.values(label, beta, quantity);
        mean_se(
            v.iter()
                .enumerate()
                .filter(|(i, _)| keep(*i))
                .map(|(_, x)| *x),
        )
    }

    /// t - r per point.
    pub fn gaps(&self) -> Vec<f64> {
        self.draws
            .t
            .iter()
            .zip(&self.draws.r)
            .map(|(t, r)| t - r)
            .collect()
    }

    /// The median posterior ESS over the points.
    pub fn ess_median(&self) -> f64 {
        median(self.draws.ess.iter().copied())
    }

    /// The fraction of points with ESS < [`ESS_MIN`].
    pub fn ess_below_min_fraction(&self) -> f64 {
        let ess = &self.draws.ess;
        ess.iter().filter(|e| **e < ESS_MIN).count() as f64 / ess.len() as f64
    }

    /// Every (parameter set, beta, quantity) averaged three ways ([`AverageRow`]).
    pub fn averages(&self) -> DatasetAverages {
        let gaps = self.gaps();
        let ess = &self.draws.ess;
        let mut rows = Vec::new();
        for p in &self.params {
            for bv in &p.by_beta {
                for q in Quantity::ALL {
                    rows.push(AverageRow {
                        params: p.label,
                        beta: bv.beta,
                        quantity: q.name(),
                        all: self.mean_where(p.label, bv.beta, q, |_| true),
                        ess_ok: self.mean_where(p.label, bv.beta, q, |i| ess[i] >= ESS_MIN),
                        gap_over_half: self.mean_where(p.label, bv.beta, q, |i| gaps[i] > 0.5),
                    });
                }
            }
        }
        DatasetAverages {
            dataset: self.name.clone(),
            ess_median: self.ess_median(),
            ess_below_min_fraction: self.ess_below_min_fraction(),
            averages: rows,
        }
    }

    /// Every (parameter set, beta, quantity) in `bins` equal bins of its `keys` (one per point, in
    /// [0, 1]: t or t - r), with the median ESS of each bin.
    pub fn binned_rows(&self, keys: &[f64], bins: usize) -> Vec<BinnedRow> {
        let width = 1.0 / bins as f64;
        let ess_by_bin: Vec<f64> = (0..bins)
            .map(|b| {
                median(
                    keys.iter()
                        .zip(&self.draws.ess)
                        .filter(|(k, _)| ((**k / width).floor() as usize).min(bins - 1) == b)
                        .map(|(_, e)| *e),
                )
            })
            .collect();
        let mut rows = Vec::new();
        for p in &self.params {
            for bv in &p.by_beta {
                for q in Quantity::ALL {
                    let v: Vec<f64> = bv.points.iter().map(|pt| q.of(pt)).collect();
                    for (b, m) in binned(&v, keys, 0.0, 1.0, bins).into_iter().enumerate() {
                        rows.push(BinnedRow {
                            params: p.label,
                            beta: bv.beta,
                            quantity: q,
                            lo: b as f64 / bins as f64,
                            hi: (b + 1) as f64 / bins as f64,
                            stats: m,
                            ess_median: ess_by_bin[b],
                        });
                    }
                }
            }
        }
        rows
    }

    /// `quantity` of parameter set `label` at `beta` in `bins` equal bins of `keys` (empty when
    /// there is no such estimate).
    pub fn binned(
        &self,
        label: &str,
        beta: f64,
        quantity: Quantity,
        keys: &[f64],
        bins: usize,
    ) -> Vec<MeanSe> {
        let v = self.values(label, beta, quantity);
        if v.is_empty() {
            return Vec::new();
        }
        binned(&v, keys, 0.0, 1.0, bins)
    }

    /// The report's row of each parameter set.
    pub fn summaries(&self) -> Vec<ParamsSummary> {
        let gaps = self.gaps();
        self.params
            .iter()
            .map(|p| {
                let m = |beta, q| self.mean_where(p.label, beta, q, |_| true);
                let far =
                    |beta| self.mean_where(p.label, beta, Quantity::Target, |i| gaps[i] > 0.5);
                ParamsSummary {
                    dataset: self.name.clone(),
                    params: p.label,
                    target: (m(0.0, Quantity::Target), m(1.0, Quantity::Target)),
                    target_gap_over_half: (far(0.0), far(1.0)),
                    jvp_term_mf: m(0.0, Quantity::JvpTerm),
                    gradient: (m(0.0, Quantity::Gradient), m(1.0, Quantity::Gradient)),
                    loss: (m(0.0, Quantity::Loss), m(1.0, Quantity::Loss)),
                    map_gain: p.map_gain(),
                    ess_median: self.ess_median(),
                    ess_below_min_fraction: self.ess_below_min_fraction(),
                }
            })
            .collect()
    }
}

/// Runs the estimator for each parameter set on one set of draws (the same z_t, (r, t) and
/// redraws for every set, so that their differences are not sampling noise), with the presets'
/// weight (p, c) and `threads` parameter sets at a time.
pub fn run_dataset(
    name: String,
    model: ModelConfig,
    pool: &Array2<f64>,
    param_sets: &[(&'static str, &MlpParams<f64>)],
    settings: &VarianceSettings,
    seed: u64,
    threads: usize,
) -> DatasetResult {
    let mut rng = Rng::stream(seed, stream_index(1, &name));
    let draws = draw_points(
        DataSource::Pool(pool.view()),
        settings.points,
        settings.draws,
        &mut rng,
    );
    let weight = LossConfig::preset(LossPreset::Mf);
    let params: Vec<ParamsResult> = parallel_map(param_sets, threads, |&(label, p)| ParamsResult {
        label,
        by_beta: estimate(
            &mut MlpVelocity::new(model, p),
            &draws,
            &settings.betas,
            weight.p,
            weight.c,
        ),
    });
    DatasetResult {
        name,
        draws,
        params,
    }
}

/// The parameter sets instrument 1 looks at: the initial parameters ("initial", and
/// "initial-imf" when iMF's differ, e.g. with a v-head), the MF-trained and the iMF-trained ones.
pub fn parameter_sets<'m>(
    mf: &'m TrainedModel,
    imf: &'m TrainedModel,
) -> Vec<(&'static str, &'m MlpParams<f64>)> {
    let mut sets: Vec<(&'static str, &MlpParams<f64>)> = vec![("initial", &mf.initial)];
    if imf.initial != mf.initial {
        sets.push(("initial-imf", &imf.initial));
    }
    sets.push(("mf", &mf.trained));
    sets.push(("imf", &imf.trained));
    sets
}

/// Instrument 1 on every dataset, at the parameter sets of [`parameter_sets`] of the shared
/// models (trained now if `models` does not hold them yet).
pub fn run_variance(
    datasets: &[StudyDataset],
    models: &mut ModelCache,
    settings: &VarianceSettings,
    seed: u64,
    threads: usize,
) -> Vec<DatasetResult> {
    datasets
        .iter()
        .map(|ds| {
            let mf = models.get(ds, LossPreset::Mf).clone();
            let imf = models.get(ds, LossPreset::Imf).clone();
            let settings = VarianceSettings {
                points: settings.points_for(ds),
                ..settings.clone()
            };
            run_dataset(
                ds.name(),
                mf.config.model,
                &mf.data,
                &parameter_sets(&mf, &imf),
                &settings,
                seed,
                threads,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::fixture::{train_model, FixtureSettings};
    use ndarray::Array3;

    /// A point whose every variance is `v` (the target `target`), with map gain `gain`.
    fn point(v: f64, target: f64, gain: f64) -> PointVariance {
        PointVariance {
            tangent: v,
            jvp_term: v,
            target,
            ell: v,
            loss: v,
            gradient: v,
            mean_ell: v,
            map_gain: gain,
        }
    }

    /// Four points: t = 0.2, 0.4, 0.9, 1.0 with r = 0.1, 0.3, 0.2, 0.1 (gaps 0.1, 0.1, 0.7, 0.9),
    /// ESS 5, 50, 50, 50; MF's target 2 i + 2 at point i, iMF's 1 everywhere.
    fn result() -> DatasetResult {
        let draws = PosteriorDraws {
            z: Array2::zeros((4, 1)),
            r: vec![0.1, 0.3, 0.2, 0.1],
            t: vec![0.2, 0.4, 0.9, 1.0],
            x: Array3::zeros((4, 2, 1)),
            ess: vec![5.0, 50.0, 50.0, 50.0],
        };
        let mf = BetaVariances {
            beta: 0.0,
            points: (0..4)
                .map(|i| point(1.0, 2.0 * i as f64 + 2.0, 0.5))
                .collect(),
        };
        let imf = BetaVariances {
            beta: 1.0,
            points: (0..4).map(|_| point(1.0, 1.0, 0.5)).collect(),
        };
        DatasetResult {
            name: "toy".into(),
            draws,
            params: vec![ParamsResult {
                label: "mf",
                by_beta: vec![mf, imf],
            }],
        }
    }

    #[test]
    fn averages_select_by_ess_and_by_gap() {
        let res = result();
        assert_eq!(res.gaps().len(), 4);
        assert_eq!(res.ess_median(), 50.0);
        assert_eq!(res.ess_below_min_fraction(), 0.25);
        let averages = res.averages();
        // 1 parameter set x 2 betas x 6 quantities.
        assert_eq!(averages.averages.len(), 12);
        let target_mf = averages
            .averages
            .iter()
            .find(|a| a.beta == 0.0 && a.quantity == "target")
            .unwrap();
        // All: (2 + 4 + 6 + 8) / 4; ESS >= 10: (4 + 6 + 8) / 3; gap > 1/2: (6 + 8) / 2.
        assert_eq!(target_mf.all.mean, 5.0);
        assert_eq!((target_mf.ess_ok.mean, target_mf.ess_ok.n), (6.0, 3));
        assert_eq!(
            (target_mf.gap_over_half.mean, target_mf.gap_over_half.n),
            (7.0, 2)
        );
    }

    #[test]
    fn binned_rows_cover_every_bin_with_its_ess() {
        let res = result();
        let rows = res.binned_rows(&res.draws.t, 2);
        // 2 betas x 6 quantities x 2 bins.
        assert_eq!(rows.len(), 24);
        let target: Vec<&BinnedRow> = rows
            .iter()
            .filter(|r| r.beta == 0.0 && r.quantity == Quantity::Target)
            .collect();
        assert_eq!((target[0].lo, target[0].hi), (0.0, 0.5));
        assert_eq!((target[1].lo, target[1].hi), (0.5, 1.0));
        // t in [0, 1/2): points 0 and 1; t in [1/2, 1]: points 2 and 3 (t = 1 in the last bin).
        assert_eq!(target[0].stats.mean, 3.0);
        assert_eq!(target[1].stats.mean, 7.0);
        assert_eq!(target[0].ess_median, 27.5);
        assert_eq!(
            res.binned("mf", 0.0, Quantity::Target, &res.draws.t, 2),
            vec![target[0].stats, target[1].stats]
        );
        assert!(res
            .binned("initial", 0.0, Quantity::Target, &res.draws.t, 2)
            .is_empty());
    }

    #[test]
    fn summaries_compare_mf_with_imf_at_the_same_parameters() {
        let res = result();
        let rows = res.summaries();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!((row.target.0.mean, row.target.1.mean), (5.0, 1.0));
        assert_eq!(row.target_ratio(), 5.0);
        assert!(!row.mf_lower());
        assert_eq!(row.target_gap_over_half.0.mean, 7.0);
        assert_eq!(row.map_gain.mean, 0.5);
        assert_eq!(row.ess_below_min_fraction, 0.25);
        let means = res.params[0].means_by_beta(Quantity::Target);
        assert_eq!(
            means.iter().map(|m| m.0).collect::<Vec<_>>(),
            vec![0.0, 1.0]
        );
        assert_eq!(means[0].1.mean, 5.0);
    }

    #[test]
    fn quick_run_measures_every_parameter_set_on_shared_draws() {
        let fixture = FixtureSettings::quick(4);
        let ds = StudyDataset::Toy(crate::data::ToyDataset::gaussian_narrow());
        let mf = train_model(&fixture, &ds, LossPreset::Mf);
        let imf = train_model(&fixture, &ds, LossPreset::Imf);
        let sets = parameter_sets(&mf, &imf);
        let labels: Vec<&str> = sets.iter().map(|s| s.0).collect();
        // Both presets start from the same initial weights (same seed, u-head only).
        assert_eq!(labels, vec!["initial", "mf", "imf"]);
        let settings = VarianceSettings {
            points: 8,
            digits_points: 8,
            draws: 4,
            betas: vec![0.0, 1.0],
            bins: 2,
        };
        let one = run_dataset(ds.name(), mf.config.model, &mf.data, &sets, &settings, 4, 1);
        let two = run_dataset(ds.name(), mf.config.model, &mf.data, &sets, &settings, 4, 2);
        assert_eq!(one.params, two.params, "the threads changed the result");
        assert_eq!(one.draws.len(), 8);
        for p in &one.params {
            // iMF's tangent is fixed given z_t: no redraw variance.
            let imf_tangent = one.mean_where(p.label, 1.0, Quantity::Tangent, |_| true);
            assert!(
                imf_tangent.mean.abs() < 1e-12,
                "{}: {imf_tangent:?}",
                p.label
            );
        }
        let mut cache = ModelCache::new(fixture);
        let via_cache = run_variance(&[ds], &mut cache, &settings, 4, 1);
        assert_eq!(via_cache[0].params, one.params);
    }
}
