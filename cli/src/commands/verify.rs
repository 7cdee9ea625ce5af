//! `annal verify`: every checksum and invariant, read-only. A store the read-only open already
//! refuses (damage in the middle of the log) is reported with that damage first; a salvaging
//! open, which writes nothing either, then reads around it to list what else is wrong.

use std::{
    io::{IsTerminal, stderr},
    path::Path,
    time::Duration,
};

use annal::{
    Error, Options, PROBLEMS_MAX, Position, RecoveryMode, RecoveryReport, Store, VerifyReport,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::{
    args::VerifyArgs,
    exit::{CliResult, Exit, Failure},
    output::{self, Output},
};

/// One problem, wherever it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    segment: String,
    offset: u64,
    kind: String,
    /// `open` (the read-only open refused the store here), `salvage` (the salvaging open
    /// stepped over `bytes` bytes here), `tail` (a torn tail of `bytes` bytes with complete
    /// events after it) or `verify`.
    found_by: &'static str,
    bytes: Option<u64>,
}

/// How much was checked.
#[derive(Debug, Default, Clone, Copy)]
struct Checked {
    segments: usize,
    /// Events present (scavenged ones are gone).
    events: u64,
    /// Positions covered, scavenged events included.
    positions: u64,
    bytes: u64,
}

/// What the checks found, however far they got.
#[derive(Debug, Default)]
struct Findings {
    /// How the store could be opened: `read-only`, `salvage`, or `refused`.
    opened: &'static str,
    /// What was read and checked.
    checked: Checked,
    problems: Vec<Found>,
    /// Problems found in all, also those verify did not list.
    problem_count: usize,
    /// Things worth knowing that are not problems.
    notes: Vec<String>,
}

/// Verifies the store in `args.dir`.
pub fn run(args: &VerifyArgs) -> CliResult {
    super::require_store(&args.dir)?;
    let progress = Progress::new(args.quiet);
    let findings = check(&args.dir, &progress)?;
    progress.finish();
    print(args, &findings)?;
    if findings.problem_count == 0 {
        return Ok(Exit::Ok);
    }
    let n = findings.problem_count;
    let message =
        format!("{} is damaged: {} found", args.dir.display(), output::count(n as u64, "problem"));
    Err(Failure::new(Exit::Corruption, message))
}

/// Opens the store read-only (or, if that is refused, salvaging) and verifies what opened.
fn check(dir: &Path, progress: &Progress) -> CliResult<Findings> {
    let mut findings = Findings::default();
    progress.opening();
    match Store::open_read_only(dir, Options::default()) {
        Ok(store) => {
            findings.opened = "read-only";
            findings.verified(store.verify_with_progress(|done, total| progress.at(done, total))?);
            let damaged_tail = intact_after_torn_tail(dir, &store)?;
            findings.notes = notes(store.recovery_report(), damaged_tail.is_none());
            if let Some(found) = damaged_tail {
                findings.add(found);
            }
        }
        Err(Error::Corruption { segment, offset, kind }) => {
            findings.opened = "refused";
            let kind = kind.to_string();
            findings.add(Found { segment, offset, kind, found_by: "open", bytes: None });
            around_damage(dir, &mut findings);
        }
        Err(e) => return Err(e.into()),
    }
    Ok(findings)
}

/// Lists every range a salvaging open (read-only too) steps over, past each damage in every
/// segment, and counts the intact events it keeps. `Store::verify` is not run on the salvaged
/// store: it stops at the first damage in each segment and would then take the events it did
/// not read for gaps in stream versions.
fn around_damage(dir: &Path, findings: &mut Findings) {
    let salvage = Options { recovery_mode: RecoveryMode::Salvage, ..Options::default() };
    let store = match Store::open_with(dir, salvage) {
        Ok(store) => store,
        Err(e) => return findings.notes.push(format!("a salvaging open failed too: {e}")),
    };
    findings.opened = "salvage";
    for d in &store.recovery_report().salvaged {
        let (segment, offset, kind) = (d.segment.clone(), d.offset, d.kind.to_string());
        findings.add(Found { segment, offset, kind, found_by: "salvage", bytes: Some(d.bytes) });
    }
    let stats = store.stats();
    let mut events = 0u64;
    for event in store.read_all_forward(Position::START, usize::MAX) {
        if let Err(e) = event {
            findings.notes.push(format!("reading the salvaged store stopped: {e}"));
            break;
        }
        events += 1;
    }
    let (segments, positions, bytes) = (stats.segments, stats.events, stats.disk_bytes);
    findings.checked = Checked { segments, events, positions, bytes };
    findings.notes.push(format!(
        "a salvaging open reads {} intact around the damage; to recover them, copy them into a \
         new store (see docs/cli.md)",
        output::count(events, "event")
    ));
}

impl Findings {
    /// Adds a problem, unless the same place was already reported; lists the first
    /// [`PROBLEMS_MAX`] and counts the rest.
    fn add(&mut self, found: Found) {
        let seen =
            self.problems.iter().any(|p| p.segment == found.segment && p.offset == found.offset);
        if seen {
            return;
        }
        self.problem_count += 1;
        if self.problems.len() < PROBLEMS_MAX {
            self.problems.push(found);
        }
    }

    /// Takes in what verify found.
    fn verified(&mut self, report: VerifyReport) {
        let listed = report.problems.len();
        for p in &report.problems {
            let (segment, offset, kind) = (p.segment.clone(), p.offset, p.kind.to_string());
            self.add(Found { segment, offset, kind, found_by: "verify", bytes: None });
        }
        self.problem_count += report.problem_count - listed;
        let (segments, events, bytes) = (report.segments, report.events, report.bytes);
        self.checked = Checked { segments, events, positions: report.positions, bytes };
    }
}

/// A torn tail is the unfinished last append only if nothing intact follows it. Recovery's
/// rule (damage within one group-commit bound of the end of the last segment) cannot tell a
/// torn tail from damage to committed events near the end of the log: if a salvaging open
/// steps over the same damage and keeps complete events after it, it is reported as a
/// problem, because a writable open would cut them.
fn intact_after_torn_tail(dir: &Path, store: &Store) -> CliResult<Option<Found>> {
    let Some(tail) = &store.recovery_report().truncated else { return Ok(None) };
    let salvage = Options { recovery_mode: RecoveryMode::Salvage, ..Options::default() };
    let salvaged = Store::open_with(dir, salvage)?;
    // With a live writer, the tail may have been an append in flight that has completed since:
    // then the salvaging open stepped over nothing there, however far the log has grown.
    let still_damaged = salvaged.recovery_report().salvaged.iter().any(|d| {
        d.segment == tail.segment && d.offset <= tail.offset && tail.offset < d.offset + d.bytes
    });
    let (kept, read) = (salvaged.head().get(), store.head().get());
    if !still_damaged || kept <= read {
        return Ok(None);
    }
    let kind = format!(
        "{}, and complete events up to position {} follow it: this is damage, not an \
         unfinished append, unless a power loss tore one group commit; a writable open cuts \
         everything from here",
        tail.kind,
        kept - 1
    );
    let (segment, offset) = (tail.segment.clone(), tail.offset);
    Ok(Some(Found { segment, offset, kind, found_by: "tail", bytes: Some(tail.bytes_dropped) }))
}

/// What a read-only open noticed that is not damage (the torn tail only if `torn_tail_is_benign`).
fn notes(report: &RecoveryReport, torn_tail_is_benign: bool) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(t) = report.truncated.as_ref().filter(|_| torn_tail_is_benign) {
        notes.push(format!(
            "the last segment {} ends in a torn tail of {} bytes at offset {} ({}): an append \
             that never completed and was never acknowledged; it is ignored, and the next \
             writable open cuts it",
            t.segment, t.bytes_dropped, t.offset, t.kind
        ));
    }
    if let Some(name) = &report.removed_segment {
        notes.push(format!(
            "segment {name} was being created when its writer stopped and holds nothing; it is \
             ignored, and the next writable open removes it"
        ));
    }
    notes
}

/// Prints the report: lines, or one JSON object.
fn print(args: &VerifyArgs, findings: &Findings) -> CliResult<()> {
    let mut out = Output::new(args.json);
    let checked = findings.checked;
    if out.is_json() {
        let problems: Vec<Value> = findings
            .problems
            .iter()
            .map(|p| {
                json!({
                    "segment": p.segment,
                    "offset": p.offset,
                    "kind": p.kind,
                    "found_by": p.found_by,
                    "bytes": p.bytes,
                })
            })
            .collect();
        out.value(&json!({
            "dir": args.dir.display().to_string(),
            "clean": findings.problem_count == 0,
            "opened": findings.opened,
            "segments": checked.segments,
            "events": checked.events,
            "positions": checked.positions,
            "bytes": checked.bytes,
            "problem_count": findings.problem_count,
            "problems": problems,
            "notes": findings.notes,
        }))?;
    } else {
        // Scavenged events leave their positions unused: say so when some are.
        let positions = match checked.positions == checked.events {
            true => String::new(),
            false => format!(" in {} positions", checked.positions),
        };
        let summary = format!(
            "{}, {}{positions}, {}",
            output::count(checked.segments as u64, "segment"),
            output::count(checked.events, "event"),
            output::bytes(checked.bytes)
        );
        if findings.problem_count == 0 {
            out.line(format_args!("verified {}: {summary}: no problems", args.dir.display()))?;
        } else {
            let n = findings.problem_count;
            let problems = output::count(n as u64, "problem");
            out.line(format_args!("{} is damaged: {problems}; the first:", args.dir.display()))?;
            for p in &findings.problems {
                let how = match (p.found_by, p.bytes) {
                    ("open", _) => " (the read-only open refused the store here)".to_owned(),
                    ("salvage", Some(b)) => format!(" (salvage stepped over {b} bytes)"),
                    ("tail", Some(b)) => format!(" (the last {b} bytes of the segment)"),
                    _ => String::new(),
                };
                out.line(format_args!("  {} offset {}: {}{how}", p.segment, p.offset, p.kind))?;
            }
            if findings.opened == "salvage" {
                out.line(format_args!("checked around the damage: {summary}"))?;
            }
        }
        for note in &findings.notes {
            out.line(format_args!("note: {note}"))?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Progress on stderr: a bar on a terminal, a plain line per segment otherwise, nothing
/// with `--quiet`.
enum Progress {
    Quiet,
    Lines,
    Bar(ProgressBar),
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        if quiet {
            Progress::Quiet
        } else if stderr().is_terminal() {
            Progress::Bar(ProgressBar::new_spinner())
        } else {
            Progress::Lines
        }
    }

    /// The open scans the whole log before verify starts.
    fn opening(&self) {
        match self {
            Progress::Quiet => {}
            Progress::Lines => eprintln!("verify: opening the store read-only (scans the log)"),
            Progress::Bar(bar) => {
                bar.set_message("opening the store read-only (scans the log)");
                bar.enable_steady_tick(Duration::from_millis(100));
            }
        }
    }

    /// Verify has checked `done` of `total` bytes.
    fn at(&self, done: u64, total: u64) {
        match self {
            Progress::Quiet => {}
            Progress::Lines => {
                let percent = done.saturating_mul(100).checked_div(total).unwrap_or(100);
                let (done, total) = (output::bytes(done), output::bytes(total));
                eprintln!("verify: checked {done} of {total} ({percent}%)");
            }
            Progress::Bar(bar) => {
                if bar.length() != Some(total) {
                    let style = ProgressStyle::with_template(
                        "verify [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .expect("a valid template")
                    .progress_chars("=> ");
                    bar.set_style(style);
                    bar.set_length(total);
                }
                bar.set_position(done);
            }
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
