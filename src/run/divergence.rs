//! The divergence guard: a loss that explodes while staying finite stops the run.
//!
//! Each metrics line gives the mean regression error |delta|^2 of its window (`mse`: the loss
//! before the adaptive weight, which bounds the weighted loss by 1 when p = 1 and hides the
//! explosion). With m the median of the windows before a suspect one,
//!
//! ```text
//! a window is suspect     when  mse > FACTOR m           (FACTOR = 100)
//! the run has diverged    when  SUSPECT_WINDOWS windows in a row are suspect   (3)
//! ```
//!
//! from the second window on (a run that explodes in its first hundred steps leaves only its
//! step-0 checkpoint). Healthy training falls from its first window; it does not rise a
//! hundredfold three windows running. Suspect windows do not enter the median, so a run that
//! climbs slowly is still measured against where it was. While a window is suspect the session
//! writes no periodic checkpoint, so that the last one on disk is from before the climb. The
//! history is the run's metrics lines, rebuilt from metrics.jsonl on a resume, so a resumed run
//! decides as an uninterrupted one would.

/// How far above the median a window's error must be to be suspect.
pub const FACTOR: f64 = 100.0;
/// Consecutive suspect windows that make a divergence.
pub const SUSPECT_WINDOWS: u32 = 3;

/// The guard's state: the errors of the windows that were not suspect, and the current run of
/// suspect ones.
#[derive(Clone, Debug, Default)]
pub struct DivergenceGuard {
    history: Vec<f64>,
    suspect: u32,
}

/// What one window says.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    Fine,
    /// Above [`FACTOR`] times the median, but not yet [`SUSPECT_WINDOWS`] in a row.
    Suspect,
    /// [`SUSPECT_WINDOWS`] suspect windows in a row; `median` is what they were measured against.
    Diverged {
        median: f64,
    },
}

impl DivergenceGuard {
    /// A guard that has seen the windows `errors`, in order (a resumed run's kept lines).
    pub fn with_history(errors: impl IntoIterator<Item = f64>) -> Self {
        let mut guard = DivergenceGuard::default();
        for e in errors {
            guard.observe(e);
        }
        guard
    }

    /// Judges the next window's mean error. A non-finite one (a window of skipped steps) says
    /// nothing: non-finite steps have their own rule.
    pub fn observe(&mut self, error: f64) -> Verdict {
        if !error.is_finite() {
            return if self.is_suspect() {
                Verdict::Suspect
            } else {
                Verdict::Fine
            };
        }
        if !self.history.is_empty() {
            let median = median(&self.history);
            if error > FACTOR * median {
                self.suspect += 1;
                return if self.suspect >= SUSPECT_WINDOWS {
                    Verdict::Diverged { median }
                } else {
                    Verdict::Suspect
                };
            }
        }
        self.suspect = 0;
        self.history.push(error);
        Verdict::Fine
    }

    /// Whether the last window was suspect.
    pub fn is_suspect(&self) -> bool {
        self.suspect > 0
    }
}

/// The median of a non-empty list (the mean of the middle two for an even length).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_windows_a_hundred_times_the_median_are_a_divergence() {
        let mut guard = DivergenceGuard::with_history([5.0, 3.0, 2.0, 2.0, 1.0, 1.0]);
        // Median 2: 199 is not suspect, 201 is.
        assert_eq!(guard.observe(199.0), Verdict::Fine);
        assert_eq!(guard.observe(250.0), Verdict::Suspect);
        assert!(guard.is_suspect());
        assert_eq!(guard.observe(1e9), Verdict::Suspect);
        assert_eq!(guard.observe(1e21), Verdict::Diverged { median: 2.0 });
    }

    #[test]
    fn a_spike_that_comes_back_resets_the_count() {
        let mut guard = DivergenceGuard::with_history([1.0; 5]);
        assert_eq!(guard.observe(500.0), Verdict::Suspect);
        assert_eq!(guard.observe(500.0), Verdict::Suspect);
        assert_eq!(guard.observe(1.5), Verdict::Fine);
        assert!(!guard.is_suspect());
        assert_eq!(guard.observe(500.0), Verdict::Suspect);
        assert_eq!(guard.observe(500.0), Verdict::Suspect);
        assert!(matches!(guard.observe(500.0), Verdict::Diverged { .. }));
    }

    #[test]
    fn the_first_window_is_the_first_reference() {
        let mut guard = DivergenceGuard::default();
        assert_eq!(guard.observe(1e6), Verdict::Fine);
        assert_eq!(guard.observe(1e8 + 1.0), Verdict::Suspect);
        assert_eq!(guard.observe(1e9), Verdict::Suspect);
        assert_eq!(guard.observe(1e10), Verdict::Diverged { median: 1e6 });
    }
}
