//! Training progress on stderr: an indicatif bar on a terminal, plain lines every tenth of the
//! run otherwise (logs, CI, pipes).

use super::common::format_duration;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

/// What a progress update shows.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    pub step: u64,
    pub loss: f64,
    pub mse: f64,
    pub steps_per_s: f64,
    pub sw1: Option<f64>,
}

pub struct Progress {
    bar: Option<ProgressBar>,
    first_step: u64,
    total: u64,
    plain_every: u64,
    next_plain: u64,
    start: Instant,
    last_sw1: Option<f64>,
}

impl Progress {
    /// Progress from `first_step` (steps already done) to `total`.
    pub fn new(first_step: u64, total: u64) -> Self {
        let remaining = total.saturating_sub(first_step).max(1);
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30.cyan/blue} {pos}/{len} {msg} [{elapsed_precise}, ETA {eta}]",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_position(first_step);
            bar
        });
        let plain_every = remaining.div_ceil(10).max(1);
        Progress {
            bar,
            first_step,
            total,
            plain_every,
            next_plain: first_step + plain_every,
            start: Instant::now(),
            last_sw1: None,
        }
    }

    /// A line above the bar (or on stderr).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// The position, cheaply (call every step).
    pub fn tick(&self, step: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(step);
        }
    }

    /// New values (call at each logged step).
    pub fn update(&mut self, s: Snapshot) {
        if s.sw1.is_some() {
            self.last_sw1 = s.sw1;
        }
        let sw1 = self
            .last_sw1
            .map(|v| format!(" sw1 {v:.4}"))
            .unwrap_or_default();
        if let Some(bar) = &self.bar {
            bar.set_position(s.step);
            bar.set_message(format!(
                "loss {:.4} mse {:.4}{sw1} {:.0} steps/s",
                s.loss, s.mse, s.steps_per_s
            ));
            return;
        }
        if s.step >= self.next_plain || s.step == self.total {
            while self.next_plain <= s.step {
                self.next_plain += self.plain_every;
            }
            let elapsed = self.start.elapsed().as_secs_f64();
            let done = (s.step - self.first_step) as f64;
            let eta = if done > 0.0 {
                elapsed / done * (self.total - s.step) as f64
            } else {
                f64::NAN
            };
            eprintln!(
                "step {}/{} ({:.0}%) loss {:.4} mse {:.4}{sw1} {:.0} steps/s elapsed {} ETA {}",
                s.step,
                self.total,
                100.0 * s.step as f64 / self.total.max(1) as f64,
                s.loss,
                s.mse,
                s.steps_per_s,
                format_duration(elapsed),
                format_duration(eta)
            );
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}
