//! Fuzz target `open_modes`: see `tests/it/fuzz_checks.rs` (`check_open_modes`) for what it
//! checks. The same check runs over `fuzz/corpus/open_modes` in `cargo test`.

#![no_main]

#[allow(dead_code)]
#[path = "../../tests/it/sim_model.rs"]
mod sim_model;

#[allow(dead_code)]
#[path = "../../tests/it/fuzz_checks.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::check_open_modes(data));
