//! Files: safetensors tensors with JSON metadata ([`tensor_file`]) and [`atomic::write_atomically`],
//! the one write every file of the crate and the tool goes through (temporary sibling, fsync,
//! rename, fsync of the folder: a crash leaves the old file or the new one, never half of one).

//! Reading goes through [`limits::read_limited`] (one size limit per kind of input, checked before
//! allocating); an output path is checked before any work by [`target::check_output_file`],
//! without touching the disk.

pub mod atomic;
pub mod limits;
pub mod target;
pub mod tensor_file;
