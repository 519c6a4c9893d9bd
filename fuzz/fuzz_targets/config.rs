//! The run config parser (a run folder's config.json, read by `meanflow train --resume`): any text
//! gives a config or an error, never a panic; a config that parses serialises back to one that
//! parses to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meanflow::run::config::RunConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((run, config)) = RunConfig::parse(text) {
        let again = serde_json::to_string(&run).expect("serialises");
        let (run2, config2) = RunConfig::parse(&again).expect("a written config parses");
        assert_eq!(run2, run);
        assert_eq!(config2, config);
    }
});
