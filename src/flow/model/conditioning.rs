//! How the times enter the network: the columns appended to z.
//!
//! The network is always a function of (z, r, t); h = t - r is computed *inside* the recorded
//! function, so a JVP along (v, 0, 1) on (z, r, t) gives dh = 1 automatically, and the classic
//! mistake of differentiating along (v, 1, 0) on (z, t, h) cannot happen.
//!
//! MeanFlow's networks see (t, h) (Gsunshine/meanflow `meanflow.py`, `u_fn(z, t, t - r)`);
//! improved MeanFlow's see h alone (Lyy-iiis/imeanflow `imfDiT.py`: "we don't explicitly
//! condition on time t, only on h = t - r"): the `h-` variants. Without t the network cannot
//! tell z_t's time at h = 0, and still must give v(z_t, t); iMF's argument is that z_t carries it.

use crate::autodiff::elementwise::Elementwise;
use crate::autodiff::tape::{Tape, Var};
use crate::linalg::float::Float;
use crate::linalg::real::Real;
use std::fmt;
use std::str::FromStr;

/// The embedding of (t, h), or of h alone, appended to z.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conditioning {
    /// [t, h]: two columns (the reference cases' layout).
    Raw,
    /// For s in (t, h): [s, sin(pi 2^k s), cos(pi 2^k s) for k = 0..frequencies-1], so
    /// 2 (1 + 2 frequencies) columns; the raw value is kept so that the map stays injective.
    Fourier { frequencies: usize },
    /// \[h\]: one column (`h-raw`).
    RawH,
    /// [h, sin(pi 2^k h), cos(pi 2^k h)]: 1 + 2 frequencies columns (`h-fourierK`).
    FourierH { frequencies: usize },
}

impl Conditioning {
    /// The number of columns appended to z.
    pub fn width(self) -> usize {
        self.times() * self.one_time_width()
    }

    /// How many times are embedded: 2 (t and h) or 1 (h).
    pub fn times(self) -> usize {
        match self {
            Conditioning::Raw | Conditioning::Fourier { .. } => 2,
            Conditioning::RawH | Conditioning::FourierH { .. } => 1,
        }
    }

    /// The columns of one scalar's embedding: 1 (raw) or 1 + 2 frequencies (Fourier).
    pub fn one_time_width(self) -> usize {
        match self {
            Conditioning::Raw | Conditioning::RawH => 1,
            Conditioning::Fourier { frequencies } | Conditioning::FourierH { frequencies } => {
                1 + 2 * frequencies
            }
        }
    }

    /// The Fourier frequencies of one scalar's embedding (0: raw).
    fn frequencies(self) -> usize {
        match self {
            Conditioning::Raw | Conditioning::RawH => 0,
            Conditioning::Fourier { frequencies } | Conditioning::FourierH { frequencies } => {
                frequencies
            }
        }
    }

    /// emb(s) for one time value, written into `out` (length [`Self::one_time_width`]), on any
    /// [`Real`]: on `Dual` numbers seeded with ds = 1 it gives d emb / ds too. The same formula as
    /// [`Self::embed`].
    pub fn embed_scalar<R: Real>(self, s: R, out: &mut [R]) {
        let frequencies = self.frequencies();
        out[0] = s;
        for k in 0..frequencies {
            let phase = s * R::constant(std::f64::consts::PI * 2f64.powi(k as i32));
            out[1 + k] = phase.sin();
            out[1 + frequencies + k] = phase.cos();
        }
    }

    /// Records emb(s) for one column s [B, 1] on the tape ([`Self::one_time_width`] columns): a
    /// time, or the guidance input of a model that takes one.
    pub fn embed_one<T: Float>(self, tape: &mut Tape<T>, s: Var) -> Var {
        match self.frequencies() {
            0 => s,
            frequencies => {
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

    /// Records emb(t, h) = [emb(t) | emb(h)] on the tape, t and h of shape [B, 1]; emb(h) alone
    /// for the `h-` variants.
    pub fn embed<T: Float>(self, tape: &mut Tape<T>, t: Var, h: Var) -> Var {
        let eh = self.embed_one(tape, h);
        if self.times() == 1 {
            return eh;
        }
        let et = self.embed_one(tape, t);
        tape.concat_cols(et, eh)
    }

    pub fn name(self) -> String {
        match self {
            Conditioning::Raw => "raw".into(),
            Conditioning::Fourier { frequencies } => format!("fourier{frequencies}"),
            Conditioning::RawH => "h-raw".into(),
            Conditioning::FourierH { frequencies } => format!("h-fourier{frequencies}"),
        }
    }
}

impl fmt::Display for Conditioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

crate::serde_by_name!(Conditioning);

/// `raw`, or `fourierK` for K frequencies (`fourier` alone means K = 4): (t, h); with an `h-`
/// prefix (`h-raw`, `h-fourierK`) h alone.
impl FromStr for Conditioning {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (h_only, embedding) = match s.strip_prefix("h-") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let frequencies = if embedding == "raw" {
            Some(0)
        } else {
            embedding
                .strip_prefix("fourier")
                .and_then(|k| {
                    if k.is_empty() {
                        Some(4)
                    } else {
                        k.parse().ok()
                    }
                })
                .filter(|k| (1..=16).contains(k))
        };
        match (h_only, frequencies) {
            (false, Some(0)) => Ok(Conditioning::Raw),
            (false, Some(frequencies)) => Ok(Conditioning::Fourier { frequencies }),
            (true, Some(0)) => Ok(Conditioning::RawH),
            (true, Some(frequencies)) => Ok(Conditioning::FourierH { frequencies }),
            (_, None) => Err(format!(
                "unknown conditioning '{s}' (expected 'raw' or 'fourierK' with K frequencies, 1 <= K <= 16, for (t, h); 'h-raw' or 'h-fourierK' for h alone)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_give_the_widths() {
        for (name, width, times) in [
            ("raw", 2, 2),
            ("fourier3", 14, 2),
            ("h-raw", 1, 1),
            ("h-fourier3", 7, 1),
        ] {
            let c: Conditioning = name.parse().unwrap();
            assert_eq!(c.name(), name);
            assert_eq!((c.width(), c.times()), (width, times), "{name}");
        }
        assert_eq!(
            "h-fourier".parse::<Conditioning>(),
            Ok(Conditioning::FourierH { frequencies: 4 })
        );
        for bad in ["h-", "h-fourier17", "t-raw", "h-h-raw", "fourier0"] {
            let e = bad.parse::<Conditioning>().unwrap_err();
            assert!(e.contains(&format!("'{bad}'")), "{e}");
        }
    }
}
