//! Heat maps: a grid of values in the viridis colour map, with a colour bar.

use super::axes::{Axis, Frame, LABEL_GAP, TICK_LEN};
use super::canvas::{Canvas, HAlign, Rect, VAlign};
use super::color::{viridis, Color};
use super::font;
use super::range;
use super::{LABEL_SCALE, PAD, TITLE_SCALE};
use ndarray::ArrayView2;
use std::io;
use std::path::Path;

const WIDTH: i64 = 720;
const HEIGHT: i64 = 620;
const BAR_W: i64 = 22;
const BAR_GAP: i64 = 24;

/// Writes `grid` as a heat map to the PNG file `path`.
///
/// `grid[[i, j]]` is the cell in column `j` (along x) and row `i` (along y), row 0 at the
/// bottom: the `nx = grid.ncols()` columns split `x_range` evenly, the `ny = grid.nrows()` rows
/// split `y_range`. Colours span the finite values (viridis, dark = low); NaN and infinite cells
/// are grey. A range that is not finite and increasing falls back to `(0, n)`.
pub fn heatmap(
    path: impl AsRef<Path>,
    title: &str,
    x_label: &str,
    y_label: &str,
    grid: ArrayView2<f64>,
    x_range: (f64, f64),
    y_range: (f64, f64),
) -> io::Result<()> {
    render(title, x_label, y_label, grid, x_range, y_range).save_png(path.as_ref())
}

fn axis_or_count(r: (f64, f64), n: usize) -> Axis {
    if r.0.is_finite() && r.1.is_finite() && r.0 < r.1 {
        Axis::linear(r.0, r.1)
    } else {
        Axis::linear(0.0, n.max(1) as f64)
    }
}

fn render(
    title: &str,
    x_label: &str,
    y_label: &str,
    grid: ArrayView2<f64>,
    x_range: (f64, f64),
    y_range: (f64, f64),
) -> Canvas {
    let (ny, nx) = grid.dim();
    let values = range::min_max(grid.iter().copied());
    let (vlo, vhi) = values.map_or((0.0, 1.0), |(lo, hi)| range::padded(lo, hi, 0.0));
    let colors = Axis::linear(vlo, vhi);
    let missing = grid.iter().any(|v| !v.is_finite());

    let cap = font::cap_height(LABEL_SCALE) as i64;
    let top = PAD
        + if title.is_empty() {
            0
        } else {
            font::cap_height(TITLE_SCALE) as i64 + PAD
        };
    let bottom =
        Frame::x_ticks_height(LABEL_SCALE) + if x_label.is_empty() { 0 } else { PAD + cap } + PAD;
    let h = HEIGHT - top - bottom;
    let bar = Frame {
        rect: Rect::new(0, top, BAR_W, if missing { h - 3 * cap } else { h }),
        x: Axis::linear(0.0, 1.0),
        y: colors,
    };
    let bar_ticks = bar.y_ticks(LABEL_SCALE);
    let probe = Frame {
        rect: Rect::new(0, top, 1, h),
        x: axis_or_count(x_range, nx),
        y: axis_or_count(y_range, ny),
    };
    let yt = probe.y_ticks(LABEL_SCALE);
    let left = PAD
        + if y_label.is_empty() { 0 } else { cap + PAD }
        + Frame::y_ticks_width(&yt, LABEL_SCALE);
    let nan_w = 1 + TICK_LEN + LABEL_GAP + font::text_width("NaN", LABEL_SCALE) as i64;
    let right = BAR_GAP + BAR_W + Frame::y_ticks_width(&bar_ticks, LABEL_SCALE).max(nan_w) + PAD;
    let frame = Frame {
        rect: Rect::new(left, top, WIDTH - left - right, h),
        ..probe
    };
    let bar = Frame {
        rect: Rect {
            x: frame.rect.right() + BAR_GAP,
            ..bar.rect
        },
        ..bar
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
        c.text(
            (r.x + r.w / 2, HEIGHT - PAD),
            x_label,
            LABEL_SCALE,
            Color::INK,
            (HAlign::Center, VAlign::Bottom),
        );
    }
    if !y_label.is_empty() {
        c.text_up(PAD, r.y + r.h / 2, y_label, LABEL_SCALE, Color::INK);
    }
    draw_cells(&mut c, r, grid, &colors);
    frame.draw_axes(&mut c, &xt, &yt, LABEL_SCALE);
    draw_bar(&mut c, &bar, &bar_ticks, missing);
    c
}

/// Each pixel of `r` takes the colour of the cell under its centre.
fn draw_cells(c: &mut Canvas, r: Rect, grid: ArrayView2<f64>, colors: &Axis) {
    let (ny, nx) = grid.dim();
    if nx == 0 || ny == 0 {
        c.fill_rect(r, Color::MISSING, 1.0);
        let (x, y) = (r.x + r.w / 2, r.y + r.h / 2);
        c.text(
            (x, y),
            "(empty grid)",
            LABEL_SCALE,
            Color::INK,
            (HAlign::Center, VAlign::Middle),
        );
        return;
    }
    let cell = |p: i64, origin: i64, len: i64, n: usize| {
        let t = (p - origin) as f64 + 0.5;
        ((t / len as f64 * n as f64) as usize).min(n - 1)
    };
    for py in r.y..r.bottom() {
        let i = ny - 1 - cell(py, r.y, r.h, ny);
        for px in r.x..r.right() {
            let v = grid[[i, cell(px, r.x, r.w, nx)]];
            let col = if v.is_finite() {
                viridis(colors.fraction(v))
            } else {
                Color::MISSING
            };
            c.blend(px, py, col, 1.0);
        }
    }
}

/// The colour bar with its ticks on the right, and a grey "NaN" swatch below it if needed.
fn draw_bar(c: &mut Canvas, bar: &Frame, ticks: &[super::ticks::Tick], missing: bool) {
    let r = bar.rect;
    for py in r.y..r.bottom() {
        let t = (r.bottom() as f64 - (py as f64 + 0.5)) / r.h as f64;
        c.fill_rect(Rect::new(r.x, py, r.w, 1), viridis(t), 1.0);
    }
    c.stroke_rect(Rect::new(r.x - 1, r.y - 1, r.w + 2, r.h + 2), Color::INK);
    for t in ticks {
        let y = bar.py(t.value).round() as i64;
        c.fill_rect(Rect::new(r.right() + 1, y, TICK_LEN, 1), Color::INK, 1.0);
        let x = r.right() + 1 + TICK_LEN + LABEL_GAP;
        c.text(
            (x, y),
            &t.label,
            LABEL_SCALE,
            Color::INK,
            (HAlign::Left, VAlign::Middle),
        );
    }
    if missing {
        let cap = font::cap_height(LABEL_SCALE) as i64;
        let swatch = Rect::new(r.x, r.bottom() + 2 * cap, r.w, cap + 4);
        c.fill_rect(swatch, Color::MISSING, 1.0);
        c.stroke_rect(
            Rect::new(swatch.x - 1, swatch.y - 1, swatch.w + 2, swatch.h + 2),
            Color::INK,
        );
        let (x, y) = (
            swatch.right() + 1 + TICK_LEN + LABEL_GAP,
            swatch.y + swatch.h / 2,
        );
        c.text(
            (x, y),
            "NaN",
            LABEL_SCALE,
            Color::INK,
            (HAlign::Left, VAlign::Middle),
        );
    }
}
