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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// `f` of every item, on `workers` OS threads taking the items in turn; the results are in the
/// items' order, so they do not depend on the scheduling when `f` does not.
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let work = || loop {
        let k = next.fetch_add(1, Ordering::Relaxed);
        let Some(item) = items.get(k) else {
            break;
        };
        let r = f(item);
        results.lock().expect("no worker panicked")[k] = Some(r);
    };
    let workers = workers.min(items.len()).max(1);
    std::thread::scope(|scope| {
        for _ in 1..workers {
            scope.spawn(work);
        }
        work();
    });
    results
        .into_inner()
        .expect("no worker panicked")
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}
