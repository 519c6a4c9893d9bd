//! PNG figures for people to look at: scatter panels of samples, loss curves, heat maps.
//!
//! Everything is drawn by a small rasteriser ([`canvas`]) with an embedded bitmap font ([`font`]),
//! so plotting needs no system font or font file and looks the same on every machine; the `png`
//! crate only encodes the pixels. Every figure is written atomically (temporary file in the same
//! folder, then rename) and drawing never panics on empty input or NaN values.
//!
//! - [`scatter_panels`]: side-by-side panels (data vs samples) with shared, robust limits.
//! - [`line_chart`]: curves over steps with a legend, optional shaded bands and log scale.
//! - [`heatmap()`]: a grid of values in the viridis colour map, with a colour bar; NaN cells grey.
//! - [`PALETTE`] / [`palette`]: eight distinguishable colours.

pub mod axes;
pub mod canvas;
pub mod color;
pub mod font;
pub mod heatmap;
pub mod line;
pub mod range;
pub mod scatter;
pub mod ticks;

pub use color::{palette, viridis, Color, PALETTE};
pub use heatmap::heatmap;
pub use line::{line_chart, Series};
pub use scatter::{scatter_panels, Panel};

/// Font scale of tick labels, panel titles, axis labels and legends (14 px capitals).
const LABEL_SCALE: usize = 2;
/// Font scale of figure titles (21 px capitals).
const TITLE_SCALE: usize = 3;
/// Outer margin and spacing between blocks, in pixels.
const PAD: i64 = 14;
