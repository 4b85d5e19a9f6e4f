#![no_main]
//! `cargo +nightly fuzz run web_config`: see `nhi_exporter::fuzzing::web_config`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nhi_exporter::fuzzing::web_config(data));
