//! The pictures the tool draws (samples.png, loss.png, `sample --png`), through `meanflow::plot`.
//! A panel of 1-D points is drawn as a histogram; of d > 2 points, as its first two coordinates.

use meanflow::plot::{line_chart, palette, scatter_panels, Panel, Series};
use ndarray::ArrayView2;
use std::path::Path;

/// One scatter panel.
pub struct Cloud<'a> {
    pub title: String,
    pub points: ArrayView2<'a, f64>,
}

/// One line of a chart.
pub struct Curve {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

fn cannot_write(path: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: cannot write the picture: {e}", path.display())
}

/// Side-by-side scatter panels in one PNG, sharing axis limits.
pub fn scatter(path: &Path, title: &str, clouds: &[Cloud]) -> Result<(), String> {
    let panels: Vec<Panel> = clouds
        .iter()
        .enumerate()
        .map(|(i, c)| Panel::new(c.title.clone(), c.points, palette(i)))
        .collect();
    scatter_panels(path, &panels, title).map_err(cannot_write(path))
}

/// A line chart in one PNG (log y axis when `log_y`).
pub fn chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    curves: &[Curve],
    log_y: bool,
) -> Result<(), String> {
    let series: Vec<Series> = curves
        .iter()
        .enumerate()
        .map(|(i, c)| Series::new(c.name.clone(), c.points.clone(), palette(i)))
        .collect();
    line_chart(path, title, x_label, y_label, &series, log_y).map_err(cannot_write(path))
}
