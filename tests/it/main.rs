//! Integration tests, one binary with a module per scenario.

mod basics;
mod borrowed_reads;
mod common;
mod concurrency;
mod faults;
mod format_doc;
mod fuzz_checks;
mod fuzz_corpus;
mod idempotency;
mod kill9;
mod lifecycle;
mod model;
mod modes;
mod poison;
mod recovery;
mod regressions;
mod scavenge;
mod scavenge_crash;
mod scavenge_kill9;
mod scavenge_model;
mod sim_model;
mod simulation;
mod subscriptions;
mod validation;
