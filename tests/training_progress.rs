//! Training lowers the loss and brings samples closer to the data: a fixed seed, a thousand
//! steps, and margins that the sampling noise cannot explain. A sign error in the optimiser, the
//! loss or its gradient that still leaves every number finite fails here.

use meanflow::autodiff::tape::Tape;
use meanflow::data::ToyDataset;
use meanflow::flow::loss::{loss_and_gradients, Batch, LossConfig, LossPreset};
use meanflow::flow::model::{MlpParams, ModelConfig};
use meanflow::flow::sampling::{noise, sample_mean_flow, uniform_schedule};
use meanflow::flow::time_sampler::TimeSampler;
use meanflow::rng::Rng;
use meanflow::train::optim::AdamConfig;
use meanflow::train::{BatchSampler, ConditionSampler, TrainConfig, Trainer};
use meanflow::verify::metrics::sliced_wasserstein1;
use ndarray::Array2;

const EVAL_BATCHES: usize = 40;

fn config(preset: LossPreset) -> TrainConfig {
    TrainConfig {
        model: ModelConfig {
            width: 64,
            depth: 2,
            ..ModelConfig::default()
        },
        loss: LossConfig::preset(preset),
        time: TimeSampler::preset_default(preset),
        adam: AdamConfig::default(),
        batch: 128,
        ema_decay: None,
        seed: 7,
        threads: 1,
    }
}

/// The loss on each of [`EVAL_BATCHES`] fixed batches (the same draws for every call).
fn losses(config: &TrainConfig, params: &MlpParams<f64>, data: &Array2<f64>) -> Vec<f64> {
    let mut sampler = BatchSampler {
        data: data.clone(),
        labels: Vec::new(),
        time: config.time,
        conditions: ConditionSampler::NONE,
        rng: Rng::seed_from_u64(99),
    };
    let mut tape = Tape::new();
    let mut batch = Batch::zeros(config.batch, &config.model);
    (0..EVAL_BATCHES)
        .map(|_| {
            sampler.fill(&mut batch);
            let (values, _) =
                loss_and_gradients(&mut tape, &config.model, params, &config.loss, &batch);
            values.loss
        })
        .collect()
}

/// (mean, standard error of the mean).
fn mean_and_error(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// SW1 of 1-step samples from fixed noise against `held_out`.
fn sample_distance(config: &TrainConfig, params: &MlpParams<f64>, held_out: &Array2<f64>) -> f64 {
    let z = noise::<f64>(held_out.nrows(), 2, &mut Rng::seed_from_u64(5));
    let x = sample_mean_flow(config.model, params, z.view(), &uniform_schedule(1));
    sliced_wasserstein1(x.view(), held_out.view())
}

#[test]
fn training_lowers_the_loss_and_the_sample_distance() {
    let dataset = ToyDataset::TwoMoons;
    let data = dataset.sample(4096, &mut Rng::seed_from_u64(1));
    let held_out = dataset.sample(1000, &mut Rng::seed_from_u64(2));
    let other = dataset.sample(1000, &mut Rng::seed_from_u64(3));
    // The distance between two draws of the data: how much SW1 moves by sampling alone.
    let floor = sliced_wasserstein1(other.view(), held_out.view());
    for preset in [LossPreset::Mf, LossPreset::Imf] {
        let config = config(preset);
        let mut trainer = Trainer::<f64>::new(config, data.clone());
        let before_each = losses(&config, &trainer.params, &data);
        let distance_before = sample_distance(&config, &trainer.params, &held_out);
        for _ in 0..1000 {
            trainer.step().expect("a finite step");
        }
        let after_each = losses(&config, &trainer.params, &data);
        let distance_after = sample_distance(&config, &trainer.params, &held_out);
        // The same fixed batches before and after: the mean drop, batch by batch, must exceed 6
        // standard errors of itself.
        let drops: Vec<f64> = before_each
            .iter()
            .zip(&after_each)
            .map(|(b, a)| b - a)
            .collect();
        let (drop, error) = mean_and_error(&drops);
        let before = mean_and_error(&before_each).0;
        let after = mean_and_error(&after_each).0;
        assert!(
            drop > 6.0 * error,
            "{preset:?}: loss {before:.4} -> {after:.4}, drop {drop:.4} (standard error {error:.4})"
        );
        println!(
            "{preset:?}: loss {before:.4} -> {after:.4} (standard error {error:.4}); SW1 {distance_before:.4} -> {distance_after:.4} (data-vs-data {floor:.4})"
        );
        // Samples: closer to the data by several times what two data draws differ by.
        assert!(
            distance_after < distance_before - 3.0 * floor,
            "{preset:?}: SW1 {distance_before:.4} -> {distance_after:.4} (data-vs-data {floor:.4})"
        );
    }
}
