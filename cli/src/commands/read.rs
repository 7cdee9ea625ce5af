//! `annal read` (one stream) and `annal read-all` (the whole log, filtered), from a read-only
//! open: the events committed when the command started.

use annal::{Position, RecordedEvent, StreamVersion};

use crate::{
    args::{ReadAllArgs, ReadArgs},
    exit::{CliResult, Exit},
    output::Output,
};

/// Prints the events of `args.stream`.
pub fn stream(args: &ReadArgs) -> CliResult {
    let store = super::open_read_only(&args.dir)?;
    let limit = args.limit.unwrap_or(usize::MAX);
    let events = if args.backward {
        let from = args.from.map_or(StreamVersion::END, StreamVersion);
        store.read_stream_backward(&args.stream, from, limit)?
    } else {
        let from = args.from.map_or(StreamVersion::START, StreamVersion);
        store.read_stream_forward(&args.stream, from, limit)?
    };
    print(&mut Output::new(args.json), events)
}

/// Prints the events of `$all` that the filter selects.
pub fn all(args: &ReadAllArgs) -> CliResult {
    let store = super::open_read_only(&args.dir)?;
    let filter = args.filter.to_filter();
    let limit = args.limit.unwrap_or(usize::MAX);
    let mut out = Output::new(args.json);
    // The limit counts printed events, so it applies after the filter.
    let selected =
        |e: &annal::Result<RecordedEvent>| e.as_ref().map_or(true, |e| filter.matches(e));
    if args.backward {
        let from = args.from.map_or(Position::END, Position);
        let events = store.read_all_backward(from, usize::MAX).filter(selected).take(limit);
        print(&mut out, events)
    } else {
        let from = args.from.map_or(Position::START, Position);
        let events = store.read_all_forward(from, usize::MAX).filter(selected).take(limit);
        print(&mut out, events)
    }
}

/// Prints each event; stops at the first read error (the store's bytes failed a check).
fn print(
    out: &mut Output,
    events: impl Iterator<Item = annal::Result<RecordedEvent>>,
) -> CliResult {
    for event in events {
        out.event(&event?)?;
    }
    out.flush()?;
    Ok(Exit::Ok)
}
