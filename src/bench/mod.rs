//! Benchmarks: the training step timed as the peers in benches/peers/ time it ([`step`]), and the
//! measured f32 FMA peak its GEMM speed is compared with ([`fma_peak`]).

pub mod fma_peak;
pub mod step;

pub use step::{
    default_counts, measure, step_matmul_flops, table, BenchConfig, Measurement,
    BENCH_FRACTION_EQUAL, CONFIGS, MAX_BENCH_STEPS,
};
