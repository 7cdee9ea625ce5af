//! Create and Update requests read into a [`Source`], a [`Start`], a filter and [`Settings`]:
//! both forms of a stream group (the `stream` option, or the older `stream_identifier` with
//! `settings.revision`, which the Node client still sends), both forms of the consumer
//! strategy (the name, or the older enum), and both units of the timeouts.

use tonic::Status;

use super::definition::{FilterSpec, Settings, Source, Start, Strategy};
use crate::{
    proto::persistent::{
        create_req::{self, all_options},
        update_req,
    },
    wire,
};

/// What a Create or Update asks for.
#[derive(Debug)]
pub struct Asked {
    /// What the group reads.
    pub source: Source,
    /// Its name.
    pub group: String,
    /// Where it starts.
    pub start: Start,
    /// For `$all`, its filter.
    pub filter: Option<FilterSpec>,
    /// Its settings.
    pub settings: Settings,
}

/// Ticks (100 ns) in a millisecond.
const TICKS_PER_MS: i64 = 10_000;

fn ms_of_ticks(ticks: i64) -> i32 {
    i32::try_from(ticks / TICKS_PER_MS).unwrap_or(i32::MAX)
}

/// The deprecated `settings.revision`: `u64::MAX` is the end.
fn start_of_revision(revision: u64) -> Start {
    match revision {
        0 => Start::First,
        u64::MAX => Start::End,
        r => Start::Revision(r),
    }
}

fn strategy(name: &str, named: i32) -> Result<Strategy, Status> {
    let name = if name.is_empty() {
        match create_req::ConsumerStrategy::try_from(named) {
            Ok(create_req::ConsumerStrategy::DispatchToSingle) => "DispatchToSingle",
            Ok(create_req::ConsumerStrategy::RoundRobin) => "RoundRobin",
            Ok(create_req::ConsumerStrategy::Pinned) => "Pinned",
            Err(_) => "",
        }
    } else {
        name
    };
    match name {
        "RoundRobin" => Ok(Strategy::RoundRobin),
        "DispatchToSingle" => Ok(Strategy::DispatchToSingle),
        other => Err(Status::invalid_argument(format!(
            "consumer strategy {other:?} is not supported: annal-server serves RoundRobin and \
             DispatchToSingle"
        ))),
    }
}

fn group_name(name: String) -> Result<String, Status> {
    if name.is_empty() {
        return Err(Status::invalid_argument("group_name is empty"));
    }
    Ok(name)
}

/// [`Settings`] from the `settings` of a Create or an Update (`$req` is `create_req` or
/// `update_req`: two generated types with the same fields), with the consumer strategy
/// `$strategy` (the Update has no strategy name).
macro_rules! settings {
    ($req:ident, $s:ident, $strategy:expr) => {{
        let message_timeout_ms = match $s.message_timeout {
            Some($req::settings::MessageTimeout::MessageTimeoutMs(ms)) => ms,
            Some($req::settings::MessageTimeout::MessageTimeoutTicks(t)) => ms_of_ticks(t),
            None => 0,
        };
        let checkpoint_after_ms = match $s.checkpoint_after {
            Some($req::settings::CheckpointAfter::CheckpointAfterMs(ms)) => ms,
            Some($req::settings::CheckpointAfter::CheckpointAfterTicks(t)) => ms_of_ticks(t),
            None => 0,
        };
        Settings {
            resolve_links: $s.resolve_links,
            extra_statistics: $s.extra_statistics,
            message_timeout_ms,
            max_retry_count: $s.max_retry_count,
            min_checkpoint_count: $s.min_checkpoint_count,
            max_checkpoint_count: $s.max_checkpoint_count,
            checkpoint_after_ms,
            max_subscriber_count: $s.max_subscriber_count,
            live_buffer_size: $s.live_buffer_size,
            read_batch_size: $s.read_batch_size,
            history_buffer_size: $s.history_buffer_size,
            strategy: $strategy,
        }
    }};
}

/// A Create request.
pub fn create(request: create_req::Options) -> Result<Asked, Status> {
    let s = request.settings.unwrap_or_default();
    let settings =
        settings!(create_req, s, strategy(&s.consumer_strategy, s.named_consumer_strategy)?);
    use create_req::options::StreamOption;
    let (source, start, filter) = match request.stream_option {
        Some(StreamOption::Stream(o)) => {
            use create_req::stream_options::RevisionOption as R;
            let start = match o.revision_option {
                Some(R::Revision(r)) => Start::Revision(r),
                Some(R::End(_)) => Start::End,
                Some(R::Start(_)) | None => Start::First,
            };
            (Source::Stream(wire::stream_name(o.stream_identifier.as_ref())?), start, None)
        }
        Some(StreamOption::All(o)) => {
            let start = match o.all_option {
                Some(all_options::AllOption::Position(p)) => Start::Position(p.commit_position),
                Some(all_options::AllOption::End(_)) => Start::End,
                Some(all_options::AllOption::Start(_)) | None => Start::First,
            };
            (Source::All, start, filter(o.filter_option))
        }
        None => {
            let stream = wire::stream_name(request.stream_identifier.as_ref())?;
            (Source::Stream(stream), start_of_revision(s.revision), None)
        }
    };
    Ok(Asked { source, group: group_name(request.group_name)?, start, filter, settings })
}

fn filter(option: Option<all_options::FilterOption>) -> Option<FilterSpec> {
    use all_options::filter_options::Filter;
    let Some(all_options::FilterOption::Filter(f)) = option else { return None };
    let (on_stream, e) = match f.filter? {
        Filter::StreamIdentifier(e) => (true, e),
        Filter::EventType(e) => (false, e),
    };
    Some(FilterSpec { on_stream, regex: e.regex, prefixes: e.prefix })
}

/// An Update request; its `$all` filter, which Update cannot change, is `None`.
pub fn update(request: update_req::Options) -> Result<Asked, Status> {
    let s = request.settings.unwrap_or_default();
    let settings = settings!(update_req, s, strategy("", s.named_consumer_strategy)?);
    use update_req::options::StreamOption;
    let (source, start) = match request.stream_option {
        Some(StreamOption::Stream(o)) => {
            use update_req::stream_options::RevisionOption as R;
            let start = match o.revision_option {
                Some(R::Revision(r)) => Start::Revision(r),
                Some(R::End(_)) => Start::End,
                Some(R::Start(_)) | None => Start::First,
            };
            (Source::Stream(wire::stream_name(o.stream_identifier.as_ref())?), start)
        }
        Some(StreamOption::All(o)) => {
            use update_req::all_options::AllOption as A;
            let start = match o.all_option {
                Some(A::Position(p)) => Start::Position(p.commit_position),
                Some(A::End(_)) => Start::End,
                Some(A::Start(_)) | None => Start::First,
            };
            (Source::All, start)
        }
        None => {
            let stream = wire::stream_name(request.stream_identifier.as_ref())?;
            (Source::Stream(stream), start_of_revision(s.revision))
        }
    };
    Ok(Asked { source, group: group_name(request.group_name)?, start, filter: None, settings })
}

/// The source named by a `stream_identifier` / `all` choice of the other requests.
pub fn source(
    stream: Option<&crate::proto::shared::StreamIdentifier>,
    all: bool,
) -> Result<Source, Status> {
    if all {
        return Ok(Source::All);
    }
    Ok(Source::Stream(wire::stream_name(stream)?))
}
