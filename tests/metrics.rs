//! Sliced Wasserstein-1 and energy distance: exact cases, closed forms, the floor.

use meanflow::data::ToyDataset;
use meanflow::rng::Rng;
use meanflow::verify::metrics::{
    energy_distance, energy_distance_unbiased, gaussian_energy_distance, gaussian_sliced_w1,
    pool_floor, sliced_wasserstein1, sliced_wasserstein1_with, toy_floor, wasserstein1_1d, Metric,
    SlicedConfig, DEFAULT_PROJECTIONS,
};
use ndarray::{array, Array2};
use proptest::prelude::*;
use std::f64::consts::PI;

fn draw(d: ToyDataset, n: usize, seed: u64) -> Array2<f64> {
    d.sample(n, &mut Rng::seed_from_u64(seed))
}

#[test]
fn identical_sets_give_zero() {
    let x = draw(ToyDataset::TwoMoons, 500, 1);
    assert_eq!(sliced_wasserstein1(x.view(), x.view()), 0.0);
    assert!(energy_distance(x.view(), x.view()) < 1e-12);
    assert!(energy_distance_unbiased(x.view(), x.view()) < 0.0); // U-statistic: -2 E|X-X'|/(n-1)
    let g = draw(ToyDataset::gaussian_wide(), 300, 2);
    assert_eq!(sliced_wasserstein1(g.view(), g.view()), 0.0);
    // Same points in another order.
    let rev = x.slice(ndarray::s![..;-1, ..]).to_owned();
    assert!(sliced_wasserstein1(x.view(), rev.view()) < 1e-12);
}

#[test]
fn translation_gives_norm_times_mean_abs_cosine() {
    // Projections of x + a are those of x shifted by <a, theta>, so SW1 = |a| E|theta_1|;
    // E|theta_1| = 2/pi in 2-D and 1/2 in 3-D. The only error is the Monte Carlo over 1024
    // directions: std(|cos|) / 32 = 0.31 / 32 = 1% of the value; tolerance 4%.
    let x = draw(ToyDataset::Circles, 1000, 3);
    let a = array![1.5, -0.8];
    let y = &x + &a;
    let norm = (1.5f64 * 1.5 + 0.8 * 0.8).sqrt();
    let sw = sliced_wasserstein1(x.view(), y.view());
    assert!((sw / (norm * 2.0 / PI) - 1.0).abs() < 0.04, "{sw}");

    let z = draw(ToyDataset::Gaussian { sigma: 1.0, dim: 3 }, 400, 4);
    let b = array![0.0, 2.0, 0.0];
    let sw3 = sliced_wasserstein1(z.view(), (&z + &b).view());
    assert!((sw3 / (2.0 * 0.5) - 1.0).abs() < 0.04, "{sw3}");

    // 1-D is exact: W1 of a shift is the shift.
    let g = draw(ToyDataset::gaussian_narrow(), 100, 5);
    let sw1 = sliced_wasserstein1(g.view(), (&g + 0.7).view());
    assert!((sw1 - 0.7).abs() < 1e-12, "{sw1}");
}

#[test]
fn symmetric_and_deterministic() {
    let x = draw(ToyDataset::Pinwheel, 300, 6);
    let y = draw(ToyDataset::SwissRoll, 450, 7);
    let xy = sliced_wasserstein1(x.view(), y.view());
    assert!((xy - sliced_wasserstein1(y.view(), x.view())).abs() < 1e-12);
    assert_eq!(xy, sliced_wasserstein1(x.view(), y.view()));
    let e = energy_distance(x.view(), y.view());
    assert!((e - energy_distance(y.view(), x.view())).abs() < 1e-12);
    assert!(xy > 0.1 && e > 0.05, "{xy} {e}");
    // Another projection seed moves the value by Monte Carlo error only.
    let other = sliced_wasserstein1_with(
        x.view(),
        y.view(),
        &SlicedConfig {
            projections: DEFAULT_PROJECTIONS,
            seed: 99,
        },
    );
    assert!(
        other != xy && (other / xy - 1.0).abs() < 0.05,
        "{other} {xy}"
    );
}

#[test]
fn unequal_sizes_1d_exact_example() {
    // a = {0, 1} (weights 1/2), b = {0, 0.5, 1} (weights 1/3): quantile grid 0, 1/3, 1/2, 2/3, 1;
    // differences 0, 0.5, 0.5, 0 -> W1 = (1/6) 0.5 + (1/6) 0.5 = 1/6.
    let w = wasserstein1_1d(&[1.0, 0.0], &[0.5, 1.0, 0.0]);
    assert!((w - 1.0 / 6.0).abs() < 1e-15, "{w}");
    let x = Array2::from_shape_vec((2, 1), vec![1.0, 0.0]).unwrap();
    let y = Array2::from_shape_vec((3, 1), vec![0.5, 1.0, 0.0]).unwrap();
    assert!((sliced_wasserstein1(x.view(), y.view()) - 1.0 / 6.0).abs() < 1e-15);
}

#[test]
fn gaussian_closed_forms() {
    // 1-D: W1(N(0, 0.3^2), N(0, 3^2)) = 2.7 sqrt(2/pi) = 2.154; sampling error ~ 0.05 at n = 4000.
    let a = draw(ToyDataset::gaussian_narrow(), 4000, 8);
    let b = draw(ToyDataset::gaussian_wide(), 4000, 9);
    let exact = gaussian_sliced_w1(0.3, 3.0);
    assert!((exact - 2.7 * (2.0 / PI).sqrt()).abs() < 1e-12);
    let sw = sliced_wasserstein1(a.view(), b.view());
    assert!((sw - exact).abs() < 0.1, "{sw} vs {exact}");
    // Unequal sizes.
    let sw_unequal = sliced_wasserstein1(a.view(), b.slice(ndarray::s![..2500, ..]));
    assert!((sw_unequal - exact).abs() < 0.12, "{sw_unequal} vs {exact}");

    // 2-D isotropic, sigma 1 vs 2.
    let x = draw(ToyDataset::Gaussian { sigma: 1.0, dim: 2 }, 1500, 10);
    let y = draw(ToyDataset::Gaussian { sigma: 2.0, dim: 2 }, 1500, 11);
    let sw = sliced_wasserstein1(x.view(), y.view());
    assert!((sw - gaussian_sliced_w1(1.0, 2.0)).abs() < 0.06, "{sw}");
    let e_exact = gaussian_energy_distance(1.0, 2.0, 2);
    let e = energy_distance_unbiased(x.view(), y.view());
    assert!((e - e_exact).abs() < 0.04, "{e} vs {e_exact}");
    // The V-statistic sits above by about E|X-X'|/n + E|Y-Y'|/m = 5.3/1500.
    let v = energy_distance(x.view(), y.view());
    assert!(v > e && v - e < 0.01, "{v} {e}");
}

#[test]
fn energy_near_zero_for_the_same_distribution() {
    let x = draw(ToyDataset::EightGaussians, 800, 12);
    let y = draw(ToyDataset::EightGaussians, 800, 13);
    let z = draw(ToyDataset::TwoMoons, 800, 14);
    let same = energy_distance(x.view(), y.view());
    let unbiased = energy_distance_unbiased(x.view(), y.view());
    let different = energy_distance(x.view(), z.view());
    assert!((0.0..0.03).contains(&same), "{same}");
    assert!(unbiased.abs() < 0.02, "{unbiased}");
    assert!(different > 10.0 * same, "{different} vs {same}");
}

#[test]
fn floor_decreases_with_n() {
    for metric in [Metric::SlicedW1, Metric::Energy] {
        let small = toy_floor(metric, &ToyDataset::EightGaussians, 64, 4, 1);
        let large = toy_floor(metric, &ToyDataset::EightGaussians, 1024, 2, 1);
        assert!(large < 0.5 * small, "{}: {large} vs {small}", metric.name());
        assert_eq!(
            small,
            toy_floor(metric, &ToyDataset::EightGaussians, 64, 4, 1)
        );
    }
    let pool = draw(ToyDataset::TwoSpirals, 2000, 15);
    let small = pool_floor(Metric::SlicedW1, pool.view(), 50, 4, 2);
    let large = pool_floor(Metric::SlicedW1, pool.view(), 1000, 1, 2);
    assert!(large < 0.5 * small, "{large} vs {small}");
}

#[test]
fn non_finite_input_gives_nan() {
    let x = array![[0.0, 1.0], [2.0, f64::NAN]];
    let y = array![[0.0, 1.0], [2.0, 3.0]];
    assert!(sliced_wasserstein1(x.view(), y.view()).is_nan());
    assert!(energy_distance(y.view(), x.view()).is_nan());
}

#[test]
#[should_panic(expected = "columns")]
fn dimension_mismatch_panics() {
    let x = Array2::<f64>::zeros((3, 2));
    let y = Array2::<f64>::zeros((3, 3));
    sliced_wasserstein1(x.view(), y.view());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn energy_v_statistic_is_nonnegative_and_sw_is_symmetric(
        n in 1usize..20,
        m in 1usize..20,
        d in 1usize..4,
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::seed_from_u64(seed);
        let x = Array2::from_shape_fn((n, d), |_| rng.normal());
        let y = Array2::from_shape_fn((m, d), |_| 2.0 * rng.uniform() - 1.0);
        prop_assert!(energy_distance(x.view(), y.view()) >= 0.0);
        let cfg = SlicedConfig { projections: 32, seed: 3 };
        let a = sliced_wasserstein1_with(x.view(), y.view(), &cfg);
        let b = sliced_wasserstein1_with(y.view(), x.view(), &cfg);
        prop_assert!(a >= 0.0 && (a - b).abs() <= 1e-12 * (1.0 + a));
        // SW1 <= W1-style upper bound by the mean distance of any coupling: here, the mean
        // distance over all pairs (the independent coupling) bounds every projected W1.
        let mean_pair: f64 = x.rows().into_iter()
            .flat_map(|r| y.rows().into_iter().map(move |s| (&r - &s).mapv(|v| v * v).sum().sqrt()))
            .sum::<f64>() / (n * m) as f64;
        prop_assert!(a <= mean_pair + 1e-12);
    }
}
