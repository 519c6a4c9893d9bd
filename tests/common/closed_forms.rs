//! Textbook closed forms of every `Elementwise` function and its first three derivatives, written
//! on plain f64 independently of the engine (which gets its derivatives from nested dual numbers
//! over one formula per function). Shared by tests/dual.rs and tests/tape_ops.rs through
//! `#[path = "common/closed_forms.rs"] mod closed_forms;`.
#![allow(dead_code)]

use meanflow::autodiff::elementwise::Elementwise;

/// sigma(x) = 1 / (1 + e^-x).
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// [f, f', f'', f'''] at x.
pub fn elementwise(f: Elementwise, x: f64) -> [f64; 4] {
    let s = sigmoid(x);
    // sigma' = sigma (1 - sigma), and its derivatives.
    let s1 = s * (1.0 - s);
    let s2 = s1 * (1.0 - 2.0 * s);
    let s3 = s1 * (1.0 - 6.0 * s + 6.0 * s * s);
    match f {
        Elementwise::Silu => [x * s, s + x * s1, 2.0 * s1 + x * s2, 3.0 * s2 + x * s3],
        Elementwise::Tanh => {
            let t = x.tanh();
            let t1 = 1.0 - t * t;
            [t, t1, -2.0 * t * t1, t1 * (6.0 * t * t - 2.0)]
        }
        Elementwise::GeluTanh => {
            // f = x/2 (1 + T), T = tanh(u), u = k (x + a x^3); S = 1 - T^2 = T' / u'.
            let (k, a) = ((2.0 / std::f64::consts::PI).sqrt(), 0.044715);
            let u = k * (x + a * x * x * x);
            let (u1, u2, u3) = (k * (1.0 + 3.0 * a * x * x), 6.0 * k * a * x, 6.0 * k * a);
            let t = u.tanh();
            let sech2 = 1.0 - t * t;
            let g = u1 + 0.5 * x * (u2 - 2.0 * t * u1 * u1);
            [
                0.5 * x * (1.0 + t),
                0.5 * (1.0 + t) + 0.5 * x * sech2 * u1,
                sech2 * g,
                -2.0 * t * sech2 * u1 * g
                    + sech2
                        * (1.5 * u2 - t * u1 * u1
                            + 0.5 * x * (u3 - 2.0 * sech2 * u1 * u1 * u1 - 4.0 * t * u1 * u2)),
            ]
        }
        Elementwise::Relu => {
            if x > 0.0 {
                [x, 1.0, 0.0, 0.0]
            } else {
                [0.0, 0.0, 0.0, 0.0]
            }
        }
        Elementwise::Softplus => {
            // ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|), which does not overflow.
            [x.max(0.0) + (-x.abs()).exp().ln_1p(), s, s1, s2]
        }
        Elementwise::Sigmoid => [s, s1, s2, s3],
        Elementwise::Exp => [x.exp(); 4],
        Elementwise::Ln => [x.ln(), 1.0 / x, -1.0 / (x * x), 2.0 / (x * x * x)],
        Elementwise::Sqrt => [
            x.sqrt(),
            0.5 * x.powf(-0.5),
            -0.25 * x.powf(-1.5),
            0.375 * x.powf(-2.5),
        ],
        Elementwise::Square => [x * x, 2.0 * x, 2.0, 0.0],
        Elementwise::Pow(p) => [
            x.powf(p),
            p * x.powf(p - 1.0),
            p * (p - 1.0) * x.powf(p - 2.0),
            p * (p - 1.0) * (p - 2.0) * x.powf(p - 3.0),
        ],
        Elementwise::Sin => [x.sin(), x.cos(), -x.sin(), -x.cos()],
        Elementwise::Cos => [x.cos(), -x.sin(), -x.cos(), x.sin()],
    }
}
