//! Grids of small grey-scale images (the digits), panels side by side: generated samples beside
//! real data, one row per class.

use super::color::Color;
use super::{rgb, text_style, text_width, write_png};
use super::{Area, DrawError, LABEL_SIZE, PAD, TITLE_SIZE};
use ndarray::ArrayView2;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::Color as _;
use std::io;
use std::path::Path;

/// Screen pixels per image pixel.
const CELL: i32 = 5;
/// Screen pixels between neighbouring images.
const GAP: i32 = 2;

/// One panel: `images` [rows x cols, height x width], image k at grid row k / cols, column
/// k % cols, its pixels row-major (top row first); missing images are left blank.
pub struct ImagePanel<'a> {
    pub title: String,
    pub images: ArrayView2<'a, f64>,
    pub rows: usize,
    pub cols: usize,
}

/// The shape of every image and how values map to grey: `ink` (value drawn black) and `paper`
/// (value drawn white); values between are linear, values beyond clamp.
#[derive(Clone, Copy, Debug)]
pub struct ImageStyle {
    pub height: usize,
    pub width: usize,
    pub paper: f64,
    pub ink: f64,
}

/// Writes the panels side by side to the PNG file `path`, titled `title`, with `row_labels`
/// (one per grid row, may be empty) left of the first panel. Non-finite values are drawn red.
pub fn image_grid_panels(
    path: impl AsRef<Path>,
    panels: &[ImagePanel],
    style: ImageStyle,
    row_labels: &[String],
    title: &str,
) -> io::Result<()> {
    let image_w = style.width as i32 * CELL;
    let image_h = style.height as i32 * CELL;
    let label_w = row_labels
        .iter()
        .map(|l| text_width(l, LABEL_SIZE))
        .max()
        .unwrap_or(0)
        + if row_labels.is_empty() { 0 } else { PAD };
    let panel_w = |p: &ImagePanel| p.cols.max(1) as i32 * (image_w + GAP) - GAP;
    let grid_h = |p: &ImagePanel| p.rows.max(1) as i32 * (image_h + GAP) - GAP;
    let title_h = if title.is_empty() {
        0
    } else {
        TITLE_SIZE as i32 + PAD
    };
    let head_h = LABEL_SIZE as i32 + PAD / 2;
    let width = PAD + label_w + panels.iter().map(|p| panel_w(p) + 2 * PAD).sum::<i32>();
    let height = PAD + title_h + head_h + panels.iter().map(grid_h).max().unwrap_or(0) + PAD;
    let size = (width.max(1) as u32, height.max(1) as u32);
    write_png(path.as_ref(), size, |root| {
        draw(
            root,
            panels,
            style,
            row_labels,
            title,
            (label_w, title_h, head_h),
        )
    })
}

fn draw(
    root: &Area,
    panels: &[ImagePanel],
    style: ImageStyle,
    row_labels: &[String],
    title: &str,
    (label_w, title_h, head_h): (i32, i32, i32),
) -> Result<(), DrawError> {
    let (image_w, image_h) = (style.width as i32 * CELL, style.height as i32 * CELL);
    if !title.is_empty() {
        let centre = root.dim_in_pixel().0 as i32 / 2;
        let text = text_style(TITLE_SIZE, Color::INK).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw_text(title, &text, (centre, PAD))?;
    }
    let top = PAD + title_h + head_h;
    let label_style = text_style(LABEL_SIZE, Color::INK).pos(Pos::new(HPos::Right, VPos::Center));
    for (row, label) in row_labels.iter().enumerate() {
        let y = top + row as i32 * (image_h + GAP) + image_h / 2;
        root.draw_text(label, &label_style, (PAD + label_w - PAD, y))?;
    }
    let mut left = PAD + label_w + PAD;
    let span = style.ink - style.paper;
    for panel in panels {
        let head = text_style(LABEL_SIZE, Color::INK).pos(Pos::new(HPos::Left, VPos::Top));
        root.draw_text(&panel.title, &head, (left, PAD + title_h))?;
        let pixels = style.height * style.width;
        for (k, image) in panel.images.rows().into_iter().enumerate() {
            if k >= panel.rows * panel.cols || image.len() != pixels {
                break;
            }
            let x0 = left + (k % panel.cols) as i32 * (image_w + GAP);
            let y0 = top + (k / panel.cols) as i32 * (image_h + GAP);
            for (p, &value) in image.iter().enumerate() {
                let color = if value.is_finite() && span != 0.0 {
                    let ink = ((value - style.paper) / span).clamp(0.0, 1.0);
                    let grey = (255.0 * (1.0 - ink)).round() as u8;
                    RGBColor(grey, grey, grey)
                } else {
                    RGBColor(220, 40, 40)
                };
                let (px, py) = ((p % style.width) as i32, (p / style.width) as i32);
                let corner = (x0 + px * CELL, y0 + py * CELL);
                root.draw(&Rectangle::new(
                    [corner, (corner.0 + CELL, corner.1 + CELL)],
                    color.filled(),
                ))?;
            }
            root.draw(&Rectangle::new(
                [(x0 - 1, y0 - 1), (x0 + image_w, y0 + image_h)],
                rgb(Color::GRID).stroke_width(1),
            ))?;
        }
        left += (panel.cols.max(1) as i32) * (image_w + GAP) - GAP + 2 * PAD;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// A 2 x 3 grid of 2 x 2 images with a NaN: decodes to a PNG of the computed size, with the
    /// ink, paper and red pixels where the layout puts them.
    #[test]
    fn writes_a_png_with_the_pixels_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.png");
        let mut images = Array2::from_elem((6, 4), 0.0);
        images[[0, 0]] = 16.0; // image 0, top-left pixel black
        images[[4, 3]] = f64::NAN; // image 4, bottom-right pixel red
        let panel = ImagePanel {
            title: "samples".into(),
            images: images.view(),
            rows: 2,
            cols: 3,
        };
        let style = ImageStyle {
            height: 2,
            width: 2,
            paper: 0.0,
            ink: 16.0,
        };
        image_grid_panels(&path, &[panel], style, &[], "").unwrap();
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        let head_h = LABEL_SIZE as i32 + PAD / 2;
        let (w, h) = (
            PAD + 3 * (2 * CELL + GAP) - GAP + 2 * PAD,
            PAD + head_h + 2 * (2 * CELL + GAP) - GAP + PAD,
        );
        assert_eq!((info.width as i32, info.height as i32), (w, h));
        let pixel = |x: i32, y: i32| {
            let i = 3 * (y as usize * info.width as usize + x as usize);
            (buf[i], buf[i + 1], buf[i + 2])
        };
        let (left, top) = (2 * PAD, PAD + head_h);
        assert_eq!(pixel(left + 1, top + 1), (0, 0, 0));
        assert_eq!(pixel(left + CELL + 1, top + 1), (255, 255, 255));
        // Image 4: grid row 1, column 1; its pixel 3 is at (1, 1).
        let (x4, y4) = (left + 2 * CELL + GAP, top + 2 * CELL + GAP);
        assert_eq!(pixel(x4 + CELL + 1, y4 + CELL + 1), (220, 40, 40));
    }
}
