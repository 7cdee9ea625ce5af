//! annal's benchmarks, kept apart from the library so that its demo does not build them.
//!
//! The workloads are in `benches/common/` and are run two ways: by criterion (`cargo bench`) and
//! by the bench example (`cargo run --release --example bench`), which measures each workload
//! next to SQLite and the raw disk in the same run and prints their ratios. `docs/benchmarks.md`
//! at the repository's root holds the figures and the commands that produced them.

pub mod stats;
