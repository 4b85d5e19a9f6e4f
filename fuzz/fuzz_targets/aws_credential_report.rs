#![no_main]
//! `cargo +nightly fuzz run aws_credential_report`: see `nhi_exporter::fuzzing::aws_credential_report`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nhi_exporter::fuzzing::aws_credential_report(data));
