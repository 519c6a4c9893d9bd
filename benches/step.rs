//! Criterion benchmarks of the training step and its pieces (f32), ids `piece/loss/config`:
//! the forward pass alone, loss + gradients on the tape (stop-gradient and exact variants), and
//! the whole step with Adam. Configs are those of `meanflow bench` (src/bench/step.rs).
//!
//!     cargo bench --bench step                      # matmul threads: MATMUL_NUM_THREADS (default: cores)
//!     MATMUL_NUM_THREADS=1 cargo bench --bench step -- c2

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use meanflow::autodiff::tape::Tape;
use meanflow::bench::{BenchConfig, CONFIGS};
use meanflow::flow::loss::{loss_and_gradients_into, Batch, LossConfig, LossPreset};
use meanflow::flow::model::{MlpParams, ParamVars};
use meanflow::flow::sampling::Evaluator;
use meanflow::rng::Rng;
use meanflow::train::{BatchSampler, Trainer};
use std::hint::black_box;

fn setup(
    c: &BenchConfig,
    loss: LossPreset,
) -> (
    meanflow::train::TrainConfig,
    MlpParams<f32>,
    Batch<f32>,
    usize,
) {
    let cfg = c.train_config(loss, 0);
    let mut rng = Rng::seed_from_u64(1);
    let params = MlpParams::init(&cfg.model, &mut rng);
    let mut sampler = BatchSampler {
        data: c.data(4096, &mut rng),
        labels: Vec::new(),
        time: cfg.time,
        conditions: meanflow::train::ConditionSampler::NONE,
        rng,
    };
    let (b, d) = (c.batch, c.dim);
    let mut batch = Batch {
        x: ndarray::Array2::zeros((b, d)),
        e: ndarray::Array2::zeros((b, d)),
        t: ndarray::Array2::zeros((b, 1)),
        r: ndarray::Array2::zeros((b, 1)),
        labels: Vec::new(),
        scales: ndarray::Array2::zeros((0, 1)),
        intervals: ndarray::Array2::zeros((0, 2)),
    };
    sampler.fill(&mut batch);
    (cfg, params, batch, cfg.time.rows_with_gap(b))
}

fn pieces(crit: &mut Criterion) {
    let mut group = crit.benchmark_group("step");
    group.sample_size(20);
    for c in CONFIGS.iter().filter(|c| c.name == "c1" || c.name == "c2") {
        group.throughput(Throughput::Elements(c.batch as u64));
        let (cfg, params, batch, _) = setup(c, LossPreset::Mf);
        let mut evaluator = Evaluator::new(cfg.model, &params);
        let z = batch.z();
        group.bench_function(BenchmarkId::new("forward", c.name), |b| {
            b.iter(|| black_box(evaluator.u(z.view(), batch.r.view(), batch.t.view())[[0, 0]]))
        });
        for loss in [LossPreset::Mf, LossPreset::Imf] {
            let (cfg, params, batch, _) = setup(c, loss);
            let mut grads = params.zeros_like();
            for (variant, loss_config) in [
                ("", cfg.loss),
                (
                    "_exact",
                    LossConfig {
                        exact: true,
                        ..cfg.loss
                    },
                ),
            ] {
                let mut tape = Tape::new();
                let mut vars = ParamVars::default();
                group.bench_function(
                    BenchmarkId::new(format!("loss_grad{variant}/{}", loss.name()), c.name),
                    |b| {
                        b.iter(|| {
                            black_box(loss_and_gradients_into(
                                &mut tape,
                                &mut vars,
                                &cfg.model,
                                &params,
                                &loss_config,
                                &batch,
                                &mut grads,
                            ))
                        })
                    },
                );
            }
            let mut rng = Rng::seed_from_u64(2);
            let mut trainer = Trainer::<f32>::new(cfg, c.data(4096, &mut rng));
            group.bench_function(
                BenchmarkId::new(format!("train_step/{}", loss.name()), c.name),
                |b| b.iter(|| black_box(trainer.step().unwrap())),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, pieces);
criterion_main!(benches);
