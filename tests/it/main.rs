//! Integration tests, one binary with a module per scenario.

mod basics;
mod common;
mod concurrency;
mod es_codec;
mod es_examples;
mod es_model;
mod es_projection;
mod es_repository;
mod es_snapshots;
mod faults;
mod format_doc;
mod fuzz_checks;
mod fuzz_corpus;
mod idempotency;
mod kill9;
mod model;
mod modes;
mod poison;
mod recovery;
mod regressions;
mod sim_model;
mod simulation;
mod subscriptions;
mod validation;
