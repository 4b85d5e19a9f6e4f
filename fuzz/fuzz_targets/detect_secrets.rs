#![no_main]
//! `cargo +nightly fuzz run detect_secrets`: see `nhi_exporter::fuzzing::detect_secrets`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nhi_exporter::fuzzing::detect_secrets(data));
