//! Training progress on stderr: an indicatif bar on a terminal, otherwise (logs, CI, pipes) a plain
//! line every tenth of the run and at least every [`PLAIN_LINE_PERIOD`].

use super::common::format_duration;
use super::output::errln;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Without a terminal, the longest time between two progress lines (a long run's tenth can take
/// hours).
pub const PLAIN_LINE_PERIOD: Duration = Duration::from_secs(10);

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
    /// When the last plain line was printed.
    last_plain: Instant,
    /// The values of the last update (a timed line repeats them).
    last: Option<Snapshot>,
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
            last_plain: Instant::now(),
            last: None,
        }
    }

    /// A line above the bar (or on stderr).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => errln!("{line}"),
        }
    }

    /// The position, cheaply (call every step); without a terminal, a line when the last one is
    /// [`PLAIN_LINE_PERIOD`] old.
    pub fn tick(&mut self, step: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(step);
        } else if self.last_plain.elapsed() >= PLAIN_LINE_PERIOD {
            self.plain_line(step);
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
        self.last = Some(s);
        if s.step >= self.next_plain || s.step == self.total {
            self.plain_line(s.step);
        }
    }

    /// A plain progress line at `step`, with the values of the last update.
    fn plain_line(&mut self, step: u64) {
        while self.next_plain <= step {
            self.next_plain += self.plain_every;
        }
        self.last_plain = Instant::now();
        let elapsed = self.start.elapsed().as_secs_f64();
        let done = step.saturating_sub(self.first_step) as f64;
        let eta = if done > 0.0 {
            elapsed / done * self.total.saturating_sub(step) as f64
        } else {
            f64::NAN
        };
        let values = match self.last {
            Some(s) => {
                let sw1 = self
                    .last_sw1
                    .map(|v| format!(" sw1 {v:.4}"))
                    .unwrap_or_default();
                format!(
                    " loss {:.4} mse {:.4}{sw1} {:.0} steps/s",
                    s.loss, s.mse, s.steps_per_s
                )
            }
            None => String::new(),
        };
        errln!(
            "step {step}/{} ({:.0}%){values} elapsed {} ETA {}",
            self.total,
            100.0 * step as f64 / self.total.max(1) as f64,
            format_duration(elapsed),
            format_duration(eta)
        );
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}
