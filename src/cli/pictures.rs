//! The pictures of `sample --png`, through `meanflow::plot` (a run's samples.png and loss.png are
//! drawn by `meanflow::run::pictures`).
//! A panel of 1-D points is drawn as a histogram; of d > 2 points, as its first two coordinates.

use meanflow::plot::{palette, scatter_panels, Panel};
use ndarray::ArrayView2;
use std::path::Path;

/// One scatter panel.
pub struct Cloud<'a> {
    pub title: String,
    pub points: ArrayView2<'a, f64>,
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
