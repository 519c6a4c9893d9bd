//! The machine's f32 multiply-add peak, measured: the yardstick for "the matmul work runs at X% of
//! the FMA peak" in `meanflow bench`.
//!
//! A loop keeps `ACCUMULATORS` independent accumulators busy with acc <- acc * m + a, enough
//! independent chains to cover the FMA latency on every pipe, so the loop runs at the CPU's FMA
//! throughput and nothing else (no loads or stores in the loop). Its rate is
//!
//!   flops = iterations x accumulators x lanes x 2 (one multiply and one add per lane),
//!   GFLOP/s = flops / seconds / 1e9.
//!
//! Kernels, chosen at run time:
//! - x86_64 with AVX2 and FMA: 12 `__m256` accumulators (8 f32 lanes) through `_mm256_fmadd_ps`,
//!   16 flops per instruction. 12 chains cover a latency of 4-5 cycles on two FMA pipes (the
//!   AVX2 parts of Zen and Skylake need 8-10). On a CPU with AVX-512 this is not that CPU's
//!   peak (its 512-bit FMAs do twice the work), so the fraction against it overstates.
//! - Anything else: 32 scalar f32 accumulators, which the compiler is free to vectorise with the
//!   target's baseline SIMD. A lower bound of the peak (baseline SIMD is narrower than what the
//!   CPU may have; without hardware FMA the multiply and add are counted as the two flops they
//!   are), so a fraction against it overstates too.

use std::hint::black_box;
use std::time::Instant;

/// Timed repetitions; the best one is reported (interruptions only ever slow a repetition down).
pub const REPETITIONS: usize = 3;

/// A measurement kernel: runs `iterations` iterations and returns a value that depends on all of
/// its accumulators (so that the work cannot be optimised away).
struct Kernel {
    name: &'static str,
    run: fn(iterations: u64) -> f32,
    accumulators: usize,
    /// f32 lanes per accumulator.
    lanes: usize,
}

impl Kernel {
    /// accumulators x lanes x 2.
    fn flops_per_iteration(&self) -> f64 {
        (self.accumulators * self.lanes * 2) as f64
    }
}

/// The name of the kernel [`fma_peak_gflops`] uses on this CPU: "avx2+fma (12 x __m256)" or
/// "scalar (32 accumulators, lower bound)".
pub fn fma_peak_kernel() -> &'static str {
    kernel().name
}

/// Measured f32 multiply-add throughput, in GFLOP/s summed over `threads` threads that run the
/// loop at once (one thread: the peak of one core). Each of the [`REPETITIONS`] repetitions runs
/// about `seconds` (calibrated on one thread first); the best repetition counts, at
/// flops = threads x iterations x accumulators x lanes x 2 over the wall time from the start of
/// the threads to the end of the last one.
pub fn fma_peak_gflops(threads: usize, seconds: f64) -> f64 {
    let kernel = kernel();
    let threads = threads.max(1);
    let iterations = calibrate(&kernel, seconds.max(1e-3));
    let flops = threads as f64 * iterations as f64 * kernel.flops_per_iteration();
    let best_seconds = (0..REPETITIONS)
        .map(|_| {
            let start = Instant::now();
            std::thread::scope(|scope| {
                for _ in 1..threads {
                    scope.spawn(|| black_box((kernel.run)(black_box(iterations))));
                }
                black_box((kernel.run)(black_box(iterations)));
            });
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    flops / best_seconds / 1e9
}

/// Iterations that take about `seconds` on one thread: doubles a trial run until it takes 20 ms
/// (long enough for the clock and for the core to reach its sustained frequency), then scales.
fn calibrate(kernel: &Kernel, seconds: f64) -> u64 {
    let mut iterations: u64 = 1 << 12;
    loop {
        let start = Instant::now();
        black_box((kernel.run)(black_box(iterations)));
        let elapsed = start.elapsed().as_secs_f64();
        if elapsed >= 0.02 {
            return ((iterations as f64 * seconds / elapsed).ceil() as u64).max(1);
        }
        iterations *= 2;
    }
}

fn kernel() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Kernel {
                name: "avx2+fma (12 x __m256)",
                run: avx2::run,
                accumulators: avx2::ACCUMULATORS,
                lanes: avx2::LANES,
            };
        }
    }
    scalar_kernel()
}

fn scalar_kernel() -> Kernel {
    Kernel {
        name: "scalar (32 accumulators, lower bound)",
        run: scalar::run,
        accumulators: scalar::ACCUMULATORS,
        lanes: 1,
    }
}

// The accumulators follow acc <- acc * M + A from 0, which tends to A / (1 - M) = 1: no overflow,
// no denormals (which would slow some CPUs down), whatever the iteration count.
const M: f32 = 0.999;
const A: f32 = 0.001;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{A, M};
    use std::arch::x86_64::*;

    pub const ACCUMULATORS: usize = 12;
    pub const LANES: usize = 8;

    pub fn run(iterations: u64) -> f32 {
        // SAFETY: `kernel` hands out this function only after detecting AVX2 and FMA.
        unsafe { fma_loop(iterations) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn fma_loop(iterations: u64) -> f32 {
        let m = _mm256_set1_ps(M);
        let a = _mm256_set1_ps(A);
        // A fixed-size array the compiler unrolls and keeps in registers (12 + 2 of the 16 ymm).
        let mut acc = [_mm256_setzero_ps(); ACCUMULATORS];
        for _ in 0..iterations {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, m, a);
            }
        }
        let mut sum = _mm256_setzero_ps();
        for x in acc {
            sum = _mm256_add_ps(sum, x);
        }
        let mut lanes = [0.0f32; LANES];
        _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
        lanes.iter().sum()
    }
}

mod scalar {
    use super::{A, M};

    pub const ACCUMULATORS: usize = 32;

    pub fn run(iterations: u64) -> f32 {
        let mut acc = [0.0f32; ACCUMULATORS];
        for _ in 0..iterations {
            for x in acc.iter_mut() {
                *x = multiply_add(*x, M, A);
            }
        }
        acc.iter().sum()
    }

    /// x * m + a: one fused instruction where the target has one; elsewhere a multiply and an
    /// add (`mul_add` would be a slow library call there, and would understate the peak further).
    #[inline(always)]
    fn multiply_add(x: f32, m: f32, a: f32) -> f32 {
        if cfg!(any(target_arch = "aarch64", target_feature = "fma")) {
            x.mul_add(m, a)
        } else {
            x * m + a
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_converge_to_one_and_the_peak_is_positive() {
        // acc_n = 1 - M^n for each accumulator; 10^4 iterations put it within 1e-4 of 1.
        for k in [kernel(), scalar_kernel()] {
            let per_lane = (k.run)(10_000) as f64 / (k.accumulators * k.lanes) as f64;
            assert!((per_lane - 1.0).abs() < 1e-3, "{}: {per_lane}", k.name);
        }
        let peak = fma_peak_gflops(1, 0.01);
        assert!(peak.is_finite() && peak > 0.1, "{peak}");
    }
}
