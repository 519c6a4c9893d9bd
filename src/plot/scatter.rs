//! Side-by-side scatter panels sharing their axis limits (histograms for 1-D data).

use super::axes::{Axis, Frame};
use super::canvas::{Canvas, HAlign, Rect, VAlign};
use super::color::Color;
use super::font;
use super::range;
use super::{LABEL_SCALE, PAD, TITLE_SCALE};
use ndarray::ArrayView2;
use std::io;
use std::path::Path;

/// Side of each square plot area, in pixels.
const SIDE: i64 = 340;
/// Gap between a panel title and its plot area.
const TITLE_GAP: i64 = 10;

/// One panel: a point cloud (N x d) drawn in one colour.
///
/// d = 2: a scatter plot; d = 1: a density histogram; d > 2: the first two coordinates (the
/// panel title says so).
#[derive(Clone, Debug)]
pub struct Panel<'a> {
    pub title: String,
    pub points: ArrayView2<'a, f64>,
    pub color: Color,
}

impl<'a> Panel<'a> {
    pub fn new(title: impl Into<String>, points: ArrayView2<'a, f64>, color: Color) -> Self {
        Panel {
            title: title.into(),
            points,
            color,
        }
    }
}

/// Writes `panels` side by side under `title` to the PNG file `path`.
///
/// All panels share their axis limits: the 0.5% and 99.5% quantiles of every panel's
/// coordinates, padded by 10% and made equal in scale on both axes, so shapes are not
/// distorted. Points are small translucent dots, so overlap shows density; points outside the
/// limits or not finite are counted in the panel's corner ("12 off-plot").
pub fn scatter_panels(path: impl AsRef<Path>, panels: &[Panel], title: &str) -> io::Result<()> {
    render(panels, title).save_png(path.as_ref())
}

/// Shared limits: x and y for scatter panels, y (density) for histogram panels.
struct Limits {
    x: Axis,
    y: Axis,
    density: Axis,
    bins: usize,
}

impl Limits {
    fn of(panels: &[Panel]) -> Limits {
        let column = |j: usize| -> Vec<f64> {
            panels
                .iter()
                .filter(|p| p.points.ncols() > j && (j == 0 || p.points.ncols() >= 2))
                .flat_map(|p| p.points.column(j).to_vec())
                .collect()
        };
        let (x0, x1) = range::quantile_limits(&column(0), 0.005, 0.995, 0.1);
        let (mut y0, mut y1) = range::quantile_limits(&column(1), 0.005, 0.995, 0.1);
        // Same scale on both axes: widen the narrower range about its centre.
        let (mut x0, mut x1) = (x0, x1);
        let span = (x1 - x0).max(y1 - y0);
        let widen = |lo: &mut f64, hi: &mut f64| {
            let mid = 0.5 * (*lo + *hi);
            (*lo, *hi) = (mid - span / 2.0, mid + span / 2.0);
        };
        if panels.iter().any(|p| p.points.ncols() >= 2) {
            widen(&mut x0, &mut x1);
            widen(&mut y0, &mut y1);
        }
        let x = Axis::linear(x0, x1);
        let largest = panels.iter().map(|p| p.points.nrows()).max().unwrap_or(0);
        let bins = ((largest as f64).sqrt().round() as usize).clamp(10, 60);
        let peak = panels
            .iter()
            .filter(|p| p.points.ncols() == 1)
            .flat_map(|p| histogram(p.points, &x, bins))
            .fold(0.0, f64::max);
        let density = Axis::linear(0.0, if peak > 0.0 { 1.1 * peak } else { 1.0 });
        Limits {
            x,
            y: Axis::linear(y0, y1),
            density,
            bins,
        }
    }
}

fn render(panels: &[Panel], title: &str) -> Canvas {
    let limits = Limits::of(panels);
    let title_h = if title.is_empty() {
        0
    } else {
        font::cap_height(TITLE_SCALE) as i64 + PAD
    };
    let top = PAD + title_h + font::cap_height(LABEL_SCALE) as i64 + TITLE_GAP;
    let frame_at = |x: i64, p: &Panel| Frame {
        rect: Rect::new(x, top, SIDE, SIDE),
        x: limits.x,
        y: if p.points.ncols() == 1 {
            limits.density
        } else {
            limits.y
        },
    };
    let left = panels
        .iter()
        .map(|p| {
            let f = frame_at(0, p);
            Frame::y_ticks_width(&f.y_ticks(LABEL_SCALE), LABEL_SCALE)
        })
        .max()
        .unwrap_or(0)
        + PAD / 2;
    let cell = left + SIDE + PAD;
    let width = (PAD + cell * panels.len().max(1) as i64)
        .max(font::text_width(title, TITLE_SCALE) as i64 + 2 * PAD);
    let height = top + SIDE + Frame::x_ticks_height(LABEL_SCALE) + PAD;
    let mut c = Canvas::new(width as usize, height as usize, Color::WHITE);
    if !title.is_empty() {
        let x = width / 2;
        c.text(
            (x, PAD),
            title,
            TITLE_SCALE,
            Color::INK,
            (HAlign::Center, VAlign::Top),
        );
    }
    if panels.is_empty() {
        let y = top + SIDE / 2;
        c.text(
            (width / 2, y),
            "(no panels)",
            LABEL_SCALE,
            Color::INK,
            (HAlign::Center, VAlign::Middle),
        );
    }
    for (i, p) in panels.iter().enumerate() {
        let frame = frame_at(PAD + cell * i as i64 + left, p);
        draw_panel(&mut c, &frame, p, limits.bins);
    }
    c
}

fn draw_panel(c: &mut Canvas, f: &Frame, p: &Panel, bins: usize) {
    let (n, d) = p.points.dim();
    let title = if d > 2 {
        format!("{} (dims 1-2 of {d})", p.title)
    } else {
        p.title.clone()
    };
    let title = font::truncate_to_width(&title, (f.rect.w + 40) as usize, LABEL_SCALE);
    let r = f.rect;
    let mid = r.x + r.w / 2;
    c.text(
        (mid, r.y - TITLE_GAP),
        &title,
        LABEL_SCALE,
        Color::INK,
        (HAlign::Center, VAlign::Bottom),
    );
    let (xt, yt) = (f.x_ticks(LABEL_SCALE), f.y_ticks(LABEL_SCALE));
    f.draw_grid(c, &xt, &yt);
    c.set_clip(Some(r));
    let off = match d {
        _ if n == 0 || d == 0 => {
            let y = r.y + r.h / 2;
            c.text(
                (mid, y),
                "(no points)",
                LABEL_SCALE,
                Color::INK,
                (HAlign::Center, VAlign::Middle),
            );
            0
        }
        1 => draw_histogram(c, f, p, bins),
        _ => draw_dots(c, f, p),
    };
    if off > 0 {
        let note = format!("{off} off-plot");
        let (w, h) = (
            font::text_width(&note, LABEL_SCALE) as i64,
            font::cap_height(LABEL_SCALE) as i64,
        );
        let (x, y) = (r.right() - 6, r.bottom() - 6);
        c.fill_rect(
            Rect::new(x - w - 4, y - h - 4, w + 8, h + 8),
            Color::WHITE,
            0.8,
        );
        c.text(
            (x, y),
            &note,
            LABEL_SCALE,
            Color::INK,
            (HAlign::Right, VAlign::Bottom),
        );
    }
    f.draw_axes(c, &xt, &yt, LABEL_SCALE);
}

/// Dots for the first two coordinates; returns how many fell outside the frame.
fn draw_dots(c: &mut Canvas, f: &Frame, p: &Panel) -> usize {
    let n = p.points.nrows();
    // Fewer points: bigger, more opaque dots; many: fainter ones, so that overlap shows density.
    let alpha = (0.5 * (1000.0 / n as f64).sqrt()).clamp(0.06, 0.8);
    let radius = if n <= 2000 { 2.0 } else { 1.4 };
    let mut off = 0;
    for row in p.points.rows() {
        let (x, y) = (f.px(row[0]), f.py(row[1]));
        let inside = x >= f.rect.x as f64
            && x <= f.rect.right() as f64
            && y >= f.rect.y as f64
            && y <= f.rect.bottom() as f64;
        if inside {
            c.disc(x, y, radius, p.color, alpha);
        } else {
            off += 1;
        }
    }
    off
}

/// A density histogram of the first coordinate; returns how many values fell outside the frame.
fn draw_histogram(c: &mut Canvas, f: &Frame, p: &Panel, bins: usize) -> usize {
    let dens = histogram(p.points, &f.x, bins);
    let width = (f.x.hi - f.x.lo) / bins as f64;
    for (i, &h) in dens.iter().enumerate() {
        let x0 = f.px(f.x.lo + i as f64 * width).round() as i64;
        let x1 = f.px(f.x.lo + (i + 1) as f64 * width).round() as i64;
        let top = f.py(h);
        for x in x0..x1 {
            c.vspan(x, top, f.rect.bottom() as f64, p.color, 0.6);
        }
        let y = top.round() as i64;
        if h > 0.0 {
            c.fill_rect(Rect::new(x0, y, x1 - x0, 2), p.color, 1.0);
        }
    }
    let inside = |v: &&f64| v.is_finite() && **v >= f.x.lo && **v <= f.x.hi;
    p.points.len() - p.points.column(0).iter().filter(inside).count()
}

/// Density (count / (n * bin width)) in `bins` equal bins over the axis range.
fn histogram(points: ArrayView2<f64>, x: &Axis, bins: usize) -> Vec<f64> {
    let mut counts = vec![0usize; bins];
    if points.ncols() == 0 {
        return vec![0.0; bins];
    }
    for &v in points.column(0) {
        let t = x.fraction(v);
        if (0.0..=1.0).contains(&t) {
            counts[((t * bins as f64) as usize).min(bins - 1)] += 1;
        }
    }
    let width = (x.hi - x.lo) / bins as f64;
    let n = points.nrows().max(1) as f64;
    counts.into_iter().map(|k| k as f64 / (n * width)).collect()
}
