//! Tunables and limits of a store, with the relations between them checked on open.

use std::{fmt, sync::Arc};

use crate::{
    clock::{Clock, SystemClock},
    error::{Error, Result},
    format::{RECORD_HEADER_LEN, SEGMENT_HEADER_LEN},
    io::{StdStorage, Storage},
};

/// When an append counts as committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// `fdatasync` every group before acknowledging it (the default, and the only mode in
    /// which an acknowledged event survives a crash or power loss).
    #[default]
    Fsync,
    /// Never fsync. **For tests and benchmarks only**: acknowledged events may be lost, and
    /// after a power loss any segment (not only the tail) may be torn.
    None,
}

/// What opening a store does with damage it finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Cut a torn tail (a bad batch within one group write of the end of the last segment,
    /// which was never acknowledged); refuse any other damage with [`Error::Corruption`].
    #[default]
    TolerateTornTail,
    /// Refuse any damage, a torn tail included: nothing on disk is changed.
    Strict,
    /// Disaster recovery: keep every batch that can be proven complete and valid, step over
    /// everything else, and list what was stepped over in the
    /// [`RecoveryReport`](crate::RecoveryReport). The store opens read-only and no file is
    /// changed; copy what it reads into a new store.
    Salvage,
}

/// Options for [`Store::open_with`](crate::Store::open_with). Start from `Options::default()`, or
/// from [`Options::builder()`], whose `build` names every rule the values break at once.
#[derive(Clone)]
pub struct Options {
    /// Whether commits are fsynced. Default [`Durability::Fsync`].
    pub durability: Durability,
    /// A segment is sealed and a new one started once the next append would push it past this
    /// size. Default 256 MiB.
    pub segment_bytes_max: u64,
    /// Largest encoded event (header, stream name, type, metadata and data). Default 4 MiB.
    pub event_bytes_max: u32,
    /// Most events in one append. Default 10,000; at most 65,536 (the format's bound).
    pub append_events_max: u32,
    /// Largest encoded append. Default 8 MiB; at most `group_bytes_max`.
    pub append_bytes_max: u32,
    /// Most bytes the writer writes between two fsyncs (one group commit). It bounds the torn
    /// tail recovery may cut. Default 8 MiB.
    pub group_bytes_max: u32,
    /// Most appends in one group commit. Default 4,096.
    pub group_appends_max: u32,
    /// Capacity of the channel from appending threads to the writer. Default 4,096.
    pub queue_capacity: u32,
    /// The in-memory global index of the segment being written keeps one entry (8 bytes) per
    /// this many records. Default 1: a stream read then lands on its record without hopping
    /// over the ones before it, which cost a cache miss each (1,000 random streams read 40–50%
    /// faster than with 4), for at most 8 bytes per event of the active segment (7.5 MB for a
    /// full 256 MiB segment of 200-byte events); sealed segments use their index files.
    pub index_stride: u32,
    /// How many of the most recent events' ids are remembered to make retried appends
    /// idempotent (see `docs/design.md`). Default 100,000.
    pub idempotency_window_events: u32,
    /// What opening does with damage. Default [`RecoveryMode::TolerateTornTail`].
    pub recovery_mode: RecoveryMode,
    /// The file system behind the store. Default: `std::fs`.
    pub storage: Arc<dyn Storage>,
    /// The wall clock the store reads for commit timestamps and for `max_age`. Default:
    /// [`SystemClock`]. In format 3 timestamps never decide the log's consistency (groups are
    /// told apart by their sequence number), so a clock that repeats or goes backwards cannot
    /// make recovery cut or refuse anything; it does move what `max_age` hides and scavenging
    /// removes, which is measured on this clock.
    pub clock: Arc<dyn Clock>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::Fsync,
            segment_bytes_max: 256 << 20,
            event_bytes_max: 4 << 20,
            append_events_max: 10_000,
            append_bytes_max: 8 << 20,
            group_bytes_max: 8 << 20,
            group_appends_max: 4096,
            queue_capacity: 4096,
            index_stride: 1,
            idempotency_window_events: 100_000,
            recovery_mode: RecoveryMode::TolerateTornTail,
            storage: Arc::new(StdStorage),
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("durability", &self.durability)
            .field("segment_bytes_max", &self.segment_bytes_max)
            .field("event_bytes_max", &self.event_bytes_max)
            .field("append_events_max", &self.append_events_max)
            .field("append_bytes_max", &self.append_bytes_max)
            .field("group_bytes_max", &self.group_bytes_max)
            .field("group_appends_max", &self.group_appends_max)
            .field("queue_capacity", &self.queue_capacity)
            .field("index_stride", &self.index_stride)
            .field("idempotency_window_events", &self.idempotency_window_events)
            .field("recovery_mode", &self.recovery_mode)
            .finish_non_exhaustive()
    }
}

/// The format stores "records left in this append" in 16 bits.
pub const APPEND_EVENTS_LIMIT: u32 = 1 << 16;

impl Options {
    /// A builder that starts from the defaults and names every broken rule at once.
    pub fn builder() -> OptionsBuilder {
        OptionsBuilder { options: Options::default() }
    }

    /// Every rule between the limits, and between the limits and the format, that these
    /// options break, in a fixed order; empty when they are consistent.
    pub fn violations(&self) -> Vec<OptionsViolation> {
        use OptionsViolation as V;
        let smallest_record = RECORD_HEADER_LEN as u32 + 2;
        let mut found = Vec::new();
        if self.event_bytes_max < smallest_record {
            found.push(V::EventBytesBelowSmallestRecord {
                event_bytes_max: self.event_bytes_max,
                smallest: smallest_record,
            });
        }
        if self.append_events_max == 0 || self.append_events_max > APPEND_EVENTS_LIMIT {
            found.push(V::AppendEventsOutOfRange { append_events_max: self.append_events_max });
        }
        if self.append_bytes_max < self.event_bytes_max {
            found.push(V::AppendBytesBelowEventBytes {
                append_bytes_max: self.append_bytes_max,
                event_bytes_max: self.event_bytes_max,
            });
        }
        if self.group_bytes_max < self.append_bytes_max {
            found.push(V::GroupBytesBelowAppendBytes {
                group_bytes_max: self.group_bytes_max,
                append_bytes_max: self.append_bytes_max,
            });
        }
        let needed = SEGMENT_HEADER_LEN as u64 + u64::from(self.append_bytes_max);
        if self.segment_bytes_max < needed {
            found.push(V::SegmentBelowLargestAppend {
                segment_bytes_max: self.segment_bytes_max,
                needed,
            });
        }
        if self.segment_bytes_max > u64::from(u32::MAX) {
            found.push(V::SegmentOver4GiB { segment_bytes_max: self.segment_bytes_max });
        }
        let counts = [
            ("group_appends_max", self.group_appends_max),
            ("queue_capacity", self.queue_capacity),
            ("index_stride", self.index_stride),
        ];
        for (option, _) in counts.into_iter().filter(|&(_, value)| value == 0) {
            found.push(V::Zero { option });
        }
        found
    }

    /// Checks that the limits fit each other and the format: [`Error::InvalidOptions`] names
    /// every rule they break.
    pub fn validate(&self) -> Result<()> {
        match InvalidOptions::from_violations(self.violations()) {
            None => Ok(()),
            Some(invalid) => Err(invalid.into()),
        }
    }
}

/// A rule that a set of [`Options`] breaks, with the values that break it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OptionsViolation {
    /// `event_bytes_max` cannot hold the smallest record (a header and two one-byte names).
    EventBytesBelowSmallestRecord {
        /// The value given.
        event_bytes_max: u32,
        /// The smallest record's size.
        smallest: u32,
    },
    /// `append_events_max` is 0 or above [`APPEND_EVENTS_LIMIT`].
    AppendEventsOutOfRange {
        /// The value given.
        append_events_max: u32,
    },
    /// An append could not hold its largest event.
    AppendBytesBelowEventBytes {
        /// The value given.
        append_bytes_max: u32,
        /// The largest event.
        event_bytes_max: u32,
    },
    /// A group commit could not hold the largest append.
    GroupBytesBelowAppendBytes {
        /// The value given.
        group_bytes_max: u32,
        /// The largest append.
        append_bytes_max: u32,
    },
    /// A segment could not hold its header and the largest append.
    SegmentBelowLargestAppend {
        /// The value given.
        segment_bytes_max: u64,
        /// The segment header plus `append_bytes_max`.
        needed: u64,
    },
    /// Offsets within a segment are 32-bit.
    SegmentOver4GiB {
        /// The value given.
        segment_bytes_max: u64,
    },
    /// A count that must be positive is 0.
    Zero {
        /// The option's field name.
        option: &'static str,
    },
}

impl fmt::Display for OptionsViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use OptionsViolation as V;
        match self {
            V::EventBytesBelowSmallestRecord { event_bytes_max, smallest } => write!(
                f,
                "event_bytes_max ({event_bytes_max}) is below the smallest record ({smallest} bytes)"
            ),
            V::AppendEventsOutOfRange { append_events_max } => write!(
                f,
                "append_events_max ({append_events_max}) must be within 1..={APPEND_EVENTS_LIMIT}"
            ),
            V::AppendBytesBelowEventBytes { append_bytes_max, event_bytes_max } => write!(
                f,
                "append_bytes_max ({append_bytes_max}) must be at least event_bytes_max \
                 ({event_bytes_max})"
            ),
            V::GroupBytesBelowAppendBytes { group_bytes_max, append_bytes_max } => write!(
                f,
                "group_bytes_max ({group_bytes_max}) must be at least append_bytes_max \
                 ({append_bytes_max})"
            ),
            V::SegmentBelowLargestAppend { segment_bytes_max, needed } => write!(
                f,
                "segment_bytes_max ({segment_bytes_max}) must hold the segment header and the \
                 largest append ({needed} bytes)"
            ),
            V::SegmentOver4GiB { segment_bytes_max } => write!(
                f,
                "segment_bytes_max ({segment_bytes_max}) must be below 4 GiB (offsets are 32-bit)"
            ),
            V::Zero { option } => write!(f, "{option} must be positive"),
        }
    }
}

/// The rules a set of [`Options`] breaks: at least one, all of them named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidOptions {
    violations: Vec<OptionsViolation>,
}

impl InvalidOptions {
    fn from_violations(violations: Vec<OptionsViolation>) -> Option<InvalidOptions> {
        (!violations.is_empty()).then_some(InvalidOptions { violations })
    }

    /// Every rule broken, in a fixed order (never empty).
    pub fn violations(&self) -> &[OptionsViolation] {
        &self.violations
    }
}

impl fmt::Display for InvalidOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, violation) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{violation}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InvalidOptions {}

impl From<InvalidOptions> for Error {
    fn from(invalid: InvalidOptions) -> Error {
        Error::InvalidOptions(invalid.to_string())
    }
}

/// Builds [`Options`] from the defaults, one setter per option; [`build`](Self::build) checks
/// every rule at once.
#[derive(Clone, Debug)]
#[must_use]
pub struct OptionsBuilder {
    options: Options,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $field:ident: $ty:ty;)*) => {
        impl OptionsBuilder {
            $(
                $(#[$doc])*
                pub fn $field(mut self, value: $ty) -> Self {
                    self.options.$field = value;
                    self
                }
            )*
        }
    };
}

setters! {
    /// Sets [`Options::durability`].
    durability: Durability;
    /// Sets [`Options::segment_bytes_max`].
    segment_bytes_max: u64;
    /// Sets [`Options::event_bytes_max`].
    event_bytes_max: u32;
    /// Sets [`Options::append_events_max`].
    append_events_max: u32;
    /// Sets [`Options::append_bytes_max`].
    append_bytes_max: u32;
    /// Sets [`Options::group_bytes_max`].
    group_bytes_max: u32;
    /// Sets [`Options::group_appends_max`].
    group_appends_max: u32;
    /// Sets [`Options::queue_capacity`].
    queue_capacity: u32;
    /// Sets [`Options::index_stride`].
    index_stride: u32;
    /// Sets [`Options::idempotency_window_events`].
    idempotency_window_events: u32;
    /// Sets [`Options::recovery_mode`].
    recovery_mode: RecoveryMode;
    /// Sets [`Options::storage`].
    storage: Arc<dyn Storage>;
    /// Sets [`Options::clock`].
    clock: Arc<dyn Clock>;
}

impl OptionsBuilder {
    /// The options, or every rule they break.
    pub fn build(self) -> std::result::Result<Options, InvalidOptions> {
        match InvalidOptions::from_violations(self.options.violations()) {
            None => Ok(self.options),
            Some(invalid) => Err(invalid),
        }
    }
}
