//! PNG figures for people to look at: scatter panels of samples, loss curves, heat maps.
//!
//! The charts are drawn by `plotters` into an RGB buffer, with its text in DejaVu Sans, bundled
//! in `src/plot/fonts/` and read by plotters' ab_glyph renderer, so plotting needs no system
//! font and looks the same on every machine; the `png` crate encodes the buffer. What plotters
//! does not choose for us stays here: the axis limits ([`range`]), round ticks with short labels
//! ([`ticks`], fitted to the axis length by [`axes`]), the colours ([`color`]) and the layout of
//! each figure. Every figure is written atomically ([`crate::io::atomic::write_atomically`]) and
//! drawing never panics on empty input or NaN values.
//!
//! - [`scatter_panels`]: side-by-side panels (data vs samples) with shared, robust limits.
//! - [`line_chart`]: curves over steps with a legend, optional shaded bands and log scale.
//! - [`heatmap()`]: a grid of values in the viridis colour map, with a colour bar; NaN cells grey.
//! - [`image_grid_panels`]: grids of small grey-scale images (the digits) side by side.
//! - [`PALETTE`] / [`palette`]: eight distinguishable colours.

pub mod axes;
pub mod color;
pub mod heatmap;
pub mod images;
pub mod line;
pub mod range;
pub mod scatter;
pub mod ticks;

pub use color::{palette, viridis, Color, PALETTE};
pub use heatmap::heatmap;
pub use images::{image_grid_panels, ImagePanel, ImageStyle};
pub use line::{line_chart, Series};
pub use scatter::{scatter_panels, Panel};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::Color as _;
use std::io;
use std::path::Path;

/// Size in pixels of tick labels, panel titles, axis labels and legends (ab_glyph's pixel
/// height, ascender to descender: capitals are about 0.63 of it).
const LABEL_SIZE: f64 = 18.0;
/// Size in pixels of figure titles.
const TITLE_SIZE: f64 = 26.0;
/// Outer margin and spacing between blocks, in pixels.
const PAD: i32 = 14;
/// The family name the bundled font is registered under.
const FAMILY: &str = "sans-serif";

/// The bundled font file (DejaVu Sans; licence in `src/plot/fonts/LICENSE`).
pub const FONT_TTF: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");

/// The drawing area of a whole figure.
type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
/// What drawing on it can fail with (a font that did not load, in practice).
type DrawError = DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>;

/// Registers the bundled font with plotters (once per process): ab_glyph has no system fonts,
/// so every text style names this family.
fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid font (tests/plot.rs draws with it); if they were not, every
        // text would fail to draw and the figure would return an error, not panic.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT_TTF);
    });
}

/// The bundled font at `size` pixels.
fn font(size: f64) -> FontDesc<'static> {
    register_font();
    FontDesc::new(FontFamily::Name(FAMILY), size, FontStyle::Normal)
}

/// Text in `color` at `size` pixels.
fn text_style(size: f64, color: Color) -> TextStyle<'static> {
    font(size).color(&rgb(color))
}

/// Width in pixels of `text` at `size` (0 if the font could not lay it out).
fn text_width(text: &str, size: f64) -> i32 {
    font(size).box_size(text).map_or(0, |(w, _)| w as i32)
}

/// How far down to move the anchor of text centred vertically at `size`, so that its capitals
/// centre on the anchor: plotters' ab_glyph renderer puts the baseline `size / 2` below the top
/// of a layout box only `size / 1.24` high, which leaves centred text about 0.22 `size` high.
fn centre_fix(size: f64) -> i32 {
    (0.22 * size).round() as i32
}

/// Height in pixels of capitals and digits at `size`.
fn cap_height(size: f64) -> i32 {
    (0.63 * size).round() as i32
}

/// `text` cut to at most `max_w` pixels at `size`, ending in "..." when cut.
fn truncate_to_width(text: &str, max_w: i32, size: f64) -> String {
    if text_width(text, size) <= max_w {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    (0..chars.len())
        .rev()
        .map(|n| format!("{}...", chars[..n].iter().collect::<String>()))
        .find(|cut| text_width(cut, size) <= max_w)
        .unwrap_or_default()
}

/// Our colour as plotters' (opaque).
fn rgb(c: Color) -> RGBColor {
    RGBColor(c.r, c.g, c.b)
}

/// Draws a `width x height` figure with `draw` on a white background and writes it to `path`
/// as an 8-bit RGB PNG, atomically ([`crate::io::atomic::write_atomically`]).
fn write_png(
    path: &Path,
    (width, height): (u32, u32),
    draw: impl FnOnce(&Area) -> Result<(), DrawError>,
) -> io::Result<()> {
    let mut rgb_buffer = vec![255u8; 3 * width as usize * height as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb_buffer, (width, height)).into_drawing_area();
        draw(&root).map_err(|e| io::Error::other(format!("drawing {}: {e}", path.display())))?;
        root.present()
            .map_err(|e| io::Error::other(format!("drawing {}: {e}", path.display())))?;
    }
    let mut png_bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut png_bytes, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&rgb_buffer)?;
    writer.finish()?;
    crate::io::atomic::write_atomically(path, &png_bytes)
}

/// A one-pixel outline in `color` just inside the pixel rectangle `(x0, y0)..(x1, y1)`.
fn outline(
    area: &Area,
    (x0, y0): (i32, i32),
    (x1, y1): (i32, i32),
    color: Color,
) -> Result<(), DrawError> {
    area.draw(&Rectangle::new(
        [(x0, y0), (x1 - 1, y1 - 1)],
        rgb(color).stroke_width(1),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_font_measures_every_printable_ascii_character() {
        for ch in ('!'..='~').map(String::from) {
            assert!(text_width(&ch, LABEL_SIZE) > 0, "{ch:?} has no width");
        }
        assert_eq!(text_width("", LABEL_SIZE), 0);
        assert!(text_width("MeanFlow", TITLE_SIZE) > text_width("MeanFlow", LABEL_SIZE));
        assert!(text_width("ab", LABEL_SIZE) < text_width("abab", LABEL_SIZE));
    }

    #[test]
    fn long_text_is_cut_to_the_width_with_an_ellipsis() {
        let all: String = (' '..='~').collect();
        let cut = truncate_to_width(&all, 100, LABEL_SIZE);
        assert!(
            cut.ends_with("...") && text_width(&cut, LABEL_SIZE) <= 100,
            "{cut}"
        );
        assert_eq!(truncate_to_width("short", 1000, LABEL_SIZE), "short");
        assert_eq!(truncate_to_width("too wide", 1, LABEL_SIZE), "");
    }
}
