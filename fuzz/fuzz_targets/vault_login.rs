#![no_main]
//! `cargo +nightly fuzz run vault_login`: see `nhi_exporter::fuzzing::vault_login`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nhi_exporter::fuzzing::vault_login(data));
