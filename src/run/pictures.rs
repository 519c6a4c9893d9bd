//! The pictures at the end of a run: samples.png (the data, the 1-step and the 2-step samples side
//! by side; for image data such as the digits, a grid of 1-step samples with one row per class
//! beside a grid of real images) and loss.png (loss and MSE against step over all sessions, from
//! metrics.jsonl, on a log axis).

use crate::data::DataUnits;
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
use ndarray::{Array2, ArrayView2};
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

/// The digits' grey scale: 8 x 8 pixels, 0 white to 16 black.
pub const DIGITS_IMAGE_STYLE: ImageStyle = ImageStyle {
    height: 8,
    width: 8,
    paper: 0.0,
    ink: 16.0,
};

/// The grey scale of images of `source` ([`DIGITS_IMAGE_STYLE`] for the digits); None for data
/// that are not images.
pub fn image_style(source: &DataSource) -> Option<ImageStyle> {
    matches!(source, DataSource::Digits).then_some(DIGITS_IMAGE_STYLE)
}

impl ImageGrid {
    /// `samples` ([`GRID_COLUMNS`] per grid row) beside real images from `points` / `labels`:
    /// for a grid row of class c (`row_classes[r] = Some(c)`) the first [`GRID_COLUMNS`] points of
    /// class c, for a row without a class the next [`GRID_COLUMNS`] points in order; blank (NaN)
    /// where there are fewer. Rows with a class are labelled with it.
    pub fn beside_real(
        samples: Array2<f64>,
        points: ArrayView2<f64>,
        labels: &[usize],
        row_classes: &[Option<usize>],
        style: ImageStyle,
    ) -> Self {
        let rows = row_classes.len();
        let mut data = Array2::from_elem((rows * GRID_COLUMNS, points.ncols()), f64::NAN);
        for (row, class) in row_classes.iter().enumerate() {
            let picked: Vec<usize> = match *class {
                Some(c) => (0..labels.len())
                    .filter(|&i| labels[i] == c)
                    .take(GRID_COLUMNS)
                    .collect(),
                None => (row * GRID_COLUMNS..points.nrows())
                    .take(GRID_COLUMNS)
                    .collect(),
            };
            for (slot, i) in picked.into_iter().enumerate() {
                data.row_mut(row * GRID_COLUMNS + slot)
                    .assign(&points.row(i));
            }
        }
        ImageGrid {
            samples,
            data,
            rows,
            row_labels: row_classes
                .iter()
                .flatten()
                .map(|c| c.to_string())
                .collect(),
            style,
        }
    }
}

/// The image grid of a model of image data: 1-step samples from a fixed noise (stream
/// [`STREAM_GRID_NOISE`] of `seed`), [`GRID_COLUMNS`] of each class in order for a conditional
/// model (w = 1), ten rows of unconditional samples otherwise, in the data's units, beside real
/// images from `points` / `labels`; `units` are the model's. None when `source` is not image data.
pub fn image_grid<T: Float>(
    source: &DataSource,
    units: &DataUnits,
    model: ModelConfig,
    weights: &MlpParams<T>,
    points: ArrayView2<f64>,
    labels: &[usize],
    seed: u64,
) -> Option<ImageGrid> {
    let style = image_style(source)?;
    let (row_classes, conditions): (Vec<Option<usize>>, _) = if model.classes > 0 {
        let per_sample = (0..model.classes)
            .flat_map(|c| std::iter::repeat_n(c, GRID_COLUMNS))
            .collect();
        (
            (0..model.classes).map(Some).collect(),
            Conditions::classes(per_sample, 1.0),
        )
    } else {
        (vec![None; GRID_COLUMNS], Conditions::none())
    };
    let z = noise::<f64>(
        row_classes.len() * GRID_COLUMNS,
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
    let samples = units.to_data(samples.view());
    Some(ImageGrid::beside_real(
        samples,
        points,
        labels,
        &row_classes,
        style,
    ))
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
