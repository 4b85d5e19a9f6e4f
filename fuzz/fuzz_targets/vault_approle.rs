#![no_main]
//! `cargo +nightly fuzz run vault_approle`: see `nhi_exporter::fuzzing::vault_approle`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nhi_exporter::fuzzing::vault_approle(data));
