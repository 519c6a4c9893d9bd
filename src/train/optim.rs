//! AdamW with linear warm-up, global-norm gradient clipping and an exponential moving average of
//! the parameters. All state is in plain arrays, updated in place (no allocation per step).
//!
//! ```text
//! g <- g min(1, clip / |g|)                      (when clipping is on)
//! m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
//! lr_k = lr min(1, k / warmup)                   (k = 1, 2, ...)
//! p <- p - lr_k (m / (1 - b1^k)) / (sqrt(v / (1 - b2^k)) + eps) - lr_k wd p
//! d_k = min(d, k / (k + 9))                     (the EMA's warm-up)
//! ema <- d_k ema + (1 - d_k) p
//! ```
//! With wd = 0 this is Adam (Kingma and Ba, 2015); wd > 0 is decoupled weight decay (AdamW).

use crate::flow::model::MlpParams;
use crate::linalg::float::Float;
use ndarray::Zip;

/// Optimizer settings.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Steps of linear warm-up (0: none).
    pub warmup_steps: u64,
    /// Max global gradient norm (None: no clipping).
    pub clip_norm: Option<f64>,
}

impl Default for AdamConfig {
    /// lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay, no warm-up, no clipping.
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            warmup_steps: 0,
            clip_norm: None,
        }
    }
}

impl AdamConfig {
    /// Checks the settings; the message names the bad one.
    pub fn validate(&self) -> Result<(), String> {
        let finite_positive = |name: &str, x: f64| {
            if x > 0.0 && x.is_finite() {
                Ok(())
            } else {
                Err(format!("{name} must be finite and > 0, got {x}"))
            }
        };
        finite_positive("learning rate", self.lr)?;
        finite_positive("eps", self.eps)?;
        for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(format!("{name} must be in [0, 1), got {b}"));
            }
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(format!(
                "weight decay must be finite and >= 0, got {}",
                self.weight_decay
            ));
        }
        if let Some(c) = self.clip_norm {
            finite_positive("gradient clip norm", c)?;
        }
        Ok(())
    }

    /// The learning rate of step k (1-based).
    pub fn lr_at(&self, step: u64) -> f64 {
        if self.warmup_steps == 0 {
            self.lr
        } else {
            self.lr * (step as f64 / self.warmup_steps as f64).min(1.0)
        }
    }
}

/// AdamW state: first and second moments and the step counter.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam<T> {
    pub config: AdamConfig,
    pub m: MlpParams<T>,
    pub v: MlpParams<T>,
    /// Steps taken so far.
    pub step: u64,
}

/// What one update did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateStats {
    /// |g| before clipping.
    pub grad_norm: f64,
    pub lr: f64,
}

/// sqrt(sum of squares) over every gradient tensor, in f64.
///
/// Eight running sums, element i into sum i mod 8: one sum is a chain of dependent additions
/// (about four cycles each), eight fill the vector units, so the norm of a c2 model (200k
/// gradients) is no longer a serial tail the second thread waits for. The order is fixed, so the
/// result is reproducible.
pub fn global_norm<T: Float>(grads: &MlpParams<T>) -> f64 {
    const LANES: usize = 8;
    let mut sums = [0.0f64; LANES];
    for tensor in grads.tensors() {
        let Some(values) = tensor.as_slice_memory_order() else {
            // Not contiguous (a view-built tensor): one sum, in logical order.
            sums[0] += tensor.iter().map(|&g| g.to_f64() * g.to_f64()).sum::<f64>();
            continue;
        };
        let chunks = values.chunks_exact(LANES);
        let rest = chunks.remainder();
        for chunk in chunks {
            for (sum, &g) in sums.iter_mut().zip(chunk) {
                *sum += g.to_f64() * g.to_f64();
            }
        }
        for (sum, &g) in sums.iter_mut().zip(rest) {
            *sum += g.to_f64() * g.to_f64();
        }
    }
    sums.iter().sum::<f64>().sqrt()
}

impl<T: Float> Adam<T> {
    pub fn new(config: AdamConfig, params: &MlpParams<T>) -> Self {
        Adam {
            config,
            m: params.zeros_like(),
            v: params.zeros_like(),
            step: 0,
        }
    }

    /// One update of `params` from `grads` (clipped in place when clipping is on).
    pub fn update(&mut self, params: &mut MlpParams<T>, grads: &mut MlpParams<T>) -> UpdateStats {
        let grad_norm = global_norm(grads);
        self.update_with_norm(params, grads, grad_norm)
    }

    /// [`Adam::update`] for a caller that already has `grad_norm` = [`global_norm`]`(grads)`.
    pub fn update_with_norm(
        &mut self,
        params: &mut MlpParams<T>,
        grads: &mut MlpParams<T>,
        grad_norm: f64,
    ) -> UpdateStats {
        self.step += 1;
        let c = self.config;
        let clip_scale = match c.clip_norm {
            Some(max) if grad_norm > max => max / grad_norm,
            _ => 1.0,
        };
        let lr = c.lr_at(self.step);
        let bias1 = 1.0 - c.beta1.powi(self.step.min(i32::MAX as u64) as i32);
        let bias2 = 1.0 - c.beta2.powi(self.step.min(i32::MAX as u64) as i32);
        let (b1, b2) = (T::from_f64(c.beta1), T::from_f64(c.beta2));
        let (one_b1, one_b2) = (T::from_f64(1.0 - c.beta1), T::from_f64(1.0 - c.beta2));
        let step_size = T::from_f64(lr / bias1);
        let inv_sqrt_bias2 = T::from_f64(1.0 / bias2.sqrt());
        let eps = T::from_f64(c.eps);
        let decay = T::from_f64(lr * c.weight_decay);
        let clip = T::from_f64(clip_scale);

        let tensors = params
            .tensors_mut()
            .zip(grads.tensors_mut())
            .zip(self.m.tensors_mut().zip(self.v.tensors_mut()));
        for ((p, g), (m, v)) in tensors {
            Zip::from(p).and(g).and(m).and(v).for_each(|p, g, m, v| {
                *g *= clip;
                *m = b1 * *m + one_b1 * *g;
                *v = b2 * *v + one_b2 * *g * *g;
                let denom = (*v).sqrt() * inv_sqrt_bias2 + eps;
                *p = *p - step_size * *m / denom - decay * *p;
            });
        }
        UpdateStats { grad_norm, lr }
    }
}

/// The EMA's decay at update k (1-based) for a configured `decay`: min(decay, k / (k + 9)), that
/// is (1 + n) / (10 + n) after n earlier updates, the warm-up of diffusers' `EMAModel`. Without
/// it the average weights the random initial parameters by decay^k (0.999^1500 = 0.22 after
/// 1500 steps), and a short run samples from them. A function of the step count alone, so a
/// checkpoint resumes it bit for bit.
pub fn ema_decay_at(decay: f64, step: u64) -> f64 {
    let k = step.max(1) as f64;
    decay.min(k / (k + 9.0))
}

/// ema <- decay ema + (1 - decay) params.
pub fn ema_update<T: Float>(ema: &mut MlpParams<T>, params: &MlpParams<T>, decay: f64) {
    let (d, one_d) = (T::from_f64(decay), T::from_f64(1.0 - decay));
    for (e, p) in ema.tensors_mut().zip(params.tensors()) {
        Zip::from(e)
            .and(p)
            .for_each(|e, &p| *e = d * *e + one_d * p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::flow::model::{Heads, ModelConfig};
    use crate::rng::Rng;
    use crate::verify::check::{scalar_relative_error, REWRITE_REL_TOL};

    #[test]
    fn global_norm_is_the_euclidean_norm_of_all_gradients() {
        for (width, depth, heads) in [(1, 1, Heads::U), (7, 2, Heads::UV), (33, 3, Heads::U)] {
            let model = ModelConfig {
                dim: 3,
                width,
                depth,
                heads,
                ..ModelConfig::default()
            };
            let mut rng = Rng::seed_from_u64(width as u64);
            let grads = MlpParams::<f32>::init(&model, &mut rng);
            let naive: f64 = grads
                .tensors()
                .flat_map(|a| a.iter())
                .map(|&g| (g as f64) * (g as f64))
                .sum::<f64>()
                .sqrt();
            let norm = global_norm(&grads);
            assert!(
                scalar_relative_error(norm, naive) < REWRITE_REL_TOL,
                "width {width}, depth {depth}: {norm} vs naive {naive}"
            );
        }
    }
}
