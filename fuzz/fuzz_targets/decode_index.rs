//! Fuzz target `decode_index`: see `tests/it/fuzz_checks.rs` (`check_decode_index`) for what it
//! checks. The same check runs over `fuzz/corpus/decode_index` in `cargo test`.

#![no_main]

#[allow(dead_code)]
#[path = "../../tests/it/sim_model.rs"]
mod sim_model;

#[allow(dead_code)]
#[path = "../../tests/it/fuzz_checks.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::check_decode_index(data));
