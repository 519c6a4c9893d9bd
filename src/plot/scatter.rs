//! Side-by-side scatter panels sharing their axis limits (histograms for 1-D data).

use super::axes::{label_at, Axis, LABEL_GAP, TICK_LEN};
use super::color::Color;
use super::{
    cap_height, centre_fix, range, rgb, text_style, text_width, truncate_to_width, write_png,
};
use super::{Area, DrawError, LABEL_SIZE, PAD, TITLE_SIZE};
use ndarray::ArrayView2;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::Color as _;
use std::io;
use std::path::Path;

/// Side of each square plot area, in pixels.
const SIDE: i32 = 340;
/// Gap between a panel title and its plot area.
const TITLE_GAP: i32 = 8;

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

/// Writes `panels` side by side under `title` to the PNG file `path`: one square plot area per
/// panel with its title above, light grid lines at round ticks, and tick labels on both axes.
///
/// All panels share their axis limits: the 0.5% and 99.5% quantiles of every panel's
/// coordinates, padded by 10% and made equal in scale on both axes, so shapes are not
/// distorted. Points are small translucent dots, so overlap shows density; points outside the
/// limits or not finite are counted in the panel's corner ("12 off-plot").
pub fn scatter_panels(path: impl AsRef<Path>, panels: &[Panel], title: &str) -> io::Result<()> {
    let limits = Limits::of(panels);
    let layout = Layout::of(panels, &limits, title);
    let size = (layout.width as u32, layout.height as u32);
    write_png(path.as_ref(), size, |root| {
        draw(root, panels, title, &limits, &layout)
    })
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

    /// The vertical axis of `p`: density for a histogram, else the shared y.
    fn y_of(&self, p: &Panel) -> Axis {
        if p.points.ncols() == 1 {
            self.density
        } else {
            self.y
        }
    }
}

/// Where everything goes: the figure size, the top of the plot areas, the width left of each
/// for its y tick labels, and one panel's cell width.
struct Layout {
    width: i32,
    height: i32,
    top: i32,
    y_area: i32,
    x_area: i32,
    cell: i32,
}

impl Layout {
    fn of(panels: &[Panel], limits: &Limits, title: &str) -> Layout {
        let title_h = if title.is_empty() {
            0
        } else {
            cap_height(TITLE_SIZE) + PAD
        };
        let top = PAD + title_h + LABEL_SIZE as i32 + TITLE_GAP;
        let widest_y = panels
            .iter()
            .flat_map(|p| y_ticks(&limits.y_of(p)))
            .map(|t| text_width(&t.label, LABEL_SIZE))
            .max()
            .unwrap_or(0);
        let y_area = TICK_LEN + LABEL_GAP + widest_y + PAD / 2;
        let x_area = TICK_LEN + LABEL_GAP + cap_height(LABEL_SIZE) + PAD / 2;
        let cell = y_area + SIDE + PAD;
        let width =
            (PAD + cell * panels.len().max(1) as i32).max(text_width(title, TITLE_SIZE) + 2 * PAD);
        let height = top + SIDE + x_area + PAD / 2;
        Layout {
            width,
            height,
            top,
            y_area,
            x_area,
            cell,
        }
    }
}

/// The y ticks of a panel: labels at least 2.5 cap heights apart.
fn y_ticks(y: &Axis) -> Vec<super::ticks::Tick> {
    y.fit(SIDE as f64, |_| 2.5 * cap_height(LABEL_SIZE) as f64)
}

fn draw(
    root: &Area,
    panels: &[Panel],
    title: &str,
    limits: &Limits,
    layout: &Layout,
) -> Result<(), DrawError> {
    let centred = |v: VPos| text_style(LABEL_SIZE, Color::INK).pos(Pos::new(HPos::Center, v));
    if !title.is_empty() {
        let style = text_style(TITLE_SIZE, Color::INK).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw_text(title, &style, (layout.width / 2, PAD))?;
    }
    if panels.is_empty() {
        let at = (layout.width / 2, layout.top + SIDE / 2);
        let at = (at.0, at.1 + centre_fix(LABEL_SIZE));
        root.draw_text("(no panels)", &centred(VPos::Center), at)?;
    }
    for (i, p) in panels.iter().enumerate() {
        let x0 = PAD + layout.cell * i as i32;
        let area = root.clone().shrink(
            (x0, layout.top),
            (layout.y_area + SIDE, SIDE + layout.x_area),
        );
        draw_panel(root, &area, p, limits, layout)?;
    }
    Ok(())
}

/// One panel on `area` (its plot area, with its tick labels left of and below it).
fn draw_panel(
    root: &Area,
    area: &Area,
    p: &Panel,
    limits: &Limits,
    layout: &Layout,
) -> Result<(), DrawError> {
    let (n, d) = p.points.dim();
    let (x, y) = (limits.x, limits.y_of(p));
    let yt = y_ticks(&y);
    let min_gap = 1.5 * text_width("0", LABEL_SIZE) as f64;
    let xt = x.fit(SIDE as f64, |t| {
        let widest = t.iter().map(|t| text_width(&t.label, LABEL_SIZE)).max();
        let widest = widest.unwrap_or(0) as f64;
        widest + min_gap.max(0.75 * widest)
    });
    let mut chart = ChartBuilder::on(area)
        .x_label_area_size(layout.x_area)
        .y_label_area_size(layout.y_area)
        .build_cartesian_2d(x.chart_coord(&xt, false), y.chart_coord(&yt, false))?;
    let x_labels = |c: &f64| label_at(&x, &xt, *c);
    let y_labels = |c: &f64| label_at(&y, &yt, *c);
    chart
        .configure_mesh()
        .bold_line_style(rgb(Color::GRID))
        .axis_style(rgb(Color::INK))
        .set_all_tick_mark_size(TICK_LEN)
        .y_label_offset(centre_fix(LABEL_SIZE))
        .label_style(text_style(LABEL_SIZE, Color::INK))
        .x_label_formatter(&x_labels)
        .y_label_formatter(&y_labels)
        .draw()?;
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let mid = (xr.start + xr.end) / 2;

    let title = if d > 2 {
        format!("{} (dims 1-2 of {d})", p.title)
    } else {
        p.title.clone()
    };
    let title = truncate_to_width(&title, SIDE + 40, LABEL_SIZE);
    let style = text_style(LABEL_SIZE, Color::INK).pos(Pos::new(HPos::Center, VPos::Bottom));
    root.draw_text(&title, &style, (mid, yr.start - TITLE_GAP))?;

    let off = if n == 0 || d == 0 {
        let style = text_style(LABEL_SIZE, Color::INK).pos(Pos::new(HPos::Center, VPos::Center));
        root.draw_text(
            "(no points)",
            &style,
            (mid, (yr.start + yr.end) / 2 + centre_fix(LABEL_SIZE)),
        )?;
        0
    } else if d == 1 {
        let dens = histogram(p.points, &x, limits.bins);
        let width = (x.hi - x.lo) / limits.bins as f64;
        let bar = |i: usize, h: f64| {
            let x0 = x.lo + i as f64 * width;
            Rectangle::new([(x0, 0.0), (x0 + width, h)], rgb(p.color).mix(0.6).filled())
        };
        chart.draw_series(dens.iter().enumerate().map(|(i, &h)| bar(i, h)))?;
        // A full-colour top edge on every non-empty bin.
        let edge = |i: usize, h: f64| {
            let x0 = x.lo + i as f64 * width;
            PathElement::new([(x0, h), (x0 + width, h)], rgb(p.color).stroke_width(2))
        };
        let tops = dens.iter().enumerate().filter(|(_, h)| **h > 0.0);
        chart.draw_series(tops.map(|(i, &h)| edge(i, h)))?;
        let inside = |v: &&f64| v.is_finite() && **v >= x.lo && **v <= x.hi;
        p.points.len() - p.points.column(0).iter().filter(inside).count()
    } else {
        // Fewer points: bigger, more opaque dots; many: fainter ones, so overlap shows density.
        // (plotters' discs have whole-pixel radii and hard edges: radius 1 is a 5-pixel cross,
        // too faint for a cloud, so every dot has radius 2 and crowds get more transparent.)
        let alpha = (0.5 * (1000.0 / n as f64).sqrt()).clamp(0.05, 0.8);
        let alpha = if n <= 2000 { alpha } else { 0.7 * alpha };
        let radius = 2;
        let style = rgb(p.color).mix(alpha).filled();
        let inside = |a: &Axis, v: f64| v.is_finite() && v >= a.lo && v <= a.hi;
        let shown: Vec<(f64, f64)> = p
            .points
            .rows()
            .into_iter()
            .map(|r| (r[0], r[1]))
            .filter(|&(px, py)| inside(&x, px) && inside(&y, py))
            .collect();
        let off = n - shown.len();
        chart.draw_series(shown.into_iter().map(|c| Circle::new(c, radius, style)))?;
        off
    };
    if off > 0 {
        let note = format!("{off} off-plot");
        let (w, h) = (text_width(&note, LABEL_SIZE), cap_height(LABEL_SIZE));
        let (nx, ny) = (xr.end - 6, yr.end - 6);
        let backing = Rectangle::new(
            [(nx - w - 4, ny - h - 6), (nx + 3, ny + 3)],
            WHITE.mix(0.8).filled(),
        );
        root.draw(&backing)?;
        let style = text_style(LABEL_SIZE, Color::INK).pos(Pos::new(HPos::Right, VPos::Bottom));
        root.draw_text(&note, &style, (nx, ny))?;
    }
    super::outline(root, (xr.start, yr.start), (xr.end, yr.end), Color::INK)
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
