#![no_main]
//! `cargo +nightly fuzz run gitleaks`: see `nhi_exporter::fuzzing::gitleaks`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nhi_exporter::fuzzing::gitleaks(data));
