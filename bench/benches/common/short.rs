//! The short criterion configuration of every bench target, which includes this file by path:
//! 1 s warm-up, 3 s of measurement, 10 samples (the machine is small and shared).
//! Command-line flags still override these.

use std::time::Duration;

use criterion::Criterion;

/// The configuration.
pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .configure_from_args()
}
