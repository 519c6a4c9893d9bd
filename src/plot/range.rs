//! Axis limits from data: robust (quantiles) or full (min / max), padded, never empty.

/// `[q_lo, q_hi]` quantiles of the finite `values`, widened by `pad` times the span on each side.
/// An empty or single-valued input gets a span of its own (1, or 10% of the magnitude).
pub fn quantile_limits(values: &[f64], q_lo: f64, q_hi: f64, pad: f64) -> (f64, f64) {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (-1.0, 1.0);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
        let (i, f) = (pos.floor() as usize, pos.fract());
        let j = (i + 1).min(v.len() - 1);
        v[i] + f * (v[j] - v[i])
    };
    padded(at(q_lo), at(q_hi), pad)
}

/// `[lo, hi]` widened by `pad` times its span on each side, with the same fallbacks as
/// [`quantile_limits`] for a zero span.
pub fn padded(lo: f64, hi: f64, pad: f64) -> (f64, f64) {
    let span = hi - lo;
    if span.is_nan() || span <= 1e-12 * lo.abs().max(hi.abs()) {
        let half = if lo.abs() > 0.0 { 0.1 * lo.abs() } else { 1.0 };
        return (lo - half, lo + half);
    }
    (lo - pad * span, hi + pad * span)
}

/// The smallest and largest finite value (`None` when there is none).
pub fn min_max(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Limits of a log axis holding the positive finite `values`: their range widened by `pad`
/// decades-fractions on each side (a factor of 10 either way when there is only one value).
pub fn log_limits(values: impl IntoIterator<Item = f64>, pad: f64) -> (f64, f64) {
    match min_max(values.into_iter().filter(|v| *v > 0.0)) {
        None => (1.0, 10.0),
        Some((lo, hi)) => {
            let (a, b) = padded(lo.log10(), hi.log10(), pad);
            if hi > lo {
                (10f64.powf(a), 10f64.powf(b))
            } else {
                (lo / 10.0, lo * 10.0)
            }
        }
    }
}
