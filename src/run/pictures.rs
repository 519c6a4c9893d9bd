//! The pictures at the end of a run: samples.png (the data, the 1-step and the 2-step samples side
//! by side) and loss.png (loss and MSE against step over all sessions, from metrics.jsonl, on a
//! log axis).

use crate::plot::{line_chart, palette, scatter_panels, Panel, Series};
use crate::run::evaluation::FinalSamples;
use crate::run::folder::{LOSS_PNG, METRICS_FILE, SAMPLES_PNG};
use crate::run::metrics_log::LossCurves;
use std::path::{Path, PathBuf};

/// A picture that could not be written; one line naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot write the picture: {source}", path.display())]
pub struct PictureError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Writes samples.png and loss.png into the run folder `folder`, both titled `title`; returns
/// their paths.
pub fn write_run_pictures(
    folder: &Path,
    title: &str,
    samples: &FinalSamples,
) -> Result<[PathBuf; 2], PictureError> {
    let samples_png = folder.join(SAMPLES_PNG);
    let clouds = [
        ("data", &samples.data),
        ("1-step samples", &samples.one_step),
        ("2-step samples", &samples.two_step),
    ];
    let panels: Vec<Panel> = clouds
        .iter()
        .enumerate()
        .map(|(i, (name, points))| Panel::new(*name, points.view(), palette(i)))
        .collect();
    scatter_panels(&samples_png, &panels, title).map_err(|source| PictureError {
        path: samples_png.clone(),
        source,
    })?;

    let loss_png = folder.join(LOSS_PNG);
    let curves = LossCurves::read(&folder.join(METRICS_FILE));
    let series = [
        Series::new("loss", curves.loss, palette(0)),
        Series::new("MSE", curves.mse, palette(1)),
    ];
    line_chart(&loss_png, title, "step", "loss", &series, true).map_err(|source| PictureError {
        path: loss_png.clone(),
        source,
    })?;
    Ok([samples_png, loss_png])
}
