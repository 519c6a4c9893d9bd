//! MeanFlow itself: the network u(z, r, t) ([`model`]), the MF / iMF losses with their JVP
//! ([`loss`]), the (r, t) sampler ([`time_sampler`]) and the one-step, n-step and Euler samplers
//! ([`sampling`]).

pub mod guidance;
pub mod loss;
pub mod model;
pub mod sampling;
pub mod time_sampler;
