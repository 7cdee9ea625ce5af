//! `annal delete`: a soft delete of a stream, or with `--hard` a tombstone.

use annal::Options;
use serde_json::json;

use crate::{
    args::DeleteArgs,
    exit::{CliResult, Exit},
    output::Output,
};

/// Deletes `args.stream` and prints where the delete was recorded.
pub fn run(args: &DeleteArgs) -> CliResult {
    let store = super::open_writable(&args.dir, Options::default())?;
    let result = if args.hard {
        store.tombstone_stream(&args.stream, args.expected_version)
    } else {
        store.delete_stream(&args.stream, args.expected_version)
    };
    store.close();
    let position = result?;
    let kind = if args.hard { "hard" } else { "soft" };
    let mut out = Output::new(args.json);
    if out.is_json() {
        out.value(&json!({
            "stream": args.stream,
            "kind": kind,
            "position": position.get(),
        }))?;
    } else if args.hard {
        out.line(format_args!(
            "tombstoned {:?}: deleted for good; the tombstone is at position {position}",
            args.stream
        ))?;
    } else {
        out.line(format_args!(
            "deleted {:?} (soft: appending brings it back); the delete is at position {position}",
            args.stream
        ))?;
    }
    out.flush()?;
    Ok(Exit::Ok)
}
