#![no_main]
//! `cargo +nightly fuzz run credential_links`: see `nhi_exporter::fuzzing::credential_links`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nhi_exporter::fuzzing::credential_links(data));
