#![no_main]
//! `cargo +nightly fuzz run github_alerts`: see `nhi_exporter::fuzzing::github_alerts`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nhi_exporter::fuzzing::github_alerts(data));
