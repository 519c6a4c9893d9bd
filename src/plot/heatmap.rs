//! Heat maps: a grid of values in the viridis colour map, with a colour bar.

use super::axes::{label_at, Axis, LABEL_GAP, TICK_LEN};
use super::color::{viridis, Color};
use super::{cap_height, centre_fix, range, rgb, text_style, text_width, write_png};
use super::{Area, DrawError, LABEL_SIZE, PAD, TITLE_SIZE};
use ndarray::ArrayView2;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::Color as _;
use std::io;
use std::path::Path;

const WIDTH: i32 = 720;
const HEIGHT: i32 = 620;
const BAR_W: i32 = 22;
const BAR_GAP: i32 = 24;

/// Writes `grid` as a heat map to the PNG file `path`: the cells in a framed plot area with
/// tick labels and axis labels, and a colour bar with its ticks on the right (and a grey "NaN"
/// swatch below it when some cell has no value).
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
    let size = (WIDTH as u32, HEIGHT as u32);
    write_png(path.as_ref(), size, |root| {
        let axes = (
            axis_or_count(x_range, grid.ncols()),
            axis_or_count(y_range, grid.nrows()),
        );
        draw(root, title, (x_label, y_label), grid, axes)
    })
}

fn axis_or_count(r: (f64, f64), n: usize) -> Axis {
    if r.0.is_finite() && r.1.is_finite() && r.0 < r.1 {
        Axis::linear(r.0, r.1)
    } else {
        Axis::linear(0.0, n.max(1) as f64)
    }
}

fn draw(
    root: &Area,
    title: &str,
    (x_label, y_label): (&str, &str),
    grid: ArrayView2<f64>,
    (x, y): (Axis, Axis),
) -> Result<(), DrawError> {
    let values = range::min_max(grid.iter().copied());
    let (vlo, vhi) = values.map_or((0.0, 1.0), |(lo, hi)| range::padded(lo, hi, 0.0));
    let colors = Axis::linear(vlo, vhi);
    let missing = grid.iter().any(|v| !v.is_finite());

    let cap = cap_height(LABEL_SIZE);
    let top = PAD
        + if title.is_empty() {
            0
        } else {
            cap_height(TITLE_SIZE) + PAD
        };
    if !title.is_empty() {
        let style = text_style(TITLE_SIZE, Color::INK).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw_text(title, &style, (WIDTH / 2, PAD))?;
    }
    let x_area = TICK_LEN + LABEL_GAP + cap + PAD + if x_label.is_empty() { 0 } else { cap + 4 };
    let plot_h = HEIGHT - top - x_area - PAD / 2;
    let need_y = |_: &[super::ticks::Tick]| 2.5 * cap as f64;
    let yt = y.fit(plot_h as f64, need_y);
    let bar_h = if missing { plot_h - 3 * cap } else { plot_h };
    let bar_ticks = colors.fit(bar_h as f64, need_y);
    let widest = |t: &[super::ticks::Tick]| {
        t.iter()
            .map(|t| text_width(&t.label, LABEL_SIZE))
            .max()
            .unwrap_or(0)
    };
    let y_area = TICK_LEN
        + LABEL_GAP
        + widest(&yt)
        + PAD / 2
        + if y_label.is_empty() { 0 } else { cap + PAD / 2 };
    let bar_labels = widest(&bar_ticks).max(text_width("NaN", LABEL_SIZE));
    let right = BAR_GAP + BAR_W + 1 + TICK_LEN + LABEL_GAP + bar_labels + PAD;
    let plot_w = WIDTH - PAD - y_area - right;
    let min_gap = 1.5 * text_width("0", LABEL_SIZE) as f64;
    let xt = x.fit(plot_w as f64, |t| {
        let w = widest(t) as f64;
        w + min_gap.max(0.75 * w)
    });

    let area = root.margin(top, PAD / 2, PAD, right);
    let mut chart = ChartBuilder::on(&area)
        .x_label_area_size(x_area)
        .y_label_area_size(y_area)
        .build_cartesian_2d(x.chart_coord(&xt, false), y.chart_coord(&yt, false))?;
    let x_labels = |c: &f64| label_at(&x, &xt, *c);
    let y_labels = |c: &f64| label_at(&y, &yt, *c);
    let mut mesh = chart.configure_mesh();
    mesh.disable_mesh()
        .y_label_offset(centre_fix(LABEL_SIZE))
        .axis_style(rgb(Color::INK))
        .set_all_tick_mark_size(TICK_LEN)
        .label_style(text_style(LABEL_SIZE, Color::INK))
        .axis_desc_style(text_style(LABEL_SIZE, Color::INK))
        .x_label_formatter(&x_labels)
        .y_label_formatter(&y_labels);
    if !x_label.is_empty() {
        mesh.x_desc(x_label);
    }
    if !y_label.is_empty() {
        mesh.y_desc(y_label);
    }
    mesh.draw()?;
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    draw_cells(root, (xr.start, yr.start), (xr.end, yr.end), grid, &colors)?;
    super::outline(
        root,
        (xr.start - 1, yr.start - 1),
        (xr.end + 1, yr.end + 1),
        Color::INK,
    )?;
    let bar_x = xr.end + BAR_GAP;
    draw_bar(root, (bar_x, yr.start), bar_h, &colors, &bar_ticks, missing)
}

/// Each pixel of the plot area `(x0, y0)..(x1, y1)` takes the colour of the cell under its
/// centre (row 0 of `grid` at the bottom); an empty grid is grey with a note.
fn draw_cells(
    root: &Area,
    (x0, y0): (i32, i32),
    (x1, y1): (i32, i32),
    grid: ArrayView2<f64>,
    colors: &Axis,
) -> Result<(), DrawError> {
    let (ny, nx) = grid.dim();
    if nx == 0 || ny == 0 || x1 <= x0 || y1 <= y0 {
        let grey = rgb(Color::MISSING).filled();
        root.draw(&Rectangle::new([(x0, y0), (x1 - 1, y1 - 1)], grey))?;
        let style = text_style(LABEL_SIZE, Color::INK).pos(Pos::new(HPos::Center, VPos::Center));
        let at = ((x0 + x1) / 2, (y0 + y1) / 2 + centre_fix(LABEL_SIZE));
        return root.draw_text("(empty grid)", &style, at);
    }
    let cell = |p: i32, origin: i32, len: i32, n: usize| {
        let t = (p - origin) as f64 + 0.5;
        ((t / len as f64 * n as f64) as usize).min(n - 1)
    };
    for py in y0..y1 {
        let i = ny - 1 - cell(py, y0, y1 - y0, ny);
        for px in x0..x1 {
            let v = grid[[i, cell(px, x0, x1 - x0, nx)]];
            let c = if v.is_finite() {
                viridis(colors.fraction(v))
            } else {
                Color::MISSING
            };
            root.draw_pixel((px, py), &rgb(c))?;
        }
    }
    Ok(())
}

/// The colour bar `BAR_W x h` pixels from `(x, y)` down, with `ticks` of the `colors` axis on
/// its right, and a grey "NaN" swatch below it if `missing`.
fn draw_bar(
    root: &Area,
    (x, y): (i32, i32),
    h: i32,
    colors: &Axis,
    ticks: &[super::ticks::Tick],
    missing: bool,
) -> Result<(), DrawError> {
    let bottom = y + h;
    for py in y..bottom {
        let t = (bottom as f64 - (py as f64 + 0.5)) / h.max(1) as f64;
        for px in x..x + BAR_W {
            root.draw_pixel((px, py), &rgb(viridis(t)))?;
        }
    }
    super::outline(
        root,
        (x - 1, y - 1),
        (x + BAR_W + 1, bottom + 1),
        Color::INK,
    )?;
    let label = text_style(LABEL_SIZE, Color::INK).pos(Pos::new(HPos::Left, VPos::Center));
    let fix = centre_fix(LABEL_SIZE);
    for t in ticks {
        let ty = (bottom as f64 - colors.fraction(t.value) * h as f64).round() as i32;
        let mark_x = x + BAR_W + 1;
        let mark = [(mark_x, ty), (mark_x + TICK_LEN - 1, ty)];
        root.draw(&PathElement::new(mark, rgb(Color::INK)))?;
        root.draw_text(&t.label, &label, (mark_x + TICK_LEN + LABEL_GAP, ty + fix))?;
    }
    if missing {
        let cap = cap_height(LABEL_SIZE);
        let (sy0, sy1) = (bottom + 2 * cap, bottom + 3 * cap + 4);
        let grey = rgb(Color::MISSING).filled();
        root.draw(&Rectangle::new([(x, sy0), (x + BAR_W - 1, sy1 - 1)], grey))?;
        super::outline(root, (x - 1, sy0 - 1), (x + BAR_W + 1, sy1 + 1), Color::INK)?;
        let at = (x + BAR_W + 1 + TICK_LEN + LABEL_GAP, (sy0 + sy1) / 2 + fix);
        root.draw_text("NaN", &label, at)?;
    }
    Ok(())
}
