//! The NPY reader: any bytes give a dataset or an error, never a panic or an allocation that a
//! lying header asked for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = meanflow::data::npy::parse_npy(Path::new("fuzz.npy"), data) {
        assert!(
            a.nrows() >= 2 && a.ncols() >= 1,
            "accepted shape {:?}",
            a.dim()
        );
        assert!(
            a.iter().all(|v| v.is_finite()),
            "accepted a non-finite value"
        );
        assert!(a.len() * 4 <= data.len(), "more values than bytes");
    }
});
