//! Files: safetensors tensors with JSON metadata ([`tensor_file`]) and [`atomic::write_atomically`],
//! the one write every file of the crate and the tool goes through (temporary sibling, fsync,
//! rename, fsync of the folder: a crash leaves the old file or the new one, never half of one).

pub mod atomic;
pub mod tensor_file;
