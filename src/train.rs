//! One training step, end to end: draw a batch, compute the loss and its gradient, update with
//! AdamW, update the EMA. Everything a step touches is allocated once, in [`Trainer::new`].
//!
//! Data: a finite pool of points (a loaded file, or [`BUILTIN_POOL_POINTS`] draws of a built-in
//! generator); each batch takes rows uniformly with replacement. Noise e ~ N(0, I); times from
//! the [`TimeSampler`], whose r != t rows come first.

use crate::float::Float;
use crate::fused::FusedStep;
use crate::loss::{loss_and_gradients, Batch, LossConfig, LossValues};
use crate::model::{MlpParams, ModelConfig};
use crate::optim::{ema_update, Adam, AdamConfig, UpdateStats};
use crate::rng::{Rng, RngState};
use crate::tape::Tape;
use crate::time_sampler::TimeSampler;
use ndarray::Array2;

/// Points drawn from a built-in generator to form its training pool (capped at 2^22 numbers).
pub const BUILTIN_POOL_POINTS: usize = 1 << 17;

/// The pool size for data of dimension d drawn from a generator: min(2^17, 2^22 / d).
pub fn builtin_pool_points(dim: usize) -> usize {
    BUILTIN_POOL_POINTS.min((1usize << 22) / dim.max(1))
}

/// Everything that defines a training run's steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainConfig {
    pub model: ModelConfig,
    pub loss: LossConfig,
    pub time: TimeSampler,
    pub adam: AdamConfig,
    pub batch: usize,
    /// EMA decay of the parameters (None: no EMA).
    pub ema_decay: Option<f64>,
    pub seed: u64,
}

impl TrainConfig {
    /// Checks every option; the message names the bad one.
    pub fn validate(&self) -> Result<(), String> {
        let m = &self.model;
        if m.dim == 0 {
            return Err("data dimension must be at least 1".into());
        }
        if m.width == 0 {
            return Err("width must be at least 1".into());
        }
        if m.depth == 0 {
            return Err("depth must be at least 1".into());
        }
        if self.batch == 0 {
            return Err("batch must be at least 1".into());
        }
        if let Some(d) = self.ema_decay {
            if !(0.0..1.0).contains(&d) {
                return Err(format!("EMA decay must be in [0, 1), got {d}"));
            }
        }
        self.loss.validate(m)?;
        self.time.validate()?;
        self.adam.validate()
    }
}

/// How the loss gradient is computed.
#[derive(Debug)]
pub enum GradientEngine<T: Float> {
    /// The general tape: any loss, exact variants included.
    Tape(Box<Tape<T>>),
    /// The fused MLP kernels: stop-gradient losses, allocation-free, skipping r = t rows.
    Fused(Box<FusedStep<T>>),
}

impl<T: Float> GradientEngine<T> {
    /// The fused engine where it applies (stop-gradient losses), else the tape.
    pub fn best_for(config: &TrainConfig) -> Self {
        if FusedStep::<T>::supports(&config.loss) {
            GradientEngine::Fused(Box::new(FusedStep::new(
                config.model,
                config.loss,
                config.batch,
            )))
        } else {
            GradientEngine::Tape(Box::new(Tape::new()))
        }
    }

    /// Loss values, and the gradient written into `grads`.
    pub fn loss_and_gradients(
        &mut self,
        model: &ModelConfig,
        loss: &LossConfig,
        params: &MlpParams<T>,
        batch: &Batch<T>,
        rows_with_gap: usize,
        grads: &mut MlpParams<T>,
    ) -> LossValues {
        match self {
            GradientEngine::Tape(tape) => {
                let (values, g) = loss_and_gradients(tape, model, params, loss, batch);
                *grads = g;
                values
            }
            GradientEngine::Fused(step) => {
                step.loss_and_gradients(params, batch, rows_with_gap, grads)
            }
        }
    }
}

/// Draws training batches from a pool of points.
#[derive(Clone, Debug)]
pub struct BatchSampler {
    pub data: Array2<f64>,
    pub time: TimeSampler,
    pub rng: Rng,
}

impl BatchSampler {
    /// Fills the batch: x rows with replacement from the pool, e ~ N(0, I), (r, t) from the sampler.
    pub fn fill<T: Float>(&mut self, batch: &mut Batch<T>) {
        let n = self.data.nrows();
        assert!(n > 0, "BatchSampler: the data pool is empty");
        for mut row in batch.x.rows_mut() {
            let src = self.data.row(self.rng.below(n));
            row.iter_mut()
                .zip(src.iter())
                .for_each(|(d, &s)| *d = T::from_f64(s));
        }
        batch
            .e
            .iter_mut()
            .for_each(|e| *e = T::from_f64(self.rng.normal()));
        self.time
            .fill(&mut self.rng, batch.t.view_mut(), batch.r.view_mut());
    }
}

/// What one step measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    pub step: u64,
    pub loss: LossValues,
    pub update: UpdateStats,
}

/// A training run's state: parameters, optimizer, EMA, data sampler and work buffers.
#[derive(Debug)]
pub struct Trainer<T: Float> {
    pub config: TrainConfig,
    pub params: MlpParams<T>,
    pub adam: Adam<T>,
    pub ema: Option<MlpParams<T>>,
    pub sampler: BatchSampler,
    pub engine: GradientEngine<T>,
    grads: MlpParams<T>,
    batch: Batch<T>,
}

impl<T: Float> Trainer<T> {
    /// A fresh run: parameters initialised from the seed, data pool given.
    pub fn new(config: TrainConfig, data: Array2<f64>) -> Self {
        let mut init_rng = Rng::stream(config.seed, 0);
        let params = MlpParams::init(&config.model, &mut init_rng);
        Self::from_parts(config, data, params, None, Rng::stream(config.seed, 1))
    }

    /// A run from given state (used by resume): parameters, optimizer state, sampler RNG.
    pub fn from_parts(
        config: TrainConfig,
        data: Array2<f64>,
        params: MlpParams<T>,
        adam: Option<Adam<T>>,
        rng: Rng,
    ) -> Self {
        assert_eq!(
            data.ncols(),
            config.model.dim,
            "Trainer: data has {} columns but the model's dimension is {}",
            data.ncols(),
            config.model.dim
        );
        let b = config.batch;
        let d = config.model.dim;
        let batch = Batch {
            x: Array2::zeros((b, d)),
            e: Array2::zeros((b, d)),
            t: Array2::zeros((b, 1)),
            r: Array2::zeros((b, 1)),
        };
        Trainer {
            adam: adam.unwrap_or_else(|| Adam::new(config.adam, &params)),
            ema: config.ema_decay.map(|_| params.clone()),
            grads: params.zeros_like(),
            engine: GradientEngine::best_for(&config),
            sampler: BatchSampler {
                data,
                time: config.time,
                rng,
            },
            params,
            batch,
            config,
        }
    }

    /// Steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.adam.step
    }

    /// The sampler's RNG state (for checkpoints).
    pub fn rng_state(&self) -> RngState {
        self.sampler.rng.state()
    }

    /// Draws a batch and computes loss and gradient, without updating anything.
    pub fn evaluate_batch(&mut self) -> (LossValues, &MlpParams<T>) {
        self.sampler.fill(&mut self.batch);
        let gap = self.config.time.rows_with_gap(self.config.batch);
        let values = self.engine.loss_and_gradients(
            &self.config.model,
            &self.config.loss,
            &self.params,
            &self.batch,
            gap,
            &mut self.grads,
        );
        (values, &self.grads)
    }

    /// One full step. The update is skipped (and reported) if the loss or gradient is not finite.
    pub fn step(&mut self) -> Result<StepStats, NonFiniteStep> {
        let (loss, _) = self.evaluate_batch();
        let grad_norm = crate::optim::global_norm(&self.grads);
        if !loss.loss.is_finite() || !grad_norm.is_finite() {
            return Err(NonFiniteStep {
                step: self.adam.step + 1,
                loss: loss.loss,
                grad_norm,
            });
        }
        let update = self.adam.update(&mut self.params, &mut self.grads);
        if let (Some(ema), Some(decay)) = (&mut self.ema, self.config.ema_decay) {
            ema_update(ema, &self.params, decay);
        }
        Ok(StepStats {
            step: self.adam.step,
            loss,
            update,
        })
    }
}

/// A step whose loss or gradient was NaN or infinite; nothing was updated.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[error(
    "step {step}: non-finite loss {loss} or gradient norm {grad_norm}; parameters left unchanged"
)]
pub struct NonFiniteStep {
    pub step: u64,
    pub loss: f64,
    pub grad_norm: f64,
}
