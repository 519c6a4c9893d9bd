//! PNG figures: valid files of the right size with real content, no panic on empty or NaN input,
//! atomic writes, text in the bundled font, ticks and colours.

use meanflow::plot::ticks;
use meanflow::plot::{
    heatmap, line_chart, palette, scatter_panels, viridis, Color, Panel, Series, PALETTE,
};
use ndarray::{Array2, ArrayView2};
use std::collections::HashSet;
use std::io::BufReader;
use std::path::PathBuf;

fn out(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plot-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Reads `path`, checks the PNG signature and that IHDR agrees with the decoder, and returns
/// (width, height, the set of distinct colours).
fn read_png(path: &PathBuf) -> (u32, u32, HashSet<[u8; 3]>) {
    let (w, h, pixels) = read_pixels(path);
    (w, h, pixels.into_iter().collect())
}

/// Like [`read_png`], but every pixel, row by row.
fn read_pixels(path: &PathBuf) -> (u32, u32, Vec<[u8; 3]>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    let decoder = png::Decoder::new(BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (w, h));
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let colours = buf[..info.buffer_size()]
        .chunks_exact(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (w, h, colours)
}

fn has(colours: &HashSet<[u8; 3]>, c: Color) -> bool {
    colours.contains(&[c.r, c.g, c.b])
}

fn moons(n: usize) -> Array2<f64> {
    Array2::from_shape_fn((n, 2), |(i, j)| {
        let a = std::f64::consts::PI * (i as f64 / n as f64);
        let (c, s) = (a.cos(), a.sin());
        match (i % 2, j) {
            (0, 0) => c,
            (0, _) => s,
            (_, 0) => 1.0 - c,
            _ => 0.5 - s,
        }
    })
}

#[test]
fn scatter_panels_writes_a_png_with_one_square_panel_each() {
    let data = moons(2000);
    let noisy = data.mapv(|v| v * 1.1);
    let path = out("scatter.png");
    let panels = [
        Panel::new("data", data.view(), palette(0)),
        Panel::new("1-step", noisy.view(), palette(1)),
    ];
    scatter_panels(&path, &panels, "moons").unwrap();
    let (w, h, colours) = read_png(&path);
    assert!(
        (700..1000).contains(&w) && (350..550).contains(&h),
        "{w} x {h}"
    );
    assert!(colours.len() > 50, "only {} colours", colours.len());
    assert!(has(&colours, Color::WHITE) && has(&colours, Color::INK));

    let more = [panels[0].clone(), panels[1].clone(), panels[0].clone()];
    scatter_panels(&path, &more, "").unwrap();
    let (w3, _, _) = read_png(&path);
    assert!(w3 > w + 300, "a third panel widens the figure: {w} -> {w3}");
}

#[test]
fn scatter_panels_handles_1d_high_d_empty_and_nan() {
    let one_d = Array2::from_shape_fn((500, 1), |(i, _)| (i as f64 / 50.0).sin());
    let five_d = Array2::from_shape_fn((300, 5), |(i, j)| (i * (j + 1)) as f64 % 7.0);
    let empty = Array2::<f64>::zeros((0, 2));
    let no_cols = Array2::<f64>::zeros((10, 0));
    let mut nan = moons(100);
    nan.column_mut(0).fill(f64::NAN);
    let inf = Array2::from_elem((5, 2), f64::INFINITY);
    let path = out("scatter-odd.png");
    let panels = [
        Panel::new("1-d", one_d.view(), palette(2)),
        Panel::new("5-d", five_d.view(), palette(3)),
        Panel::new("empty", empty.view(), palette(4)),
        Panel::new("no columns", no_cols.view(), palette(5)),
        Panel::new("nan", nan.view(), palette(6)),
        Panel::new("inf", inf.view(), palette(7)),
    ];
    scatter_panels(&path, &panels, "odd inputs").unwrap();
    let (_, _, colours) = read_png(&path);
    assert!(colours.len() > 10);

    for panels in [&panels[2..3], &panels[4..6], &[][..]] {
        scatter_panels(&path, panels, "").unwrap();
        read_png(&path);
    }
    let constant = Array2::from_elem((50, 2), 3.0);
    scatter_panels(
        &path,
        &[Panel::new("constant", constant.view(), palette(0))],
        "c",
    )
    .unwrap();
    read_png(&path);
}

#[test]
fn line_chart_writes_linear_and_log_pngs() {
    let a: Vec<(f64, f64)> = (0..500)
        .map(|i| (i as f64, 1.0 / (1.0 + i as f64)))
        .collect();
    let b: Vec<(f64, f64)> = a.iter().map(|&(x, y)| (x, 2.0 * y)).collect();
    let band = b.iter().map(|&(x, y)| (x, 0.5 * y, 1.5 * y)).collect();
    let series = [
        Series::new("a", a, palette(0)),
        Series::new("b", b, palette(1)).with_band(band),
    ];
    for log_y in [false, true] {
        let path = out(&format!("line-{log_y}.png"));
        line_chart(&path, "loss", "step", "loss", &series, log_y).unwrap();
        let (w, h, colours) = read_png(&path);
        assert_eq!((w, h), (900, 560));
        assert!(colours.len() > 50);
        assert!(
            has(&colours, palette(0)) && has(&colours, palette(1)),
            "opaque curve pixels"
        );
    }
}

#[test]
fn line_chart_skips_bad_points_and_survives_empty_input() {
    let bad = vec![
        (0.0, 1.0),
        (1.0, f64::NAN),
        (2.0, -1.0),
        (f64::INFINITY, 2.0),
        (3.0, 0.0),
        (4.0, 0.5),
    ];
    let cases: Vec<Vec<Series>> = vec![
        vec![],
        vec![Series::new("empty", vec![], palette(0))],
        vec![Series::new("one point", vec![(1.0, 1.0)], palette(0))],
        vec![Series::new(
            "all nan",
            vec![(f64::NAN, f64::NAN); 3],
            palette(0),
        )],
        vec![Series::new(
            "non-positive",
            vec![(0.0, 0.0), (1.0, -2.0)],
            palette(0),
        )],
        vec![Series::new("mixed", bad.clone(), palette(1))],
        vec![Series::new("", bad.clone(), palette(2))
            .with_band(vec![(0.0, -1.0, 1.0), (f64::NAN, 0.0, 1.0)])],
        vec![Series::new("band only", vec![], palette(3)).with_band(vec![(0.0, 1.0, 2.0)])],
        vec![Series::new(
            "flat",
            vec![(0.0, 5.0), (0.0, 5.0)],
            palette(4),
        )],
        vec![Series::new(
            "huge",
            vec![(0.0, 1e300), (1.0, -1e300), (2.0, 1e-300)],
            palette(5),
        )],
    ];
    let path = out("line-odd.png");
    for series in &cases {
        for log_y in [false, true] {
            line_chart(&path, "", "", "", series, log_y).unwrap();
            read_png(&path);
        }
    }
}

#[test]
fn heatmap_draws_nan_cells_grey_and_the_colour_map_ends() {
    let grid = Array2::from_shape_fn(
        (30, 30),
        |(i, j)| if i > j { f64::NAN } else { (j - i) as f64 },
    );
    let path = out("heatmap.png");
    heatmap(&path, "gap", "t", "r", grid.view(), (0.0, 1.0), (0.0, 1.0)).unwrap();
    let (w, h, colours) = read_png(&path);
    assert_eq!((w, h), (720, 620));
    assert!(has(&colours, Color::MISSING), "NaN cells are grey");
    assert!(
        has(&colours, viridis(0.0)) && has(&colours, viridis(1.0)),
        "both ends of the map"
    );
}

#[test]
fn heatmap_survives_degenerate_grids_and_ranges() {
    let path = out("heatmap-odd.png");
    let grids = [
        Array2::<f64>::zeros((0, 0)),
        Array2::<f64>::zeros((0, 5)),
        Array2::from_elem((1, 1), 2.0),
        Array2::from_elem((4, 4), f64::NAN),
        Array2::from_elem((3, 7), -1.0),
        Array2::from_shape_fn((2, 3), |(i, j)| if i == j { f64::INFINITY } else { 1.0 }),
        Array2::from_shape_fn((500, 400), |(i, j)| (i * j) as f64),
    ];
    let ranges = [
        (0.0, 1.0),
        (1.0, 1.0),
        (f64::NAN, 2.0),
        (5.0, -5.0),
        (-1e-9, 1e-9),
    ];
    for g in &grids {
        for &r in &ranges {
            heatmap(&path, "", "", "", g.view(), r, (0.0, 1e6)).unwrap();
            read_png(&path);
        }
    }
    let transposed: ArrayView2<f64> = grids[6].t();
    heatmap(&path, "t", "x", "y", transposed, (0.0, 1.0), (0.0, 1.0)).unwrap();
}

#[test]
fn writes_are_atomic_and_errors_are_reported() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plot-atomic");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("a.png");
    std::fs::write(&path, b"old").unwrap();
    line_chart(
        &path,
        "t",
        "x",
        "y",
        &[Series::new("s", vec![(0.0, 1.0), (1.0, 2.0)], palette(0))],
        false,
    )
    .unwrap();
    read_png(&path);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("a.png")],
        "no temporary file left"
    );

    let missing = dir.join("no-such-folder").join("b.png");
    assert!(scatter_panels(&missing, &[], "x").is_err());
    let g = Array2::from_elem((2, 2), 1.0);
    assert!(heatmap(&missing, "", "", "", g.view(), (0.0, 1.0), (0.0, 1.0)).is_err());
}

#[test]
fn text_is_drawn_in_the_bundled_font_without_a_system_font() {
    // The title is every printable ASCII character, then characters the font may lack: the
    // figure is still written, and the title band has dark (text) pixels across its width.
    let all: String = (' '..='~').collect();
    let path = out("text.png");
    let series = [Series::new("s", vec![(0.0, 1.0), (1.0, 2.0)], palette(0))];
    line_chart(&path, &all, "x", "y", &series, false).unwrap();
    let (w, _, pixels) = read_pixels(&path);
    let dark = |p: &[u8; 3]| p.iter().all(|c| *c < 120);
    let title_band = &pixels[..40 * w as usize];
    let columns: HashSet<usize> = title_band
        .iter()
        .enumerate()
        .filter(|(_, p)| dark(p))
        .map(|(i, _)| i % w as usize)
        .collect();
    assert!(
        columns.len() > w as usize / 3,
        "the title's ink spans {} of {w} columns",
        columns.len()
    );
    line_chart(&path, "é µ ∞ \u{0} \t", "", "", &series, true).unwrap();
    read_png(&path);
    let font = meanflow::plot::FONT_TTF;
    assert!(
        font.len() > 100_000 && font[..4] == [0, 1, 0, 0],
        "a TrueType font"
    );
}

#[test]
fn ticks_are_round_and_labelled_briefly() {
    let labels = |t: Vec<ticks::Tick>| t.into_iter().map(|t| t.label).collect::<Vec<_>>();
    assert_eq!(
        labels(ticks::linear(0.0, 1.0, 5)),
        ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
    );
    assert_eq!(
        labels(ticks::linear(-3.3, 3.3, 8)),
        ["-3", "-2", "-1", "0", "1", "2", "3"]
    );
    assert_eq!(
        labels(ticks::linear(0.0, 20000.0, 4)),
        ["0", "5k", "10k", "15k", "20k"]
    );
    assert_eq!(labels(ticks::linear(0.0, 2e-4, 2)), ["0", "1e-4", "2e-4"]);
    assert_eq!(
        labels(ticks::log(0.01, 1.0, 8)),
        ["0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1"]
    );
    assert_eq!(
        labels(ticks::log(1e-6, 1e2, 5)),
        ["1e-6", "1e-4", "0.01", "1", "100"]
    );
    assert!(ticks::linear(1.0, 1.0, 5).is_empty() && ticks::linear(f64::NAN, 1.0, 5).is_empty());
    assert!(ticks::log(0.0, 1.0, 5).is_empty());
}

#[test]
fn palette_colours_are_distinct_and_viridis_runs_dark_to_light() {
    let set: HashSet<Color> = PALETTE.iter().copied().collect();
    assert_eq!(set.len(), 8);
    assert_eq!(palette(8), palette(0));
    let lum = |c: Color| 0.3 * c.r as f64 + 0.59 * c.g as f64 + 0.11 * c.b as f64;
    let l: Vec<f64> = (0..=10).map(|i| lum(viridis(i as f64 / 10.0))).collect();
    assert!(l.windows(2).all(|w| w[1] > w[0]), "{l:?}");
    assert_eq!(viridis(f64::NAN), viridis(0.0));
    assert_eq!(viridis(2.0), viridis(1.0));
}
