//! The random stream: one generator type, [`Rng`], whose whole state is four u64 words, so that a
//! checkpoint stores it and a resumed run draws exactly the numbers an uninterrupted run would.
//!
//! The generator is xoshiro256++ from `rand_xoshiro`; every draw goes through `rand` and
//! `rand_distr`:
//! - uniforms: `rand`'s `StandardUniform`, u in [0, 1) with 53 random bits;
//! - integers in [0, n): `rand`'s unbiased `random_range`;
//! - normals: `rand_distr`'s `StandardNormal` (ziggurat, no cached second value, so the state is
//!   the four words alone);
//! - permutations: `rand`'s Fisher-Yates `shuffle`.
//!
//! [`Rng`] implements [`RngCore`], so any `rand` / `rand_distr` API takes it
//! (`rng.sample(Normal::new(mu, sigma)?)`); the methods below are the draws this crate uses.

use rand::seq::SliceRandom;
use rand::{Rng as _, RngCore, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

/// xoshiro256++ (Blackman and Vigna, 2019). Serialises as its state, `{"s": [4 u64 words]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Rng(Xoshiro256PlusPlus);

/// splitmix64's finaliser: spreads a stream index over all 64 bits, so that streams (seed, k)
/// and (seed', k') coincide only if seed ^ mix(k) = seed' ^ mix(k').
fn mix(index: u64) -> u64 {
    let mut z = index.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator seeded from one u64 (`rand_core`'s PCG32 expansion to the 256-bit state).
    pub fn seed_from_u64(seed: u64) -> Self {
        Rng(Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    /// The stream `index` of a seed: the generator seeded from seed ^ mix(index). Each purpose
    /// (initial parameters, batches, held-out data, ...) draws from its own stream.
    pub fn stream(seed: u64, index: u64) -> Self {
        Rng::seed_from_u64(seed ^ mix(index))
    }

    /// Whether the state is all zeros, the one state xoshiro256++ never reaches from a seed (its
    /// stream would be 0 forever): a stored state is checked with it. Any other state gives four
    /// zero words in a row with probability 2^-256.
    pub fn is_stuck_at_zero(&self) -> bool {
        let mut probe = self.0.clone();
        (0..4).all(|_| probe.next_u64() == 0)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0.random()
    }

    /// Uniform in [lo, hi), lo < hi.
    pub fn uniform_range(&mut self, lo: f64, hi: f64) -> f64 {
        self.0.random_range(lo..hi)
    }

    /// Uniform integer in [0, n), n > 0.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below: n must be positive");
        self.0.random_range(0..n)
    }

    /// Standard normal N(0, 1).
    pub fn normal(&mut self) -> f64 {
        self.0.sample(StandardNormal)
    }

    /// A uniformly random permutation of 0..n.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        p.shuffle(&mut self.0);
        p
    }
}

impl RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.0.fill_bytes(dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_state_roundtrip() {
        let mut a = Rng::seed_from_u64(7);
        let mut b = Rng::seed_from_u64(7);
        for _ in 0..10 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        a.normal();
        let saved = serde_json::to_string(&a).unwrap();
        let x: Vec<f64> = (0..5).map(|_| a.normal()).collect();
        let mut c: Rng = serde_json::from_str(&saved).unwrap();
        let y: Vec<f64> = (0..5).map(|_| c.normal()).collect();
        assert_eq!(x, y);
    }

    #[test]
    fn streams_differ() {
        let first: Vec<u64> = (0..4)
            .map(|k| Rng::stream(0, k).next_u64())
            .chain((0..4).map(|s| Rng::stream(s + 1, 0).next_u64()))
            .collect();
        let mut sorted = first.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), first.len());
    }

    #[test]
    fn normal_moments() {
        let mut r = Rng::seed_from_u64(1);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        // Standard errors: 1/sqrt(n) = 0.0022 for the mean, sqrt(2/n) = 0.0032 for the variance.
        assert!(mean.abs() < 0.011, "mean {mean}");
        assert!((var - 1.0).abs() < 0.016, "var {var}");
    }

    #[test]
    fn uniform_range_and_below() {
        let mut r = Rng::seed_from_u64(3);
        for _ in 0..10_000 {
            let u = r.uniform();
            assert!((0.0..1.0).contains(&u));
            let v = r.uniform_range(-2.0, 3.0);
            assert!((-2.0..3.0).contains(&v));
            assert!(r.below(7) < 7);
        }
        let mut p = r.permutation(50);
        p.sort();
        assert_eq!(p, (0..50).collect::<Vec<_>>());
    }
}
