//! `annal stats`: counts and sizes of a store, from a read-only open.

use serde_json::{Value, json};

use crate::{
    args::StatsArgs,
    exit::{CliResult, Exit},
    output::{self, Output},
};

/// Prints the stats of the store in `args.dir`.
pub fn run(args: &StatsArgs) -> CliResult {
    let store = super::open_read_only(&args.dir)?;
    let stats = store.stats();
    let report = store.recovery_report();
    let torn_tail = report.truncated.as_ref().map_or(Value::Null, |t| {
        json!({
            "segment": t.segment,
            "offset": t.offset,
            "bytes": t.bytes_dropped,
            "kind": t.kind.to_string(),
        })
    });
    let mut out = Output::new(args.json);
    if out.is_json() {
        out.value(&json!({
            "dir": args.dir.display().to_string(),
            "events": stats.events,
            "events_present": stats.events_present,
            "streams": stats.streams,
            "segments": stats.segments,
            "disk_bytes": stats.disk_bytes,
            "head": stats.head.get(),
            "index_memory_bytes": stats.index_memory_bytes,
            "segments_with_index_file": stats.segments_with_index_file,
            "segments_scanned_on_open": report.segments_scanned,
            "rebuilt_on_open": report.rebuilt,
            "format_version": stats.format_versions.1,
            "format_versions": [stats.format_versions.0, stats.format_versions.1],
            "torn_tail": torn_tail,
            "unfinished_segment": report.removed_segment,
        }))?;
    } else {
        let rows = [
            ("store", args.dir.display().to_string()),
            ("positions used", format!("{} (events committed, scavenged ones too)", stats.events)),
            ("events present", format!("{} (events the segments hold)", stats.events_present)),
            ("streams", stats.streams.to_string()),
            ("segments", stats.segments.to_string()),
            (
                "bytes on disk",
                format!("{} ({})", stats.disk_bytes, output::bytes(stats.disk_bytes)),
            ),
            ("head", format!("{} (the position the next event gets)", stats.head)),
            ("index memory", output::bytes(stats.index_memory_bytes as u64)),
            (
                "index files",
                format!(
                    "{} of {} segments (this open scanned {})",
                    stats.segments_with_index_file, stats.segments, report.segments_scanned
                ),
            ),
            ("format version", format_versions(stats.format_versions)),
        ];
        for (name, value) in rows {
            out.line(format_args!("{name:<15} {value}"))?;
        }
        if let Some(t) = &report.truncated {
            out.line(format_args!(
                "torn tail       {} bytes at offset {} of {} ({}): an append that never \
                 completed; ignored here, cut by the next writable open",
                t.bytes_dropped, t.offset, t.segment, t.kind
            ))?;
        }
        if let Some(name) = &report.removed_segment {
            out.line(format_args!(
                "unfinished      segment {name} was being created and holds nothing; ignored"
            ))?;
        }
        if !report.rebuilt.is_empty() {
            out.line(format_args!(
                "not used        {} (missing, damaged or stale derived files: rebuilt from the                  segments; the next writable open writes them anew)",
                report.rebuilt.join(", ")
            ))?;
        }
    }
    out.flush()?;
    Ok(Exit::Ok)
}

/// The format versions of the segments: one number, or the oldest and the newest.
fn format_versions((oldest, newest): (u16, u16)) -> String {
    if oldest == newest {
        oldest.to_string()
    } else {
        format!("{oldest} to {newest} (segments written by older builds stay as they are)")
    }
}
