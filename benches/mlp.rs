//! The tape on the MLP size a MeanFlow toy trains: batch 1024, input dim 4, 4 hidden layers of
//! width 256 with silu, output dim 2, f32. One reused tape (cleared each iteration, so buffers
//! come from its pool):
//!
//! - `forward`: the primal pass;
//! - `forward_jvp`: the primal pass with a tangent seeded on the input (forward-mode JVP);
//! - `forward_backward`: primal pass, then backward of sum(out^2);
//! - `forward_jvp_backward`: primal pass with the JVP, then backward of sum(out^2) (the primal
//!   output; the JVP is not differentiated).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use meanflow::autodiff::elementwise::Elementwise;
use meanflow::autodiff::tape::{Tape, Var};
use meanflow::rng::Rng;
use ndarray::Array2;
use std::hint::black_box;

const BATCH: usize = 1024;
const IN: usize = 4;
const WIDTH: usize = 256;
const HIDDEN: usize = 4;
const OUT: usize = 2;

struct Mlp {
    params: Vec<Array2<f32>>,
    x: Array2<f32>,
    v: Array2<f32>,
}

impl Mlp {
    fn new() -> Mlp {
        let mut rng = Rng::seed_from_u64(0);
        let mut dims = vec![IN];
        dims.extend([WIDTH; HIDDEN]);
        dims.push(OUT);
        let mut params = Vec::new();
        for io in dims.windows(2) {
            let scale = 1.0 / (io[0] as f64).sqrt();
            params.push(Array2::from_shape_simple_fn((io[1], io[0]), || {
                (scale * rng.normal()) as f32
            }));
            params.push(Array2::from_shape_simple_fn((1, io[1]), || {
                (0.1 * rng.normal()) as f32
            }));
        }
        let mut random = |shape| Array2::from_shape_simple_fn(shape, || rng.normal() as f32);
        Mlp {
            params,
            x: random((BATCH, IN)),
            v: random((BATCH, IN)),
        }
    }

    /// Clears the tape, records the parameters and runs the MLP, with a tangent on the input if
    /// asked; returns the output node.
    fn forward(&self, t: &mut Tape<f32>, p: &mut Vec<Var>, jvp: bool) -> Var {
        t.clear();
        p.clear();
        p.extend(self.params.iter().map(|a| t.param(a.view())));
        let mut h = t.constant(self.x.view());
        if jvp {
            let v = t.constant(self.v.view());
            t.set_tangent(h, v);
        }
        let layers = p.len() / 2;
        for l in 0..layers {
            h = t.linear(h, p[2 * l], p[2 * l + 1]);
            if l + 1 < layers {
                h = t.map(h, Elementwise::Silu);
            }
        }
        h
    }

    fn backward_sum_of_squares(t: &mut Tape<f32>, out: Var) {
        let sq = t.square(out);
        let loss = t.sum(sq);
        t.backward(loss);
    }
}

fn bench_mlp(c: &mut Criterion) {
    let mlp = Mlp::new();
    let mut t = Tape::new();
    let mut p = Vec::new();
    let sizes = format!("b{BATCH}_in{IN}_h{HIDDEN}x{WIDTH}_out{OUT}_silu_f32");
    let mut group = c.benchmark_group("mlp");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);

    group.bench_function(BenchmarkId::new("forward", &sizes), |b| {
        b.iter(|| {
            let out = mlp.forward(&mut t, &mut p, false);
            black_box(t.value(out)[[0, 0]]);
        })
    });
    group.bench_function(BenchmarkId::new("forward_jvp", &sizes), |b| {
        b.iter(|| {
            let out = mlp.forward(&mut t, &mut p, true);
            let tangent = t.tangent(out).expect("the input carries a tangent");
            black_box(t.value(tangent)[[0, 0]]);
        })
    });
    group.bench_function(BenchmarkId::new("forward_backward", &sizes), |b| {
        b.iter(|| {
            let out = mlp.forward(&mut t, &mut p, false);
            Mlp::backward_sum_of_squares(&mut t, out);
            black_box(t.grad(p[0]).map(|g| g[[0, 0]]));
        })
    });
    group.bench_function(BenchmarkId::new("forward_jvp_backward", &sizes), |b| {
        b.iter(|| {
            let out = mlp.forward(&mut t, &mut p, true);
            Mlp::backward_sum_of_squares(&mut t, out);
            black_box(t.grad(p[0]).map(|g| g[[0, 0]]));
        })
    });
    group.finish();
}

criterion_group!(benches, bench_mlp);
criterion_main!(benches);
