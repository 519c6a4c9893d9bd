//! Instrument 5: isotropic Gaussian data x ~ N(0, s^2 I_d), where the flow is linear and the average
//! velocity and the conditional variances are known in closed form.
//!
//! ```text
//! z_t = (1 - t) x + t e ~ N(0, sigma_t^2 I),     sigma_t^2 = (1 - t)^2 s^2 + t^2
//! v(z, t) = E[v_c | z] = k(t) z,                 k(t) = d ln sigma_t / dt = (t - (1 - t) s^2) / sigma_t^2
//! flow map z_r = (sigma_r / sigma_t) z_t,        rho = sigma_r / sigma_t
//! u*(z, r, t) = (z_t - z_r) / (t - r) = a(r, t) z,   a = (1 - rho) / (t - r)   (r -> t: a -> k(t))
//! J_z u* = a I,   d_t u* = a_t z,   a_t = (rho k(t) (t - r) - (1 - rho)) / (t - r)^2   (r -> t: (k' - k^2) / 2)
//! x | z ~ N((1 - t) s^2 z / sigma_t^2, s^2 t^2 / sigma_t^2 I)  =>  Var[v_c | z] = s^2 / sigma_t^2 per coordinate
//! ```
//!
//! With u = u*, the conditional variances of instrument 1 ([`super::conditional_variance`]) are, with
//! V = d s^2 / sigma_t^2 = tr Cov[v_c | z] (independent of z) and (t - r) a = 1 - rho:
//!
//! ```text
//! tangent:   (1 - beta)^2 V
//! JVP term:  (1 - beta)^2 (1 - rho)^2 V
//! target:    alpha^2 V,   alpha = 1 - (1 - beta)(1 - rho)     (MF: rho^2 V, iMF: V)
//! ell:       2 d alpha^4 (s^2 / sigma_t^2)^2                  (delta = u* - target ~ N(0, alpha^2 s^2/sigma_t^2 I): E[target | z] = u* by the MeanFlow identity)
//! ```
//!
//! So MF's target has the lower variance exactly where rho < 1, i.e. where sigma_t grows between r
//! and t (the map back from t to r contracts), and the higher where sigma_t shrinks. sigma_t^2 is
//! smallest at t* = s^2 / (1 + s^2): 0.083 for s = 0.3 (narrow: sigma_t grows on almost all of
//! [0, 1]), 0.9 for s = 3 (wide: sigma_t shrinks on almost all of it).

use super::conditional_variance::{AverageVelocity, Linearization, Quantity};
use crate::flow::model::{MlpParams, ModelConfig};
use crate::flow::sampling::Evaluator;
use crate::rng::Rng;
use ndarray::{Array2, Array3, ArrayView2};

/// Below this gap t - r the closed forms use their limits r -> t (avoids 0/0).
const GAP_LIMIT: f64 = 1e-9;

/// The exact flow of N(0, s^2 I_dim) data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaussianFlow {
    pub sigma: f64,
    pub dim: usize,
}

impl GaussianFlow {
    pub fn new(sigma: f64, dim: usize) -> Self {
        assert!(sigma > 0.0 && sigma.is_finite() && dim >= 1);
        GaussianFlow { sigma, dim }
    }

    /// sigma_t^2 = (1 - t)^2 s^2 + t^2, the variance per coordinate of z_t.
    pub fn sigma_t2(&self, t: f64) -> f64 {
        let s2 = self.sigma * self.sigma;
        (1.0 - t) * (1.0 - t) * s2 + t * t
    }

    /// sigma_t.
    pub fn sigma_t(&self, t: f64) -> f64 {
        self.sigma_t2(t).sqrt()
    }

    /// The velocity coefficient k(t) = (t - (1 - t) s^2) / sigma_t^2: v(z, t) = k(t) z.
    pub fn velocity_coef(&self, t: f64) -> f64 {
        (t - (1.0 - t) * self.sigma * self.sigma) / self.sigma_t2(t)
    }

    /// k'(t) = ((1 + s^2) sigma_t^2 - 2 (t - (1 - t) s^2)^2) / sigma_t^4.
    fn velocity_coef_dt(&self, t: f64) -> f64 {
        let s2 = self.sigma * self.sigma;
        let q = t - (1.0 - t) * s2;
        let st2 = self.sigma_t2(t);
        ((1.0 + s2) * st2 - 2.0 * q * q) / (st2 * st2)
    }

    /// rho = sigma_r / sigma_t: the flow map from t back to r is z_r = rho z_t.
    pub fn rho(&self, r: f64, t: f64) -> f64 {
        self.sigma_t(r) / self.sigma_t(t)
    }

    /// a(r, t) = (1 - rho) / (t - r), u*(z, r, t) = a z; k(t) at r = t.
    pub fn u_coef(&self, r: f64, t: f64) -> f64 {
        let h = t - r;
        if h.abs() < GAP_LIMIT {
            self.velocity_coef(t)
        } else {
            (1.0 - self.rho(r, t)) / h
        }
    }

    /// d a / d t at fixed r: (rho k(t) h - (1 - rho)) / h^2, h = t - r, using d rho / dt = -rho k(t);
    /// at r = t the limit (k'(t) - k(t)^2) / 2.
    pub fn u_coef_dt(&self, r: f64, t: f64) -> f64 {
        let h = t - r;
        if h.abs() < GAP_LIMIT {
            let k = self.velocity_coef(t);
            (self.velocity_coef_dt(t) - k * k) / 2.0
        } else {
            let rho = self.rho(r, t);
            (rho * self.velocity_coef(t) * h - (1.0 - rho)) / (h * h)
        }
    }

    /// V = tr Cov[v_c | z_t] = d s^2 / sigma_t^2 (the same at every z).
    pub fn var_vc(&self, t: f64) -> f64 {
        self.dim as f64 * self.sigma * self.sigma / self.sigma_t2(t)
    }

    /// tr Cov[tangent | z] = (1 - beta)^2 V.
    pub fn var_tangent(&self, beta: f64, t: f64) -> f64 {
        (1.0 - beta).powi(2) * self.var_vc(t)
    }

    /// tr Cov[(t - r) dudt | z] with u = u*: (1 - beta)^2 (1 - rho)^2 V.
    pub fn var_jvp_term(&self, beta: f64, r: f64, t: f64) -> f64 {
        ((1.0 - beta) * (1.0 - self.rho(r, t))).powi(2) * self.var_vc(t)
    }

    /// alpha = 1 - (1 - beta)(1 - rho): target = alpha v_c + (deterministic) with u = u*.
    pub fn target_coef(&self, beta: f64, r: f64, t: f64) -> f64 {
        1.0 - (1.0 - beta) * (1.0 - self.rho(r, t))
    }

    /// tr Cov[target | z] with u = u*: alpha^2 V (MF: rho^2 V; iMF: V).
    pub fn var_target(&self, beta: f64, r: f64, t: f64) -> f64 {
        self.target_coef(beta, r, t).powi(2) * self.var_vc(t)
    }

    /// Var[ell | z] with u = u*: delta ~ N(0, alpha^2 s^2 / sigma_t^2 I_d), so ell is that
    /// variance times a chi-square with d degrees of freedom: 2 d (alpha^2 s^2 / sigma_t^2)^2.
    pub fn var_ell(&self, beta: f64, r: f64, t: f64) -> f64 {
        let per = self.target_coef(beta, r, t).powi(2) * self.sigma * self.sigma / self.sigma_t2(t);
        2.0 * self.dim as f64 * per * per
    }

    /// The closed form of instrument 1's `quantity` at (r, t) with u = u*, where there is one: not
    /// for the weighted loss (no simple form) nor the gradient (u* has no parameters).
    pub fn closed_form(&self, quantity: Quantity, beta: f64, r: f64, t: f64) -> Option<f64> {
        match quantity {
            Quantity::Tangent => Some(self.var_tangent(beta, t)),
            Quantity::JvpTerm => Some(self.var_jvp_term(beta, r, t)),
            Quantity::Target => Some(self.var_target(beta, r, t)),
            Quantity::Ell => Some(self.var_ell(beta, r, t)),
            Quantity::Loss | Quantity::Gradient => None,
        }
    }

    /// u*(z, r, t) = a(r, t) z for rows z, with r and t per row.
    pub fn u(&self, z: ArrayView2<f64>, r: &[f64], t: &[f64]) -> Array2<f64> {
        let mut out = z.to_owned();
        for (i, mut row) in out.rows_mut().into_iter().enumerate() {
            let a = self.u_coef(r[i], t[i]);
            row.iter_mut().for_each(|v| *v *= a);
        }
        out
    }
}

impl AverageVelocity for GaussianFlow {
    fn dim(&self) -> usize {
        self.dim
    }

    fn linearize(&mut self, z: ArrayView2<f64>, r: &[f64], t: &[f64]) -> Linearization {
        let (n, d) = z.dim();
        let mut jac = Array3::zeros((n, d, d));
        let mut dt = z.to_owned();
        for i in 0..n {
            let a = self.u_coef(r[i], t[i]);
            for j in 0..d {
                jac[[i, j, j]] = a;
            }
            let at = self.u_coef_dt(r[i], t[i]);
            dt.row_mut(i).iter_mut().for_each(|v| *v *= at);
        }
        Linearization {
            u: self.u(z, r, t),
            v_hat: self.u(z, t, t),
            jac,
            dt,
        }
    }

    fn parameter_gram(
        &mut self,
        _z: ArrayView2<f64>,
        _r: &[f64],
        _t: &[f64],
    ) -> Option<Array3<f64>> {
        None
    }
}

/// The error of a model's u against u* at one (r, t), over z from the marginal N(0, sigma_t^2 I).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct UError {
    pub r: f64,
    pub t: f64,
    /// sqrt(mean |u - u*|^2) (per point, summed over coordinates).
    pub rms_error: f64,
    /// sqrt(mean |u*|^2).
    pub rms_exact: f64,
    /// rms_error / rms_exact (infinite where u* = 0, i.e. k(t) = 0 at r = t).
    pub relative: f64,
    /// rms_error / sqrt(mean |v(z, t)|^2 + V): error relative to the scale of the regression
    /// target E|v_c|^2 = |v|^2 + tr Cov[v_c | z] (never 0).
    pub relative_to_target: f64,
}

/// u of an MLP against u* at each (r, t) of `pairs`, with `n_z` points z ~ N(0, sigma_t^2 I) per pair.
pub fn u_errors(
    config: ModelConfig,
    params: &MlpParams<f64>,
    flow: &GaussianFlow,
    pairs: &[(f64, f64)],
    n_z: usize,
    rng: &mut Rng,
) -> Vec<UError> {
    let mut eval = Evaluator::new(config, params);
    pairs
        .iter()
        .map(|&(r, t)| {
            let sd = flow.sigma_t(t);
            let z = Array2::from_shape_simple_fn((n_z, flow.dim), || sd * rng.normal());
            let u = eval.u_at(z.view(), r, t);
            let exact = z.mapv(|v| v * flow.u_coef(r, t));
            let err = (&u - &exact).mapv(|v| v * v).sum() / n_z as f64;
            let ex = exact.mapv(|v| v * v).sum() / n_z as f64;
            let v2 = z.mapv(|v| (v * flow.velocity_coef(t)).powi(2)).sum() / n_z as f64;
            UError {
                r,
                t,
                rms_error: err.sqrt(),
                rms_exact: ex.sqrt(),
                relative: err.sqrt() / ex.sqrt(),
                relative_to_target: err.sqrt() / (v2 + flow.var_vc(t)).sqrt(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::check::{central_difference, FD_REL_TOL};

    #[test]
    fn u_star_is_the_flow_and_its_derivatives_match_differences() {
        for &s in &[0.3, 3.0] {
            let f = GaussianFlow::new(s, 1);
            for &(r, t) in &[
                (0.0, 1.0),
                (0.2, 0.7),
                (0.5, 0.5),
                (0.05, 0.06),
                (0.9, 0.95),
            ] {
                // d sigma_t / dt / sigma_t = k(t).
                let k_fd = central_difference(|e| f.sigma_t(t + e).ln());
                assert!((k_fd - f.velocity_coef(t)).abs() < FD_REL_TOL * (1.0 + k_fd.abs()));
                let a_fd = central_difference(|e| f.u_coef(r, t + e));
                let a_t = f.u_coef_dt(r, t);
                if t > r {
                    assert!(
                        (a_fd - a_t).abs() < 1e-5 * (1.0 + a_t.abs()),
                        "s {s} r {r} t {t}: {a_fd} vs {a_t}"
                    );
                }
                // The flow: z_r = z_t - (t - r) u*(z_t, r, t) = rho z_t.
                let z = 1.7;
                let zr = z - (t - r) * f.u_coef(r, t) * z;
                assert!((zr - f.rho(r, t) * z).abs() < 1e-12);
            }
            // The limit r -> t of a_t, against the formula just off the diagonal.
            let (t, h) = (0.6, 1e-4);
            let near = f.u_coef_dt(t - h, t);
            let at = f.u_coef_dt(t, t);
            assert!(
                (near - at).abs() < 1e-3 * (1.0 + at.abs()),
                "{near} vs {at}"
            );
        }
    }
}
