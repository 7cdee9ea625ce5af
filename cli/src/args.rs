//! The command line: every subcommand, its options and its help text (clap derive).

use std::path::PathBuf;

use annal::{ExpectedVersion, Filter};
use clap::{Args, Parser, Subcommand};

const ABOUT: &str = "Inspect, verify, read, follow, append to and back up annal event stores.";

const LONG_ABOUT: &str = "\
Inspect, verify, read, follow, append to and back up annal event stores.

An annal store is a directory of segment files holding one totally ordered log shared by many
streams. Read-only commands (stats, verify, read, read-all, tail, backup) take no lock, change
nothing and work while another process has the store open. append needs the store for itself
and fails with exit code 6 while another process holds it.

There is no `annal scavenge`: annal does not scavenge (reclaim the space of deleted events) yet.";

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  any other error (I/O failure, unusable store, …)
  2  invalid command line or input
  3  not found: no such store directory, or no such stream
  4  corruption: the store is damaged, or verify found problems
  5  conflict: wrong expected version (or an event id used by another append)
  6  locked: another process has the store open for writing";

const EXAMPLES: &str = "\
Examples:
  annal stats ./events
  annal verify ./events
  echo '{\"type\":\"OrderPlaced\",\"data\":{\"sku\":\"A1\"}}' | annal append ./events order-1
  annal read ./events order-1 --json
  annal read-all ./events --category order --limit 20
  annal tail ./events --type OrderPlaced
  annal backup ./events /backups/events-monday
  annal bench /tmp/scratch

Details, the JSON shapes and backup/restore: docs/cli.md.";

/// The `annal` command line.
#[derive(Debug, Parser)]
#[command(
    name = "annal",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = format!("{EXAMPLES}\n\n{EXIT_CODES}"),
    propagate_version = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show counts and sizes of a store: events, streams, segments, bytes, head, index memory.
    #[command(after_help = "\
Examples:
  annal stats ./events
  annal stats ./events --json | jq .head")]
    Stats(StatsArgs),

    /// Check every checksum and invariant of a store, read-only; exit 4 if anything is wrong.
    #[command(
        long_about = "\
Check every checksum and invariant of a store: every record's CRC, the batch framing, dense
positions and dense stream versions, segment headers (on open) and how segments chain.

The store is opened read-only: nothing is changed, no lock is taken, and a store held open by
another process can be verified while it runs (events appended after the check starts are not
checked). A torn tail left by a crash is not a problem (it was never acknowledged); it is
mentioned. If the store is damaged, the first problems are listed (segment file, byte offset,
what is wrong) and the exit code is 4.",
        after_help = "\
Examples:
  annal verify ./events
  annal verify ./events --json --quiet"
    )]
    Verify(VerifyArgs),

    /// Print the events of one stream.
    #[command(after_help = "\
Examples:
  annal read ./events order-1
  annal read ./events order-1 --from 10 --limit 5
  annal read ./events order-1 --backward --limit 1 --json")]
    Read(ReadArgs),

    /// Print the events of the whole log ($all), in log order, optionally filtered.
    #[command(after_help = "\
Examples:
  annal read-all ./events --limit 100
  annal read-all ./events --from 5000 --category order --type OrderPaid
  annal read-all ./events --backward --limit 10 --json")]
    ReadAll(ReadAllArgs),

    /// Follow the log: print new events as they are committed, until interrupted (Ctrl-C).
    #[command(
        long_about = "\
Follow the log ($all): print new events as they are committed, until interrupted (Ctrl-C) or
--count events have been printed.

tail works on a store that another process has open and appends to. Every --interval-ms it
checks whether the segment files changed and, if they did, opens the store read-only again
(taking no lock) and prints the events after the last position it printed. Each such reopen
scans the log the way opening a store does, so on a large, busy store choose a longer
interval.",
        after_help = "\
Examples:
  annal tail ./events
  annal tail ./events --from 0 --category order
  annal tail ./events --json --count 10"
    )]
    Tail(TailArgs),

    /// Append the events given as JSON lines on stdin to one stream, as one atomic append.
    #[command(
        long_about = "\
Append the events given as JSON lines on stdin to one stream, as one atomic append: all of them
commit, with contiguous positions, or none does. Prints the committed positions and versions.

Each line is an object: {\"type\": \"OrderPlaced\", \"data\": …, \"metadata\": …, \"id\": \"…\"}.
Only \"type\" is required. \"data\" and \"metadata\" are stored as bytes: a JSON string as its
UTF-8 text, any other JSON value (object, array, number, true, false, null) as its compact
JSON text; a missing one is empty. \"id\" is a UUID (a random one if missing); give your own
to make a retried append idempotent. Blank lines are skipped.

The store is created if the directory holds none. It must not be open in another process
(exit 6 if it is).",
        after_help = "\
Examples:
  echo '{\"type\":\"OrderPlaced\",\"data\":{\"sku\":\"A1\"}}' | annal append ./events order-1
  annal append ./events order-1 --expected-version 0 < more-events.jsonl
  annal append ./events order-2 --expected-version no-stream --json < events.jsonl"
    )]
    Append(AppendArgs),

    /// Copy a consistent, committed prefix of a store to a new directory, online.
    #[command(
        long_about = "\
Copy a consistent, committed prefix of a store to DEST, while the store may be open and
appending in another process.

The source is opened read-only (no lock), which checks the whole log. Then the persistent
subscriptions' checkpoint files and every segment file are copied, each segment up to the end
of its last complete, valid batch (an append still being written is left out). Every file and
DEST itself are fsynced. Finally DEST is opened read-only in strict mode to confirm that it
recovers cleanly, that it holds at least every event the first open saw, and that those are
the same events.

To restore, open the copy: stop the application, put DEST where the store was (or point the
application at DEST) and open it as usual. See docs/cli.md.",
        after_help = "\
Examples:
  annal backup ./events /backups/events-2024-05-01
  annal backup ./events /backups/latest --json"
    )]
    Backup(BackupArgs),

    /// Measure annal against the raw disk, in a scratch directory; prints a table of ratios.
    #[command(
        long_about = "\
Measure annal against the raw disk, in a scratch directory created inside DIR (and removed
afterwards): durable appends from 1 and 16 writers, durable batches of 100 events and reading
$all, each next to what the disk itself does with the same bytes (write + fdatasync, or
reading and CRC-checking the segment files), measured in the same run and given as ratios.

For SQLite next to these, run `cargo run --release --example bench -- --quick` in the annal
repository.",
        after_help = "\
Examples:
  annal bench /tmp
  annal bench ./scratch --slice-ms 2000"
    )]
    Bench(BenchArgs),
}

/// `annal stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The store directory.
    pub dir: PathBuf,
    /// Print one JSON object instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// `annal verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The store directory.
    pub dir: PathBuf,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// No progress on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `annal read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The store directory.
    pub dir: PathBuf,
    /// The stream.
    pub stream: String,
    /// The stream version to start at (default: the first, or the last with --backward).
    #[arg(long, value_name = "VERSION")]
    pub from: Option<u64>,
    /// Read from newest to oldest.
    #[arg(long)]
    pub backward: bool,
    /// Print at most this many events.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Print one JSON object per line and event.
    #[arg(long)]
    pub json: bool,
}

/// `annal read-all`.
#[derive(Debug, Args)]
pub struct ReadAllArgs {
    /// The store directory.
    pub dir: PathBuf,
    /// The global position to start at (default: the first, or the last with --backward).
    #[arg(long, value_name = "POSITION")]
    pub from: Option<u64>,
    /// Read from newest to oldest.
    #[arg(long)]
    pub backward: bool,
    /// Print at most this many events (after filtering).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Which events to print.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Print one JSON object per line and event.
    #[arg(long)]
    pub json: bool,
}

/// `annal tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// The store directory.
    pub dir: PathBuf,
    /// The global position to start at (default: the head, so only events committed from now).
    #[arg(long, value_name = "POSITION")]
    pub from: Option<u64>,
    /// Which events to print.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// How often to look for new events, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    pub interval_ms: u64,
    /// Stop after printing this many events (default: run until interrupted).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Print one JSON object per line and event.
    #[arg(long)]
    pub json: bool,
}

/// Which events of `$all` to print: by stream category or name prefix, and by event type.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only streams of this category (the part of the name before the first `-`); repeatable.
    #[arg(long, value_name = "CATEGORY")]
    pub category: Vec<String>,
    /// Only streams whose name starts with this; repeatable.
    #[arg(long, value_name = "PREFIX")]
    pub stream_prefix: Vec<String>,
    /// Only events of this type; repeatable.
    #[arg(long = "type", value_name = "TYPE")]
    pub event_type: Vec<String>,
}

impl FilterArgs {
    /// The library's filter: any of the categories or prefixes, and any of the types.
    pub fn to_filter(&self) -> Filter {
        let filter = self.category.iter().fold(Filter::all(), |f, c| f.category(c.clone()));
        let filter = self.stream_prefix.iter().fold(filter, |f, p| f.stream_prefix(p.clone()));
        filter.event_types(self.event_type.iter().cloned())
    }
}

/// `annal append`.
#[derive(Debug, Args)]
pub struct AppendArgs {
    /// The store directory (created if it holds no store).
    pub dir: PathBuf,
    /// The stream to append to.
    pub stream: String,
    /// What the stream must be at for the append to commit: any, no-stream, exists, or the
    /// version of its last event.
    #[arg(long, value_name = "any|no-stream|exists|N", default_value = "any",
          value_parser = parse_expected)]
    pub expected_version: ExpectedVersion,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `annal backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The store directory to copy.
    pub dir: PathBuf,
    /// Where to put the copy: a directory that does not exist yet, or an empty one.
    pub dest: PathBuf,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `annal bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A directory on the disk to measure; a scratch directory is created inside it and
    /// removed afterwards.
    pub dir: PathBuf,
    /// How long each contender runs in each workload, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub slice_ms: u64,
    /// Events in the store that the read workload reads.
    #[arg(long, value_name = "N", default_value_t = 200_000)]
    pub read_events: u64,
}

/// Parses `any`, `no-stream`, `exists` or a version number.
fn parse_expected(text: &str) -> Result<ExpectedVersion, String> {
    match text {
        "any" => Ok(ExpectedVersion::Any),
        "no-stream" => Ok(ExpectedVersion::NoStream),
        "exists" => Ok(ExpectedVersion::StreamExists),
        n => n
            .parse()
            .map(ExpectedVersion::Exact)
            .map_err(|_| format!("{n:?} is not one of any, no-stream, exists or a version number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn expected_versions_parse() {
        assert_eq!(parse_expected("any"), Ok(ExpectedVersion::Any));
        assert_eq!(parse_expected("no-stream"), Ok(ExpectedVersion::NoStream));
        assert_eq!(parse_expected("exists"), Ok(ExpectedVersion::StreamExists));
        assert_eq!(parse_expected("17"), Ok(ExpectedVersion::Exact(17)));
        assert!(parse_expected("-1").is_err());
    }

    #[test]
    fn filters_combine_categories_prefixes_and_types() {
        let args = FilterArgs {
            category: vec!["order".into()],
            stream_prefix: vec!["acc".into()],
            event_type: vec!["Paid".into()],
        };
        let filter = args.to_filter();
        assert!(filter.matches_parts("order-1", "Paid"));
        assert!(filter.matches_parts("account-1", "Paid"));
        assert!(!filter.matches_parts("order-1", "Placed"));
        assert!(!filter.matches_parts("user-1", "Paid"));
    }
}
