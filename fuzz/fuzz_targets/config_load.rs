//! Fuzzes the gateway's configuration loader: TOML syntax, types, unknown
//! keys and every semantic check that reads no file. A configuration file
//! is operator input, often edited by hand; every problem must come back as
//! a located report, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_mta::config::LoadedConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match LoadedConfig::parse("fuzz.toml", text) {
        Ok(loaded) => {
            if let Err(report) = loaded.check_semantics() {
                let _ = report.to_string();
            }
        }
        Err(report) => {
            let _ = report.to_string();
        }
    }
});
