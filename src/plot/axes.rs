//! A plot frame: a pixel rectangle with a data range on each axis (linear or log), its grid,
//! outline, tick marks and tick labels, with tick counts chosen so that labels never overlap.

use super::canvas::{Canvas, HAlign, Rect, VAlign};
use super::color::Color;
use super::font;
use super::ticks::{self, Tick};

/// Length of a tick mark outside the frame, in pixels.
pub const TICK_LEN: i64 = 5;
/// Gap between a tick mark and its label, in pixels.
pub const LABEL_GAP: i64 = 4;

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
        if self.log {
            if v <= 0.0 {
                return f64::NAN;
            }
            (v.ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    /// The value at fraction `t` (the inverse of [`Axis::fraction`]).
    pub fn value(&self, t: f64) -> f64 {
        if self.log {
            (self.lo.ln() + t * (self.hi.ln() - self.lo.ln())).exp()
        } else {
            self.lo + t * (self.hi - self.lo)
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
}

/// A rectangle of the canvas showing `x` across and `y` upwards.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Frame {
    pub rect: Rect,
    pub x: Axis,
    pub y: Axis,
}

impl Frame {
    /// Canvas x of data `x`.
    pub fn px(&self, x: f64) -> f64 {
        self.rect.x as f64 + self.x.fraction(x) * self.rect.w as f64
    }

    /// Canvas y of data `y`.
    pub fn py(&self, y: f64) -> f64 {
        self.rect.bottom() as f64 - self.y.fraction(y) * self.rect.h as f64
    }

    /// The ticks of the x axis: as many as fit with labels apart by 1.5 characters or 3/4 of the
    /// widest label, whichever is more.
    pub fn x_ticks(&self, scale: usize) -> Vec<Tick> {
        let min_gap = 1.5 * (font::ADVANCE * scale) as f64;
        fit(&self.x, self.rect.w as f64, |t| {
            let widest = t.iter().map(|t| font::text_width(&t.label, scale)).max();
            let widest = widest.unwrap_or(0) as f64;
            widest + min_gap.max(0.75 * widest)
        })
    }

    /// The ticks of the y axis: as many as fit with labels 1.5 line heights apart.
    pub fn y_ticks(&self, scale: usize) -> Vec<Tick> {
        let need = 2.5 * font::cap_height(scale) as f64;
        fit(&self.y, self.rect.h as f64, |_| need)
    }

    /// Light grid lines at the ticks, to be drawn before the data.
    pub fn draw_grid(&self, c: &mut Canvas, xt: &[Tick], yt: &[Tick]) {
        let r = self.rect;
        for t in xt {
            let x = self.px(t.value).round() as i64;
            if x > r.x && x < r.right() - 1 {
                c.fill_rect(Rect::new(x, r.y, 1, r.h), Color::GRID, 1.0);
            }
        }
        for t in yt {
            let y = self.py(t.value).round() as i64;
            if y > r.y && y < r.bottom() - 1 {
                c.fill_rect(Rect::new(r.x, y, r.w, 1), Color::GRID, 1.0);
            }
        }
    }

    /// The outline, tick marks (and minor marks on log axes) and tick labels.
    pub fn draw_axes(&self, c: &mut Canvas, xt: &[Tick], yt: &[Tick], scale: usize) {
        let r = self.rect;
        c.set_clip(None);
        c.stroke_rect(Rect::new(r.x - 1, r.y - 1, r.w + 2, r.h + 2), Color::INK);
        for t in xt {
            let x = self.px(t.value).round() as i64;
            c.fill_rect(Rect::new(x, r.bottom() + 1, 1, TICK_LEN), Color::INK, 1.0);
            let y = r.bottom() + 1 + TICK_LEN + LABEL_GAP;
            c.text(
                (x, y),
                &t.label,
                scale,
                Color::INK,
                (HAlign::Center, VAlign::Top),
            );
        }
        for t in yt {
            let y = self.py(t.value).round() as i64;
            c.fill_rect(
                Rect::new(r.x - 1 - TICK_LEN, y, TICK_LEN, 1),
                Color::INK,
                1.0,
            );
            let x = r.x - 1 - TICK_LEN - LABEL_GAP;
            c.text(
                (x, y),
                &t.label,
                scale,
                Color::INK,
                (HAlign::Right, VAlign::Middle),
            );
        }
        if self.y.log {
            for v in ticks::log_minor(self.y.lo, self.y.hi) {
                let y = self.py(v).round() as i64;
                c.fill_rect(
                    Rect::new(r.x - 1 - TICK_LEN / 2, y, TICK_LEN / 2, 1),
                    Color::INK,
                    1.0,
                );
            }
        }
    }

    /// Height below the frame taken by x tick marks and labels.
    pub fn x_ticks_height(scale: usize) -> i64 {
        1 + TICK_LEN + LABEL_GAP + font::cap_height(scale) as i64
    }

    /// Width left of the frame taken by y tick marks and `labels`.
    pub fn y_ticks_width(labels: &[Tick], scale: usize) -> i64 {
        let w = labels
            .iter()
            .map(|t| font::text_width(&t.label, scale))
            .max()
            .unwrap_or(0);
        1 + TICK_LEN + LABEL_GAP + w as i64
    }
}

/// The most ticks (up to 10) whose neighbours are at least `need(ticks)` pixels apart along an
/// axis `length` pixels long.
fn fit(axis: &Axis, length: f64, need: impl Fn(&[Tick]) -> f64) -> Vec<Tick> {
    let mut last = Vec::new();
    for count in (2..=10).rev() {
        let t = axis.ticks(count);
        let spacing = t
            .windows(2)
            .map(|w| (axis.fraction(w[1].value) - axis.fraction(w[0].value)).abs() * length)
            .fold(f64::INFINITY, f64::min);
        if spacing >= need(&t) {
            return t;
        }
        last = t;
    }
    last.truncate(1);
    last
}
