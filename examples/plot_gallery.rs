//! Writes one example of each figure kind, to look at by eye.
//!
//! `cargo run --example plot_gallery [FOLDER]` (default `/tmp/plot-check`).

use meanflow::data::ToyDataset;
use meanflow::plot::{heatmap, line_chart, palette, scatter_panels, Panel, Series};
use meanflow::rng::Rng;
use ndarray::{Array2, Axis};
use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or("/tmp/plot-check".into()));
    std::fs::create_dir_all(&dir)?;
    let mut rng = Rng::seed_from_u64(7);

    // Scatter: data vs increasingly noisy "samples", a 1-D histogram and a 3-D cloud.
    let data = ToyDataset::TwoMoons.sample(5000, &mut rng);
    let noisy = |s: f64, rng: &mut Rng| data.mapv(|v| v + s * rng.normal());
    let one = noisy(0.35, &mut rng);
    let two = noisy(0.12, &mut rng);
    let mut euler = noisy(0.03, &mut rng);
    euler[[0, 0]] = 1e6; // an outlier: counted off-plot, must not stretch the limits
    euler[[1, 1]] = f64::NAN;
    let panels = [
        Panel::new("data", data.view(), palette(0)),
        Panel::new("1-step samples", one.view(), palette(1)),
        Panel::new("2-step", two.view(), palette(2)),
        Panel::new("Euler 100", euler.view(), palette(3)),
    ];
    scatter_panels(
        dir.join("scatter.png"),
        &panels,
        "two moons: data vs samples",
    )?;

    let few = ToyDataset::EightGaussians.sample(300, &mut rng);
    let wide = ToyDataset::Gaussian { sigma: 3.0, dim: 2 }.sample(400, &mut rng);
    let hist = data.column(0).insert_axis(Axis(1)).to_owned();
    let d3 = Array2::from_shape_fn((2000, 3), |_| rng.normal());
    let panels = [
        Panel::new("300 points", few.view(), palette(4)),
        Panel::new("wide", wide.view(), palette(5)),
        Panel::new("x only", hist.view(), palette(6)),
        Panel::new("normal", d3.view(), palette(7)),
    ];
    scatter_panels(dir.join("scatter-mixed.png"), &panels, "")?;

    // Line chart: two noisy decaying losses over 20k steps, one with a spread band; a NaN step.
    let loss = |scale: f64, rng: &mut Rng| -> Vec<(f64, f64)> {
        (0..=400)
            .map(|i| {
                let step = 50.0 * i as f64;
                let y = scale * (0.05 + (-step / 3000.0).exp()) * (1.0 + 0.15 * rng.normal());
                (step, if i == 200 { f64::NAN } else { y })
            })
            .collect()
    };
    let mf = loss(1.0, &mut rng);
    let imf = loss(0.5, &mut rng);
    let band = imf
        .iter()
        .filter(|p| p.1.is_finite())
        .map(|&(x, y)| (x, 0.7 * y, 1.4 * y))
        .collect();
    let series = [
        Series::new("MeanFlow", mf, palette(0)),
        Series::new("improved MeanFlow (5 seeds)", imf, palette(1)).with_band(band),
    ];
    line_chart(
        dir.join("loss-log.png"),
        "training loss",
        "step",
        "loss",
        &series,
        true,
    )?;
    line_chart(
        dir.join("loss-linear.png"),
        "training loss",
        "step",
        "loss",
        &series,
        false,
    )?;

    // Heat map: 30 x 30 over (t, r) in [0, 1]^2, NaN where r > t.
    let grid = Array2::from_shape_fn((30, 30), |(i, j)| {
        let (r, t) = ((i as f64 + 0.5) / 30.0, (j as f64 + 0.5) / 30.0);
        if r > t {
            f64::NAN
        } else {
            (t - r) * (1.0 + 2.0 * t).ln()
        }
    });
    heatmap(
        dir.join("heatmap.png"),
        "loss by (t, r)",
        "t",
        "r",
        grid.view(),
        (0.0, 1.0),
        (0.0, 1.0),
    )?;
    println!("wrote {}", dir.display());
    Ok(())
}
