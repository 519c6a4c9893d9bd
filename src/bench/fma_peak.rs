//! The machine's f32 multiply-add peak, measured on the widest vector unit the CPU has: the
//! yardstick for "the matmul work runs at X% of the FMA peak" in `meanflow bench`.
//!
//! A loop keeps `accumulators` independent accumulators busy with acc <- acc * m + a, enough
//! independent chains to cover the FMA latency on every pipe, so the loop runs at the CPU's FMA
//! throughput and nothing else (no loads or stores in the loop). Its rate is
//!
//!   flops = iterations x accumulators x lanes x 2 (one multiply and one add per lane),
//!   GFLOP/s = flops / seconds / 1e9.
//!
//! Kernels, the widest the CPU has chosen at run time ([`VectorUnit`], named in the result and in
//! `meanflow bench`'s output):
//! - `avx512` (x86_64 with AVX-512F): 24 `__m512` accumulators (16 f32 lanes) through
//!   `_mm512_fmadd_ps`, 32 flops per instruction. 24 chains cover a latency of up to 12 cycles on
//!   two 512-bit FMA pipes (Skylake-SP to Sapphire Rapids and Zen 5 need 8; Zen 4, which splits a
//!   512-bit FMA over its two 256-bit pipes, needs 4 and peaks no higher than with AVX2).
//! - `avx2` (x86_64 with AVX2 and FMA, no AVX-512F): 12 `__m256` accumulators (8 lanes) through
//!   `_mm256_fmadd_ps`, 16 flops per instruction; 12 chains cover a latency of 4-5 cycles on two
//!   FMA pipes (the AVX2 parts of Zen and Skylake need 8-10).
//! - `scalar` (anything else): 32 scalar f32 accumulators, which the compiler is free to
//!   vectorise with the target's baseline SIMD. A lower bound of the peak (baseline SIMD is
//!   narrower than what the CPU may have; without hardware FMA the multiply and add are counted
//!   as the two flops they are), so a fraction against it overstates.
//!
//! The GEMM measured against this peak (`matrixmultiply` 0.3.11 built with Rust 1.89 or later)
//! picks an AVX-512 kernel on such a CPU too, so the fraction compares like with like.

use std::hint::black_box;
use std::time::Instant;

/// Timed repetitions; the best one is reported (interruptions only ever slow a repetition down).
pub const REPETITIONS: usize = 3;

/// The vector unit an FMA peak was measured on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorUnit {
    /// 512-bit `__m512` FMAs (x86_64 AVX-512F).
    Avx512,
    /// 256-bit `__m256` FMAs (x86_64 AVX2 + FMA).
    Avx2,
    /// Scalar f32 code, vectorised at most with the compile target's baseline SIMD: a lower bound.
    Scalar,
}

crate::named_enum!(VectorUnit, "vector unit", { Avx512 => "avx512", Avx2 => "avx2", Scalar => "scalar" });

impl VectorUnit {
    /// Every unit, widest first.
    pub const ALL: [VectorUnit; 3] = [VectorUnit::Avx512, VectorUnit::Avx2, VectorUnit::Scalar];

    /// Whether this CPU has the unit (run-time detection; `Scalar` always).
    pub fn is_available(self) -> bool {
        self.kernel().is_some()
    }

    /// The widest unit this CPU has: the one [`fma_peak`] measures.
    pub fn widest() -> VectorUnit {
        Self::ALL
            .into_iter()
            .find(|u| u.is_available())
            .unwrap_or(VectorUnit::Scalar)
    }

    /// This unit's measurement kernel, if the CPU has the unit.
    fn kernel(self) -> Option<Kernel> {
        match self {
            #[cfg(target_arch = "x86_64")]
            VectorUnit::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f").then_some(Kernel {
                    unit: self,
                    description: "avx512f, 24 x __m512 accumulators",
                    run: avx512::run,
                    accumulators: avx512::ACCUMULATORS,
                    lanes: avx512::LANES,
                })
            }
            #[cfg(target_arch = "x86_64")]
            VectorUnit::Avx2 => (std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma"))
            .then_some(Kernel {
                unit: self,
                description: "avx2+fma, 12 x __m256 accumulators",
                run: avx2::run,
                accumulators: avx2::ACCUMULATORS,
                lanes: avx2::LANES,
            }),
            VectorUnit::Scalar => Some(Kernel {
                unit: self,
                description: "scalar, 32 accumulators, a lower bound",
                run: scalar::run,
                accumulators: scalar::ACCUMULATORS,
                lanes: 1,
            }),
            #[cfg(not(target_arch = "x86_64"))]
            _ => None,
        }
    }
}

/// A measured FMA peak and what it was measured on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FmaPeak {
    /// f32 GFLOP/s, summed over the threads measured.
    pub gflops: f64,
    /// The vector unit the loop ran on.
    pub unit: VectorUnit,
    /// The kernel, for people: e.g. "avx512f, 24 x __m512 accumulators".
    pub kernel: &'static str,
}

/// A measurement kernel: runs `iterations` iterations and returns a value that depends on all of
/// its accumulators (so that the work cannot be optimised away).
struct Kernel {
    unit: VectorUnit,
    description: &'static str,
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

/// Measured f32 multiply-add throughput of the widest vector unit this CPU has
/// ([`VectorUnit::widest`]), in GFLOP/s summed over `threads` threads that run the loop at once
/// (one thread: the peak of one core). Each of the [`REPETITIONS`] repetitions runs about
/// `seconds` (calibrated on one thread first); the best repetition counts, at
/// flops = threads x iterations x accumulators x lanes x 2 over the wall time from the start of
/// the threads to the end of the last one.
pub fn fma_peak(threads: usize, seconds: f64) -> FmaPeak {
    fma_peak_on(VectorUnit::widest(), threads, seconds).expect("the widest unit is available")
}

/// As [`fma_peak`] on the given unit, or None if this CPU does not have it (to compare units).
pub fn fma_peak_on(unit: VectorUnit, threads: usize, seconds: f64) -> Option<FmaPeak> {
    let kernel = unit.kernel()?;
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
    Some(FmaPeak {
        gflops: flops / best_seconds / 1e9,
        unit: kernel.unit,
        kernel: kernel.description,
    })
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

// The accumulators follow acc <- acc * M + A from 0, which tends to A / (1 - M) = 1: no overflow,
// no denormals (which would slow some CPUs down), whatever the iteration count.
const M: f32 = 0.999;
const A: f32 = 0.001;

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{A, M};
    use std::arch::x86_64::*;

    pub const ACCUMULATORS: usize = 24;
    pub const LANES: usize = 16;

    pub fn run(iterations: u64) -> f32 {
        // SAFETY: `VectorUnit::kernel` hands out this function only after detecting AVX-512F.
        unsafe { fma_loop(iterations) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn fma_loop(iterations: u64) -> f32 {
        let m = _mm512_set1_ps(M);
        let a = _mm512_set1_ps(A);
        // A fixed-size array the compiler unrolls and keeps in registers (24 + 2 of the 32 zmm).
        let mut acc = [_mm512_setzero_ps(); ACCUMULATORS];
        for _ in 0..iterations {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, m, a);
            }
        }
        let mut sum = _mm512_setzero_ps();
        for x in acc {
            sum = _mm512_add_ps(sum, x);
        }
        _mm512_reduce_add_ps(sum)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{A, M};
    use std::arch::x86_64::*;

    pub const ACCUMULATORS: usize = 12;
    pub const LANES: usize = 8;

    pub fn run(iterations: u64) -> f32 {
        // SAFETY: `VectorUnit::kernel` hands out this function only after detecting AVX2 and FMA.
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
    fn every_available_kernel_converges_to_one_and_the_peak_is_positive() {
        assert!(VectorUnit::Scalar.is_available());
        // acc_n = 1 - M^n for each accumulator; 10^4 iterations put it within 1e-4 of 1.
        for unit in VectorUnit::ALL {
            let Some(k) = unit.kernel() else { continue };
            assert_eq!(k.unit, unit);
            let per_lane = (k.run)(10_000) as f64 / (k.accumulators * k.lanes) as f64;
            assert!(
                (per_lane - 1.0).abs() < 1e-3,
                "{}: {per_lane}",
                k.description
            );
        }
        let peak = fma_peak(1, 0.01);
        assert_eq!(peak.unit, VectorUnit::widest());
        assert!(peak.gflops.is_finite() && peak.gflops > 0.1, "{peak:?}");
    }

    #[test]
    fn the_widest_unit_is_the_widest_the_cpu_has() {
        let widest = VectorUnit::widest();
        #[cfg(target_arch = "x86_64")]
        {
            let expected = if std::arch::is_x86_feature_detected!("avx512f") {
                VectorUnit::Avx512
            } else if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                VectorUnit::Avx2
            } else {
                VectorUnit::Scalar
            };
            assert_eq!(widest, expected);
        }
        #[cfg(not(target_arch = "x86_64"))]
        assert_eq!(widest, VectorUnit::Scalar);
        assert_eq!(
            VectorUnit::ALL.map(VectorUnit::name),
            ["avx512", "avx2", "scalar"]
        );
    }
}
