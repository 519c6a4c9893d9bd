//! Classifier-free guidance in training, the two ways the papers do it. Both regress on a guided
//! velocity v_g instead of v_c = e - x, on the rows that carry a class; a row whose label was
//! dropped (the null class C) keeps v_g = v_c and trains the unconditional model.
//!
//! ```text
//! MF (guidance in the target, w and kappa fixed at training):
//!   v_g = w v_c + kappa sg(v^(z, t | c)) + (1 - w - kappa) sg(v^(z, t | null))
//! iMF (guidance as an input, w >= 1 drawn per row and given to the network):
//!   v_g = v_c + (1 - 1/w) (sg(v^(z, t | c, w)) - sg(v^(z, t | null, 1)))
//! ```
//!
//! v^ is the model's velocity estimate, u(z, t, t | .) (v_source = boundary) or the v-head
//! v(z, t | .) (v_source = head). At the fixed point both give classifier-free guidance of the true
//! velocities: MF's u(z, t, t | c) = v_null + w / (1 - kappa) (v_cond - v_null), iMF's
//! v(z, t | c, w) = v_null + w (v_cond - v_null); so one step samples the guided distribution, at
//! the trained w / (1 - kappa) for MF, at the w the sampler asks for with iMF.
//!
//! iMF draws w log-uniformly on [1, 1 + w_max], the official code's power law with beta = 1:
//! w = exp(u ln(1 + w_max)), u ~ U(0, 1) (Lyy-iiis/imeanflow `imf.py`, `sample_cfg_scale`).
//! That code also has a density proportional to w^-beta for other beta, but every config it
//! ships (`configs/default.py`, `configs/train_config.yml`) sets `cfg_beta = 1`, so no other beta
//! is offered here.
//!
//! MF's guidance interval ([`crate::flow::loss::LossConfig::guidance_interval`]): the target is
//! guided only on rows with t_min <= t <= t_max and is v_c elsewhere (Gsunshine/meanflow
//! `meanflow.py`).
//!
//! iMF's guidance interval ([`crate::flow::model::ModelConfig::guidance_interval_input`]), as
//! Lyy-iiis/imeanflow `imf.py` has it: each row draws t_min ~ U[0, 0.5] and t_max ~ U[0.5, 1]
//! (`sample_cfg_interval`; a row with r = t gets [0, 1]) and the network sees emb(t_min) and
//! emb(t_max) beside emb(g). The target uses w' = w inside the row's interval and 1 outside:
//!
//! ```text
//!   v_g = v_c + (1 - 1/w') (sg(v^(z, t | c, w', [0, 1])) - sg(v^(z, t | null, 1, [0, 1])))
//! ```
//!
//! so v_g = v_c outside the interval (`guidance_fn`); the velocity estimates, v_hat too, see the
//! interval [0, 1] and the scale w' (`v_cond_fn`), while u(z, r, t | c, w, t_min, t_max) sees the
//! row's own. At sampling (`sample --guidance W --interval A,B`) the network is given (W, A, B),
//! one evaluation per step (`sample_one_step`).
//!
//! Both targets contain the network's own outputs, a bootstrapped regression: the target of a row
//! moves with the fit. With plain squared error (p = 0) a large w_max can diverge: measured on the
//! digits (3 x 256, lr 1e-3), `input:4` blew up by step 5000 (also with `--clip 1`), while
//! `input:2` and `input:4` with the adaptive weight p = 1 (the official setting) stayed finite.

use crate::autodiff::tape::{Tape, Var};
use crate::linalg::float::Float;
use crate::rng::Rng;

/// The largest guidance scale w (MF's target) and w_max (iMF's input) a config may have. The
/// guided target v_g is up to about w times the data's velocity v_c and the loss squares it: at
/// 1e6 that is 1e12 times the data's squared scale, finite in f32 for data of any ordinary scale
/// (a file is standardised), while 1e30 overflows f32 (an infinite loss) and 1e39 is not an f32
/// at all (a NaN loss). The papers use w of a few units.
pub const MAX_GUIDANCE_SCALE: f64 = 1e6;

/// How guidance enters training; see the module documentation for the formulas.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Guidance {
    /// The target is v_c on every row.
    #[default]
    None,
    /// MF: v_g = w v_c + kappa v^(c) + (1 - w - kappa) v^(null), w > 0, 0 <= kappa < 1.
    Target { w: f64, kappa: f64 },
    /// iMF: v_g = v_c + (1 - 1/w)(v^(c, w) - v^(null, 1)), w ~ log-uniform on [1, 1 + w_max].
    Input { w_max: f64 },
}

impl Guidance {
    /// Checks the numbers; the message names the bad one and its range: w and w_max in
    /// (0, [`MAX_GUIDANCE_SCALE`]], kappa in [0, 1).
    pub fn validate(&self) -> Result<(), String> {
        let scale = |name: &str, symbol: &str, v: f64| {
            if v > 0.0 && v <= MAX_GUIDANCE_SCALE {
                Ok(())
            } else {
                Err(format!(
                    "{name} = {} is out of range (0, {MAX_GUIDANCE_SCALE:e}]: the guided target is up to about {symbol} times the data's velocity, and its square must stay finite in f32",
                    short(v)
                ))
            }
        };
        match *self {
            Guidance::None => Ok(()),
            Guidance::Target { w, kappa } => {
                scale("guidance scale w", "w", w)?;
                if !(0.0..1.0).contains(&kappa) {
                    return Err(format!(
                        "guidance mixing kappa = {} is out of range [0, 1)",
                        short(kappa)
                    ));
                }
                Ok(())
            }
            Guidance::Input { w_max } => scale("w_max", "1 + w_max", w_max),
        }
    }

    /// The scales a model trained with guidance as an input has seen, [1, 1 + w_max]; None for
    /// the other kinds.
    pub fn trained_scales(&self) -> Option<(f64, f64)> {
        match *self {
            Guidance::Input { w_max } => Some((1.0, 1.0 + w_max)),
            _ => None,
        }
    }

    /// Whether the network takes the scale w as an input.
    pub fn is_input(&self) -> bool {
        matches!(self, Guidance::Input { .. })
    }

    /// The scale MF's one-step sampler follows, w / (1 - kappa) (None for the other kinds).
    pub fn effective_target_scale(&self) -> Option<f64> {
        match *self {
            Guidance::Target { w, kappa } => Some(w / (1.0 - kappa)),
            _ => None,
        }
    }

    /// Whether the target needs v^(z, t | c) of the rows' own classes: not for MF with kappa = 0.
    pub fn needs_own_velocity(&self) -> bool {
        match *self {
            Guidance::None => false,
            Guidance::Target { kappa, .. } => kappa != 0.0,
            Guidance::Input { .. } => true,
        }
    }

    /// One draw of iMF's scale: exp(u ln(1 + w_max)), u ~ U(0, 1), so w in [1, 1 + w_max].
    pub fn draw_scale(w_max: f64, rng: &mut Rng) -> f64 {
        (rng.uniform() * w_max.ln_1p()).exp()
    }
}

/// `2`, `0.25`, `1e39`: a number as a message shows it (exponent form when very large or small).
fn short(v: f64) -> String {
    if v != 0.0 && v.is_finite() && (v.abs() >= 1e6 || v.abs() < 1e-4) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// The velocities the guided target combines, as tape nodes [B, d] (all stop-gradient but v_c).
pub struct TargetInputs {
    pub v_c: Var,
    /// v^(z, t | c, w) of each row's own class (and scale); None where not needed.
    pub own: Option<Var>,
    /// v^(z, t | null) (scale 1).
    pub null: Var,
}

/// Records v_g (see the module documentation) for rows of classes `labels` (the null class is
/// `classes`) at times `times` [B, 1] and, for [`Guidance::Input`], scales `scales` [B, 1]. With
/// an `interval` [t_min, t_max] a row is guided only when t_min <= t <= t_max (MF's interval; v_g
/// = v_c elsewhere, as on the rows without a class); with `row_intervals` [B, 2] likewise, each
/// row within its own [t_min, t_max] (iMF's).
///
/// # Panics
/// With [`Guidance::None`], or if a velocity the kind needs is missing.
#[allow(clippy::too_many_arguments)]
pub fn record_guided_target<T: Float>(
    tape: &mut Tape<T>,
    guidance: &Guidance,
    interval: Option<[f64; 2]>,
    labels: &[usize],
    classes: usize,
    times: ndarray::ArrayView2<T>,
    scales: ndarray::ArrayView2<T>,
    row_intervals: Option<ndarray::ArrayView2<T>>,
    inputs: &TargetInputs,
) -> Var {
    let rows = labels.len();
    assert_eq!(
        times.dim(),
        (rows, 1),
        "record_guided_target: times {:?} for {rows} rows",
        times.dim()
    );
    if let Some(intervals) = row_intervals {
        assert_eq!(
            intervals.dim(),
            (rows, 2),
            "record_guided_target: intervals {:?} for {rows} rows",
            intervals.dim()
        );
    }
    let inside = |i: usize| {
        let t = times[[i, 0]];
        interval.is_none_or(|[lo, hi]| (lo..=hi).contains(&t.to_f64()))
            && row_intervals.is_none_or(|a| a[[i, 0]] <= t && t <= a[[i, 1]])
    };
    let conditioned = |i: usize| labels[i] != classes && inside(i);
    // Per-row coefficients, 0 on the rows without a class: v_g = v_c there.
    let column = |tape: &mut Tape<T>, f: &dyn Fn(usize) -> f64| {
        tape.constant_from_fn((rows, 1), |mut col| {
            for (i, c) in col.iter_mut().enumerate() {
                *c = T::from_f64(if conditioned(i) { f(i) } else { 0.0 });
            }
        })
    };
    match *guidance {
        Guidance::None => panic!("record_guided_target: no guidance to record"),
        Guidance::Target { w, kappa } => {
            // v_g = v_c + (w - 1) v_c + kappa v^(c) + (1 - w - kappa) v^(null) on guided rows.
            let a = column(tape, &|_| w - 1.0);
            let c = column(tape, &|_| 1.0 - w - kappa);
            let scaled_v_c = tape.mul(a, inputs.v_c);
            let scaled_null = tape.mul(c, inputs.null);
            let mut v_g = tape.add(inputs.v_c, scaled_v_c);
            v_g = tape.add(v_g, scaled_null);
            if kappa != 0.0 {
                let own = inputs
                    .own
                    .expect("record_guided_target: kappa != 0 needs v^(c)");
                let b = column(tape, &|_| kappa);
                let scaled_own = tape.mul(b, own);
                v_g = tape.add(v_g, scaled_own);
            }
            v_g
        }
        Guidance::Input { .. } => {
            assert_eq!(
                scales.dim(),
                (rows, 1),
                "record_guided_target: scales {:?} for {rows} rows",
                scales.dim()
            );
            let own = inputs
                .own
                .expect("record_guided_target: guidance as an input needs v^(c, w)");
            let g = column(tape, &|i| 1.0 - 1.0 / scales[[i, 0]].to_f64());
            let gap = tape.sub(own, inputs.null);
            let guided_gap = tape.mul(g, gap);
            tape.add(inputs.v_c, guided_gap)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_scales_are_in_range_and_log_uniform() {
        let mut rng = Rng::seed_from_u64(7);
        let n = 20_000;
        let w_max = 7.0;
        let draws: Vec<f64> = (0..n)
            .map(|_| Guidance::draw_scale(w_max, &mut rng))
            .collect();
        assert!(draws.iter().all(|&w| (1.0..=8.0).contains(&w)));
        // ln w ~ U(0, ln 8): its mean is ln(8) / 2, standard error ln(8) / sqrt(12 n).
        let mean_log = draws.iter().map(|w| w.ln()).sum::<f64>() / n as f64;
        let se = 8f64.ln() / (12.0 * n as f64).sqrt();
        assert!((mean_log - 8f64.ln() / 2.0).abs() < 5.0 * se, "{mean_log}");
    }

    #[test]
    fn validation_names_the_bad_number() {
        assert!(Guidance::Target { w: 0.0, kappa: 0.0 }
            .validate()
            .unwrap_err()
            .contains("w = 0 is out of range (0, 1e6]"));
        for w in [1e30, 1e39, f64::INFINITY, f64::NAN] {
            let e = Guidance::Target { w, kappa: 0.0 }.validate().unwrap_err();
            assert!(e.contains("(0, 1e6]"), "{e}");
        }
        assert!(Guidance::Target { w: 1e6, kappa: 0.0 }.validate().is_ok());
        assert!(Guidance::Input { w_max: 1e7 }
            .validate()
            .unwrap_err()
            .contains("w_max"));
        assert!(Guidance::Target { w: 2.0, kappa: 1.0 }
            .validate()
            .unwrap_err()
            .contains("kappa"));
        assert!(Guidance::Input { w_max: f64::NAN }
            .validate()
            .unwrap_err()
            .contains("w_max"));
        assert!(Guidance::Target { w: 2.0, kappa: 0.5 }.validate().is_ok());
        assert_eq!(
            Guidance::Target { w: 2.0, kappa: 0.5 }.effective_target_scale(),
            Some(4.0)
        );
    }

    /// The recorded v_g equals the formula row by row, and v_c on rows of the null class and,
    /// with MF's interval [0.3, 0.6], on rows whose t is outside it (t = 0.2 and 0.7 here; the
    /// interval's ends, 0.3 and 0.6, are inside).
    #[test]
    fn the_recorded_target_is_the_formula() {
        let (b, d, classes) = (4, 3, 5);
        let labels = [0, 5, 3, 1];
        let value = |i: usize, j: usize, k: f64| (k * (i + 1) as f64 - 0.3 * j as f64).sin();
        let scales = ndarray::Array2::from_shape_fn((b, 1), |(i, _)| 1.0 + i as f64);
        let times = ndarray::array![[0.2], [0.3], [0.6], [0.7]];
        for (guidance, interval) in [
            (Guidance::Target { w: 2.5, kappa: 0.0 }, None),
            (Guidance::Target { w: 1.5, kappa: 0.3 }, None),
            (Guidance::Target { w: 1.5, kappa: 0.3 }, Some([0.3, 0.6])),
            (Guidance::Input { w_max: 5.0 }, None),
        ] {
            let mut tape = Tape::<f64>::new();
            let v_c = tape.constant_from_fn((b, d), |mut a| {
                a.indexed_iter_mut()
                    .for_each(|((i, j), x)| *x = value(i, j, 1.0))
            });
            let own = tape.constant_from_fn((b, d), |mut a| {
                a.indexed_iter_mut()
                    .for_each(|((i, j), x)| *x = value(i, j, 2.0))
            });
            let null = tape.constant_from_fn((b, d), |mut a| {
                a.indexed_iter_mut()
                    .for_each(|((i, j), x)| *x = value(i, j, 3.0))
            });
            let inputs = TargetInputs {
                v_c,
                own: Some(own),
                null,
            };
            let v_g = record_guided_target(
                &mut tape,
                &guidance,
                interval,
                &labels,
                classes,
                times.view(),
                scales.view(),
                None,
                &inputs,
            );
            let got = tape.value(v_g).to_owned();
            for i in 0..b {
                for j in 0..d {
                    let (vc, o, n) = (value(i, j, 1.0), value(i, j, 2.0), value(i, j, 3.0));
                    let outside =
                        interval.is_some_and(|[lo, hi]| times[[i, 0]] < lo || times[[i, 0]] > hi);
                    let want = if labels[i] == classes || outside {
                        vc
                    } else {
                        match guidance {
                            Guidance::Target { w, kappa } => {
                                w * vc + kappa * o + (1.0 - w - kappa) * n
                            }
                            Guidance::Input { .. } => vc + (1.0 - 1.0 / scales[[i, 0]]) * (o - n),
                            Guidance::None => unreachable!(),
                        }
                    };
                    assert!(
                        (got[[i, j]] - want).abs() < 1e-14,
                        "{guidance:?} [{i}, {j}]"
                    );
                }
            }
        }
    }
}
