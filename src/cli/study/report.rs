//! What every instrument's report shares: writing a file or a picture (with an error that names
//! it), number formats, and the names and colours of the losses in the pictures.

use crate::cli::output::errln;
use crate::cli::{CliError, CliResult};
use meanflow::flow::loss::LossPreset;
use meanflow::plot::{line_chart, palette, Color, Series};
use std::path::Path;

/// Writes a text file atomically, or says which file could not be written.
pub fn write_text(path: &Path, text: &str) -> CliResult<()> {
    meanflow::io::atomic::write_atomically(path, text.as_bytes())
        .map_err(|e| CliError::failed(format!("{}: cannot write the file: {e}", path.display())))
}

/// A picture's write result, or an error that says which picture could not be written.
pub fn picture(result: std::io::Result<()>, path: &Path) -> CliResult<()> {
    result
        .map_err(|e| CliError::failed(format!("{}: cannot write the picture: {e}", path.display())))
}

/// Writes a line chart, or says which file could not be written.
pub fn chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
) -> CliResult<()> {
    picture(
        line_chart(path, title, x_label, y_label, series, log_y),
        path,
    )
}

/// The line that ends an instrument's summary: the time of its own measurements (the shared
/// models were trained before, by `meanflow study`, and are timed there).
pub fn timing_line(measure_secs: f64) -> String {
    errln!("study: measurement {measure_secs:.1} s");
    format!("\n_(measurement {measure_secs:.1} s)_\n")
}

/// A dataset name as part of a file name (`gaussian:0.5:2` -> `gaussian-0.5-2`).
pub fn file_part(name: &str) -> String {
    name.replace(':', "-")
}

/// A float for the CSV files of instruments 1, 2 and 5: `NaN` as such, otherwise 7 significant
/// digits in scientific notation.
pub fn sci(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else {
        format!("{x:.6e}")
    }
}

/// A ratio a / b for the summary ("2.31x").
pub fn ratio_text(a: f64, b: f64) -> String {
    if b == 0.0 || !a.is_finite() || !b.is_finite() {
        "n/a".into()
    } else {
        format!("{:.3}x", a / b)
    }
}

/// The items joined by ", ", or "none".
pub fn list_or_none(items: &[impl AsRef<str>]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Three significant digits, in scientific notation outside [0.001, 10000).
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e4).contains(&a) {
        format!("{x:.2e}")
    } else {
        let decimals = (2 - a.log10().floor() as i64).max(0) as usize;
        format!("{x:.decimals$}")
    }
}

/// "mean ± sd".
pub fn pm(v: (f64, f64)) -> String {
    format!("{} ± {}", num(v.0), num(v.1))
}

/// Colour of the floors and other reference lines.
pub const REFERENCE: Color = Color::rgb(110, 110, 110);

/// The colour of a loss in every picture of instruments 3 and 4.
pub fn loss_color(preset: LossPreset) -> Color {
    match preset {
        LossPreset::Mf => palette(3),
        _ => palette(0),
    }
}

/// "MF" / "iMF".
pub fn loss_label(preset: LossPreset) -> &'static str {
    match preset {
        LossPreset::Mf => "MF",
        LossPreset::Imf => "iMF",
        LossPreset::ImfHead => "iMF-head",
    }
}
