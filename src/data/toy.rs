//! Built-in toy datasets: the 2-D densities of the FFJORD / flow-matching literature (data within
//! about [-4, 4]^2), and isotropic Gaussians N(0, sigma^2 I) for closed-form studies.
//!
//! Every generator draws each sample independently from [`Rng`], in a fixed order of calls that its
//! doc comment lists, so a seed fixes the samples exactly. Below, `U[a, b)` is
//! [`Rng::uniform_range`], `N(0, 1)` is [`Rng::normal`], and "k uniform in {0..K-1}" is
//! [`Rng::below`]. The formulas follow FFJORD's `toy_data.py` (Grathwohl et al., 2019), except
//! that class / arm / ring memberships and angles that it lays out on a fixed grid (sklearn's
//! `linspace`, `n // K` per class) are drawn at random here, which gives the same distribution.
//!
//! Names ([`FromStr`], [`ToyDataset::name`]): `checkerboard`, `two_moons`, `eight_gaussians`,
//! `swiss_roll`, `pinwheel`, `two_spirals`, `circles`, `gaussian_narrow[:DIM]`,
//! `gaussian_wide[:DIM]`, `gaussian:SIGMA[:DIM]`. Parsing ignores case, treats `-` as `_` in the name
//! (not in SIGMA: `gaussian:1e-3`), and also
//! takes FFJORD's names `moons`, `8gaussians`, `swissroll`, `2spirals`.

use crate::rng::Rng;
use ndarray::Array2;
use std::f64::consts::{PI, SQRT_2};
use std::fmt;
use std::str::FromStr;

/// Standard deviation of `gaussian_narrow`.
pub const GAUSSIAN_NARROW_SIGMA: f64 = 0.3;
/// Standard deviation of `gaussian_wide`.
pub const GAUSSIAN_WIDE_SIGMA: f64 = 3.0;
/// The largest `:DIM` a Gaussian's name may ask for (2^20, the largest dimension a model may have,
/// `train::MAX_DIM`).
pub const MAX_TOY_DIM: usize = 1 << 20;

/// The names [`FromStr`] accepts (besides the aliases and the `:DIM` / `gaussian:SIGMA` forms).
pub const DATASET_NAMES: &[&str] = &[
    "checkerboard",
    "two_moons",
    "eight_gaussians",
    "swiss_roll",
    "pinwheel",
    "two_spirals",
    "circles",
    "gaussian_narrow",
    "gaussian_wide",
];

const GAUSSIAN_GRAMMAR: &str =
    "gaussian_narrow[:DIM], gaussian_wide[:DIM] or gaussian:SIGMA[:DIM] with SIGMA > 0 finite and 1 <= DIM <= 2^20";

/// A built-in dataset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ToyDataset {
    /// Checkerboard of 8 filled squares of side 2 in [-4, 4)^2. Per sample:
    /// `x1 ~ U[-2, 2)`, `u ~ U[0, 1)`, `b` uniform in {0, 1};
    /// `x2 = u - 2 b + (floor(x1) mod 2)` (mod taken non-negative);
    /// point = `2 (x1, x2)`.
    Checkerboard,
    /// Two interleaved half circles. Per sample: moon `k` uniform in {0, 1}, `theta ~ U[0, pi)`,
    /// `e1, e2 ~ N(0, 1)`. Before scaling, moon 0 is `(cos theta, sin theta)` and moon 1 is
    /// `(1 - cos theta, 1/2 - sin theta)`, plus noise `0.1 (e1, e2)` (sklearn `make_moons`,
    /// noise 0.1); point = `2 (that) + (-1, -0.2)`, so the noise std is 0.2 and the data lie in
    /// about [-3, 3] x [-1.2, 1.8].
    TwoMoons,
    /// Mixture of 8 Gaussians. Per sample: `k` uniform in {0..7}, `e1, e2 ~ N(0, 1)`;
    /// centre `c_k = 4 (cos(k pi/4), sin(k pi/4))`; point = `(c_k + 0.5 (e1, e2)) / sqrt(2)`:
    /// centres on the circle of radius `2 sqrt(2) = 2.83`, std `0.5 / sqrt(2) = 0.354` per axis.
    /// (FFJORD divides by 1.414.)
    EightGaussians,
    /// Swiss roll (sklearn `make_swiss_roll`, noise 1, coordinates x and z, divided by 5). Per
    /// sample: `u ~ U[0, 1)`, `e1, e2 ~ N(0, 1)`; `t = 1.5 pi (1 + 2 u)`;
    /// point = `(t cos t + e1, t sin t + e2) / 5`.
    SwissRoll,
    /// Pinwheel with 5 arms (radial std 0.3, tangential std 0.1, rate 0.25). Per sample: arm `k`
    /// uniform in {0..4}, `e1, e2 ~ N(0, 1)`; `f1 = 1 + 0.3 e1`, `f2 = 0.1 e2`,
    /// `phi = 2 pi k / 5 + 0.25 exp(f1)`;
    /// point = `2 (f1 cos phi + f2 sin phi, -f1 sin phi + f2 cos phi)`.
    Pinwheel,
    /// Two interleaved spirals. Per sample: arm sign `s` = +1 or -1 (uniform), `u, v1, v2 ~ U[0, 1)`,
    /// `e1, e2 ~ N(0, 1)`; `r = 3 pi sqrt(u)` (FFJORD: `sqrt(u) 540 (2 pi / 360)`);
    /// point = `s (-r cos r + 0.5 v1, r sin r + 0.5 v2) / 3 + 0.1 (e1, e2)`.
    TwoSpirals,
    /// Two concentric circles (sklearn `make_circles`, factor 0.5, noise 0.08, times 3). Per sample:
    /// ring `k` uniform in {0, 1}, radius `rho = 1` (k = 0) or `0.5` (k = 1), `theta ~ U[0, 2 pi)`,
    /// `e1, e2 ~ N(0, 1)`; point = `3 (rho cos theta + 0.08 e1, rho sin theta + 0.08 e2)`:
    /// radii 3 and 1.5, noise std 0.24.
    Circles,
    /// Isotropic Gaussian N(0, sigma^2 I_dim): each coordinate is `sigma e`, `e ~ N(0, 1)`, drawn
    /// row by row. `gaussian_narrow` is sigma = 0.3, `gaussian_wide` is sigma = 3, both dim 1
    /// unless a `:DIM` suffix says otherwise.
    Gaussian { sigma: f64, dim: usize },
}

/// A dataset name that [`ToyDataset::from_str`] does not know.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ParseDatasetError {
    #[error("unknown dataset '{name}'; valid names: {}, or {GAUSSIAN_GRAMMAR}", DATASET_NAMES.join(", "))]
    Unknown { name: String },
    #[error("bad gaussian dataset '{name}': {reason}; expected {GAUSSIAN_GRAMMAR}")]
    BadGaussian { name: String, reason: String },
}

impl ToyDataset {
    /// The seven 2-D densities, in the order of [`DATASET_NAMES`].
    pub const TWO_D: [ToyDataset; 7] = [
        ToyDataset::Checkerboard,
        ToyDataset::TwoMoons,
        ToyDataset::EightGaussians,
        ToyDataset::SwissRoll,
        ToyDataset::Pinwheel,
        ToyDataset::TwoSpirals,
        ToyDataset::Circles,
    ];

    /// N(0, 0.3^2), 1-D.
    pub fn gaussian_narrow() -> Self {
        ToyDataset::Gaussian {
            sigma: GAUSSIAN_NARROW_SIGMA,
            dim: 1,
        }
    }

    /// N(0, 3^2), 1-D.
    pub fn gaussian_wide() -> Self {
        ToyDataset::Gaussian {
            sigma: GAUSSIAN_WIDE_SIGMA,
            dim: 1,
        }
    }

    /// The canonical name; `name().parse()` gives this dataset back.
    pub fn name(&self) -> String {
        match *self {
            ToyDataset::Checkerboard => "checkerboard".into(),
            ToyDataset::TwoMoons => "two_moons".into(),
            ToyDataset::EightGaussians => "eight_gaussians".into(),
            ToyDataset::SwissRoll => "swiss_roll".into(),
            ToyDataset::Pinwheel => "pinwheel".into(),
            ToyDataset::TwoSpirals => "two_spirals".into(),
            ToyDataset::Circles => "circles".into(),
            ToyDataset::Gaussian { sigma, dim } => {
                let base = if sigma == GAUSSIAN_NARROW_SIGMA {
                    "gaussian_narrow".to_string()
                } else if sigma == GAUSSIAN_WIDE_SIGMA {
                    "gaussian_wide".to_string()
                } else {
                    // The shorter of the two exact forms: `0.5`, `3`, but `1e300`, `1e-7`.
                    let (plain, exponent) = (format!("{sigma}"), format!("{sigma:?}"));
                    let shortest = if exponent.len() < plain.len() {
                        exponent
                    } else {
                        plain
                    };
                    format!("gaussian:{shortest}")
                };
                if dim == 1 {
                    base
                } else {
                    format!("{base}:{dim}")
                }
            }
        }
    }

    /// Number of columns of a sample.
    pub fn dim(&self) -> usize {
        match *self {
            ToyDataset::Gaussian { dim, .. } => dim,
            _ => 2,
        }
    }

    /// The standard deviation of a Gaussian dataset (for closed-form comparisons), else None.
    pub fn gaussian_sigma(&self) -> Option<f64> {
        match *self {
            ToyDataset::Gaussian { sigma, .. } => Some(sigma),
            _ => None,
        }
    }

    /// `n` samples, rows = samples, `dim()` columns; deterministic given the state of `rng`.
    ///
    /// # Panics
    /// On a `Gaussian` with sigma not positive and finite, or dim 0.
    pub fn sample(&self, n: usize, rng: &mut Rng) -> Array2<f64> {
        if let ToyDataset::Gaussian { sigma, dim } = *self {
            assert!(
                sigma.is_finite() && sigma > 0.0 && dim >= 1,
                "ToyDataset::Gaussian needs sigma > 0 finite and dim >= 1, got sigma {sigma}, dim {dim}"
            );
            return Array2::from_shape_fn((n, dim), |_| sigma * rng.normal());
        }
        let point: fn(&mut Rng) -> [f64; 2] = match *self {
            ToyDataset::Checkerboard => checkerboard,
            ToyDataset::TwoMoons => two_moons,
            ToyDataset::EightGaussians => eight_gaussians,
            ToyDataset::SwissRoll => swiss_roll,
            ToyDataset::Pinwheel => pinwheel,
            ToyDataset::TwoSpirals => two_spirals,
            ToyDataset::Circles => circles,
            ToyDataset::Gaussian { .. } => unreachable!(),
        };
        let mut out = Array2::zeros((n, 2));
        for mut row in out.rows_mut() {
            let [a, b] = point(rng);
            row[0] = a;
            row[1] = b;
        }
        out
    }
}

impl fmt::Display for ToyDataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for ToyDataset {
    type Err = ParseDatasetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // `-` reads as `_` in the name only: the numbers after a `:` keep their signs and
        // exponents (`gaussian:1e-3`).
        let lower = s.trim().to_ascii_lowercase();
        let norm = match lower.split_once(':') {
            Some((name, rest)) => format!("{}:{rest}", name.replace('-', "_")),
            None => lower.replace('-', "_"),
        };
        let fixed = match norm.as_str() {
            "checkerboard" => Some(ToyDataset::Checkerboard),
            "two_moons" | "moons" => Some(ToyDataset::TwoMoons),
            "eight_gaussians" | "8gaussians" => Some(ToyDataset::EightGaussians),
            "swiss_roll" | "swissroll" => Some(ToyDataset::SwissRoll),
            "pinwheel" => Some(ToyDataset::Pinwheel),
            "two_spirals" | "2spirals" => Some(ToyDataset::TwoSpirals),
            "circles" => Some(ToyDataset::Circles),
            _ => None,
        };
        if let Some(d) = fixed {
            return Ok(d);
        }
        let bad = |reason: String| ParseDatasetError::BadGaussian {
            name: s.to_string(),
            reason,
        };
        let parse_dim = |text: Option<&str>| -> Result<usize, ParseDatasetError> {
            match text {
                None => Ok(1),
                Some(t) => match t.trim().parse::<usize>() {
                    Ok(d) if (1..=MAX_TOY_DIM).contains(&d) => Ok(d),
                    _ => Err(bad(format!(
                        "DIM '{t}' is not an integer in [1, {MAX_TOY_DIM}]"
                    ))),
                },
            }
        };
        let mut parts = norm.split(':');
        let head = parts.next().unwrap_or("");
        let (sigma, dim) = match head {
            "gaussian_narrow" | "gaussian_wide" => {
                let sigma = if head == "gaussian_narrow" {
                    GAUSSIAN_NARROW_SIGMA
                } else {
                    GAUSSIAN_WIDE_SIGMA
                };
                (sigma, parse_dim(parts.next())?)
            }
            "gaussian" => {
                let text = parts
                    .next()
                    .ok_or_else(|| bad("missing SIGMA".to_string()))?;
                let sigma = match text.trim().parse::<f64>() {
                    Ok(v) if v.is_finite() && v > 0.0 => v,
                    _ => return Err(bad(format!("SIGMA '{text}' is not a number > 0"))),
                };
                (sigma, parse_dim(parts.next())?)
            }
            _ => {
                return Err(ParseDatasetError::Unknown {
                    name: s.to_string(),
                })
            }
        };
        if parts.next().is_some() {
            return Err(bad("too many ':' fields".to_string()));
        }
        Ok(ToyDataset::Gaussian { sigma, dim })
    }
}

fn checkerboard(rng: &mut Rng) -> [f64; 2] {
    let x1 = rng.uniform_range(-2.0, 2.0);
    let u = rng.uniform();
    let b = rng.below(2) as f64;
    let x2 = u - 2.0 * b + x1.floor().rem_euclid(2.0);
    [2.0 * x1, 2.0 * x2]
}

fn two_moons(rng: &mut Rng) -> [f64; 2] {
    let k = rng.below(2);
    let theta = rng.uniform_range(0.0, PI);
    let (e1, e2) = (rng.normal(), rng.normal());
    let (a, b) = if k == 0 {
        (theta.cos(), theta.sin())
    } else {
        (1.0 - theta.cos(), 0.5 - theta.sin())
    };
    [2.0 * (a + 0.1 * e1) - 1.0, 2.0 * (b + 0.1 * e2) - 0.2]
}

fn eight_gaussians(rng: &mut Rng) -> [f64; 2] {
    let k = rng.below(8) as f64;
    let (e1, e2) = (rng.normal(), rng.normal());
    let angle = k * PI / 4.0;
    [
        (4.0 * angle.cos() + 0.5 * e1) / SQRT_2,
        (4.0 * angle.sin() + 0.5 * e2) / SQRT_2,
    ]
}

fn swiss_roll(rng: &mut Rng) -> [f64; 2] {
    let u = rng.uniform();
    let (e1, e2) = (rng.normal(), rng.normal());
    let t = 1.5 * PI * (1.0 + 2.0 * u);
    [(t * t.cos() + e1) / 5.0, (t * t.sin() + e2) / 5.0]
}

fn pinwheel(rng: &mut Rng) -> [f64; 2] {
    let k = rng.below(5) as f64;
    let (e1, e2) = (rng.normal(), rng.normal());
    let f1 = 1.0 + 0.3 * e1;
    let f2 = 0.1 * e2;
    let phi = 2.0 * PI * k / 5.0 + 0.25 * f1.exp();
    let (s, c) = phi.sin_cos();
    [2.0 * (f1 * c + f2 * s), 2.0 * (-f1 * s + f2 * c)]
}

fn two_spirals(rng: &mut Rng) -> [f64; 2] {
    let s = if rng.below(2) == 0 { 1.0 } else { -1.0 };
    let u = rng.uniform();
    let (v1, v2) = (rng.uniform(), rng.uniform());
    let (e1, e2) = (rng.normal(), rng.normal());
    let r = 3.0 * PI * u.sqrt();
    [
        s * (-r * r.cos() + 0.5 * v1) / 3.0 + 0.1 * e1,
        s * (r * r.sin() + 0.5 * v2) / 3.0 + 0.1 * e2,
    ]
}

fn circles(rng: &mut Rng) -> [f64; 2] {
    let rho = if rng.below(2) == 0 { 1.0 } else { 0.5 };
    let theta = rng.uniform_range(0.0, 2.0 * PI);
    let (e1, e2) = (rng.normal(), rng.normal());
    [
        3.0 * (rho * theta.cos() + 0.08 * e1),
        3.0 * (rho * theta.sin() + 0.08 * e2),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigma_keeps_its_exponent_sign_and_names_are_short() {
        let d: ToyDataset = "Gaussian:1e-3:2".parse().unwrap();
        assert_eq!(
            d,
            ToyDataset::Gaussian {
                sigma: 1e-3,
                dim: 2
            }
        );
        let huge: ToyDataset = "gaussian:1e300".parse().unwrap();
        assert_eq!(huge.name(), "gaussian:1e300");
        assert_eq!(huge.name().parse::<ToyDataset>().unwrap(), huge);
        assert_eq!(
            "gaussian:0.5".parse::<ToyDataset>().unwrap().name(),
            "gaussian:0.5"
        );
        assert_eq!(
            "two-moons".parse::<ToyDataset>().unwrap(),
            ToyDataset::TwoMoons
        );
    }

    fn all() -> Vec<ToyDataset> {
        let mut v = ToyDataset::TWO_D.to_vec();
        v.push(ToyDataset::gaussian_narrow());
        v.push(ToyDataset::gaussian_wide());
        v.push(ToyDataset::Gaussian { sigma: 0.7, dim: 3 });
        v
    }

    #[test]
    fn names_round_trip_and_cover_the_list() {
        for d in all() {
            assert_eq!(d.name().parse::<ToyDataset>().unwrap(), d, "{}", d.name());
        }
        for name in DATASET_NAMES {
            assert_eq!(name.parse::<ToyDataset>().unwrap().name(), *name);
        }
        assert_eq!(
            "gaussian_wide:4".parse::<ToyDataset>().unwrap(),
            ToyDataset::Gaussian { sigma: 3.0, dim: 4 }
        );
        assert_eq!("8gaussians".parse(), Ok(ToyDataset::EightGaussians));
        assert_eq!("Two-Moons".parse(), Ok(ToyDataset::TwoMoons));
    }

    #[test]
    fn unknown_name_lists_the_valid_ones() {
        let err = "spiral".parse::<ToyDataset>().unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ParseDatasetError::Unknown { .. }));
        assert!(!msg.contains('\n'));
        assert!(msg.contains("'spiral'"), "{msg}");
        for name in DATASET_NAMES {
            assert!(msg.contains(name), "{msg}");
        }
        for bad in [
            "gaussian",
            "gaussian:0",
            "gaussian:-1",
            "gaussian:x",
            "gaussian_narrow:0",
            "gaussian:1:2:3",
        ] {
            assert!(
                matches!(
                    bad.parse::<ToyDataset>(),
                    Err(ParseDatasetError::BadGaussian { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn shapes_and_determinism() {
        for d in all() {
            let a = d.sample(100, &mut Rng::seed_from_u64(5));
            let b = d.sample(100, &mut Rng::seed_from_u64(5));
            let c = d.sample(100, &mut Rng::seed_from_u64(6));
            assert_eq!(a.dim(), (100, d.dim()));
            assert_eq!(a, b, "{d}");
            assert_ne!(a, c, "{d}");
            assert!(a.iter().all(|v| v.is_finite()));
        }
        assert_eq!(
            ToyDataset::Circles
                .sample(0, &mut Rng::seed_from_u64(1))
                .dim(),
            (0, 2)
        );
    }

    fn moments(x: &Array2<f64>) -> (Vec<f64>, Vec<f64>) {
        let n = x.nrows() as f64;
        let mean: Vec<f64> = x.columns().into_iter().map(|c| c.sum() / n).collect();
        let var = x
            .columns()
            .into_iter()
            .zip(&mean)
            .map(|(c, m)| c.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n)
            .collect();
        (mean, var)
    }

    #[test]
    fn extent_within_the_usual_box() {
        for d in ToyDataset::TWO_D {
            let x = d.sample(20_000, &mut Rng::seed_from_u64(11));
            let inside = x
                .rows()
                .into_iter()
                .filter(|r| r.iter().all(|v| v.abs() <= 4.0))
                .count();
            assert!(
                inside as f64 >= 0.99 * 20_000.0,
                "{d}: {inside} inside [-4, 4]^2"
            );
            let max = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(max < 6.0 && max > 2.0, "{d}: max |x| {max}");
        }
    }

    #[test]
    fn moments_match_the_formulas() {
        let n = 20_000;
        // (dataset, mean, per-coordinate variance or None); standard errors are below 0.03.
        let cases: [(ToyDataset, [f64; 2], Option<[f64; 2]>); 6] = [
            (
                ToyDataset::Checkerboard,
                [0.0, 0.0],
                Some([16.0 / 3.0, 16.0 / 3.0]),
            ),
            (ToyDataset::TwoMoons, [0.0, 0.3], None),
            (ToyDataset::EightGaussians, [0.0, 0.0], Some([4.125, 4.125])),
            (ToyDataset::Pinwheel, [0.0, 0.0], None),
            (ToyDataset::TwoSpirals, [0.0, 0.0], None),
            (ToyDataset::Circles, [0.0, 0.0], Some([2.87, 2.87])),
        ];
        for (d, mean, var) in cases {
            let (m, v) = moments(&d.sample(n, &mut Rng::seed_from_u64(21)));
            for k in 0..2 {
                assert!((m[k] - mean[k]).abs() < 0.08, "{d}: mean {m:?}");
                if let Some(var) = var {
                    assert!((v[k] - var[k]).abs() < 0.05 * var[k], "{d}: var {v:?}");
                }
            }
        }
        // Circles: radii 3 and 1.5.
        let x = ToyDataset::Circles.sample(n, &mut Rng::seed_from_u64(2));
        let near = |r0: f64| {
            x.rows()
                .into_iter()
                .filter(|r| (r[0].hypot(r[1]) - r0).abs() < 0.75)
                .count()
        };
        // Radial noise std 0.24: 0.75 is 3.1 std, so about 0.2% fall outside.
        let (outer, inner) = (near(3.0), near(1.5));
        assert!(outer + inner >= n * 995 / 1000, "{outer} + {inner}");
        assert!(outer.abs_diff(inner) < n / 25, "{outer} vs {inner}");
        for (sigma, dim) in [(0.3, 1), (3.0, 1), (1.5, 3)] {
            let (m, v) =
                moments(&ToyDataset::Gaussian { sigma, dim }.sample(n, &mut Rng::seed_from_u64(4)));
            for k in 0..dim {
                assert!(m[k].abs() < 0.04 * sigma, "mean {m:?}");
                assert!((v[k] / (sigma * sigma) - 1.0).abs() < 0.05, "var {v:?}");
            }
        }
    }
}
