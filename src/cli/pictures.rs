//! The pictures the tool draws (samples.png, loss.png, `sample --png`), behind one adapter.
//!
//! STUB. Drawing belongs to the library's plotting module `meanflow::plot`
//! (`scatter_panels(path, &[Panel], title)` and `line_chart(path, title, x_label, y_label,
//! &[Series], log_y)`, both returning `io::Result<()>`), which this branch does not contain yet.
//! Until it is wired in, both functions below draw nothing and return `Ok(false)` ("not written"),
//! and the callers say so. Wiring it in: set [`AVAILABLE`] to true and replace the two bodies with
//!
//! ```text
//! use meanflow::plot::{line_chart, palette, scatter_panels, Panel, Series};
//! let why = |e: std::io::Error| format!("{}: cannot write the picture: {e}", path.display());
//! // scatter:
//! let panels: Vec<Panel> = clouds.iter().enumerate()
//!     .map(|(i, c)| Panel::new(c.title.clone(), c.points, palette(i))).collect();
//! scatter_panels(path, &panels, title).map_err(why)?;
//! Ok(true)
//! // chart:
//! let series: Vec<Series> = curves.iter().enumerate()
//!     .map(|(i, c)| Series::new(c.name.clone(), c.points.clone(), palette(i))).collect();
//! line_chart(path, title, x_label, y_label, &series, log_y).map_err(why)?;
//! Ok(true)
//! ```
//!
//! and drop the two `#[allow(dead_code)]`.

use ndarray::ArrayView2;
use std::path::Path;

/// Whether this build draws pictures.
pub const AVAILABLE: bool = false;

/// One scatter panel: a set of 2-D points (columns 0 and 1).
#[allow(dead_code)] // read by the plotting module once it is wired in
pub struct Cloud<'a> {
    pub title: String,
    pub points: ArrayView2<'a, f64>,
}

/// One line of a chart.
#[allow(dead_code)] // read by the plotting module once it is wired in
pub struct Curve {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Side-by-side scatter panels in one PNG. Returns whether a file was written.
pub fn scatter(path: &Path, title: &str, clouds: &[Cloud]) -> Result<bool, String> {
    let _ = (path, title, clouds);
    Ok(false)
}

/// A line chart in one PNG (log y axis when `log_y`). Returns whether a file was written.
pub fn chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    curves: &[Curve],
    log_y: bool,
) -> Result<bool, String> {
    let _ = (path, title, x_label, y_label, curves, log_y);
    Ok(false)
}
