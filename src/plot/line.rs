//! Line charts: curves over steps with optional shaded bands, a legend, and a log y axis.

use super::axes::{label_at, Axis, TickedCoord, LABEL_GAP, TICK_LEN};
use super::color::Color;
use super::{cap_height, centre_fix, range, rgb, text_style, text_width, write_png, DrawError};
use super::{Area, LABEL_SIZE, PAD, TITLE_SIZE};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::Color as _;
use std::io;
use std::path::Path;

const WIDTH: i32 = 900;
const HEIGHT: i32 = 560;
const LINE_WIDTH: u32 = 2;
const BAND_ALPHA: f64 = 0.2;
/// Opacity of the one pixel wider stroke drawn under each curve.
const HALO_ALPHA: f64 = 0.35;
/// Width of a legend entry's line sample, in pixels.
const LEGEND_SAMPLE: i32 = 28;

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

/// Writes a line chart of `series` to the PNG file `path`: the curves over light grid lines at
/// round ticks, the bands shaded behind them, a legend of the named series in the corner of the
/// frame that hides the fewest points, the title above and the axis labels beside the axes.
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
    let size = (WIDTH as u32, HEIGHT as u32);
    write_png(path.as_ref(), size, |root| {
        draw(root, title, x_label, y_label, series, log_y)
    })
}

/// The x and y ranges that show every valid point and band of `series`.
fn limits(series: &[Series], valid: &impl Fn(f64, f64) -> bool, log_y: bool) -> (Axis, Axis) {
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
    (Axis::linear(x.0, x.1), y)
}

fn draw(
    root: &Area,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
) -> Result<(), DrawError> {
    let valid = |x: f64, y: f64| x.is_finite() && y.is_finite() && (!log_y || y > 0.0);
    let (x, y) = limits(series, &valid, log_y);

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
    let yt = y.fit(plot_h as f64, |_| 2.5 * cap as f64);
    let widest_y = yt.iter().map(|t| text_width(&t.label, LABEL_SIZE)).max();
    let y_area = TICK_LEN
        + LABEL_GAP
        + widest_y.unwrap_or(0)
        + PAD / 2
        + if y_label.is_empty() { 0 } else { cap + PAD / 2 };
    let plot_w = WIDTH - PAD - y_area - 2 * PAD;
    let min_gap = 1.5 * text_width("0", LABEL_SIZE) as f64;
    let xt = x.fit(plot_w as f64, |t| {
        let widest = t.iter().map(|t| text_width(&t.label, LABEL_SIZE)).max();
        let widest = widest.unwrap_or(0) as f64;
        widest + min_gap.max(0.75 * widest)
    });

    let area = root.margin(top, PAD / 2, PAD, 2 * PAD);
    let mut chart = ChartBuilder::on(&area)
        .x_label_area_size(x_area)
        .y_label_area_size(y_area)
        .build_cartesian_2d(x.chart_coord(&xt, false), y.chart_coord(&yt, true))?;
    let x_labels = |c: &f64| label_at(&x, &xt, *c);
    let y_labels = |c: &f64| label_at(&y, &yt, *c);
    let mut mesh = chart.configure_mesh();
    mesh.bold_line_style(rgb(Color::GRID))
        .light_line_style(rgb(Color::GRID.over(Color::WHITE, 0.4)))
        .axis_style(rgb(Color::INK))
        .set_all_tick_mark_size(TICK_LEN)
        .y_label_offset(centre_fix(LABEL_SIZE))
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

    for s in series {
        if let Some(band) = &s.band {
            chart.draw_series(band_polygon(band, &y, s.color))?;
        }
    }
    for s in series {
        for run in s.points.split(|p| !valid(p.0, p.1)) {
            let run: Vec<(f64, f64)> = run.iter().map(|p| (p.0, y.coord(p.1))).collect();
            let style = rgb(s.color).stroke_width(LINE_WIDTH);
            match run.as_slice() {
                [] => {}
                [p] => {
                    chart.draw_series([Circle::new(*p, LINE_WIDTH, rgb(s.color).filled())])?;
                }
                _ => {
                    // plotters' bitmap lines have hard edges: a wider, faint stroke under
                    // the curve softens its stair steps.
                    let halo = rgb(s.color).mix(HALO_ALPHA).stroke_width(LINE_WIDTH + 1);
                    chart.draw_series(LineSeries::new(run.iter().copied(), halo))?;
                    chart.draw_series(LineSeries::new(run, style))?;
                }
            }
        }
    }

    let named: Vec<&Series> = series.iter().filter(|s| !s.name.is_empty()).collect();
    if !named.is_empty() {
        for s in &named {
            let line = rgb(s.color).stroke_width(LINE_WIDTH);
            let band_alpha = if s.band.is_some() { BAND_ALPHA } else { 0.0 };
            let shade = rgb(s.color).mix(band_alpha).filled();
            let half = cap / 2 + 1;
            // An empty series that only carries the legend entry: the curve may be drawn in
            // several pieces, the entry must appear once.
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), u32>>())?
                .label(s.name.as_str())
                // plotters centres the entry's text by its layout box, which sits high (see
                // `centre_fix`): raise the sample by as much so that the two line up.
                .legend(move |(lx, ly)| {
                    EmptyElement::at((lx, ly - centre_fix(LABEL_SIZE)))
                        + Rectangle::new([(0, -half), (LEGEND_SAMPLE, half)], shade)
                        + PathElement::new([(0, 0), (LEGEND_SAMPLE, 0)], line)
                });
        }
        let position = legend_corner(&chart, series, &named, &y, &valid);
        chart
            .configure_series_labels()
            .position(position)
            .legend_area_size(LEGEND_SAMPLE + 8)
            .margin(10)
            .label_font(text_style(LABEL_SIZE, Color::INK))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .draw()?;
    }

    let (xr, yr) = chart.plotting_area().get_pixel_range();
    super::outline(root, (xr.start, yr.start), (xr.end, yr.end), Color::INK)
}

/// The band of `(x, lo, hi)` as a polygon (upper edge left to right, lower edge back), in `y`'s
/// coordinate; entries with non-finite values are skipped, and on a log axis a `lo <= 0` lies
/// at the bottom of the frame.
fn band_polygon(band: &[(f64, f64, f64)], y: &Axis, color: Color) -> Option<Polygon<(f64, f64)>> {
    let mut b: Vec<(f64, f64, f64)> = band
        .iter()
        .copied()
        .filter(|(x, lo, hi)| x.is_finite() && lo.is_finite() && hi.is_finite())
        .collect();
    if b.len() < 2 {
        return None;
    }
    b.sort_by(|p, q| p.0.total_cmp(&q.0));
    let at = |v: f64| {
        let c = y.coord(v);
        if c.is_finite() {
            c
        } else {
            y.coord(y.lo)
        }
    };
    let upper = b.iter().map(|p| (p.0, at(p.2)));
    let lower = b.iter().rev().map(|p| (p.0, at(p.1)));
    let corners: Vec<(f64, f64)> = upper.chain(lower).collect();
    Some(Polygon::new(corners, rgb(color).mix(BAND_ALPHA).filled()))
}

/// The corner of the frame where a legend of `named` hides the fewest valid points.
fn legend_corner<DB: DrawingBackend>(
    chart: &ChartContext<DB, Cartesian2d<TickedCoord, TickedCoord>>,
    series: &[Series],
    named: &[&Series],
    y: &Axis,
    valid: &impl Fn(f64, f64) -> bool,
) -> SeriesLabelPosition {
    let text_w = named
        .iter()
        .map(|s| text_width(&s.name, LABEL_SIZE))
        .max()
        .unwrap_or(0);
    let (w, h) = (
        LEGEND_SAMPLE + 8 + text_w + 20,
        named.len() as i32 * (LABEL_SIZE as i32 + 4) + 10,
    );
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let (left, right) = (xr.start + 10, xr.end - 10 - w);
    let (top, bottom) = (yr.start + 10, yr.end - 10 - h);
    let corners = [
        (SeriesLabelPosition::UpperRight, right, top),
        (SeriesLabelPosition::UpperLeft, left, top),
        (SeriesLabelPosition::LowerRight, right, bottom),
        (SeriesLabelPosition::LowerLeft, left, bottom),
    ];
    let hidden = |&(_, bx, by): &(SeriesLabelPosition, i32, i32)| {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| valid(p.0, p.1))
            .map(|p| chart.backend_coord(&(p.0, y.coord(p.1))))
            .filter(|&(px, py)| px >= bx && px <= bx + w && py >= by && py <= by + h)
            .count()
    };
    corners
        .into_iter()
        .min_by_key(hidden)
        .map_or(SeriesLabelPosition::UpperRight, |c| c.0)
}
