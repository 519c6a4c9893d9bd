//! The MF vs iMF study: instruments that measure where the noise of the conditional velocity
//! v_c = e - x enters each loss (docs/math.md derives the formulas, docs/study.md reports them).
//!
//! - [`dataset`]: the study's datasets, the toy generators and the 64-D digits ([`dataset::StudyDataset`]).
//! - [`fixture`]: the trained models the instruments share (trained once per dataset and loss).
//! - [`posterior`]: x | z_t for a dataset given by a finite sample (weights N(z_t; (1-t) x, t^2 I)).
//! - [`conditional_variance`]: instrument 1, Var[. | z_t] of tangent, JVP term, target, loss, gradient.
//! - [`gradient_noise`]: instrument 2, tr Cov of minibatch gradients; angle to the exact gradient.
//! - [`curves`]: instrument 3, training curves over seeds (v-form error, weighted loss, SW1).
//! - [`identity`]: instrument 4, the MeanFlow identity u(z, r, t) = mean of v along the ODE path.
//! - [`gaussian`]: instrument 5, isotropic Gaussian data, where u and the variances are closed form.
//!
//! Each instrument computes a result struct here (library code, testable): its settings, its result
//! rows and what its summary reports (ratios, medians, verdicts). `meanflow study` (src/cli/study/)
//! only chooses the settings, calls these, and writes the CSV / JSON / PNG files and the Markdown.

pub mod conditional_variance;
pub mod curves;
pub mod dataset;
pub mod fixture;
pub mod gaussian;
pub mod gradient_noise;
pub mod identity;
pub mod posterior;

use rayon::prelude::*;

/// The random stream of one instrument on one dataset: `(instrument << 56) ^ (h >> 8)` with h the
/// 64-bit FNV-1a hash of the dataset's name.
///
/// Keyed by the name, not by the dataset's position in `--datasets`, so that a dataset's numbers do
/// not change when others are added or reordered; the instrument number in the top byte keeps the
/// instruments' streams apart.
pub fn stream_index(instrument: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (instrument << 56) ^ (h >> 8)
}

/// `f` of every item, on at most `workers` threads (a rayon pool of its own, so that the study's
/// `--threads` bounds the work whatever else runs); the results are in the items' order, so they
/// do not depend on the scheduling when `f` does not.
///
/// The items are handed out one at a time (`with_max_len(1)`): each is a whole training or
/// measurement of uneven length, so the threads take the next one as they finish instead of
/// splitting the list into fixed halves up front.
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let workers = workers.min(items.len()).max(1);
    if workers == 1 {
        return items.iter().map(f).collect();
    }
    match rayon::ThreadPoolBuilder::new().num_threads(workers).build() {
        Ok(pool) => pool.install(|| items.par_iter().with_max_len(1).map(&f).collect()),
        // No threads to be had: the same results, one after another.
        Err(_) => items.iter().map(f).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_index_is_keyed_by_instrument_and_name() {
        // FNV-1a of the empty name is its offset basis.
        assert_eq!(stream_index(0, ""), 0xcbf2_9ce4_8422_2325 >> 8);
        assert_eq!(stream_index(1, "two_moons"), stream_index(1, "two_moons"));
        assert_ne!(stream_index(1, "two_moons"), stream_index(2, "two_moons"));
        assert_ne!(
            stream_index(1, "two_moons"),
            stream_index(1, "checkerboard")
        );
        assert_eq!(stream_index(5, "x") >> 56, 5);
    }

    #[test]
    fn parallel_map_keeps_the_order() {
        let items: Vec<u64> = (0..17).collect();
        let want: Vec<u64> = items.iter().map(|i| i * i).collect();
        for workers in [1, 2, 3] {
            assert_eq!(parallel_map(&items, workers, |i| i * i), want);
        }
    }
}
