//! The MF vs iMF study: instruments that measure where the noise of the conditional velocity
//! v_c = e - x enters each loss (docs/math.md derives the formulas, docs/study.md reports them).
//!
//! - [`fixture`]: the trained models the instruments share (trained once per dataset and loss).
//! - [`posterior`]: x | z_t for a dataset given by a finite sample (weights N(z_t; (1-t) x, t^2 I)).
//! - [`conditional_variance`]: instrument 1, Var[. | z_t] of tangent, JVP term, target, loss, gradient.
//! - [`gradient_noise`]: instrument 2, tr Cov of minibatch gradients; angle to the exact gradient.
//! - [`curves`]: instrument 3, training curves over seeds (v-form error, weighted loss, SW1).
//! - [`identity`]: instrument 4, the MeanFlow identity u(z, r, t) = mean of v along the ODE path.
//! - [`gaussian`]: instrument 5, isotropic Gaussian data, where u and the variances are closed form.
//!
//! Each instrument computes a result struct (library code, testable) and writes its own CSV / JSON /
//! PNG files and a short Markdown summary into a folder; `meanflow study` drives them.

pub mod conditional_variance;
pub mod curves;
pub mod fixture;
pub mod gaussian;
pub mod gradient_noise;
pub mod identity;
pub mod posterior;

use rayon::prelude::*;

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
