#![no_main]
//! `cargo +nightly fuzz run vault_kv`: see `nhi_exporter::fuzzing::vault_kv`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nhi_exporter::fuzzing::vault_kv(data));
