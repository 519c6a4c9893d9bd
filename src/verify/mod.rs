//! Checking: the oracles and tolerances of the tests ([`check`]: finite differences, relative
//! errors), reference cases exported from PyTorch or JAX ([`reference`](mod@reference)), and sample
//! quality ([`metrics`]: sliced W1, energy distance, data floors; [`classifier`]: a classifier
//! trained on labelled data, for the class accuracy of conditional samples and its feature space;
//! [`frechet`]: the Fréchet distance between point sets).

pub mod check;
pub mod classifier;
pub mod digits_quality;
pub mod frechet;
pub mod metrics;
pub mod reference;
