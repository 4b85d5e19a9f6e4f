#![no_main]
//! `cargo +nightly fuzz run vault_token_lookup`: see `nhi_exporter::fuzzing::vault_token_lookup`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nhi_exporter::fuzzing::vault_token_lookup(data));
