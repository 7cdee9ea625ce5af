//! Which events a scavenge removes: the rules, fixed when it starts, and the decision per record.
//!
//! A record is removed only if no read can return it any more: its stream is tombstoned, or it
//! is below the stream's floor (`truncate_before`, `max_count`, a soft delete), or it is older
//! than `max_age` with every earlier event of its stream removed too. Never removed: the last
//! event of a stream that is not tombstoned (it carries the stream's version across restarts),
//! the latest event of a metadata stream, events appended after the scavenge started, and
//! events in the idempotency window (a retry is checked against them). So the newest group
//! commit always keeps an event, which recovery's torn-tail rule relies on: the highest group
//! sequence on disk is the last one written (docs/format.md, "Groups").
//!
//! Removal is prefix-closed per stream: a version goes only if every earlier version of its
//! stream goes (or went before), so each stream's retained versions stay one dense range.

use std::collections::{HashMap, HashSet};

use crate::{
    format::{IndexFile, Record},
    index::StreamIndex,
    lifecycle::{StreamMetadata, metadata_target},
};

/// One stream's rule, as of the start of the scavenge.
#[derive(Clone, Copy, Debug)]
struct Rule {
    /// Its last version then: this and later versions stay.
    last: u64,
    /// Versions below this are hidden by the version rules.
    floor: u64,
    /// Events committed before this time (µs) are hidden, if `max_age` is set.
    age_cutoff_us: Option<u64>,
    /// Every event goes (a tombstoned stream; not its metadata stream).
    tombstoned: bool,
}

/// The removal rules of one scavenge.
pub(crate) struct Plan {
    rules: HashMap<Box<str>, Rule>,
    /// Positions at or above this stay (the idempotency window and everything newer).
    keep_from_position: u64,
    /// Streams with a `max_age` that kept an event in this scavenge: their later events stay,
    /// so that removal stays prefix-closed.
    age_kept: HashSet<Box<str>>,
}

impl Plan {
    /// The rules for the streams in `streams` now, with `keep_from_position` the first
    /// position that must stay and `now_us` the time `max_age` counts back from.
    pub fn new(streams: &StreamIndex, keep_from_position: u64, now_us: u64) -> Plan {
        let mut rules = HashMap::new();
        for name in streams.names() {
            let state = streams.state(&name);
            let Some(last) = state.last else { continue };
            let rule = match metadata_target(&name) {
                // Only the latest metadata matters; a tombstone is the latest, so it stays.
                Some(_) => Rule { last, floor: last, age_cutoff_us: None, tombstoned: false },
                None => Rule {
                    last,
                    floor: state.floor(),
                    age_cutoff_us: StreamMetadata::age_cutoff_us(state.max_age, now_us),
                    tombstoned: state.tombstoned,
                },
            };
            rules.insert(name, rule);
        }
        Plan { rules, keep_from_position, age_kept: HashSet::new() }
    }

    /// Whether a segment whose index is `index` may hold a record that goes: `false` means
    /// no record of it can, so it need not be read. Conservative: a stream with a `max_age`
    /// makes every segment holding it one to read (which event goes depends on timestamps,
    /// and removal must stay prefix-closed).
    pub fn may_remove_from(&self, index: &IndexFile<'_>, base: u64) -> bool {
        if base >= self.keep_from_position {
            return false;
        }
        index.streams().any(|run| {
            self.rules.get(run.name).is_some_and(|rule| {
                run.first_version <= rule.last
                    && (rule.tombstoned
                        || run.first_version < rule.floor
                        || rule.age_cutoff_us.is_some())
            })
        })
    }

    /// Whether the record goes. Called once per record, in log order.
    pub fn removes(&mut self, record: &Record<'_>) -> bool {
        if record.position() >= self.keep_from_position {
            return false;
        }
        let stream = record.stream();
        let Some(rule) = self.rules.get(stream) else { return false };
        let version = record.version();
        if version > rule.last {
            return false;
        }
        if rule.tombstoned {
            return true;
        }
        if version == rule.last {
            return false;
        }
        if version < rule.floor {
            return true;
        }
        let Some(cutoff) = rule.age_cutoff_us else { return false };
        if record.timestamp_us() < cutoff && !self.age_kept.contains(stream) {
            return true;
        }
        self.age_kept.insert(stream.into());
        false
    }
}
