//! A persistent subscription group's definition: what it reads (a stream or `$all` with a
//! filter), where it started, and its settings as the client gave them; how they map onto the
//! library's [`GroupSettings`]; and the JSON form kept in the definitions stream (see
//! `config`).

use std::time::Duration;

use annal::{ConsumerStrategy, GroupSettings, PersistentOptions, Position};
use serde::{Deserialize, Serialize};

/// Most events one consumer holds unacknowledged; a larger `history_buffer_size` or Read
/// `buffer_size` is cut to it.
pub const CONSUMER_BUFFER_MAX: u32 = 10_000;

/// Where a group reads from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Source {
    /// One stream.
    Stream(String),
    /// `$all`.
    All,
}

impl Source {
    /// The name clients see: the stream's, or `$all`.
    pub fn name(&self) -> &str {
        match self {
            Source::Stream(s) => s,
            Source::All => "$all",
        }
    }
}

/// Where a group starts, as the client asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Start {
    /// The first event.
    First,
    /// Only events appended after the group was created.
    End,
    /// A stream group: from this revision on.
    Revision(u64),
    /// An `$all` group: from this position on.
    Position(u64),
}

/// A filter of an `$all` group, kept as the client sent it and compiled by `filter`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterSpec {
    /// On the stream name (`true`) or the event type.
    pub on_stream: bool,
    /// A regular expression (empty: the prefixes decide).
    pub regex: String,
    /// Prefixes, any of which passes.
    pub prefixes: Vec<String>,
}

/// A group's settings, as the client gave them (reported back by GetInfo).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Accepted and reported; annal writes no link events, so there is nothing to resolve.
    pub resolve_links: bool,
    /// Accepted and reported, without effect.
    pub extra_statistics: bool,
    /// How long a consumer may hold an event unacknowledged before it is retried (the
    /// library's `message_timeout`); 0 or less is no timeout, as the reference server takes 0.
    pub message_timeout_ms: i32,
    /// Retries before an event is parked.
    pub max_retry_count: i32,
    /// Accepted and reported; the checkpoint is written every `max_checkpoint_count`
    /// acknowledgements or `checkpoint_after_ms`.
    pub min_checkpoint_count: i32,
    /// Acknowledgements between checkpoint writes.
    pub max_checkpoint_count: i32,
    /// Time between checkpoint writes while it moves.
    pub checkpoint_after_ms: i32,
    /// Consumers at once; 0 is unbounded.
    pub max_subscriber_count: i32,
    /// Accepted and reported (annal reads the log in place, it keeps no live buffer).
    pub live_buffer_size: i32,
    /// Accepted and reported.
    pub read_batch_size: i32,
    /// Events one consumer holds unacknowledged, at most, when its Read call names no buffer
    /// (the library's `consumer_buffer`).
    pub history_buffer_size: i32,
    /// How events are shared out.
    pub strategy: Strategy,
}

/// The consumer strategies served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Strategy {
    /// Each event to the next consumer with room.
    RoundRobin,
    /// Every event to the first consumer until its buffer is full.
    DispatchToSingle,
}

impl Strategy {
    /// The protocol's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "RoundRobin",
            Strategy::DispatchToSingle => "DispatchToSingle",
        }
    }
}

/// A group as defined by Create (and changed by Update).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    /// Names the library's persistent subscription (`psub-<id>`); never reused, so a group
    /// created again after a delete starts afresh.
    pub id: u64,
    /// What it reads.
    pub source: Source,
    /// Its name.
    pub group: String,
    /// Where it started, as asked.
    pub start: Start,
    /// The log position its checkpoint starts at, fixed when it was created.
    pub start_position: u64,
    /// For a stream group, revisions below this are stepped over.
    pub min_revision: u64,
    /// For an `$all` group, which events it delivers.
    pub filter: Option<FilterSpec>,
    /// Its settings.
    pub settings: Settings,
}

impl Definition {
    /// The library's name for its persistent subscription.
    pub fn library_name(&self) -> String {
        format!("psub-{}", self.id)
    }

    /// The library's settings for it. The library reads `$all`; a stream group's events are
    /// picked out by the server (see `consumer`).
    pub fn group_settings(&self) -> GroupSettings {
        let s = &self.settings;
        let positive =
            |n: i32, default: u32| u32::try_from(n).ok().filter(|&n| n > 0).unwrap_or(default);
        let mut persistent = PersistentOptions {
            start: Position::from(self.start_position),
            ..PersistentOptions::default()
        };
        persistent.checkpoint_every_acks =
            positive(s.max_checkpoint_count, persistent.checkpoint_every_acks);
        if let Ok(ms @ 1..) = u64::try_from(s.checkpoint_after_ms) {
            persistent.checkpoint_interval = Duration::from_millis(ms);
        }
        let mut settings = GroupSettings { persistent, ..GroupSettings::default() };
        settings.strategy = match s.strategy {
            Strategy::RoundRobin => ConsumerStrategy::RoundRobin,
            Strategy::DispatchToSingle => ConsumerStrategy::DispatchToSingle,
        };
        settings.max_retry_count = u32::try_from(s.max_retry_count).unwrap_or(0);
        settings.message_timeout = u64::try_from(s.message_timeout_ms)
            .ok()
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis);
        settings.consumer_buffer =
            positive(s.history_buffer_size, settings.consumer_buffer).min(CONSUMER_BUFFER_MAX);
        settings
    }

    /// `start_from` as GetInfo reports it: a revision (`0` start, `-1` end) for a stream
    /// group, `C:<commit>/P:<prepare>` for `$all`.
    pub fn start_from(&self) -> String {
        match (&self.source, self.start) {
            (Source::Stream(_), Start::First) => "0".to_owned(),
            (Source::Stream(_), Start::End) => "-1".to_owned(),
            (Source::Stream(_), Start::Revision(r) | Start::Position(r)) => r.to_string(),
            (Source::All, Start::First) => "C:0/P:0".to_owned(),
            (Source::All, Start::End) => "C:-1/P:-1".to_owned(),
            (Source::All, Start::Revision(p) | Start::Position(p)) => format!("C:{p}/P:{p}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            resolve_links: false,
            extra_statistics: false,
            message_timeout_ms: 30_000,
            max_retry_count: 3,
            min_checkpoint_count: 10,
            max_checkpoint_count: 50,
            checkpoint_after_ms: 2_000,
            max_subscriber_count: 0,
            live_buffer_size: 500,
            read_batch_size: 20,
            history_buffer_size: 7,
            strategy: Strategy::DispatchToSingle,
        }
    }

    fn definition(source: Source, start: Start) -> Definition {
        Definition {
            id: 4,
            source,
            group: "g".into(),
            start,
            start_position: 123,
            min_revision: 0,
            filter: None,
            settings: settings(),
        }
    }

    #[test]
    fn settings_map_onto_the_library_group() {
        let g = definition(Source::All, Start::First).group_settings();
        assert_eq!(g.strategy, ConsumerStrategy::DispatchToSingle);
        assert_eq!(g.max_retry_count, 3);
        assert_eq!(g.consumer_buffer, 7);
        assert_eq!(g.persistent.checkpoint_every_acks, 50);
        assert_eq!(g.persistent.checkpoint_interval, Duration::from_secs(2));
        assert_eq!(g.persistent.start, Position::from(123));
        assert_eq!(g.message_timeout, Some(Duration::from_secs(30)));
    }

    #[test]
    fn a_message_timeout_of_zero_or_less_is_none() {
        let mut d = definition(Source::All, Start::First);
        for ms in [0, -1, i32::MIN] {
            d.settings.message_timeout_ms = ms;
            assert_eq!(d.group_settings().message_timeout, None, "{ms}");
        }
        d.settings.message_timeout_ms = 1;
        assert_eq!(d.group_settings().message_timeout, Some(Duration::from_millis(1)));
    }

    #[test]
    fn zero_or_negative_sizes_keep_the_library_defaults_and_buffers_are_capped() {
        let mut d = definition(Source::All, Start::First);
        d.settings.history_buffer_size = 0;
        d.settings.max_checkpoint_count = -1;
        d.settings.max_retry_count = -5;
        let g = d.group_settings();
        assert_eq!(g.consumer_buffer, GroupSettings::default().consumer_buffer);
        assert_eq!(g.persistent.checkpoint_every_acks, 100);
        assert_eq!(g.max_retry_count, 0);
        d.settings.history_buffer_size = i32::MAX;
        assert_eq!(d.group_settings().consumer_buffer, CONSUMER_BUFFER_MAX);
    }

    #[test]
    fn start_from_reads_as_the_clients_parse_it() {
        let s = |start| definition(Source::Stream("s".into()), start).start_from();
        let a = |start| definition(Source::All, start).start_from();
        assert_eq!(
            (s(Start::First), s(Start::End), s(Start::Revision(5))),
            ("0".into(), "-1".into(), "5".into())
        );
        assert_eq!(a(Start::First), "C:0/P:0");
        assert_eq!(a(Start::End), "C:-1/P:-1");
        assert_eq!(a(Start::Position(77)), "C:77/P:77");
    }

    #[test]
    fn library_names_are_valid_and_distinct_per_id() {
        let d = definition(Source::All, Start::First);
        assert_eq!(d.library_name(), "psub-4");
        let other = Definition { id: 40, ..d.clone() };
        assert_ne!(other.library_name(), d.library_name());
    }
}
