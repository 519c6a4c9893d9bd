//! Line charts: curves over steps with optional shaded bands, a legend, and a log y axis.

use super::axes::{Axis, Frame};
use super::canvas::{Canvas, HAlign, Rect, VAlign};
use super::color::Color;
use super::font;
use super::range;
use super::{LABEL_SCALE, PAD, TITLE_SCALE};
use std::io;
use std::path::Path;

const WIDTH: i64 = 900;
const HEIGHT: i64 = 560;
const LINE_WIDTH: f64 = 2.0;
const BAND_ALPHA: f64 = 0.2;

/// One curve: points `(x, y)` joined in order; an optional band of `(x, lo, hi)` is shaded
/// between `lo` and `hi` behind it (a spread over seeds, say).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend entry (no entry when empty).
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub color: Color,
    pub band: Option<Vec<(f64, f64, f64)>>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>, color: Color) -> Self {
        Series {
            name: name.into(),
            points,
            color,
            band: None,
        }
    }

    pub fn with_band(mut self, band: Vec<(f64, f64, f64)>) -> Self {
        self.band = Some(band);
        self
    }
}

/// Writes a line chart of `series` to the PNG file `path`.
///
/// Points that are not finite (or, with `log_y`, whose y is not positive) are skipped and break
/// the curve there; a point alone between breaks is drawn as a dot. The x range spans the data
/// (2% margin), the y range the curves and bands (5% margin, in decades for `log_y`).
pub fn line_chart(
    path: impl AsRef<Path>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
) -> io::Result<()> {
    render(title, x_label, y_label, series, log_y).save_png(path.as_ref())
}

fn render(title: &str, x_label: &str, y_label: &str, series: &[Series], log_y: bool) -> Canvas {
    let valid = |x: f64, y: f64| x.is_finite() && y.is_finite() && (!log_y || y > 0.0);
    let bands = || series.iter().flat_map(|s| s.band.iter().flatten());
    let xs = series
        .iter()
        .flat_map(|s| s.points.iter().filter(|p| valid(p.0, p.1)).map(|p| p.0))
        .chain(
            bands()
                .filter(|b| b.1.is_finite() && b.2.is_finite())
                .map(|b| b.0),
        );
    let x = match range::min_max(xs) {
        Some((lo, hi)) => range::padded(lo, hi, 0.02),
        None => (0.0, 1.0),
    };
    let ys = series
        .iter()
        .flat_map(|s| s.points.iter().filter(|p| valid(p.0, p.1)).map(|p| p.1))
        .chain(bands().filter(|b| b.0.is_finite()).flat_map(|b| [b.1, b.2]));
    let y = if log_y {
        let (lo, hi) = range::log_limits(ys, 0.05);
        Axis { lo, hi, log: true }
    } else {
        let (lo, hi) =
            range::min_max(ys).map_or((0.0, 1.0), |(lo, hi)| range::padded(lo, hi, 0.05));
        Axis::linear(lo, hi)
    };

    let cap = font::cap_height(LABEL_SCALE) as i64;
    let top = PAD
        + if title.is_empty() {
            0
        } else {
            font::cap_height(TITLE_SCALE) as i64 + PAD
        };
    let bottom =
        Frame::x_ticks_height(LABEL_SCALE) + if x_label.is_empty() { 0 } else { PAD + cap } + PAD;
    let y_title = if y_label.is_empty() { 0 } else { cap + PAD };
    let h = HEIGHT - top - bottom;
    let probe = Frame {
        rect: Rect::new(0, top, 1, h),
        x: Axis::linear(x.0, x.1),
        y,
    };
    let yt = probe.y_ticks(LABEL_SCALE);
    let left = PAD + y_title + Frame::y_ticks_width(&yt, LABEL_SCALE);
    let frame = Frame {
        rect: Rect::new(left, top, WIDTH - left - 2 * PAD, h),
        ..probe
    };
    let xt = frame.x_ticks(LABEL_SCALE);

    let mut c = Canvas::new(WIDTH as usize, HEIGHT as usize, Color::WHITE);
    let r = frame.rect;
    if !title.is_empty() {
        c.text(
            (WIDTH / 2, PAD),
            title,
            TITLE_SCALE,
            Color::INK,
            (HAlign::Center, VAlign::Top),
        );
    }
    if !x_label.is_empty() {
        let y = HEIGHT - PAD;
        c.text(
            (r.x + r.w / 2, y),
            x_label,
            LABEL_SCALE,
            Color::INK,
            (HAlign::Center, VAlign::Bottom),
        );
    }
    if !y_label.is_empty() {
        c.text_up(PAD, r.y + r.h / 2, y_label, LABEL_SCALE, Color::INK);
    }
    frame.draw_grid(&mut c, &xt, &yt);
    c.set_clip(Some(r));
    for s in series {
        if let Some(band) = &s.band {
            draw_band(&mut c, &frame, band, s.color);
        }
    }
    for s in series {
        draw_curve(&mut c, &frame, s, &valid);
    }
    draw_legend(&mut c, &frame, series, &valid);
    frame.draw_axes(&mut c, &xt, &yt, LABEL_SCALE);
    c
}

/// The curve of `s`, broken at invalid points; isolated points become dots.
fn draw_curve(c: &mut Canvas, f: &Frame, s: &Series, valid: &impl Fn(f64, f64) -> bool) {
    for run in s.points.split(|p| !valid(p.0, p.1)) {
        let px: Vec<(f64, f64)> = run.iter().map(|p| (f.px(p.0), f.py(p.1))).collect();
        match px.as_slice() {
            [] => {}
            [(x, y)] => c.disc(*x, *y, LINE_WIDTH, s.color, 1.0),
            _ => {
                for w in px.windows(2) {
                    c.line(w[0], w[1], LINE_WIDTH, s.color, 1.0);
                }
            }
        }
    }
}

/// Shades between `lo` and `hi` column by column, interpolating linearly in x between the
/// band's points (sorted by x; entries with non-finite values skipped).
fn draw_band(c: &mut Canvas, f: &Frame, band: &[(f64, f64, f64)], color: Color) {
    let mut b: Vec<(f64, f64, f64)> = band
        .iter()
        .copied()
        .filter(|(x, lo, hi)| x.is_finite() && lo.is_finite() && hi.is_finite())
        .collect();
    b.sort_by(|p, q| p.0.total_cmp(&q.0));
    let (Some(first), Some(last)) = (b.first(), b.last()) else {
        return;
    };
    let r = f.rect;
    // On a log axis, values <= 0 lie below the frame: shade down to its bottom.
    let py = |v: f64| {
        if f.y.log && v <= 0.0 {
            r.bottom() as f64
        } else {
            f.py(v)
        }
    };
    let x0 = f.px(first.0).floor() as i64;
    let x1 = (f.px(last.0).ceil() as i64).max(x0 + 1);
    for col in x0.max(r.x)..x1.min(r.right()) {
        let x = f.x.value((col as f64 + 0.5 - r.x as f64) / r.w as f64);
        let (p, q) = if b.len() == 1 {
            (b[0], b[0])
        } else {
            let k = b.partition_point(|p| p.0 < x).clamp(1, b.len() - 1);
            (b[k - 1], b[k])
        };
        let t = if q.0 > p.0 {
            ((x - p.0) / (q.0 - p.0)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let lo = p.1 + t * (q.1 - p.1);
        let hi = p.2 + t * (q.2 - p.2);
        c.vspan(col, py(lo), py(hi), color, BAND_ALPHA);
    }
}

/// A legend box in the corner of the frame that hides the fewest points.
fn draw_legend(c: &mut Canvas, f: &Frame, series: &[Series], valid: &impl Fn(f64, f64) -> bool) {
    let named: Vec<&Series> = series.iter().filter(|s| !s.name.is_empty()).collect();
    if named.is_empty() {
        return;
    }
    let cap = font::cap_height(LABEL_SCALE) as i64;
    let (row, sample, gap) = (cap + 10, 28, 8);
    let text_w = named
        .iter()
        .map(|s| font::text_width(&s.name, LABEL_SCALE))
        .max()
        .unwrap_or(0) as i64;
    let (w, h) = (
        gap + sample + gap + text_w + gap,
        gap + row * named.len() as i64 - 10 + gap,
    );
    let r = f.rect;
    let (m, right, bottom) = (10, r.right() - 10 - w, r.bottom() - 10 - h);
    let corners = [
        (right, r.y + m),
        (r.x + m, r.y + m),
        (right, bottom),
        (r.x + m, bottom),
    ];
    let hidden = |&(bx, by): &(i64, i64)| {
        let inside = |p: &&(f64, f64)| {
            let (x, y) = (f.px(p.0), f.py(p.1));
            valid(p.0, p.1)
                && x >= bx as f64
                && x <= (bx + w) as f64
                && y >= by as f64
                && y <= (by + h) as f64
        };
        series
            .iter()
            .map(|s| s.points.iter().filter(inside).count())
            .sum::<usize>()
    };
    let (bx, by) = corners.into_iter().min_by_key(hidden).unwrap_or(corners[0]);
    let frame = Rect::new(bx, by, w, h);
    c.fill_rect(frame, Color::WHITE, 0.85);
    c.stroke_rect(frame, Color::rgb(200, 200, 200));
    for (i, s) in named.iter().enumerate() {
        let y = by + gap + cap / 2 + row * i as i64;
        let (x0, x1) = ((bx + gap) as f64, (bx + gap + sample) as f64);
        if s.band.is_some() {
            c.fill_rect(
                Rect::new(bx + gap, y - cap / 2, sample, cap),
                s.color,
                BAND_ALPHA,
            );
        }
        c.line(
            (x0, y as f64 + 0.5),
            (x1, y as f64 + 0.5),
            LINE_WIDTH,
            s.color,
            1.0,
        );
        let tx = bx + gap + sample + gap;
        c.text(
            (tx, y),
            &s.name,
            LABEL_SCALE,
            Color::INK,
            (HAlign::Left, VAlign::Middle),
        );
    }
}
