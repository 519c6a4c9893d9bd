//! The CSV reader: any bytes give a dataset or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(csv) = meanflow::data::csv::parse_csv(Path::new("fuzz.csv"), data) {
        assert!(csv.data.nrows() >= 2, "accepted fewer than 2 rows");
        assert!(
            csv.data.iter().all(|v| v.is_finite()),
            "accepted a non-finite value"
        );
    }
});
