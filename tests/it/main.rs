//! Integration tests, one binary with a module per scenario.

mod basics;
mod common;
