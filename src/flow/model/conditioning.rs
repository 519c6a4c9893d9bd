//! How the times enter the network: the columns appended to z.
//!
//! The network is always a function of (z, r, t); h = t - r is computed *inside* the recorded
//! function, so a JVP along (v, 0, 1) on (z, r, t) gives dh = 1 automatically, and the classic
//! mistake of differentiating along (v, 1, 0) on (z, t, h) cannot happen.

use crate::autodiff::elementwise::Elementwise;
use crate::autodiff::tape::{Tape, Var};
use crate::linalg::float::Float;
use crate::linalg::real::Real;
use std::fmt;
use std::str::FromStr;

/// The embedding of (t, h) appended to z.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conditioning {
    /// [t, h]: two columns (the reference cases' layout).
    Raw,
    /// For s in (t, h): [s, sin(pi 2^k s), cos(pi 2^k s) for k = 0..frequencies-1], so
    /// 2 (1 + 2 frequencies) columns; the raw value is kept so that the map stays injective.
    Fourier { frequencies: usize },
}

impl Conditioning {
    /// The number of columns appended to z.
    pub fn width(self) -> usize {
        match self {
            Conditioning::Raw => 2,
            Conditioning::Fourier { frequencies } => 2 * (1 + 2 * frequencies),
        }
    }

    /// emb(s) for one time value, written into `out` (length width() / 2), on any [`Real`]: on
    /// `Dual` numbers seeded with ds = 1 it gives d emb / ds too. The same formula as [`Self::embed`].
    pub fn embed_scalar<R: Real>(self, s: R, out: &mut [R]) {
        match self {
            Conditioning::Raw => out[0] = s,
            Conditioning::Fourier { frequencies } => {
                out[0] = s;
                for k in 0..frequencies {
                    let phase = s * R::constant(std::f64::consts::PI * 2f64.powi(k as i32));
                    out[1 + k] = phase.sin();
                    out[1 + frequencies + k] = phase.cos();
                }
            }
        }
    }

    /// Records emb(s) for one column s [B, 1] on the tape (width() / 2 columns): a time, or the
    /// guidance input of a model that takes one.
    pub fn embed_one<T: Float>(self, tape: &mut Tape<T>, s: Var) -> Var {
        match self {
            Conditioning::Raw => s,
            Conditioning::Fourier { frequencies } => {
                let omegas = tape.constant_from_fn((1, frequencies), |mut row| {
                    for (k, w) in row.iter_mut().enumerate() {
                        *w = T::from_f64(std::f64::consts::PI * 2f64.powi(k as i32));
                    }
                });
                let phases = tape.mul(s, omegas);
                let sines = tape.map(phases, Elementwise::Sin);
                let cosines = tape.map(phases, Elementwise::Cos);
                let with_sines = tape.concat_cols(s, sines);
                tape.concat_cols(with_sines, cosines)
            }
        }
    }

    /// Records emb(t, h) = [emb(t) | emb(h)] on the tape, t and h of shape [B, 1].
    pub fn embed<T: Float>(self, tape: &mut Tape<T>, t: Var, h: Var) -> Var {
        let et = self.embed_one(tape, t);
        let eh = self.embed_one(tape, h);
        tape.concat_cols(et, eh)
    }

    pub fn name(self) -> String {
        match self {
            Conditioning::Raw => "raw".into(),
            Conditioning::Fourier { frequencies } => format!("fourier{frequencies}"),
        }
    }
}

impl fmt::Display for Conditioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

crate::serde_by_name!(Conditioning);

/// `raw`, or `fourierK` for K frequencies (`fourier` alone means K = 4).
impl FromStr for Conditioning {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "raw" {
            return Ok(Conditioning::Raw);
        }
        if let Some(k) = s.strip_prefix("fourier") {
            let frequencies = if k.is_empty() {
                Ok(4)
            } else {
                k.parse::<usize>()
            };
            if let Ok(frequencies @ 1..=16) = frequencies {
                return Ok(Conditioning::Fourier { frequencies });
            }
        }
        Err(format!(
            "unknown conditioning '{s}' (expected 'raw' or 'fourierK' with K frequencies, 1 <= K <= 16)"
        ))
    }
}
