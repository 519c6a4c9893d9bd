//! A run's metrics.jsonl: one [`MetricsLine`] per logged step, the means over the steps since the
//! previous line. The sums behind the next line ([`LogAccumulator`]) are stored in every
//! checkpoint, so that a resumed run writes the same lines as one that was never stopped.

use crate::train::StepStats;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One line of metrics.jsonl: means over the `n` steps since the previous line, loss = (1/n)
/// sum_i loss_i (likewise `loss_u`, `loss_v`, `mse`, `grad_norm`).
#[derive(Clone, Debug, Serialize)]
pub struct MetricsLine {
    pub step: u64,
    pub loss: f64,
    pub loss_u: f64,
    /// The v-head's loss, for a model with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_v: Option<f64>,
    pub mse: f64,
    pub grad_norm: f64,
    /// The learning rate at `step`.
    pub lr: f64,
    pub steps_per_s: f64,
    /// Sliced W1 of 1-step samples against the held-out points, at an evaluation step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sw1: Option<f64>,
    /// Steps skipped since the previous line (non-finite loss or gradient).
    #[serde(skip_serializing_if = "is_zero")]
    pub skipped: u64,
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

/// Sums since the last metrics line; stored in the checkpoint (metadata `train_log`) so that a
/// resumed run writes the same lines.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogAccumulator {
    /// Steps taken since the last line.
    pub steps: u64,
    /// Steps skipped since the last line.
    pub skipped: u64,
    pub loss: f64,
    pub loss_u: f64,
    pub loss_v: f64,
    pub mse: f64,
    pub grad_norm: f64,
    /// The line of the checkpoint's step is still to be written: a stop request came during that
    /// line's evaluation, and the resumed run writes the line first. (Stored only when true, so
    /// other checkpoints keep their bytes.)
    #[serde(default, skip_serializing_if = "is_false")]
    pub pending_line: bool,
}

fn is_false(x: &bool) -> bool {
    !*x
}

impl LogAccumulator {
    /// Refuses sums no run can have at checkpoint step `step`: more steps than taken, negative or
    /// non-finite sums of losses and norms (all are sums of non-negative numbers). The error is
    /// the reason.
    pub fn check(&self, step: u64) -> Result<(), String> {
        if self.steps.saturating_add(self.skipped) > step {
            return Err(format!(
                "{} steps and {} skipped since the last line, more than the checkpoint's {step}",
                self.steps, self.skipped
            ));
        }
        for (name, sum) in [
            ("loss", self.loss),
            ("loss_u", self.loss_u),
            ("loss_v", self.loss_v),
            ("mse", self.mse),
            ("grad_norm", self.grad_norm),
        ] {
            if !(sum.is_finite() && sum >= 0.0) {
                return Err(format!(
                    "'{name}' is {sum}, but it is a sum of non-negative numbers"
                ));
            }
        }
        Ok(())
    }

    /// Adds a step's statistics to the sums.
    pub fn add(&mut self, s: &StepStats) {
        self.steps += 1;
        self.loss += s.loss.loss;
        self.loss_u += s.loss.loss_u;
        self.loss_v += s.loss.loss_v.unwrap_or(0.0);
        self.mse += s.loss.mse;
        self.grad_norm += s.update.grad_norm;
    }

    /// The line of the sums since the last line, which start again from zero.
    pub fn take_line(
        &mut self,
        step: u64,
        has_v: bool,
        lr: f64,
        steps_per_s: f64,
        sw1: Option<f64>,
    ) -> MetricsLine {
        let line = self.peek_line(step, has_v, lr, steps_per_s, sw1);
        *self = LogAccumulator::default();
        line
    }

    /// The line of the sums since the last line, which go on.
    pub fn peek_line(
        &self,
        step: u64,
        has_v: bool,
        lr: f64,
        steps_per_s: f64,
        sw1: Option<f64>,
    ) -> MetricsLine {
        let n = self.steps as f64;
        MetricsLine {
            step,
            loss: self.loss / n,
            loss_u: self.loss_u / n,
            loss_v: has_v.then(|| self.loss_v / n),
            mse: self.mse / n,
            grad_norm: self.grad_norm / n,
            lr,
            steps_per_s,
            sw1,
            skipped: self.skipped,
        }
    }
}

/// A failed open of or write to metrics.jsonl; one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum MetricsFileError {
    #[error("{}: cannot open: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// metrics.jsonl open for appending lines.
pub struct MetricsFile {
    file: File,
    path: PathBuf,
}

impl MetricsFile {
    /// Opens the existing file `path` to append to it.
    pub fn open_append(path: &Path) -> Result<Self, MetricsFileError> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|source| MetricsFileError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(MetricsFile {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Appends `line` as one JSON line, flushed.
    pub fn write_line(&mut self, line: &MetricsLine) -> Result<(), MetricsFileError> {
        let mut text = serde_json::to_string(line).expect("a metrics line serialises");
        text.push('\n');
        self.file
            .write_all(text.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|source| MetricsFileError::Write {
                path: self.path.clone(),
                source,
            })
    }
}

/// The step of a metrics line, if it is one.
fn step_of(line: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
}

/// The lines of the metrics file `path` that a run resumed from a checkpoint at `step` with the
/// sums `accumulator` keeps: those before `step`, and the line of `step` itself when its sums were
/// closed (a missing or unreadable file keeps none).
pub fn kept_lines(path: &Path, step: u64, accumulator: &LogAccumulator) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        // A line at the checkpoint's own step with sums still open is the closing line of a
        // shorter run (see Session::run); the sums go on instead.
        .filter(|line| {
            step_of(line).is_some_and(|s| s < step || (s == step && accumulator.steps == 0))
        })
        .map(str::to_string)
        .collect()
}

/// Loss and MSE against step, from the metrics file `path` (all sessions of the run); lines that
/// are not metrics are passed over.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LossCurves {
    pub loss: Vec<(f64, f64)>,
    pub mse: Vec<(f64, f64)>,
}

impl LossCurves {
    /// Reads the curves of the metrics file `path` (none when it cannot be read).
    pub fn read(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut curves = LossCurves::default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let Some(step) = v.get("step").and_then(|s| s.as_f64()) else {
                continue;
            };
            if let Some(l) = v.get("loss").and_then(|x| x.as_f64()) {
                curves.loss.push((step, l));
            }
            if let Some(m) = v.get("mse").and_then(|x| x.as_f64()) {
                curves.mse.push((step, m));
            }
        }
        curves
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulator_means_and_resets() {
        let mut acc = LogAccumulator {
            loss: 3.0,
            mse: 1.5,
            steps: 3,
            ..LogAccumulator::default()
        };
        let line = acc.take_line(10, false, 1e-3, 5.0, None);
        assert_eq!(line.loss, 1.0);
        assert_eq!(line.mse, 0.5);
        assert_eq!(acc, LogAccumulator::default());
    }

    #[test]
    fn kept_lines_drop_a_closing_line_whose_sums_go_on() {
        let dir = std::env::temp_dir().join(format!("meanflow-kept-lines-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("metrics.jsonl");
        std::fs::write(
            &path,
            "{\"step\":100}\n{\"step\":150}\nnot json\n{\"step\":200}\n",
        )
        .unwrap();
        let open = LogAccumulator {
            steps: 50,
            ..LogAccumulator::default()
        };
        assert_eq!(kept_lines(&path, 150, &open), ["{\"step\":100}"]);
        assert_eq!(
            kept_lines(&path, 150, &LogAccumulator::default()),
            ["{\"step\":100}", "{\"step\":150}"]
        );
        assert!(kept_lines(&dir.join("missing"), 150, &open).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
