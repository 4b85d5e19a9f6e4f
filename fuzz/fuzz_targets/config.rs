#![no_main]
//! `cargo +nightly fuzz run config`: see `nhi_exporter::fuzzing::config`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nhi_exporter::fuzzing::config(data));
