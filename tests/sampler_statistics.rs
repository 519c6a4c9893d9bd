//! Statistical tests of the samplers: the time sampler (`TimeSampler`), the raw draws of `Rng`,
//! the guidance scale (`Guidance::draw_scale`) and the built-in datasets (`ToyDataset`).
//!
//! Every threshold comes from the sampling error of its statistic, none is hand-tuned:
//! - a mean of n i.i.d. values with variance v passes if |mean - expected| <= Z sqrt(v / n), Z = 5
//!   standard errors (two-sided normal tail 5.7e-7). v is the exact variance where the
//!   distribution gives it in closed form (`assert_mean_exact`), else the sample variance
//!   (`assert_mean`, the plug-in standard error, accurate to about 1 / sqrt(2 n) relative);
//! - a proportion is the mean of 0/1 values: the binomial standard error sqrt(p (1 - p) / n);
//! - the Kolmogorov-Smirnov distance D_n = sup |F_n - F| passes if D_n <= sqrt(ln(2 / ALPHA) / (2 n)):
//!   by the Dvoretzky-Kiefer-Wolfowitz inequality with Massart's constant,
//!   P(D_n > eps) <= 2 exp(-2 n eps^2) for every n and every continuous F, so this bound fails a
//!   correct sampler with probability at most ALPHA = 1e-6 (about 2.69 / sqrt(n)).
//!
//! The seeds are fixed, so a run is deterministic; the small false-alarm probabilities say that
//! the seeds were not picked to pass. The sample sizes (1e5 draws and up) make a 5% error in a
//! logit-normal sigma about 20 standard errors of the variance statistics below.
//!
//! Phi is computed as erfc(-x / sqrt 2) / 2 with `libm::erfc` (a port of musl's erfc, accurate
//! to a few ulp), far below the KS bounds (~1e-2).

use meanflow::data::ToyDataset;
use meanflow::flow::guidance::Guidance;
use meanflow::flow::time_sampler::{TimeDistribution, TimeSampler};
use meanflow::rng::Rng;
use ndarray::Array2;
use std::f64::consts::{PI, SQRT_2};

/// Standard errors a mean may be off by.
const Z: f64 = 5.0;
/// False-alarm probability of one KS test.
const ALPHA: f64 = 1e-6;

/// The standard normal CDF.
fn phi(x: f64) -> f64 {
    0.5 * libm::erfc(-x / SQRT_2)
}

fn logit(x: f64) -> f64 {
    (x / (1.0 - x)).ln()
}

fn sigmoid(s: f64) -> f64 {
    1.0 / (1.0 + (-s).exp())
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// The unbiased sample variance.
fn variance(v: &[f64]) -> f64 {
    let m = mean(v);
    v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64
}

/// The mean of `v` is `expected` within Z standard errors, the standard error from the exact
/// variance `var` of one value.
fn assert_mean_exact(label: &str, v: &[f64], expected: f64, var: f64) {
    let (m, se) = (mean(v), (var / v.len() as f64).sqrt());
    assert!(
        (m - expected).abs() <= Z * se,
        "{label}: mean {m}, expected {expected}, {:.1} standard errors ({se:.3e})",
        (m - expected) / se
    );
}

/// The same with the plug-in standard error (sample variance), for statistics whose variance has
/// no short closed form.
fn assert_mean(label: &str, v: &[f64], expected: f64) {
    assert_mean_exact(label, v, expected, variance(v));
}

/// The proportion of `hits` in `n` trials is `p` within Z binomial standard errors.
fn assert_proportion(label: &str, hits: usize, n: usize, p: f64) {
    let (f, se) = (hits as f64 / n as f64, (p * (1.0 - p) / n as f64).sqrt());
    if se == 0.0 {
        assert_eq!(f, p, "{label}: proportion {f}, expected exactly {p}");
        return;
    }
    assert!(
        (f - p).abs() <= Z * se,
        "{label}: proportion {f}, expected {p}, {:.1} standard errors ({se:.3e})",
        (f - p) / se
    );
}

/// The Kolmogorov-Smirnov distance between the sample and the CDF `cdf`.
fn ks_distance(sample: &[f64], cdf: impl Fn(f64) -> f64) -> f64 {
    let mut x = sample.to_vec();
    x.sort_by(f64::total_cmp);
    let n = x.len() as f64;
    x.iter().enumerate().fold(0.0f64, |d, (i, &v)| {
        let f = cdf(v);
        d.max((i + 1) as f64 / n - f).max(f - i as f64 / n)
    })
}

/// The DKW-Massart bound at ALPHA for n draws.
fn ks_bound(n: usize) -> f64 {
    ((2.0 / ALPHA).ln() / (2.0 * n as f64)).sqrt()
}

fn assert_ks(label: &str, sample: &[f64], cdf: impl Fn(f64) -> f64) {
    let (d, bound) = (ks_distance(sample, cdf), ks_bound(sample.len()));
    assert!(
        d <= bound,
        "{label}: KS distance {d:.5} > {bound:.5} (n = {}, alpha {ALPHA})",
        sample.len()
    );
}

/// One batch of `b` rows from `sampler`: (t, r).
fn fill(sampler: &TimeSampler, b: usize, rng: &mut Rng) -> (Vec<f64>, Vec<f64>) {
    let (mut t, mut r) = (Array2::<f64>::zeros((b, 1)), Array2::<f64>::zeros((b, 1)));
    sampler.fill(rng, t.view_mut(), r.view_mut());
    (t.into_raw_vec_and_offset().0, r.into_raw_vec_and_offset().0)
}

const LOGIT_NORMALS: [(f64, f64); 3] = [(-0.4, 1.0), (1.5, 2.5), (0.0, 0.3)];

fn all_distributions() -> Vec<TimeDistribution> {
    let mut v: Vec<TimeDistribution> = LOGIT_NORMALS
        .iter()
        .map(|&(mu, sigma)| TimeDistribution::LogitNormal { mu, sigma })
        .collect();
    v.push(TimeDistribution::Uniform);
    v
}

// ---------------------------------------------------------------------------------------------
// The time sampler.
// ---------------------------------------------------------------------------------------------

/// The defaults are what their docs say: logit-normal(-0.4, 1.0), 75% (MF) and 50% (iMF) of rows
/// with r = t, stored in the documented JSON form.
#[test]
fn defaults_match_their_documentation() {
    let mf = TimeSampler::mf_default();
    let imf = TimeSampler::imf_default();
    let ln = TimeDistribution::LogitNormal {
        mu: -0.4,
        sigma: 1.0,
    };
    assert_eq!(
        mf,
        TimeSampler {
            distribution: ln,
            fraction_equal: 0.75,
            r_distribution: None,
        }
    );
    assert_eq!(
        imf,
        TimeSampler {
            distribution: ln,
            fraction_equal: 0.5,
            r_distribution: None,
        }
    );
    assert!(mf.validate().is_ok() && imf.validate().is_ok());
    // "25% of rows r != t" for MF, half for iMF.
    assert_eq!(mf.rows_with_gap(100), 25);
    assert_eq!(imf.rows_with_gap(100), 50);
    assert_eq!(
        serde_json::to_value(mf).unwrap(),
        serde_json::json!({
            "distribution": {"kind": "logit-normal", "mu": -0.4, "sigma": 1.0},
            "fraction_equal": 0.75
        })
    );
    assert_eq!(
        serde_json::to_value(TimeDistribution::Uniform).unwrap(),
        serde_json::json!({"kind": "uniform"})
    );
}

/// r <= t on every row, both in (0, 1); exactly round(fraction_equal B) rows have r = t and they
/// are the last ones. The count is exact, not random, so it is compared exactly (stronger than
/// a binomial bound); over many batches the fraction of r = t rows is then within 1 / (2 B) of
/// fraction_equal.
#[test]
fn r_le_t_and_exactly_the_last_rows_have_r_equal_t() {
    let mut rng = Rng::seed_from_u64(101);
    for distribution in all_distributions() {
        for fraction_equal in [0.0, 0.1, 0.25, 1.0 / 3.0, 0.5, 0.75, 0.9, 1.0] {
            let sampler = TimeSampler {
                distribution,
                fraction_equal,
                r_distribution: None,
            };
            for b in [1usize, 2, 3, 7, 100, 1001] {
                let label = format!("{distribution:?}, fraction {fraction_equal}, B = {b}");
                let equal = (fraction_equal * b as f64).round() as usize;
                assert_eq!(sampler.rows_with_gap(b), b - equal, "{label}");
                let (mut count, mut total) = (0usize, 0usize);
                for _ in 0..20 {
                    let (t, r) = fill(&sampler, b, &mut rng);
                    for i in 0..b {
                        assert!(
                            0.0 <= r[i] && r[i] <= t[i] && t[i] < 1.0,
                            "{label}: row {i}: r {} t {}",
                            r[i],
                            t[i]
                        );
                        if i < b - equal {
                            assert!(r[i] < t[i], "{label}: row {i} should have r < t");
                        } else {
                            assert_eq!(r[i], t[i], "{label}: row {i} should have r = t");
                        }
                    }
                    count += t.iter().zip(&r).filter(|(t, r)| t == r).count();
                    total += b;
                }
                let f = count as f64 / total as f64;
                assert!(
                    (f - fraction_equal).abs() <= 0.5 / b as f64 + 1e-12,
                    "{label}: fraction {f}"
                );
                // f32 buffers: the same rows.
                let (mut t, mut r) = (Array2::<f32>::zeros((b, 1)), Array2::<f32>::zeros((b, 1)));
                sampler.fill(&mut rng, t.view_mut(), r.view_mut());
                for i in 0..b {
                    assert!(r[[i, 0]] <= t[[i, 0]], "{label} f32");
                    if i >= b - equal {
                        assert_eq!(r[[i, 0]], t[[i, 0]], "{label} f32");
                    }
                }
            }
        }
    }
}

/// fill draws s1, s2 i.i.d. from the distribution, t = max, r = min. For logit-normal
/// s = sigmoid(z), z = mu + sigma n, so with F(x) = Phi((logit x - mu) / sigma):
/// t ~ F^2 and r ~ 1 - (1 - F)^2 (KS); and a = logit t = max(z1, z2), b = logit r = min(z1, z2):
/// - a + b = z1 + z2 ~ N(2 mu, 2 sigma^2): its mean and variance;
/// - (a - b)^2 = (z1 - z2)^2 = 2 sigma^2 chi2_1: mean 2 sigma^2, variance 8 sigma^4;
/// - a = max of two normals: mean mu + sigma / sqrt(pi), variance sigma^2 (1 - 1/pi).
///
/// These see mu's sign and sigma's scale (a 5% error in sigma is about 20 standard errors of the
/// variance of a + b at this n). n -> mu - n sigma leaves the distribution unchanged (n is
/// symmetric): no statistic can see it; `logit_normal_draws_are_sigmoid_of_mu_plus_sigma_n`
/// pins the draws to the stream.
#[test]
fn logit_normal_times_have_the_exact_max_min_distribution() {
    let n = 100_000;
    for (k, &(mu, sigma)) in LOGIT_NORMALS.iter().enumerate() {
        let sampler = TimeSampler {
            distribution: TimeDistribution::LogitNormal { mu, sigma },
            fraction_equal: 0.0,
            r_distribution: None,
        };
        let (t, r) = fill(&sampler, n, &mut Rng::seed_from_u64(200 + k as u64));
        let label = format!("logit-normal({mu}, {sigma})");
        let a: Vec<f64> = t.iter().map(|&x| logit(x)).collect();
        let b: Vec<f64> = r.iter().map(|&x| logit(x)).collect();
        let sum: Vec<f64> = a.iter().zip(&b).map(|(a, b)| a + b).collect();
        let v = 2.0 * sigma * sigma;
        assert_mean_exact(&format!("{label}: logit t + logit r"), &sum, 2.0 * mu, v);
        // The sample variance of N(., v): standard error v sqrt(2 / (n - 1)).
        let s2 = variance(&sum);
        let se = v * (2.0 / (n - 1) as f64).sqrt();
        assert!(
            (s2 - v).abs() <= Z * se,
            "{label}: variance of logit t + logit r {s2}, expected {v}, {:.1} standard errors",
            (s2 - v) / se
        );
        let gap2: Vec<f64> = a.iter().zip(&b).map(|(a, b)| (a - b).powi(2)).collect();
        assert_mean_exact(
            &format!("{label}: (logit t - logit r)^2"),
            &gap2,
            v,
            2.0 * v * v,
        );
        assert_mean_exact(
            &format!("{label}: logit t"),
            &a,
            mu + sigma / PI.sqrt(),
            sigma * sigma * (1.0 - 1.0 / PI),
        );
        assert_mean_exact(
            &format!("{label}: logit r"),
            &b,
            mu - sigma / PI.sqrt(),
            sigma * sigma * (1.0 - 1.0 / PI),
        );
        let f = |x: f64| phi((logit(x) - mu) / sigma);
        assert_ks(&format!("{label}: t vs F^2"), &t, |x| f(x).powi(2));
        assert_ks(&format!("{label}: r vs 1 - (1 - F)^2"), &r, |x| {
            1.0 - (1.0 - f(x)).powi(2)
        });
    }
}

/// Uniform: t = max of two U[0, 1) ~ x^2, r = min ~ 1 - (1 - x)^2; E t = 2/3, E r = 1/3,
/// Var t = Var r = 1/18; t - r = |U1 - U2| has mean 1/3, variance 1/18; t + r = U1 + U2 has mean
/// 1, variance 1/6.
#[test]
fn uniform_times_have_the_exact_max_min_distribution() {
    let n = 100_000;
    let sampler = TimeSampler {
        distribution: TimeDistribution::Uniform,
        fraction_equal: 0.0,
        r_distribution: None,
    };
    let (t, r) = fill(&sampler, n, &mut Rng::seed_from_u64(300));
    assert_ks("uniform: t vs x^2", &t, |x| x.clamp(0.0, 1.0).powi(2));
    assert_ks("uniform: r vs 1 - (1 - x)^2", &r, |x| {
        1.0 - (1.0 - x.clamp(0.0, 1.0)).powi(2)
    });
    assert_mean_exact("uniform: t", &t, 2.0 / 3.0, 1.0 / 18.0);
    assert_mean_exact("uniform: r", &r, 1.0 / 3.0, 1.0 / 18.0);
    let gap: Vec<f64> = t.iter().zip(&r).map(|(t, r)| t - r).collect();
    assert_mean_exact("uniform: t - r", &gap, 1.0 / 3.0, 1.0 / 18.0);
    let sum: Vec<f64> = t.iter().zip(&r).map(|(t, r)| t + r).collect();
    assert_mean_exact("uniform: t + r", &sum, 1.0, 1.0 / 6.0);
}

/// The rows with r = t keep t = max(s1, s2) (the module doc: the pair is ordered, then r is set
/// to t): in an iMF batch, t on both blocks ~ F^2, and r on the gap block ~ 1 - (1 - F)^2.
#[test]
fn imf_batches_draw_t_as_the_max_on_both_blocks() {
    let sampler = TimeSampler::imf_default();
    let (mu, sigma) = (-0.4, 1.0);
    let f = |x: f64| phi((logit(x) - mu) / sigma);
    let b = 200_000;
    let (t, r) = fill(&sampler, b, &mut Rng::seed_from_u64(400));
    let gap = sampler.rows_with_gap(b);
    assert_eq!(gap, b / 2);
    assert_ks("iMF: t on the r != t rows", &t[..gap], |x| f(x).powi(2));
    assert_ks("iMF: t on the r = t rows", &t[gap..], |x| f(x).powi(2));
    assert_ks("iMF: r on the r != t rows", &r[..gap], |x| {
        1.0 - (1.0 - f(x)).powi(2)
    });
    let uniform = TimeSampler {
        distribution: TimeDistribution::Uniform,
        fraction_equal: 0.5,
        r_distribution: None,
    };
    let (t, _) = fill(&uniform, b, &mut Rng::seed_from_u64(401));
    assert_ks("uniform, half equal: t on the r = t rows", &t[gap..], |x| {
        x.clamp(0.0, 1.0).powi(2)
    });
}

/// Not statistical: the draws are sigmoid(mu + sigma n) (uniform: u) of the documented stream,
/// n = `Rng::normal` (rand_distr's `Normal` is mean + std_dev * StandardNormal), two per row,
/// t the larger. This is the one check that sees n -> -n, which leaves every distribution
/// unchanged.
#[test]
fn logit_normal_draws_are_sigmoid_of_mu_plus_sigma_n() {
    for (k, distribution) in all_distributions().into_iter().enumerate() {
        let sampler = TimeSampler {
            distribution,
            fraction_equal: 0.0,
            r_distribution: None,
        };
        let mut rng = Rng::seed_from_u64(500 + k as u64);
        for _ in 0..100 {
            let mut copy = rng.clone();
            let (t, r) = fill(&sampler, 1, &mut rng);
            let mut draw = || match distribution {
                TimeDistribution::LogitNormal { mu, sigma } => sigmoid(mu + sigma * copy.normal()),
                TimeDistribution::Uniform => copy.uniform(),
            };
            let (s1, s2) = (draw(), draw());
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-15 * a.abs().max(1e-300) * 4.0;
            assert!(
                close(t[0], s1.max(s2)) && close(r[0], s1.min(s2)),
                "{distribution:?}: t {} r {}, expected {} {}",
                t[0],
                r[0],
                s1.max(s2),
                s1.min(s2)
            );
            assert_eq!(copy, rng, "{distribution:?}: two draws per row");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rng.
// ---------------------------------------------------------------------------------------------

/// N(0, 1): mean (variance 1), second moment (variance 2), the tail proportions beyond 2 and 3
/// (binomial), and KS against Phi; from two ways of seeding.
#[test]
fn normal_is_standard_normal() {
    let n = 200_000;
    for (label, mut rng) in [
        ("seed 1", Rng::seed_from_u64(1)),
        ("stream (9, 4)", Rng::stream(9, 4)),
    ] {
        let x: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        assert_mean_exact(&format!("{label}: normal"), &x, 0.0, 1.0);
        let x2: Vec<f64> = x.iter().map(|v| v * v).collect();
        assert_mean_exact(&format!("{label}: normal^2"), &x2, 1.0, 2.0);
        let x3: Vec<f64> = x.iter().map(|v| v.powi(3)).collect();
        assert_mean_exact(&format!("{label}: normal^3"), &x3, 0.0, 15.0);
        for c in [2.0, 3.0] {
            let hits = x.iter().filter(|v| v.abs() > c).count();
            assert_proportion(&format!("{label}: |normal| > {c}"), hits, n, 2.0 * phi(-c));
        }
        assert_ks(&format!("{label}: normal vs Phi"), &x, phi);
    }
}

/// U[0, 1) and U[lo, hi): in range, KS against the uniform CDF, mean.
#[test]
fn uniform_is_uniform() {
    let n = 200_000;
    let mut rng = Rng::seed_from_u64(2);
    let u: Vec<f64> = (0..n).map(|_| rng.uniform()).collect();
    assert!(u.iter().all(|v| (0.0..1.0).contains(v)));
    assert_ks("uniform vs U(0, 1)", &u, |x| x.clamp(0.0, 1.0));
    assert_mean_exact("uniform", &u, 0.5, 1.0 / 12.0);
    for (lo, hi) in [(-2.0, 3.0), (0.0, PI), (10.0, 10.5)] {
        let v: Vec<f64> = (0..n).map(|_| rng.uniform_range(lo, hi)).collect();
        assert!(v.iter().all(|x| (lo..hi).contains(x)));
        assert_ks(&format!("uniform_range({lo}, {hi})"), &v, |x| {
            ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
        });
    }
}

/// The upper 1 - p quantile of chi-square with `df` degrees of freedom, p = 1e-6, by
/// Wilson-Hilferty (z = 4.7534 is the normal's upper 1e-6 quantile). Against scipy's exact
/// quantile it is 3.8% high at df = 6, 2.6% at df = 9 and 0.2% at df = 99: the bound is slightly
/// conservative (a false-alarm probability a little below 1e-6).
fn chi2_upper_1e6(df: f64) -> f64 {
    let z = 4.753_424_308_8;
    let a = 2.0 / (9.0 * df);
    df * (1.0 - a + z * a.sqrt()).powi(3)
}

/// below(k): each bin's count within Z binomial standard errors of N / k, and (k >= 7) Pearson's
/// chi-square below its 1 - 1e-6 quantile; below(3 * 2^62) spreads evenly over its three thirds,
/// which a modulo reduction of a u64 would not (1/2, 1/4, 1/4).
#[test]
fn below_is_uniform_over_its_range() {
    let draws = 200_000;
    let mut rng = Rng::seed_from_u64(3);
    for k in [1usize, 2, 3, 7, 10, 100] {
        let mut counts = vec![0usize; k];
        for _ in 0..draws {
            counts[rng.below(k)] += 1;
        }
        let p = 1.0 / k as f64;
        for (j, &c) in counts.iter().enumerate() {
            assert_proportion(&format!("below({k}) == {j}"), c, draws, p);
        }
        if k >= 7 {
            let e = draws as f64 * p;
            let chi2: f64 = counts.iter().map(|&c| (c as f64 - e).powi(2) / e).sum();
            let bound = chi2_upper_1e6((k - 1) as f64);
            assert!(chi2 <= bound, "below({k}): chi-square {chi2} > {bound}");
        }
    }
    let big = 3usize << 62;
    let mut thirds = [0usize; 3];
    for _ in 0..30_000 {
        thirds[rng.below(big) >> 62] += 1;
    }
    for (j, &c) in thirds.iter().enumerate() {
        assert_proportion(
            &format!("below(3 * 2^62) in third {j}"),
            c,
            30_000,
            1.0 / 3.0,
        );
    }
}

/// permutation(4): each of the 24 orders equally likely (per-bin binomial).
#[test]
fn permutation_is_uniform() {
    let mut rng = Rng::seed_from_u64(4);
    let draws = 120_000;
    let mut counts = std::collections::HashMap::new();
    for _ in 0..draws {
        *counts.entry(rng.permutation(4)).or_insert(0usize) += 1;
    }
    assert_eq!(counts.len(), 24);
    for (p, c) in counts {
        assert_proportion(&format!("permutation {p:?}"), c, draws, 1.0 / 24.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Guidance scale.
// ---------------------------------------------------------------------------------------------

/// w = exp(u ln(1 + w_max)): w in [1, 1 + w_max] and ln w ~ U(0, ln(1 + w_max)) (KS).
#[test]
fn guidance_scale_is_log_uniform() {
    let n = 100_000;
    let mut rng = Rng::seed_from_u64(600);
    for w_max in [0.5, 3.0, 7.0, 100.0] {
        let w: Vec<f64> = (0..n)
            .map(|_| Guidance::draw_scale(w_max, &mut rng))
            .collect();
        assert!(
            w.iter().all(|&w| (1.0..=1.0 + w_max).contains(&w)),
            "w_max {w_max}"
        );
        let top = w_max.ln_1p();
        let ln_w: Vec<f64> = w.iter().map(|w| w.ln()).collect();
        assert_ks(&format!("ln w, w_max {w_max}"), &ln_w, |x| {
            (x / top).clamp(0.0, 1.0)
        });
        assert_mean_exact(
            &format!("ln w, w_max {w_max}"),
            &ln_w,
            top / 2.0,
            top * top / 12.0,
        );
    }
    assert!((0..100).all(|_| Guidance::draw_scale(0.0, &mut rng) == 1.0));
}

// ---------------------------------------------------------------------------------------------
// Built-in datasets.
// ---------------------------------------------------------------------------------------------

fn column(x: &Array2<f64>, j: usize) -> Vec<f64> {
    x.column(j).to_vec()
}

/// N(0, sigma^2 I): per coordinate mean 0 (variance sigma^2), second moment sigma^2 (variance
/// 2 sigma^4), KS of x / sigma against Phi; products of two coordinates mean 0 (variance sigma^4).
#[test]
fn gaussian_datasets_are_isotropic_normals() {
    assert_eq!(ToyDataset::gaussian_narrow().gaussian_sigma(), Some(0.3));
    assert_eq!(ToyDataset::gaussian_wide().gaussian_sigma(), Some(3.0));
    let cases = [
        ToyDataset::gaussian_narrow(),
        ToyDataset::gaussian_wide(),
        ToyDataset::Gaussian { sigma: 1.5, dim: 3 },
        ToyDataset::Gaussian {
            sigma: 1e-3,
            dim: 2,
        },
    ];
    for (k, d) in cases.into_iter().enumerate() {
        let sigma = d.gaussian_sigma().unwrap();
        let n = 100_000;
        let x = d.sample(n, &mut Rng::seed_from_u64(700 + k as u64));
        assert_eq!(x.dim(), (n, d.dim()));
        for j in 0..d.dim() {
            let c = column(&x, j);
            assert_mean_exact(&format!("{d} coordinate {j}"), &c, 0.0, sigma * sigma);
            let c2: Vec<f64> = c.iter().map(|v| v * v).collect();
            assert_mean_exact(
                &format!("{d} coordinate {j} squared"),
                &c2,
                sigma * sigma,
                2.0 * sigma.powi(4),
            );
            assert_ks(&format!("{d} coordinate {j} / sigma vs Phi"), &c, |v| {
                phi(v / sigma)
            });
            for i in 0..j {
                let p: Vec<f64> = c.iter().zip(x.column(i)).map(|(a, b)| a * b).collect();
                assert_mean_exact(
                    &format!("{d} coordinates {i} x {j}"),
                    &p,
                    0.0,
                    sigma.powi(4),
                );
            }
        }
    }
}

/// Checkerboard: x1 = 2 U[-2, 2) and x2 = 2 (u - 2 b + m) with m = floor(x1 / 2) mod 2, so x2 / 2
/// is u plus one of {0, 1, -2, -1} with probability 1/4 each: both coordinates are U[-4, 4)
/// (KS); floor(x1 / 2) + floor(x2 / 2) is even on every point (the filled squares); and the 8
/// filled squares each hold 1/8 of the points.
#[test]
fn checkerboard_is_uniform_on_its_eight_squares() {
    let n = 100_000;
    let x = ToyDataset::Checkerboard.sample(n, &mut Rng::seed_from_u64(800));
    let cdf = |v: f64| ((v + 4.0) / 8.0).clamp(0.0, 1.0);
    assert_ks("checkerboard x1 vs U[-4, 4)", &column(&x, 0), cdf);
    assert_ks("checkerboard x2 vs U[-4, 4)", &column(&x, 1), cdf);
    let mut squares = std::collections::HashMap::new();
    for row in x.rows() {
        let (i, j) = ((row[0] / 2.0).floor() as i64, (row[1] / 2.0).floor() as i64);
        assert!(
            (-2..2).contains(&i) && (-2..2).contains(&j) && (i + j).rem_euclid(2) == 0,
            "checkerboard point {row} in square ({i}, {j})"
        );
        *squares.entry((i, j)).or_insert(0usize) += 1;
    }
    assert_eq!(squares.len(), 8);
    for (s, c) in squares {
        assert_proportion(&format!("checkerboard square {s:?}"), c, n, 1.0 / 8.0);
    }
}

/// The other 2-D densities: moments that are exact from the documented generators, each within Z
/// plug-in standard errors.
/// - two_moons: (a, b) = (cos, sin) or (1 - cos, 1/2 - sin) of theta ~ U[0, pi), each with
///   probability 1/2: E a = 1/2, E a^2 = 1, E b = 1/4, E b^2 = 5/8 - 1/pi; point = 2 (a, b) +
///   0.2 (e1, e2) + (-1, -0.2): mean (0, 0.3), E x^2 = 4 E a^2 - 4 E a + 1 + 0.04 = 3.04,
///   E y^2 = 4 E b^2 - 0.8 E b + 0.04 + 0.04.
/// - eight_gaussians: centres 4 (cos, sin)(k pi / 4) / sqrt 2: mean 0, E x^2 = E y^2 =
///   (8 + 0.25) / 2 = 4.125, E xy = 0.
/// - swiss_roll: t = 1.5 pi (1 + 2 u) on [1.5 pi, 4.5 pi): E t cos t = 6 pi / (3 pi) = 2,
///   E t sin t = 2 / (3 pi), so the mean is (2, 2 / (3 pi)) / 5.
/// - pinwheel: the 5 arms are rotations by 2 pi k / 5 of one another: mean 0; the rotation keeps
///   the norm, E |x|^2 = 4 E (f1^2 + f2^2) = 4 (1 + 0.09 + 0.01) = 4.4.
/// - two_spirals: the sign s = +-1 multiplies the whole spiral: mean 0.
/// - circles: theta ~ U[0, 2 pi): mean 0, E xy = 0, E x^2 = E y^2 = 9 (E rho^2 / 2 + 0.08^2)
///   = 9 (0.3125 + 0.0064).
#[test]
fn two_d_datasets_have_their_exact_moments() {
    // 1e6 points: the centres dominate the variance of the second moments, and a 10% error in
    // eight_gaussians' noise std on one axis moves E x^2 by 0.024, 8 standard errors here (2.6 at
    // 1e5).
    let n = 1_000_000;
    let eb2 = 5.0 / 8.0 - 1.0 / PI;
    // y = 2 b - 0.2 + 0.2 e2: E y^2 = 4 E b^2 - 0.8 E b + 0.04 + 0.04.
    let moons_y2 = 4.0 * eb2 - 0.8 * 0.25 + 0.04 + 0.04;
    // x = 2 a - 1 + 0.2 e1: E x^2 = 4 E a^2 - 4 E a + 1 + 0.04.
    let moons_x2 = 4.0 - 2.0 + 1.0 + 0.04;
    type Moment = (&'static str, fn(f64, f64) -> f64, f64);
    let cases: [(ToyDataset, Vec<Moment>); 6] = [
        (
            ToyDataset::TwoMoons,
            vec![
                ("x", |x, _| x, 0.0),
                ("y", |_, y| y, 0.3),
                ("x^2", |x, _| x * x, moons_x2),
                ("y^2", |_, y| y * y, moons_y2),
            ],
        ),
        (
            ToyDataset::EightGaussians,
            vec![
                ("x", |x, _| x, 0.0),
                ("y", |_, y| y, 0.0),
                ("x^2", |x, _| x * x, 4.125),
                ("y^2", |_, y| y * y, 4.125),
                ("xy", |x, y| x * y, 0.0),
            ],
        ),
        (
            ToyDataset::SwissRoll,
            vec![("x", |x, _| x, 0.4), ("y", |_, y| y, 2.0 / (15.0 * PI))],
        ),
        (
            ToyDataset::Pinwheel,
            vec![
                ("x", |x, _| x, 0.0),
                ("y", |_, y| y, 0.0),
                ("|x|^2", |x, y| x * x + y * y, 4.4),
            ],
        ),
        (
            ToyDataset::TwoSpirals,
            vec![("x", |x, _| x, 0.0), ("y", |_, y| y, 0.0)],
        ),
        (
            ToyDataset::Circles,
            vec![
                ("x", |x, _| x, 0.0),
                ("y", |_, y| y, 0.0),
                ("x^2", |x, _| x * x, 9.0 * (0.3125 + 0.0064)),
                ("y^2", |_, y| y * y, 9.0 * (0.3125 + 0.0064)),
                ("xy", |x, y| x * y, 0.0),
            ],
        ),
    ];
    for (k, (d, moments)) in cases.into_iter().enumerate() {
        let x = d.sample(n, &mut Rng::seed_from_u64(900 + k as u64));
        for (name, f, expected) in moments {
            let v: Vec<f64> = x.rows().into_iter().map(|r| f(r[0], r[1])).collect();
            assert_mean(&format!("{d}: E {name}"), &v, expected);
        }
    }
}
