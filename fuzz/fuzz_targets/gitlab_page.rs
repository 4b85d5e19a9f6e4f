#![no_main]
//! `cargo +nightly fuzz run gitlab_page`: see `nhi_exporter::fuzzing::gitlab_page`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nhi_exporter::fuzzing::gitlab_page(data));
