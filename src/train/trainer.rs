//! One training step, end to end: draw a batch, compute the loss and its gradient, update with
//! AdamW, update the EMA. Everything a step touches is allocated once, in [`Trainer::new`].
//!
//! Data: a finite pool of points (a loaded file, or [`BUILTIN_POOL_POINTS`] draws of a built-in
//! generator), with a class per point for a conditional model; each batch takes rows uniformly with
//! replacement. Noise e ~ N(0, I); times from the [`TimeSampler`], whose r != t rows come first.
//! A conditional model's labels are dropped to the null class with probability `label_dropout`,
//! and a model with a guidance input gets a scale w per row ([`Guidance::draw_scale`]), a model
//! with the guidance interval as an input an interval per row ([`draw_interval`]).

use crate::autodiff::tape::Tape;
use crate::flow::guidance::Guidance;
use crate::flow::loss::{record_loss_and_backward, Batch, LossConfig, LossValues};
use crate::flow::model::{Architecture, MlpParams, ModelConfig, ParamVars};
use crate::flow::time_sampler::TimeSampler;
use crate::linalg::float::Float;
use crate::rng::Rng;
use crate::train::optim::{ema_decay_at, ema_update, Adam, AdamConfig, UpdateStats};
use crate::train::workers::Workers;
use ndarray::Array2;

/// Points drawn from a built-in generator to form its training pool (capped at 2^22 numbers).
pub const BUILTIN_POOL_POINTS: usize = 1 << 17;

/// The pool size for data of dimension d drawn from a generator: min(2^17, 2^22 / d).
pub fn builtin_pool_points(dim: usize) -> usize {
    BUILTIN_POOL_POINTS.min((1usize << 22) / dim.max(1))
}

/// The most parameters [`TrainConfig::validate`] accepts: 2^27 (512 MB per copy in f32; a trainer
/// holds the parameters, gradients, two Adam moments and the EMA).
pub const MAX_PARAMETERS: usize = 1 << 27;
/// The most values of one activation buffer [`TrainConfig::validate`] accepts:
/// batch x the widest layer input x (linear layers of the trunk + 1) <= 2^26.
pub const MAX_ACTIVATIONS: usize = 1 << 26;
/// The deepest trunk [`TrainConfig::validate`] accepts.
pub const MAX_DEPTH: usize = 1024;
/// The largest data dimension [`TrainConfig::validate`] accepts.
pub const MAX_DIM: usize = 1 << 20;

/// Everything that defines a training run's steps.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub model: ModelConfig,
    pub loss: LossConfig,
    pub time: TimeSampler,
    pub adam: AdamConfig,
    pub batch: usize,
    /// EMA decay of the parameters (None: no EMA).
    pub ema_decay: Option<f64>,
    pub seed: u64,
    /// Data-parallel threads (the batch is split into this many shards, one tape each).
    pub threads: usize,
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
        if self.threads == 0 {
            return Err("threads must be at least 1".into());
        }
        // Sizes that would not fit in memory (or in a usize) are refused here, before anything
        // is allocated.
        if m.dim > MAX_DIM {
            return Err(format!(
                "data dimension must be at most {MAX_DIM}, got {}",
                m.dim
            ));
        }
        m.check_classes()?;
        if m.depth > MAX_DEPTH {
            return Err(format!(
                "depth must be at most {MAX_DEPTH}, got {}",
                m.depth
            ));
        }
        if m.checked_parameter_count()
            .is_none_or(|n| n > MAX_PARAMETERS)
        {
            return Err(format!(
                "width {} and depth {} on {}-D data give over {MAX_PARAMETERS} parameters: the model is too large",
                m.width, m.depth, m.dim
            ));
        }
        // A residual block's first layer reads [LN(a) | c], wider than the width.
        let widest = match m.architecture {
            Architecture::Mlp => m.width.max(m.input_width()),
            Architecture::Residual => m
                .width
                .saturating_add(m.condition_width())
                .max(m.input_width()),
        };
        let layers = m.architecture.trunk_layers(m.depth);
        if self
            .batch
            .checked_mul(widest)
            .and_then(|n| n.checked_mul(layers + 1))
            .is_none_or(|n| n > MAX_ACTIVATIONS)
        {
            return Err(format!(
                "batch {} x width {widest} x (layers {layers} + 1) is over {MAX_ACTIVATIONS} values per activation buffer: lower the batch or the width",
                self.batch
            ));
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

/// One data-parallel slice of the batch with its own tape and buffers.
#[derive(Debug)]
pub struct Shard<T: Float> {
    tape: Tape<T>,
    vars: ParamVars,
    batch: Batch<T>,
    values: Option<LossValues>,
}

impl<T: Float> Shard<T> {
    /// The batch rows this shard drew last.
    pub fn batch(&self) -> &Batch<T> {
        &self.batch
    }
}

/// How the loss gradient is computed: the tape ([`crate::flow::loss::record_loss`] + backward), the
/// batch split into one shard per thread. Shard s holds rows of its own, drawn in order, with its
/// r != t rows first (so that its JVP runs on those rows only); the gradient is
/// sum_s (B_s / B) grad_s, the full-batch mean exactly.
#[derive(Debug)]
pub struct GradientEngine<T: Float> {
    shards: Vec<Shard<T>>,
    /// One thread per shard, kept alive between steps.
    workers: Workers,
}

impl<T: Float> GradientEngine<T> {
    /// min(threads, B) shards of (nearly) equal size.
    pub fn new(config: &TrainConfig) -> Self {
        let b = config.batch;
        let shards = config.threads.clamp(1, b);
        let shard_rows = (0..shards).map(|s| (s + 1) * b / shards - s * b / shards);
        GradientEngine {
            shards: shard_rows
                .map(|rows| Shard {
                    tape: Tape::new(),
                    vars: ParamVars::default(),
                    batch: Batch::zeros(rows, &config.model),
                    values: None,
                })
                .collect(),
            workers: Workers::new(shards),
        }
    }

    /// The shards, in batch order.
    pub fn shards(&self) -> &[Shard<T>] {
        &self.shards
    }

    /// Draws the batch, computes the loss values and writes the gradient into `grads`.
    pub fn draw_and_differentiate(
        &mut self,
        config: &TrainConfig,
        sampler: &mut BatchSampler,
        params: &MlpParams<T>,
        grads: &mut MlpParams<T>,
    ) -> LossValues {
        for shard in self.shards.iter_mut() {
            sampler.fill(&mut shard.batch);
        }
        self.workers.for_each_mut(&mut self.shards, |shard| {
            let values = record_loss_and_backward(
                &mut shard.tape,
                &mut shard.vars,
                &config.model,
                params,
                &config.loss,
                &shard.batch,
            );
            shard.values = Some(values);
        });
        combine_shards(&self.shards, config.batch, grads)
    }
}

/// grads = sum_s (B_s / B) grad_s, read from each shard's tape, and the loss values likewise.
fn combine_shards<T: Float>(
    shards: &[Shard<T>],
    batch: usize,
    grads: &mut MlpParams<T>,
) -> LossValues {
    let mut total = LossValues {
        loss: 0.0,
        loss_u: 0.0,
        loss_v: None,
        mse: 0.0,
    };
    for (s, shard) in shards.iter().enumerate() {
        let w = shard.batch.len() as f64 / batch as f64;
        let v = shard.values.expect("every shard ran");
        total.loss += w * v.loss;
        total.loss_u += w * v.loss_u;
        total.mse += w * v.mse;
        total.loss_v = v.loss_v.map(|lv| total.loss_v.unwrap_or(0.0) + w * lv);
        let wt = T::from_f64(w);
        for (g, var) in grads.tensors_mut().zip(shard.vars.nodes()) {
            match (shard.tape.grad(var), s) {
                (Some(sg), 0) => ndarray::Zip::from(g).and(sg).for_each(|g, &x| *g = wt * x),
                (Some(sg), _) => ndarray::Zip::from(g).and(sg).for_each(|g, &x| *g += wt * x),
                (None, 0) => g.fill(T::zero()),
                (None, _) => {}
            }
        }
    }
    total
}

/// A training pool: points [N, d] and, for a conditional model, their classes (else empty).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingData {
    pub points: Array2<f64>,
    pub labels: Vec<usize>,
}

impl From<Array2<f64>> for TrainingData {
    /// Unlabelled points.
    fn from(points: Array2<f64>) -> Self {
        TrainingData {
            points,
            labels: Vec::new(),
        }
    }
}

/// What a batch draws besides points, noise and times: the classes of a conditional model
/// (dropped to the null class C with probability `label_dropout`) and the scales of a model with a
/// guidance input (log-uniform on [1, 1 + w_max]) and the guidance intervals of a model that takes
/// them ([`draw_interval`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConditionSampler {
    /// C; 0 for an unconditional model.
    pub classes: usize,
    pub label_dropout: f64,
    /// w_max of [`Guidance::Input`], None for a model without a guidance input.
    pub scale_max: Option<f64>,
    /// Draw each row's guidance interval (a model with the interval input).
    pub intervals: bool,
}

/// One row's guidance interval as iMF draws it (Lyy-iiis/imeanflow `imf.py`,
/// `sample_cfg_interval`): t_min ~ U[0, 0.5), then t_max ~ U[0.5, 1); both drawn on every row, and
/// a row with r = t gets [0, 1] (the official `fm_mask`).
pub fn draw_interval(rng: &mut Rng, r_equals_t: bool) -> [f64; 2] {
    let lo = 0.5 * rng.uniform();
    let hi = 0.5 + 0.5 * rng.uniform();
    if r_equals_t {
        [0.0, 1.0]
    } else {
        [lo, hi]
    }
}

impl ConditionSampler {
    /// An unconditional model's: nothing to draw.
    pub const NONE: ConditionSampler = ConditionSampler {
        classes: 0,
        label_dropout: 0.0,
        scale_max: None,
        intervals: false,
    };

    /// The conditions `config` trains with.
    pub fn new(config: &TrainConfig) -> Self {
        ConditionSampler {
            classes: config.model.classes,
            label_dropout: config.loss.label_dropout,
            scale_max: match config.loss.guidance {
                Guidance::Input { w_max } => Some(w_max),
                _ => None,
            },
            intervals: config.model.guidance_interval_input,
        }
    }
}

/// Draws training batches from a pool of points.
#[derive(Clone, Debug)]
pub struct BatchSampler {
    pub data: Array2<f64>,
    /// The class of each row of `data` (empty for an unconditional model).
    pub labels: Vec<usize>,
    pub time: TimeSampler,
    pub conditions: ConditionSampler,
    pub rng: Rng,
}

impl BatchSampler {
    /// Fills the batch: x rows (and their labels) with replacement from the pool, e ~ N(0, I),
    /// (r, t) from the sampler, then the dropped labels, the scales and the intervals. An
    /// unconditional model's batch draws nothing after the times, so its stream is what it was
    /// before classes existed; likewise a model without the interval input draws none.
    pub fn fill<T: Float>(&mut self, batch: &mut Batch<T>) {
        let n = self.data.nrows();
        assert!(n > 0, "BatchSampler: the data pool is empty");
        let conditional = self.conditions.classes > 0;
        for (i, mut row) in batch.x.rows_mut().into_iter().enumerate() {
            let source = self.rng.below(n);
            row.iter_mut()
                .zip(self.data.row(source).iter())
                .for_each(|(d, &s)| *d = T::from_f64(s));
            if conditional {
                batch.labels[i] = self.labels[source];
            }
        }
        batch
            .e
            .iter_mut()
            .for_each(|e| *e = T::from_f64(self.rng.normal()));
        self.time
            .fill(&mut self.rng, batch.t.view_mut(), batch.r.view_mut());
        if conditional && self.conditions.label_dropout > 0.0 {
            for label in batch.labels.iter_mut() {
                if self.rng.uniform() < self.conditions.label_dropout {
                    *label = self.conditions.classes;
                }
            }
        }
        if let Some(w_max) = self.conditions.scale_max {
            for w in batch.scales.iter_mut() {
                *w = T::from_f64(Guidance::draw_scale(w_max, &mut self.rng));
            }
        }
        if self.conditions.intervals {
            for (i, mut row) in batch.intervals.rows_mut().into_iter().enumerate() {
                let [lo, hi] = draw_interval(&mut self.rng, batch.t[[i, 0]] == batch.r[[i, 0]]);
                row[0] = T::from_f64(lo);
                row[1] = T::from_f64(hi);
            }
        }
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
}

impl<T: Float> Trainer<T> {
    /// A fresh run: parameters initialised from the seed, data pool given.
    pub fn new(config: TrainConfig, data: impl Into<TrainingData>) -> Self {
        let mut init_rng = Rng::stream(config.seed, 0);
        let params = MlpParams::init(&config.model, &mut init_rng);
        Self::from_parts(config, data, params, None, Rng::stream(config.seed, 1))
    }

    /// A run from given state (used by resume): parameters, optimizer state, sampler RNG.
    pub fn from_parts(
        config: TrainConfig,
        data: impl Into<TrainingData>,
        params: MlpParams<T>,
        adam: Option<Adam<T>>,
        rng: Rng,
    ) -> Self {
        let TrainingData {
            points: data,
            labels,
        } = data.into();
        assert_eq!(
            data.ncols(),
            config.model.dim,
            "Trainer: data has {} columns but the model's dimension is {}",
            data.ncols(),
            config.model.dim
        );
        let classes = config.model.classes;
        if classes > 0 {
            assert_eq!(
                labels.len(),
                data.nrows(),
                "Trainer: {} labels for {} points of a model with {classes} classes",
                labels.len(),
                data.nrows()
            );
            if let Some(&c) = labels.iter().find(|&&c| c >= classes) {
                panic!("Trainer: label {c} is not below the model's {classes} classes");
            }
        } else {
            assert!(
                labels.is_empty(),
                "Trainer: {} labels for an unconditional model",
                labels.len()
            );
        }
        Trainer {
            adam: adam.unwrap_or_else(|| Adam::new(config.adam, &params)),
            ema: config.ema_decay.map(|_| params.clone()),
            grads: params.zeros_like(),
            engine: GradientEngine::new(&config),
            sampler: BatchSampler {
                data,
                labels,
                time: config.time,
                conditions: ConditionSampler::new(&config),
                rng,
            },
            params,
            config,
        }
    }

    /// Steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.adam.step
    }

    /// Draws a batch and computes loss and gradient, without updating anything.
    pub fn evaluate_batch(&mut self) -> (LossValues, &MlpParams<T>) {
        let values = self.engine.draw_and_differentiate(
            &self.config,
            &mut self.sampler,
            &self.params,
            &mut self.grads,
        );
        (values, &self.grads)
    }

    /// One full step. The update is skipped (and reported) if the loss or gradient is not finite,
    /// or if the gradient is too large for Adam's second moment in `T`: v <- b2 v + (1 - b2) g^2
    /// is a convex combination, so |g| <= sqrt(MAX) for every step keeps v finite (and a
    /// checkpoint that the tool reads back).
    pub fn step(&mut self) -> Result<StepStats, NonFiniteStep> {
        let (loss, _) = self.evaluate_batch();
        let grad_norm = crate::train::optim::global_norm(&self.grads);
        let max_grad_norm = T::MAX_F64.sqrt();
        if !loss.loss.is_finite() || grad_norm.is_nan() || grad_norm > max_grad_norm {
            return Err(NonFiniteStep {
                step: self.adam.step + 1,
                loss: loss.loss,
                grad_norm,
                max_grad_norm,
                precision: T::NAME,
            });
        }
        // The norm was just needed for the finiteness check; the update reuses it.
        let update = self
            .adam
            .update_with_norm(&mut self.params, &mut self.grads, grad_norm);
        if let (Some(ema), Some(decay)) = (&mut self.ema, self.config.ema_decay) {
            ema_update(ema, &self.params, ema_decay_at(decay, self.adam.step));
        }
        Ok(StepStats {
            step: self.adam.step,
            loss,
            update,
        })
    }
}

/// A step whose loss or gradient was NaN or infinite, or whose gradient norm exceeds
/// `max_grad_norm` = sqrt(MAX) of the training precision (its square, Adam's second moment,
/// would overflow); nothing was updated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NonFiniteStep {
    pub step: u64,
    pub loss: f64,
    pub grad_norm: f64,
    pub max_grad_norm: f64,
    /// "f32" or "f64".
    pub precision: &'static str,
}

impl NonFiniteStep {
    /// Whether the loss and the gradient norm are finite, only too large for the precision.
    pub fn is_overflow(&self) -> bool {
        self.loss.is_finite() && self.grad_norm.is_finite()
    }
}

impl std::fmt::Display for NonFiniteStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_overflow() {
            write!(
                f,
                "step {}: gradient norm {:.3e} (loss {:.3e}) beyond {:.1e}, the largest whose square (Adam's second moment) {} holds; parameters left unchanged",
                self.step, self.grad_norm, self.loss, self.max_grad_norm, self.precision
            )
        } else {
            write!(
                f,
                "step {}: non-finite loss {} or gradient norm {}; parameters left unchanged",
                self.step, self.loss, self.grad_norm
            )
        }
    }
}

impl std::error::Error for NonFiniteStep {}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::flow::loss::{loss_and_gradients, LossPreset};
    use crate::flow::model::Heads;
    use crate::verify::check::{relative_error, GOLDEN_REL_TOL};
    use ndarray::concatenate;
    use ndarray::Axis;

    fn config(threads: usize, loss: LossPreset, heads: Heads) -> TrainConfig {
        TrainConfig {
            model: ModelConfig {
                width: 8,
                depth: 2,
                heads,
                ..ModelConfig::default()
            },
            loss: LossConfig::preset(loss),
            time: TimeSampler::imf_default(),
            adam: AdamConfig::default(),
            batch: 13,
            ema_decay: Some(0.99),
            seed: 3,
            threads,
        }
    }

    /// Sharded gradients equal the tape's gradient of the whole (concatenated) batch.
    #[test]
    fn shards_combine_to_the_full_batch_gradient() {
        for (loss, heads) in [(LossPreset::Mf, Heads::U), (LossPreset::ImfHead, Heads::UV)] {
            let cfg = config(3, loss, heads);
            let mut rng = Rng::seed_from_u64(1);
            let data = Array2::from_shape_simple_fn((50, 2), || rng.normal());
            let mut trainer = Trainer::<f64>::new(cfg, data);
            let (values, grads) = trainer.evaluate_batch();
            let (values, grads) = (values, grads.clone());
            let shards = trainer.engine.shards();
            assert_eq!(shards.len(), 3);
            let cat = |f: fn(&Batch<f64>) -> &Array2<f64>| {
                let views: Vec<_> = shards.iter().map(|s| f(s.batch()).view()).collect();
                concatenate(Axis(0), &views).unwrap()
            };
            let full = Batch {
                x: cat(|b| &b.x),
                e: cat(|b| &b.e),
                t: cat(|b| &b.t),
                r: cat(|b| &b.r),
                labels: Vec::new(),
                scales: ndarray::Array2::zeros((0, 1)),
                intervals: ndarray::Array2::zeros((0, 2)),
            };
            let mut tape = Tape::new();
            let (want, want_grads) =
                loss_and_gradients(&mut tape, &cfg.model, &trainer.params, &cfg.loss, &full);
            assert!((values.loss - want.loss).abs() <= GOLDEN_REL_TOL * want.loss.abs());
            for (g, w) in grads.tensors().zip(want_grads.tensors()) {
                assert!(relative_error(g.view(), w.view()) <= GOLDEN_REL_TOL);
            }
        }
    }

    /// A step with a non-finite loss is reported with its number and updates nothing: parameters,
    /// Adam moments and step counter, EMA.
    #[test]
    fn a_non_finite_step_changes_nothing() {
        let cfg = config(1, LossPreset::Imf, Heads::U);
        let mut rng = Rng::seed_from_u64(5);
        let data = Array2::from_shape_simple_fn((40, 2), || rng.normal());
        let mut t = Trainer::<f32>::new(cfg, data);
        t.step().unwrap();
        t.step().unwrap();
        t.params.u_head.weight[[1, 3]] = f32::NAN;
        let bits = |p: &MlpParams<f32>| {
            p.tensors()
                .flat_map(|a| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        let (params, m, v, ema) = (
            bits(&t.params),
            bits(&t.adam.m),
            bits(&t.adam.v),
            bits(t.ema.as_ref().unwrap()),
        );
        let e = t.step().unwrap_err();
        assert_eq!(e.step, 3);
        assert!(e.loss.is_nan(), "{e}");
        assert!(e.to_string().starts_with("step 3: non-finite"), "{e}");
        assert_eq!(t.step_count(), 2);
        assert_eq!(bits(&t.params), params);
        assert_eq!(bits(&t.adam.m), m);
        assert_eq!(bits(&t.adam.v), v);
        assert_eq!(bits(t.ema.as_ref().unwrap()), ema);
    }

    /// A model with the interval input gets each row's [t_min, t_max] with t_min in [0, 0.5),
    /// t_max in [0.5, 1), and [0, 1] on the rows with r = t; the batch fits the model.
    #[test]
    fn intervals_are_drawn_for_a_model_that_takes_them() {
        let mut cfg = config(1, LossPreset::Imf, Heads::U);
        cfg.model.classes = 3;
        cfg.model.class_dim = 2;
        cfg.model.guidance_input = true;
        cfg.model.guidance_interval_input = true;
        cfg.loss.guidance = Guidance::Input { w_max: 7.0 };
        cfg.loss.label_dropout = 0.1;
        cfg.batch = 64;
        cfg.validate().unwrap();
        let mut rng = Rng::seed_from_u64(2);
        let points = Array2::from_shape_simple_fn((30, 2), || rng.normal());
        let labels = (0..30).map(|i| i % 3).collect();
        let mut trainer = Trainer::<f64>::new(cfg, TrainingData { points, labels });
        let (values, _) = trainer.evaluate_batch();
        assert!(values.loss.is_finite());
        let batch = trainer.engine.shards()[0].batch();
        batch.check(&cfg.model);
        let (mut equal, mut gap) = (0, 0);
        for i in 0..batch.len() {
            let [lo, hi] = [batch.intervals[[i, 0]], batch.intervals[[i, 1]]];
            if batch.t[[i, 0]] == batch.r[[i, 0]] {
                equal += 1;
                assert_eq!([lo, hi], [0.0, 1.0]);
            } else {
                gap += 1;
                assert!(
                    (0.0..0.5).contains(&lo) && (0.5..1.0).contains(&hi),
                    "{lo} {hi}"
                );
            }
        }
        assert!(equal > 0 && gap > 0);
    }

    /// Same seed and threads: bit-identical parameters after a few steps.
    #[test]
    fn same_seed_same_threads_same_parameters() {
        let run = || {
            let cfg = config(2, LossPreset::Imf, Heads::U);
            let mut rng = Rng::seed_from_u64(4);
            let data = Array2::from_shape_simple_fn((40, 2), || rng.normal());
            let mut t = Trainer::<f32>::new(cfg, data);
            for _ in 0..5 {
                t.step().unwrap();
            }
            (t.params, t.ema)
        };
        assert_eq!(run(), run());
    }
}
