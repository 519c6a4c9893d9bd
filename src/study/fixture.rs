//! The models the instruments look at: for each (dataset, loss preset), the initial parameters and
//! the parameters after a short training run, trained once and shared by every instrument.
//!
//! Training is f32 (as `meanflow train`); the instruments evaluate in f64, so the trained weights
//! are cast. The model is the README's default architecture (MLP 3 x 128, silu, raw time input)
//! unless [`FixtureSettings`] says otherwise.

use crate::autodiff::elementwise::Elementwise;
use crate::data::ToyDataset;
use crate::flow::loss::{LossConfig, LossPreset};
use crate::flow::model::conditioning::Conditioning;
use crate::flow::model::{Heads, MlpParams, ModelConfig};
use crate::flow::time_sampler::TimeSampler;
use crate::rng::Rng;
use crate::train::optim::AdamConfig;
use crate::train::{builtin_pool_points, TrainConfig, Trainer};
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

    /// The full training configuration for one dataset and loss preset (the `train` defaults).
    pub fn train_config(&self, dataset: &ToyDataset, preset: LossPreset) -> TrainConfig {
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
                activation: Elementwise::Silu,
                conditioning: Conditioning::Raw,
                heads,
                classes: 0,
                class_dim: 0,
                guidance_input: false,
            },
            loss: LossConfig::preset(preset),
            time: match preset {
                LossPreset::Mf => TimeSampler::mf_default(),
                LossPreset::Imf | LossPreset::ImfHead => TimeSampler::imf_default(),
            },
            adam: AdamConfig::default(),
            batch: self.batch,
            ema_decay: Some(0.999),
            seed: self.seed,
            threads: self.threads,
        }
    }
}

/// One model of the study: its configuration, initial and trained parameters, and its data.
#[derive(Clone, Debug)]
pub struct TrainedModel {
    pub dataset: ToyDataset,
    pub preset: LossPreset,
    pub config: TrainConfig,
    /// The parameters at initialisation (step 0).
    pub initial: MlpParams<f64>,
    /// The EMA parameters after `steps` steps (EMA decay 0.999).
    pub trained: MlpParams<f64>,
    /// The training pool (drawn with the seed's stream 2, as `meanflow train` does).
    pub data: Array2<f64>,
    /// Mean weighted loss over the last 10% of steps.
    pub final_loss: f64,
}

/// Trains one model (no files written).
pub fn train_model(
    settings: &FixtureSettings,
    dataset: &ToyDataset,
    preset: LossPreset,
) -> TrainedModel {
    let config = settings.train_config(dataset, preset);
    let data = dataset.sample(
        builtin_pool_points(dataset.dim()),
        &mut Rng::stream(settings.seed, 2),
    );
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
    pub settings: FixtureSettings,
    models: BTreeMap<(String, &'static str), TrainedModel>,
}

impl ModelCache {
    pub fn new(settings: FixtureSettings) -> Self {
        ModelCache {
            settings,
            models: BTreeMap::new(),
        }
    }

    /// Trains every missing (dataset, preset) model now, `workers` at a time (each run is
    /// single-threaded and deterministic, so the result does not depend on `workers`).
    pub fn prefetch(&mut self, datasets: &[ToyDataset], presets: &[LossPreset], workers: usize) {
        let settings = self.settings;
        let missing: Vec<(ToyDataset, LossPreset)> = datasets
            .iter()
            .flat_map(|ds| presets.iter().map(move |p| (*ds, *p)))
            .filter(|(ds, p)| !self.models.contains_key(&(ds.name(), p.name())))
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        let missing: Vec<_> = missing
            .into_iter()
            .filter(|(ds, p)| seen.insert((ds.name(), p.name())))
            .collect();
        let trained = super::parallel_map(&missing, workers, |(ds, preset)| {
            train_model(&settings, ds, *preset)
        });
        for model in trained {
            self.models
                .insert((model.dataset.name(), model.preset.name()), model);
        }
    }

    /// The model for this dataset and preset, trained now if it is not cached yet.
    pub fn get(&mut self, dataset: &ToyDataset, preset: LossPreset) -> &TrainedModel {
        let settings = self.settings;
        self.models
            .entry((dataset.name(), preset.name()))
            .or_insert_with(|| train_model(&settings, dataset, preset))
    }
}

/// `datasets` with each name once, in first-seen order: the instruments that share models may
/// list a dataset twice (a Gaussian in `--datasets` is also one of instrument 5's), and each model
/// is trained once.
pub fn distinct(datasets: impl IntoIterator<Item = ToyDataset>) -> Vec<ToyDataset> {
    let mut seen = std::collections::BTreeSet::new();
    datasets
        .into_iter()
        .filter(|d| seen.insert(d.name()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_keeps_the_first_of_each_name() {
        let narrow = ToyDataset::gaussian_narrow();
        let moons: ToyDataset = "two_moons".parse().unwrap();
        assert_eq!(
            distinct([narrow, moons, narrow, moons]),
            vec![narrow, moons]
        );
    }

    #[test]
    fn quick_fixture_trains_and_caches() {
        let mut cache = ModelCache::new(FixtureSettings::quick(3));
        let ds = ToyDataset::gaussian_narrow();
        let first = cache.get(&ds, LossPreset::Imf).clone();
        assert!(first.final_loss.is_finite());
        assert_ne!(first.initial, first.trained, "training changed nothing");
        let again = cache.get(&ds, LossPreset::Imf);
        assert_eq!(&first.trained, &again.trained);
        assert_eq!(first.data.ncols(), 1);
    }
}
