//! The data range shown along one axis (linear or log), its round ticks fitted to the axis
//! length so that labels never overlap, and the plotters coordinate that shows them.
//!
//! A log axis is drawn as a linear plotters axis over log10 of the values ([`Axis::coord`]),
//! with our own ticks at 1-2-5 multiples of powers of ten: so every chart has one coordinate
//! type and the tick labels read as values ("0.05", "1e-4"), not as exponents.

use super::ticks::{self, Tick};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use std::ops::Range;

/// Length of a tick mark outside the frame, in pixels.
pub const TICK_LEN: i32 = 5;
/// Gap between a tick mark and its label, in pixels.
pub const LABEL_GAP: i32 = 4;

/// The data range shown along one axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    /// Logarithmic axis (`lo > 0` then).
    pub log: bool,
}

impl Axis {
    pub fn linear(lo: f64, hi: f64) -> Axis {
        Axis { lo, hi, log: false }
    }

    /// Where `v` falls, 0 at `lo` and 1 at `hi` (NaN for `v <= 0` on a log axis).
    pub fn fraction(&self, v: f64) -> f64 {
        (self.coord(v) - self.coord(self.lo)) / (self.coord(self.hi) - self.coord(self.lo))
    }

    /// The plotters coordinate of `v`: `v` itself, or log10 `v` on a log axis (NaN for `v <= 0`).
    pub fn coord(&self, v: f64) -> f64 {
        match self.log {
            true if v > 0.0 => v.log10(),
            true => f64::NAN,
            false => v,
        }
    }

    /// At most `max_count` round ticks within the range.
    pub fn ticks(&self, max_count: usize) -> Vec<Tick> {
        if self.log {
            ticks::log(self.lo, self.hi, max_count)
        } else {
            ticks::linear(self.lo, self.hi, max_count)
        }
    }

    /// The most ticks (up to 10) whose neighbours are at least `need(ticks)` pixels apart along
    /// an axis `length` pixels long (at least one tick when the range has any).
    pub fn fit(&self, length: f64, need: impl Fn(&[Tick]) -> f64) -> Vec<Tick> {
        let mut last = Vec::new();
        for count in (2..=10).rev() {
            let t = self.ticks(count);
            let spacing = t
                .windows(2)
                .map(|w| (self.fraction(w[1].value) - self.fraction(w[0].value)).abs() * length)
                .fold(f64::INFINITY, f64::min);
            if spacing >= need(&t) {
                return t;
            }
            last = t;
        }
        last.truncate(1);
        last
    }

    /// The plotters coordinate over this range, with grid lines and labels at `ticks` (and
    /// faint lines at `minor`, the 2..9 multiples on a log axis, when `minor` is set).
    pub fn chart_coord(&self, ticks: &[Tick], minor: bool) -> TickedCoord {
        let light = if self.log && minor {
            ticks::log_minor(self.lo, self.hi)
                .into_iter()
                .map(|v| self.coord(v))
                .collect()
        } else {
            Vec::new()
        };
        TickedCoord {
            range: (self.coord(self.lo)..self.coord(self.hi)).into(),
            bold: ticks.iter().map(|t| self.coord(t.value)).collect(),
            light,
        }
    }
}

/// A linear plotters coordinate whose grid lines and labels sit at given points (ours), instead
/// of the ones plotters would pick. (plotters' own `WithKeyPoints` does the same but cannot take
/// a label formatter, so it could not show our short labels.)
#[derive(Clone)]
pub struct TickedCoord {
    range: RangedCoordf64,
    bold: Vec<f64>,
    light: Vec<f64>,
}

impl Ranged for TickedCoord {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.range.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.range()
    }
}

/// The label of the tick of `ticks` nearest to the plotters coordinate `coord` on `axis`
/// (plotters asks for labels by coordinate; the key points are exactly our ticks).
pub fn label_at(axis: &Axis, ticks: &[Tick], coord: f64) -> String {
    ticks
        .iter()
        .min_by(|a, b| {
            let da = (axis.coord(a.value) - coord).abs();
            let db = (axis.coord(b.value) - coord).abs();
            da.total_cmp(&db)
        })
        .map(|t| t.label.clone())
        .unwrap_or_default()
}
