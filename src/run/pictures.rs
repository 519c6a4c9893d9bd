//! The pictures at the end of a run: samples.png (the data, the 1-step and the 2-step samples side
//! by side; for image data such as the digits, a grid of 1-step samples with one row per class
//! beside a grid of real images) and loss.png (loss and MSE against step over all sessions, from
//! metrics.jsonl, on a log axis).

use crate::flow::model::{MlpParams, ModelConfig};
use crate::flow::sampling::{noise, sample_mean_flow_under, Conditions};
use crate::linalg::float::Float;
use crate::plot::{
    image_grid_panels, line_chart, palette, scatter_panels, ImagePanel, ImageStyle, Panel, Series,
};
use crate::rng::Rng;
use crate::run::dataset::DataSource;
use crate::run::evaluation::FinalSamples;
use crate::run::folder::{LOSS_PNG, METRICS_FILE, SAMPLES_PNG};
use crate::run::metrics_log::LossCurves;
use ndarray::{Array2, ArrayView2, Axis};
use std::path::{Path, PathBuf};

/// The random stream of the noise of a run's image grid.
pub const STREAM_GRID_NOISE: u64 = 5;

/// Images per row of an image grid.
pub const GRID_COLUMNS: usize = 10;

/// A grid of generated images beside a grid of real ones: row k of both is class k for a
/// conditional model (real images of the held-out class k), else rows of unconditional samples.
pub struct ImageGrid {
    pub samples: Array2<f64>,
    pub data: Array2<f64>,
    pub rows: usize,
    pub row_labels: Vec<String>,
    pub style: ImageStyle,
}

impl ImageGrid {
    /// Writes the grid to the PNG file `path`, titled `title`, the samples' panel named
    /// `samples_name`.
    pub fn write(&self, path: &Path, title: &str, samples_name: &str) -> std::io::Result<()> {
        let panels = [
            ImagePanel {
                title: samples_name.to_string(),
                images: self.samples.view(),
                rows: self.rows,
                cols: GRID_COLUMNS,
            },
            ImagePanel {
                title: "real digits (held out)".to_string(),
                images: self.data.view(),
                rows: self.rows,
                cols: GRID_COLUMNS,
            },
        ];
        image_grid_panels(path, &panels, self.style, &self.row_labels, title)
    }
}

/// The grey scale of images of `source` (the digits: 8 x 8, 0 white to 16 black); None for data
/// that are not images.
pub fn image_style(source: &DataSource) -> Option<ImageStyle> {
    matches!(source, DataSource::Digits).then_some(ImageStyle {
        height: 8,
        width: 8,
        paper: 0.0,
        ink: 16.0,
    })
}

/// The first [`GRID_COLUMNS`] points of each class among `points` (blank rows where a class has
/// fewer), classes 0..`classes` in order; without labels, the first rows of points.
fn real_rows(points: ArrayView2<f64>, labels: &[usize], classes: usize) -> Array2<f64> {
    let dim = points.ncols();
    if labels.is_empty() {
        let n = points.nrows().min(GRID_COLUMNS * GRID_COLUMNS);
        return points.slice(ndarray::s![..n, ..]).to_owned();
    }
    let mut out = Array2::from_elem((classes * GRID_COLUMNS, dim), f64::NAN);
    for class in 0..classes {
        let rows = labels.iter().enumerate().filter(|&(_, &c)| c == class);
        for (slot, (i, _)) in rows.take(GRID_COLUMNS).enumerate() {
            out.row_mut(class * GRID_COLUMNS + slot)
                .assign(&points.row(i));
        }
    }
    out
}

/// The image grid of a model of image data: 1-step samples from a fixed noise (stream
/// [`STREAM_GRID_NOISE`] of `seed`), [`GRID_COLUMNS`] per class for a conditional model at guidance
/// scale `guidance` (ten rows of unconditional samples otherwise), in the data's units, beside
/// real images from `points` / `labels`. None when `source` is not image data.
#[allow(clippy::too_many_arguments)]
pub fn image_grid<T: Float>(
    source: &DataSource,
    model: ModelConfig,
    weights: &MlpParams<T>,
    points: ArrayView2<f64>,
    labels: &[usize],
    seed: u64,
    classes: Option<&[usize]>,
    guidance: f64,
) -> Option<ImageGrid> {
    let style = image_style(source)?;
    let all: Vec<usize> = (0..model.classes).collect();
    let shown = classes.unwrap_or(&all);
    let (rows, conditions, row_labels) = if model.classes > 0 {
        let per_row: Vec<usize> = shown
            .iter()
            .flat_map(|&c| std::iter::repeat_n(c, GRID_COLUMNS))
            .collect();
        let row_labels = shown.iter().map(|c| c.to_string()).collect();
        (
            shown.len(),
            Conditions::classes(per_row, guidance),
            row_labels,
        )
    } else {
        (GRID_COLUMNS, Conditions::none(), Vec::new())
    };
    let z = noise::<f64>(
        rows * GRID_COLUMNS,
        model.dim,
        &mut Rng::stream(seed, STREAM_GRID_NOISE),
    );
    let samples = sample_mean_flow_under(
        model,
        weights,
        z.mapv(T::from_f64).view(),
        &[1.0, 0.0],
        conditions,
    )
    .mapv(|x| x.to_f64());
    let samples = source.units().to_data(samples.view());
    let data = if model.classes > 0 {
        let real = real_rows(points, labels, model.classes);
        let picked: Vec<usize> = shown
            .iter()
            .flat_map(|&c| (0..GRID_COLUMNS).map(move |k| c * GRID_COLUMNS + k))
            .collect();
        real.select(Axis(0), &picked)
    } else {
        real_rows(points, &[], 0)
    };
    Some(ImageGrid {
        samples,
        data,
        rows,
        row_labels,
        style,
    })
}

/// A picture that could not be written; one line naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot write the picture: {source}", path.display())]
pub struct PictureError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Writes samples.png (the image grid when there is one, else the scatter panels) and loss.png
/// into the run folder `folder`, both titled `title`; returns their paths.
pub fn write_run_pictures(
    folder: &Path,
    title: &str,
    samples: &FinalSamples,
    grid: Option<&ImageGrid>,
) -> Result<[PathBuf; 2], PictureError> {
    let samples_png = folder.join(SAMPLES_PNG);
    if let Some(grid) = grid {
        grid.write(&samples_png, title, "1-step samples")
            .map_err(|source| PictureError {
                path: samples_png.clone(),
                source,
            })?;
    }
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
    if grid.is_none() {
        scatter_panels(&samples_png, &panels, title).map_err(|source| PictureError {
            path: samples_png.clone(),
            source,
        })?;
    }

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
