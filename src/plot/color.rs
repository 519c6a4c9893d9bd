//! Colours: an sRGB triple, the default palette, and the viridis colour map.

/// An opaque sRGB colour, 8 bits per channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Color {
    pub r: u8,
    pub g: u8,
    pub b: u8,
}

impl Color {
    pub const WHITE: Color = Color::rgb(255, 255, 255);
    pub const BLACK: Color = Color::rgb(0, 0, 0);
    /// Text and axis lines.
    pub const INK: Color = Color::rgb(34, 34, 34);
    /// Grid lines behind the data.
    pub const GRID: Color = Color::rgb(232, 232, 232);
    /// Cells without a value (NaN) in a heat map.
    pub const MISSING: Color = Color::rgb(190, 190, 190);

    pub const fn rgb(r: u8, g: u8, b: u8) -> Color {
        Color { r, g, b }
    }

    /// From `0xRRGGBB`.
    pub const fn hex(rgb: u32) -> Color {
        Color::rgb((rgb >> 16) as u8, (rgb >> 8) as u8, rgb as u8)
    }

    /// `self` over `under` with opacity `alpha` in [0, 1].
    pub fn over(self, under: Color, alpha: f64) -> Color {
        let a = alpha.clamp(0.0, 1.0);
        let mix =
            |top: u8, bottom: u8| (bottom as f64 + (top as f64 - bottom as f64) * a).round() as u8;
        Color::rgb(
            mix(self.r, under.r),
            mix(self.g, under.g),
            mix(self.b, under.b),
        )
    }
}

/// Eight colours that stay distinguishable on white (matplotlib's "tab10" without grey and olive).
pub const PALETTE: [Color; 8] = [
    Color::hex(0x1f77b4), // blue
    Color::hex(0xff7f0e), // orange
    Color::hex(0x2ca02c), // green
    Color::hex(0xd62728), // red
    Color::hex(0x9467bd), // purple
    Color::hex(0x8c564b), // brown
    Color::hex(0xe377c2), // pink
    Color::hex(0x17becf), // cyan
];

/// The `i`-th palette colour, cycling after eight.
pub fn palette(i: usize) -> Color {
    PALETTE[i % PALETTE.len()]
}

/// Viridis sampled at 0, 1/8, ..., 1 (matplotlib's values); [`viridis`] interpolates linearly.
const VIRIDIS: [Color; 9] = [
    Color::hex(0x440154),
    Color::hex(0x482878),
    Color::hex(0x3e4989),
    Color::hex(0x31688e),
    Color::hex(0x26828e),
    Color::hex(0x1f9e89),
    Color::hex(0x35b779),
    Color::hex(0x6ece58),
    Color::hex(0xfde725),
];

/// The viridis colour of `t` in [0, 1] (clamped): dark purple at 0, yellow at 1.
pub fn viridis(t: f64) -> Color {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let pos = t * (VIRIDIS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(VIRIDIS.len() - 2);
    VIRIDIS[i + 1].over(VIRIDIS[i], pos - i as f64)
}
