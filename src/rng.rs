//! A small, reproducible random-number generator whose whole state is four u64 words, so that a
//! checkpoint can store it and a resumed run draws exactly the numbers an uninterrupted run would.
//!
//! Generator: xoshiro256++ (Blackman and Vigna, 2019), seeded through splitmix64.
//! Uniforms: the top 53 bits, u = (x >> 11) 2^-53 in [0, 1).
//! Normals: Box-Muller, z = sqrt(-2 ln u1) cos(2 pi u2), with u1 in (0, 1]; the sine partner is
//! cached, and the cache is part of the state.

/// xoshiro256++ with a cached second normal.
#[derive(Clone, Debug, PartialEq)]
pub struct Rng {
    state: [u64; 4],
    cached_normal: Option<f64>,
}

/// The full state of an [`Rng`], for checkpoints.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RngState {
    pub words: [u64; 4],
    pub cached_normal: Option<f64>,
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator seeded from one u64 (splitmix64 expands it to the 256-bit state).
    pub fn seed_from_u64(seed: u64) -> Self {
        let mut s = seed;
        let state = [
            splitmix64(&mut s),
            splitmix64(&mut s),
            splitmix64(&mut s),
            splitmix64(&mut s),
        ];
        Rng {
            state,
            cached_normal: None,
        }
    }

    /// An independent stream derived from this seed and a stream index (for per-purpose streams).
    pub fn stream(seed: u64, index: u64) -> Self {
        Rng::seed_from_u64(seed ^ splitmix64(&mut index.wrapping_mul(0xD134_2543_DE82_EF95)))
    }

    pub fn state(&self) -> RngState {
        RngState {
            words: self.state,
            cached_normal: self.cached_normal,
        }
    }

    pub fn from_state(state: RngState) -> Self {
        Rng {
            state: state.words,
            cached_normal: state.cached_normal,
        }
    }

    /// The next 64 random bits (xoshiro256++).
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn uniform_range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; bias below 2^-64 n).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below: n must be positive");
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Standard normal N(0, 1) by Box-Muller.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.cached_normal.take() {
            return z;
        }
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln(u1) is finite
        let u2 = self.uniform();
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = 2.0 * std::f64::consts::PI * u2;
        self.cached_normal = Some(radius * angle.sin());
        radius * angle.cos()
    }

    /// A uniformly random permutation of 0..n (Fisher-Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i + 1);
            p.swap(i, j);
        }
        p
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
        let saved = a.state();
        let x: Vec<f64> = (0..5).map(|_| a.normal()).collect();
        let mut c = Rng::from_state(saved);
        let y: Vec<f64> = (0..5).map(|_| c.normal()).collect();
        assert_eq!(x, y);
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
            assert!(r.below(7) < 7);
        }
        let mut p = r.permutation(50);
        p.sort();
        assert_eq!(p, (0..50).collect::<Vec<_>>());
    }
}
