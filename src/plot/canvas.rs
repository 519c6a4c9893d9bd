//! An RGB raster with alpha blending, anti-aliased lines and dots, bitmap text, and PNG output.
//!
//! Pixel `(x, y)` covers `[x, x + 1) x [y, y + 1)` with `y` growing downwards; shapes take
//! fractional coordinates and shade each pixel by how much of it they cover (measured at its
//! centre), so edges are smooth. Every drawing call is clipped to the clip rectangle.

use super::color::Color;
use super::font;
use std::io;
use std::path::Path;

/// An axis-aligned rectangle of whole pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
}

impl Rect {
    pub fn new(x: i64, y: i64, w: i64, h: i64) -> Rect {
        Rect {
            x,
            y,
            w: w.max(0),
            h: h.max(0),
        }
    }

    /// One past the last column.
    pub fn right(&self) -> i64 {
        self.x + self.w
    }

    /// One past the last row.
    pub fn bottom(&self) -> i64 {
        self.y + self.h
    }

    pub fn intersect(&self, o: &Rect) -> Rect {
        let x = self.x.max(o.x);
        let y = self.y.max(o.y);
        Rect::new(
            x,
            y,
            self.right().min(o.right()) - x,
            self.bottom().min(o.bottom()) - y,
        )
    }
}

/// Where the anchor point of a text lies along its width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HAlign {
    Left,
    Center,
    Right,
}

/// Where the anchor point of a text lies along its cap height (descenders hang below).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VAlign {
    Top,
    Middle,
    Bottom,
}

/// An RGB image being drawn.
pub struct Canvas {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
    clip: Rect,
}

impl Canvas {
    /// A `width x height` canvas filled with `background`.
    pub fn new(width: usize, height: usize, background: Color) -> Canvas {
        let rgb = [background.r, background.g, background.b].repeat(width * height);
        Canvas {
            width,
            height,
            rgb,
            clip: Rect::new(0, 0, width as i64, height as i64),
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// Restricts drawing to `clip` (within the canvas); `None` allows the whole canvas.
    pub fn set_clip(&mut self, clip: Option<Rect>) {
        let all = Rect::new(0, 0, self.width as i64, self.height as i64);
        self.clip = clip.map_or(all, |c| c.intersect(&all));
    }

    /// The colour of pixel `(x, y)`; `None` outside the canvas.
    pub fn pixel(&self, x: usize, y: usize) -> Option<Color> {
        (x < self.width && y < self.height).then(|| {
            let i = 3 * (y * self.width + x);
            Color::rgb(self.rgb[i], self.rgb[i + 1], self.rgb[i + 2])
        })
    }

    /// Paints `c` with opacity `alpha` over pixel `(x, y)`, if it lies in the clip rectangle.
    pub fn blend(&mut self, x: i64, y: i64, c: Color, alpha: f64) {
        let k = &self.clip;
        if alpha <= 0.0 || x < k.x || y < k.y || x >= k.right() || y >= k.bottom() {
            return;
        }
        let i = 3 * (y as usize * self.width + x as usize);
        let under = Color::rgb(self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]);
        let out = c.over(under, alpha);
        self.rgb[i..i + 3].copy_from_slice(&[out.r, out.g, out.b]);
    }

    pub fn fill_rect(&mut self, r: Rect, c: Color, alpha: f64) {
        let r = r.intersect(&self.clip);
        for y in r.y..r.bottom() {
            for x in r.x..r.right() {
                self.blend(x, y, c, alpha);
            }
        }
    }

    /// A one-pixel outline just inside `r`.
    pub fn stroke_rect(&mut self, r: Rect, c: Color) {
        if r.w == 0 || r.h == 0 {
            return;
        }
        self.fill_rect(Rect::new(r.x, r.y, r.w, 1), c, 1.0);
        self.fill_rect(Rect::new(r.x, r.bottom() - 1, r.w, 1), c, 1.0);
        self.fill_rect(Rect::new(r.x, r.y, 1, r.h), c, 1.0);
        self.fill_rect(Rect::new(r.right() - 1, r.y, 1, r.h), c, 1.0);
    }

    /// Column `x` shaded over the rows `[y0, y1]` (fractional), partial pixels by their overlap.
    pub fn vspan(&mut self, x: i64, y0: f64, y1: f64, c: Color, alpha: f64) {
        let (lo, hi) = if y0 <= y1 { (y0, y1) } else { (y1, y0) };
        if !(lo.is_finite() && hi.is_finite()) {
            return;
        }
        let first = (lo.floor() as i64).max(self.clip.y);
        let last = (hi.ceil() as i64).min(self.clip.bottom());
        for y in first..last {
            let cover = (hi.min(y as f64 + 1.0) - lo.max(y as f64)).clamp(0.0, 1.0);
            self.blend(x, y, c, alpha * cover);
        }
    }

    /// A segment of `width` pixels with round ends.
    pub fn line(&mut self, p0: (f64, f64), p1: (f64, f64), width: f64, c: Color, alpha: f64) {
        let all = [p0.0, p0.1, p1.0, p1.1];
        if all.iter().any(|v| !v.is_finite() || v.abs() > 1e7) {
            return;
        }
        let half = width / 2.0;
        let reach = half + 1.0;
        let (dx, dy) = (p1.0 - p0.0, p1.1 - p0.1);
        let len2 = dx * dx + dy * dy;
        self.shade(
            (p0.0.min(p1.0) - reach, p0.1.min(p1.1) - reach),
            (p0.0.max(p1.0) + reach, p0.1.max(p1.1) + reach),
            |px, py| {
                let t = if len2 > 0.0 {
                    (((px - p0.0) * dx + (py - p0.1) * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let (ex, ey) = (px - p0.0 - t * dx, py - p0.1 - t * dy);
                (half + 0.5 - (ex * ex + ey * ey).sqrt()).clamp(0.0, 1.0)
            },
            c,
            alpha,
        );
    }

    /// A filled disc of radius `r` centred at `(cx, cy)`.
    pub fn disc(&mut self, cx: f64, cy: f64, r: f64, c: Color, alpha: f64) {
        if !(cx.is_finite() && cy.is_finite()) || cx.abs() > 1e7 || cy.abs() > 1e7 {
            return;
        }
        self.shade(
            (cx - r - 1.0, cy - r - 1.0),
            (cx + r + 1.0, cy + r + 1.0),
            |px, py| (r + 0.5 - ((px - cx).powi(2) + (py - cy).powi(2)).sqrt()).clamp(0.0, 1.0),
            c,
            alpha,
        );
    }

    /// Blends `c` over the pixels of the box `lo..hi`, each by `alpha * cover(centre)`.
    fn shade(
        &mut self,
        lo: (f64, f64),
        hi: (f64, f64),
        cover: impl Fn(f64, f64) -> f64,
        c: Color,
        alpha: f64,
    ) {
        let k = self.clip;
        let (x0, y0) = (
            (lo.0.floor() as i64).max(k.x),
            (lo.1.floor() as i64).max(k.y),
        );
        let (x1, y1) = (
            (hi.0.ceil() as i64).min(k.right()),
            (hi.1.ceil() as i64).min(k.bottom()),
        );
        for y in y0..y1 {
            for x in x0..x1 {
                let a = cover(x as f64 + 0.5, y as f64 + 0.5);
                if a > 0.0 {
                    self.blend(x, y, c, alpha * a);
                }
            }
        }
    }

    /// Draws `text` with the built-in font, each font pixel a `scale x scale` square, placed so
    /// that the point `(x, y)` sits where `h` and `v` say on its box (width x cap height).
    pub fn text(
        &mut self,
        (x, y): (i64, i64),
        text: &str,
        scale: usize,
        c: Color,
        (h, v): (HAlign, VAlign),
    ) {
        let s = scale.max(1) as i64;
        let w = font::text_width(text, scale.max(1)) as i64;
        let cap = font::cap_height(scale.max(1)) as i64;
        let left = match h {
            HAlign::Left => x,
            HAlign::Center => x - w / 2,
            HAlign::Right => x - w,
        };
        let top = match v {
            VAlign::Top => y,
            VAlign::Middle => y - cap / 2,
            VAlign::Bottom => y - cap,
        };
        for (i, ch) in text.chars().enumerate() {
            let g = font::glyph(ch);
            let gx0 = left + (i * font::ADVANCE) as i64 * s;
            self.glyph(g, |fx, fy| (gx0 + fx as i64 * s, top + fy as i64 * s), s, c);
        }
    }

    /// Draws `text` reading upwards (turned a quarter left), its box `cap` wide, with its left
    /// edge at `x` and its middle at height `y`.
    pub fn text_up(&mut self, x: i64, y: i64, text: &str, scale: usize, c: Color) {
        let s = scale.max(1) as i64;
        let bottom = y + font::text_width(text, scale.max(1)) as i64 / 2;
        for (i, ch) in text.chars().enumerate() {
            let g = font::glyph(ch);
            let along = (i * font::ADVANCE) as i64 * s;
            self.glyph(
                g,
                |fx, fy| (x + fy as i64 * s, bottom - along - (fx as i64 + 1) * s),
                s,
                c,
            );
        }
    }

    /// Fills an `s x s` square at `place(fx, fy)` for every ink pixel `(fx, fy)` of `g`.
    fn glyph(
        &mut self,
        g: &font::Glyph,
        place: impl Fn(usize, usize) -> (i64, i64),
        s: i64,
        c: Color,
    ) {
        for fy in 0..font::GLYPH_H {
            for fx in 0..font::GLYPH_W {
                if font::ink(g, fx, fy) {
                    let (px, py) = place(fx, fy);
                    self.fill_rect(Rect::new(px, py, s, s), c, 1.0);
                }
            }
        }
    }

    /// The image as PNG bytes (8-bit RGB).
    pub fn encode_png(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header()?;
        writer.write_image_data(&self.rgb)?;
        writer.finish()?;
        Ok(out)
    }

    /// Writes the image to `path` as PNG, atomically (temporary sibling file, then rename).
    pub fn save_png(&self, path: &Path) -> io::Result<()> {
        crate::tensor_file::write_atomically(path, &self.encode_png()?)
    }
}
