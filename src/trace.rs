//! What the store tells an operator through `tracing`: every event it emits, with its fields,
//! is written here, so the vocabulary stays in one place and the engine's code says only when.
//!
//! Events use the target `annal` (filter with `RUST_LOG=annal=info` or a subscriber's own
//! filter). Levels: `info` for what a healthy store does once in a while (an open, a scavenge,
//! a verify without problems), `warn` for what an operator should look at though nothing was
//! lost (a torn tail cut, derived files rebuilt, a slow fsync, verify problems), `error` for
//! what stops writes (a poisoned writer). Nothing is emitted per append or per read.

use std::{io, path::Path, time::Duration};

use crate::{RecoveryReport, ScavengeReport, VerifyReport};

/// An fdatasync of a group that took at least this long is reported: far beyond what a
/// healthy disk takes (0.1–30 ms on the machines measured), so a report means a disk or
/// virtual machine in trouble, not noise.
pub(crate) const SLOW_SYNC: Duration = Duration::from_millis(250);

/// The writer is poisoned: nothing more will be written until the store is reopened.
pub(crate) fn poisoned(dir: &Path, op: &str, error: &io::Error) {
    tracing::error!(
        target: "annal",
        dir = %dir.display(),
        op,
        error = %error,
        "store poisoned: writes refused until it is reopened"
    );
}

/// A group's fdatasync took [`SLOW_SYNC`] or longer.
pub(crate) fn slow_sync(segment: &Path, elapsed: Duration, bytes: u64) {
    tracing::warn!(
        target: "annal",
        segment = %segment.display(),
        elapsed_ms = elapsed.as_secs_f64() * 1e3,
        bytes,
        "slow fdatasync of a group"
    );
}

/// An open finished: what recovery found, and what it did about it.
pub(crate) fn opened(dir: &Path, read_only: bool, report: &RecoveryReport, elapsed: Duration) {
    tracing::info!(
        target: "annal",
        dir = %dir.display(),
        read_only,
        segments = report.segments,
        events = report.events,
        segments_scanned = report.segments_scanned,
        elapsed_ms = elapsed.as_secs_f64() * 1e3,
        "store opened"
    );
    if let Some(torn) = &report.truncated {
        tracing::warn!(
            target: "annal",
            dir = %dir.display(),
            segment = %torn.segment,
            offset = torn.offset,
            bytes_dropped = torn.bytes_dropped,
            kind = ?torn.kind,
            "torn tail cut at open (it was never acknowledged)"
        );
    }
    if let Some(segment) = &report.removed_segment {
        tracing::warn!(
            target: "annal",
            dir = %dir.display(),
            segment = %segment,
            "segment without a durable header removed at open (a crash while rotating)"
        );
    }
    if !report.rebuilt.is_empty() {
        tracing::warn!(
            target: "annal",
            dir = %dir.display(),
            files = ?report.rebuilt,
            "derived files missing, damaged or stale: rebuilt from the segments"
        );
    }
    if !report.merged_leftovers.is_empty() {
        tracing::warn!(
            target: "annal",
            dir = %dir.display(),
            segments = ?report.merged_leftovers,
            "segments left behind by an interrupted scavenge removed"
        );
    }
    for dropped in &report.salvaged {
        tracing::warn!(
            target: "annal",
            dir = %dir.display(),
            segment = %dropped.segment,
            offset = dropped.offset,
            bytes = dropped.bytes,
            kind = ?dropped.kind,
            "salvage stepped over a damaged range"
        );
    }
}

/// A scavenge finished (or was cancelled).
pub(crate) fn scavenged(dir: &Path, report: &ScavengeReport, elapsed: Duration) {
    tracing::info!(
        target: "annal",
        dir = %dir.display(),
        segments_scanned = report.segments_scanned,
        segments_rewritten = report.segments_rewritten,
        events_removed = report.events_removed,
        bytes_reclaimed = report.bytes_reclaimed,
        cancelled = report.cancelled,
        elapsed_ms = elapsed.as_secs_f64() * 1e3,
        "scavenge finished"
    );
}

/// A verify finished.
pub(crate) fn verified(dir: &Path, report: &VerifyReport, elapsed: Duration) {
    if report.is_clean() {
        tracing::info!(
            target: "annal",
            dir = %dir.display(),
            segments = report.segments,
            events = report.events,
            elapsed_ms = elapsed.as_secs_f64() * 1e3,
            "verify found no problem"
        );
        return;
    }
    for problem in &report.problems {
        tracing::warn!(
            target: "annal",
            dir = %dir.display(),
            segment = %problem.segment,
            offset = problem.offset,
            kind = ?problem.kind,
            "verify found a problem"
        );
    }
    tracing::warn!(
        target: "annal",
        dir = %dir.display(),
        problems = report.problem_count,
        "verify found problems"
    );
}
