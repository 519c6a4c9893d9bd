//! Tick positions and their labels: round steps (1, 2, 5 x 10^k) on linear axes, powers of ten on
//! log axes, and short labels (`0.25`, `20k`, `1e-4`).

/// A tick: its value and its label.
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    pub value: f64,
    pub label: String,
}

/// At most about `max_count` ticks at round values within `[lo, hi]`.
pub fn linear(lo: f64, hi: f64, max_count: usize) -> Vec<Tick> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return Vec::new();
    }
    let step = nice_step((hi - lo) / max_count.max(1) as f64);
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    let values: Vec<f64> = (first..=last).map(|k| k as f64 * step).collect();
    label_linear(&values, step)
}

/// Ticks for a log axis over `[lo, hi]` (both > 0), at most about `max_count`: 1-2-5 multiples
/// of powers of ten if they are few enough, else powers of ten (every k-th if need be), else
/// (within less than a decade) linear ticks.
pub fn log(lo: f64, hi: f64, max_count: usize) -> Vec<Tick> {
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return Vec::new();
    }
    let max_count = max_count.max(2);
    if hi / lo < 1e6 {
        let (m0, m1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        let in_range = |v: &f64| *v >= lo * (1.0 - 1e-9) && *v <= hi * (1.0 + 1e-9);
        let values: Vec<f64> = (m0..=m1)
            .flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e)))
            .filter(in_range)
            .collect();
        if values.len() >= 2 && values.len() <= max_count {
            return values.into_iter().map(log_tick).collect();
        }
    }
    let (e0, e1) = (lo.log10().ceil() as i32, hi.log10().floor() as i32);
    let decades = (e1 - e0 + 1).max(0) as usize;
    if decades >= 2 {
        let every = decades.div_ceil(max_count);
        return (e0..=e1)
            .filter(|e| ((e - e0) as usize).is_multiple_of(every))
            .map(|e| log_tick(10f64.powi(e)))
            .collect();
    }
    linear(lo, hi, max_count)
}

/// The next minor positions of a log axis: 2..9 times each power of ten within `[lo, hi]`.
pub fn log_minor(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi > lo && hi.is_finite()) || hi / lo > 1e12 {
        return Vec::new();
    }
    let (e0, e1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    (e0..=e1)
        .flat_map(|e| (2..10).map(move |m| m as f64 * 10f64.powi(e)))
        .filter(|v| *v >= lo && *v <= hi)
        .collect()
}

/// The smallest of 1, 2, 5 times a power of ten that is at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let m = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// Labels for evenly spaced `values` `step` apart: plain decimals with as many digits as the
/// step needs; `k` / `M` / `G` suffixes from 10^4 up; exponent form for tiny magnitudes.
fn label_linear(values: &[f64], step: f64) -> Vec<Tick> {
    let biggest = values.iter().fold(0f64, |m, v| m.max(v.abs()));
    let (unit, suffix) = if biggest >= 1e4 {
        [(1e9, "G"), (1e6, "M"), (1e3, "k")]
            .into_iter()
            .find(|(u, _)| biggest >= *u)
            .unwrap_or((1.0, ""))
    } else {
        (1.0, "")
    };
    // Tiny values share one exponent, so that all labels have the same form (`0.5e-5`, `1.0e-5`).
    let tiny = (biggest < 1e-3).then(|| 10f64.powf((biggest.log10() + 1e-9).floor()));
    values
        .iter()
        .map(|&v| {
            let v = if v.abs() < step * 1e-6 { 0.0 } else { v };
            let label = match tiny {
                _ if v == 0.0 && (tiny.is_some() || unit > 1.0) => "0".to_string(),
                Some(e) => format!("{:.*}e{}", decimals(step / e), v / e, e.log10().round()),
                None => format!("{:.*}{}", decimals(step / unit), v / unit, suffix),
            };
            Tick { value: v, label }
        })
        .collect()
}

/// Digits after the point that a step of `step` needs (0 for steps of 1 and more).
fn decimals(step: f64) -> usize {
    (-(step.log10() + 1e-9).floor()).max(0.0) as usize
}

/// A tick at a power of ten or a 1-2-5 multiple of one: plain from 0.001 to 9999, else `5e-7`.
fn log_tick(v: f64) -> Tick {
    let label = if (1e-3..1e4).contains(&v) {
        format!("{:.*}", decimals(v), v)
    } else {
        let e = (v.log10() + 1e-9).floor();
        format!("{}e{}", (v / 10f64.powf(e)).round(), e)
    };
    Tick { value: v, label }
}
