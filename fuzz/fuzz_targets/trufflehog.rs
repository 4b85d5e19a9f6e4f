#![no_main]
//! `cargo +nightly fuzz run trufflehog`: see `nhi_exporter::fuzzing::trufflehog`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nhi_exporter::fuzzing::trufflehog(data));
