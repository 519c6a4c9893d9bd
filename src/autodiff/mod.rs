//! Automatic differentiation over [`crate::linalg`]'s scalars: dual numbers ([`dual`]: forward mode
//! on one scalar), elementary functions written once over reals and duals ([`elementwise`]), and
//! the tensor tape ([`tape`]: every primitive's evaluation, JVP and VJP rules; reverse mode,
//! forward mode and reverse over forward).

pub mod dual;
pub mod elementwise;
pub mod tape;
