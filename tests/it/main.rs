//! Integration tests, one binary with a module per scenario.

mod basics;
mod common;
mod format_doc;
mod fuzz_checks;
mod fuzz_corpus;
mod kill9;
mod sim_model;
mod simulation;
