#![no_main]
//! `cargo +nightly fuzz run vault_list`: see `nhi_exporter::fuzzing::vault_list`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nhi_exporter::fuzzing::vault_list(data));
