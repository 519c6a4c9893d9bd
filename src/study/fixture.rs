//! The models the instruments look at: for each (dataset, loss preset), the initial parameters and
//! the parameters after a short training run, trained once and shared by every instrument.
//!
//! Training is f32 (as `meanflow train`); the instruments evaluate in f64, so the trained weights
//! are cast. The model is the README's default architecture (MLP 3 x 128, silu, raw time input)
//! unless [`FixtureSettings`] says otherwise. The 64-D digits get a model of their own size
//! ([`FixtureSettings::digits`], [`ModelCache::with_digits`]).

use super::dataset::StudyDataset;
use crate::flow::loss::{LossConfig, LossPreset};
use crate::flow::model::{Heads, MlpParams, ModelConfig};
use crate::flow::time_sampler::TimeSampler;
use crate::train::optim::AdamConfig;
use crate::train::{TrainConfig, Trainer};
use ndarray::Array2;
use std::collections::BTreeMap;

/// How the shared models are trained.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FixtureSettings {
    pub width: usize,
    pub depth: usize,
    pub batch: usize,
    pub steps: u64,
    /// Data-parallel shards of each training step.
    pub threads: usize,
    pub seed: u64,
}

impl FixtureSettings {
    /// The study's default: 3 x 128 silu, batch 256, 8000 steps (about 20 s per model on one core).
    pub fn standard(seed: u64, threads: usize) -> Self {
        FixtureSettings {
            width: 128,
            depth: 3,
            batch: 256,
            steps: 8_000,
            threads,
            seed,
        }
    }

    /// Seconds, not minutes: 2 x 16, batch 64, 200 steps (for tests and `--quick`).
    pub fn quick(seed: u64) -> Self {
        FixtureSettings {
            width: 16,
            depth: 2,
            batch: 64,
            steps: 200,
            threads: 1,
            seed,
        }
    }

    /// The shared models of the 64-D digits: 3 x 256 silu, batch 256, [`DIGITS_STEPS`] steps (as
    /// many as the toys' models, twice as wide).
    pub fn digits(seed: u64, threads: usize) -> Self {
        FixtureSettings {
            width: 256,
            depth: 3,
            batch: 256,
            steps: DIGITS_STEPS,
            threads,
            seed,
        }
    }

    /// The full training configuration for one dataset and loss preset (the `train` defaults).
    pub fn train_config(&self, dataset: &StudyDataset, preset: LossPreset) -> TrainConfig {
        let heads = if preset == LossPreset::ImfHead {
            Heads::UV
        } else {
            Heads::U
        };
        TrainConfig {
            model: ModelConfig {
                dim: dataset.dim(),
                width: self.width,
                depth: self.depth,
                heads,
                ..ModelConfig::default()
            },
            loss: LossConfig::preset(preset),
            time: TimeSampler::preset_default(preset),
            adam: AdamConfig::default(),
            batch: self.batch,
            ema_decay: Some(0.999),
            seed: self.seed,
            threads: self.threads,
        }
    }
}

/// The training steps of [`FixtureSettings::digits`]: 8000, as [`FixtureSettings::standard`].
pub const DIGITS_STEPS: u64 = 8_000;

/// One model of the study: its configuration, initial and trained parameters, and its data.
#[derive(Clone, Debug)]
pub struct TrainedModel {
    pub dataset: StudyDataset,
    pub preset: LossPreset,
    pub config: TrainConfig,
    /// The parameters at initialisation (step 0).
    pub initial: MlpParams<f64>,
    /// The EMA parameters after `steps` steps (EMA decay 0.999).
    pub trained: MlpParams<f64>,
    /// The training pool, in model units ([`StudyDataset::pool`]: a toy's drawn with the seed's
    /// stream 2, as `meanflow train` does; the digits' training split).
    pub data: Array2<f64>,
    /// Mean weighted loss over the last 10% of steps.
    pub final_loss: f64,
}

/// Trains one model (no files written).
pub fn train_model(
    settings: &FixtureSettings,
    dataset: &StudyDataset,
    preset: LossPreset,
) -> TrainedModel {
    let config = settings.train_config(dataset, preset);
    let data = dataset.pool(settings.seed);
    let mut trainer = Trainer::<f32>::new(config, data.clone());
    let initial = trainer.params.cast::<f64>();
    let tail_from = settings.steps - settings.steps / 10;
    let (mut tail_sum, mut tail_count) = (0.0, 0u64);
    for step in 0..settings.steps {
        let stats = trainer
            .step()
            .unwrap_or_else(|e| panic!("study fixture {}/{}: {e}", dataset.name(), preset.name()));
        if step >= tail_from {
            tail_sum += stats.loss.loss;
            tail_count += 1;
        }
    }
    let trained = trainer
        .ema
        .as_ref()
        .unwrap_or(&trainer.params)
        .cast::<f64>();
    TrainedModel {
        dataset: *dataset,
        preset,
        config,
        initial,
        trained,
        data,
        final_loss: tail_sum / tail_count.max(1) as f64,
    }
}

/// Trains each (dataset, loss) model on first use and keeps it for the next instrument.
#[derive(Debug)]
pub struct ModelCache {
    /// How the toy datasets' models are trained.
    pub settings: FixtureSettings,
    /// How the digits' models are trained (`settings` unless [`ModelCache::with_digits`]).
    pub digits_settings: FixtureSettings,
    models: BTreeMap<(String, &'static str), TrainedModel>,
}

impl ModelCache {
    /// Every model trained with `settings`.
    pub fn new(settings: FixtureSettings) -> Self {
        ModelCache {
            settings,
            digits_settings: settings,
            models: BTreeMap::new(),
        }
    }

    /// The toys' models trained with `settings`, the digits' with `digits`.
    pub fn with_digits(settings: FixtureSettings, digits: FixtureSettings) -> Self {
        ModelCache {
            digits_settings: digits,
            ..ModelCache::new(settings)
        }
    }

    /// The settings the models of `dataset` are trained with.
    pub fn settings_for(&self, dataset: &StudyDataset) -> FixtureSettings {
        match dataset {
            StudyDataset::Toy(_) => self.settings,
            StudyDataset::Digits => self.digits_settings,
        }
    }

    /// Trains every missing (dataset, preset) model now, `workers` at a time (each run is
    /// single-threaded and deterministic, so the result does not depend on `workers`).
    pub fn prefetch(&mut self, datasets: &[StudyDataset], presets: &[LossPreset], workers: usize) {
        let missing: Vec<(StudyDataset, LossPreset)> = datasets
            .iter()
            .flat_map(|ds| presets.iter().map(move |p| (*ds, *p)))
            .filter(|(ds, p)| !self.models.contains_key(&(ds.name(), p.name())))
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        let missing: Vec<_> = missing
            .into_iter()
            .filter(|(ds, p)| seen.insert((ds.name(), p.name())))
            .collect();
        let jobs: Vec<(FixtureSettings, StudyDataset, LossPreset)> = missing
            .into_iter()
            .map(|(ds, p)| (self.settings_for(&ds), ds, p))
            .collect();
        let trained = super::parallel_map(&jobs, workers, |(settings, ds, preset)| {
            train_model(settings, ds, *preset)
        });
        for model in trained {
            self.models
                .insert((model.dataset.name(), model.preset.name()), model);
        }
    }

    /// The model for this dataset and preset, trained now if it is not cached yet.
    pub fn get(&mut self, dataset: &StudyDataset, preset: LossPreset) -> &TrainedModel {
        let settings = self.settings_for(dataset);
        self.models
            .entry((dataset.name(), preset.name()))
            .or_insert_with(|| train_model(&settings, dataset, preset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digits_get_their_own_settings() {
        let toy = StudyDataset::Toy(crate::data::ToyDataset::TwoMoons);
        let quick = FixtureSettings::quick(1);
        let same = ModelCache::new(quick);
        assert_eq!(same.settings_for(&StudyDataset::Digits), quick);
        let digits = FixtureSettings::digits(1, 1);
        let cache = ModelCache::with_digits(FixtureSettings::standard(1, 1), digits);
        assert_eq!(cache.settings_for(&StudyDataset::Digits), digits);
        assert_eq!(cache.settings_for(&toy), FixtureSettings::standard(1, 1));
        let config = digits.train_config(&StudyDataset::Digits, LossPreset::Mf);
        assert_eq!((config.model.dim, config.model.width), (64, 256));
        assert_eq!(
            config.model.classes, 0,
            "the digits are modelled unconditionally"
        );
    }

    #[test]
    fn quick_fixture_trains_and_caches() {
        let mut cache = ModelCache::new(FixtureSettings::quick(3));
        let ds = StudyDataset::Toy(crate::data::ToyDataset::gaussian_narrow());
        let first = cache.get(&ds, LossPreset::Imf).clone();
        assert!(first.final_loss.is_finite());
        assert_ne!(first.initial, first.trained, "training changed nothing");
        let again = cache.get(&ds, LossPreset::Imf);
        assert_eq!(&first.trained, &again.trained);
        assert_eq!(first.data.ncols(), 1);
    }
}
