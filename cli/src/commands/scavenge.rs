//! `annal scavenge`: reclaims the space of deleted and expired events by rewriting sealed
//! segments, with a progress bar on a terminal.

use std::{
    io::{IsTerminal, stderr},
    thread,
    time::Duration,
};

use annal::{Options, ScavengeControl, ScavengeReport, Store};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::{
    args::ScavengeArgs,
    exit::{CliResult, Exit},
    output::{self, Output},
};

/// How often the progress bar asks the scavenge how far it got.
const PROGRESS_POLL: Duration = Duration::from_millis(100);

/// Scavenges the store in `args.dir` and prints the report.
pub fn run(args: &ScavengeArgs) -> CliResult {
    // The idempotency window of this open is what the scavenge keeps: no event among the
    // window's most recent ones is removed.
    let defaults = Options::default();
    let window = args.keep_recent.unwrap_or(defaults.idempotency_window_events);
    let options = Options { idempotency_window_events: window, ..defaults };
    let store = super::open_writable(&args.dir, options)?;
    let result = scavenge(&store);
    store.close();
    print(args, window, &result?)
}

/// Runs the scavenge on a scoped thread and shows its progress on a terminal.
fn scavenge(store: &Store) -> annal::Result<ScavengeReport> {
    if !stderr().is_terminal() {
        return store.scavenge();
    }
    let control = ScavengeControl::new();
    let bar = ProgressBar::new(0);
    let style = ProgressStyle::with_template(
        "scavenge [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}  {msg}",
    )
    .expect("a valid template")
    .progress_chars("=> ");
    bar.set_style(style);
    let result = thread::scope(|scope| {
        let running = scope.spawn(|| store.scavenge_with(&control));
        while !running.is_finished() {
            let progress = control.progress();
            bar.set_length(progress.bytes_total);
            bar.set_position(progress.bytes_done);
            bar.set_message(format!("{} reclaimed", output::bytes(progress.bytes_reclaimed)));
            thread::sleep(PROGRESS_POLL);
        }
        running.join().expect("the scavenge thread does not panic")
    });
    bar.finish_and_clear();
    result
}

/// The report as lines, or as one JSON object.
fn print(args: &ScavengeArgs, window: u32, report: &ScavengeReport) -> CliResult {
    let percent = reclaimed_percent(report);
    let mut out = Output::new(args.json);
    if out.is_json() {
        out.value(&json!({
            "dir": args.dir.display().to_string(),
            "segments_scanned": report.segments_scanned,
            "segments_rewritten": report.segments_rewritten,
            "events_removed": report.events_removed,
            "bytes_before": report.bytes_before,
            "bytes_reclaimed": report.bytes_reclaimed,
            "reclaimed_percent": (percent * 10.0).round() / 10.0,
            "keep_recent": window,
            "cancelled": report.cancelled,
        }))?;
    } else {
        let rows = [
            ("store", args.dir.display().to_string()),
            ("segments scanned", format!("{} (sealed ones)", report.segments_scanned)),
            ("segments rewritten", report.segments_rewritten.to_string()),
            ("events removed", report.events_removed.to_string()),
            (
                "bytes before",
                format!("{} ({})", report.bytes_before, output::bytes(report.bytes_before)),
            ),
            (
                "bytes reclaimed",
                format!(
                    "{} ({}, {percent:.1}%)",
                    report.bytes_reclaimed,
                    output::bytes(report.bytes_reclaimed)
                ),
            ),
            ("kept recent", format!("{} (never removed)", output::count(window, "event"))),
        ];
        for (name, value) in rows {
            out.line(format_args!("{name:<18} {value}"))?;
        }
        if report.cancelled {
            out.line("cancelled: the segments not yet reached are as they were")?;
        }
    }
    out.flush()?;
    Ok(Exit::Ok)
}

/// Bytes reclaimed as a percentage of the sealed bytes before (0 when there were none).
fn reclaimed_percent(report: &ScavengeReport) -> f64 {
    if report.bytes_before == 0 {
        return 0.0;
    }
    report.bytes_reclaimed as f64 * 100.0 / report.bytes_before as f64
}
