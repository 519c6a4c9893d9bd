//! The checkpoint reader (safetensors bytes -> Checkpoint): any bytes give a checkpoint or an
//! error, never a panic; a checkpoint that loads writes back to bytes that load to the same one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meanflow::train::checkpoint::{Checkpoint, Precision};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.safetensors");
    if let Ok(ck) = Checkpoint::parse(data, path) {
        let bytes = ck.to_tensor_file().to_bytes(ck.precision == Precision::F32);
        let back = Checkpoint::parse(&bytes, path).expect("a written checkpoint reads back");
        assert_eq!(back, ck);
    }
});
