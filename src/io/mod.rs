//! Files: safetensors tensors with JSON metadata and the atomic writes every writer goes through
//! ([`tensor_file`]).

pub mod tensor_file;
