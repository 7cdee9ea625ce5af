//! `annal tail`: follow `$all` as another process appends to it.
//!
//! An open store sees only its own appends, and the process appending holds the lock, so tail
//! polls instead: every interval it lists the segment files with their lengths and, when they
//! changed (an append grows the last segment; a rotation adds one), opens the store read-only
//! again (no lock, nothing written) and drains a `$all` subscription from the position after
//! the last event it printed. A read-only store's subscriptions end at the head it opened with,
//! so each poll prints exactly the events committed since the previous one, each once.

use std::{fs, io, thread, time::Duration};

use annal::{Options, Position, Store};

use crate::{
    args::TailArgs,
    exit::{CliResult, Exit, Failure},
    output::Output,
};

/// Prints new events until interrupted, or until `--count` events are printed.
pub fn run(args: &TailArgs) -> CliResult {
    super::require_store(&args.dir)?;
    let filter = args.filter.to_filter();
    let interval = Duration::from_millis(args.interval_ms.max(1));
    let mut out = Output::new(args.json);
    // The next position to print; `None` until the first open picks the head.
    let mut next = args.from;
    let mut printed = 0u64;
    let mut seen: Option<Vec<(String, u64)>> = None;
    loop {
        // Listed before the open: a change between the two is caught by the next poll.
        let files = segment_lengths(args)?;
        if seen.as_ref() != Some(&files) {
            let store = Store::open_read_only(&args.dir, Options::default())?;
            let start = *next.get_or_insert(store.head().get());
            let mut subscription = store.subscribe_to_all(Position(start), filter.clone());
            for event in subscription.by_ref() {
                if args.count.is_some_and(|count| printed >= count) {
                    break;
                }
                out.event(&event?)?;
                printed += 1;
            }
            out.flush()?;
            next = subscription.next_position().map(Position::get);
            seen = Some(files);
        }
        if args.count.is_some_and(|count| printed >= count) {
            return Ok(Exit::Ok);
        }
        thread::sleep(interval);
    }
}

/// The names and lengths of the segment files: what changes when anything is committed.
fn segment_lengths(args: &TailArgs) -> CliResult<Vec<(String, u64)>> {
    let mut lengths = Vec::new();
    for file in super::segment_files(&args.dir)? {
        match fs::metadata(&file.path) {
            Ok(meta) => lengths.push((file.name, meta.len())),
            // A writable open removes a segment file that never got its header.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Failure::io("stat", &file.path, e)),
        }
    }
    Ok(lengths)
}
