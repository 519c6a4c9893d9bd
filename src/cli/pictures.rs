//! The pictures the tool draws (samples.png, loss.png, `sample --png`), behind one adapter.
//!
//! STUB. Drawing belongs to the library's plotting module `meanflow::plot`
//! (`scatter_panels(path, &[Panel], title)` and `line_chart(path, title, x_label, y_label,
//! &[Series], log_y)`), which this branch does not contain yet. Until it is wired in, both
//! functions below draw nothing and return `Ok(false)` ("not written"), and the callers say so.
//! Wiring it in means replacing the two function bodies: build one `Panel { title, points, color }`
//! per [`Cloud`] and one `Series { name, points, color, band: None }` per [`Curve`], call the
//! plotting function, and return `Ok(true)`; then set [`AVAILABLE`] to true.

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
