//! Helpers shared by the scenarios.

use annal::{Durability, NewEvent, Options, Store};

/// Options with tiny limits so that tests rotate segments and hit limits quickly.
pub fn small_options() -> Options {
    Options {
        segment_bytes_max: 4096,
        event_bytes_max: 1024,
        append_bytes_max: 2048,
        group_bytes_max: 2048,
        append_events_max: 16,
        ..Options::default()
    }
}

/// Options without fsync, for tests that do not crash.
#[allow(dead_code)]
pub fn fast_options() -> Options {
    Options { durability: Durability::None, ..small_options() }
}

/// An event whose data names it.
pub fn event(n: u64) -> NewEvent {
    NewEvent::new("Tested", format!("event-{n}").into_bytes())
}

/// Opens `dir` with `options`, panicking with the error.
pub fn open(dir: &std::path::Path, options: Options) -> Store {
    Store::open_with(dir, options).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}
