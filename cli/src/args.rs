//! The command line: every subcommand, its options and its help text (clap derive).

use std::path::PathBuf;

use annal::{ExpectedVersion, Filter};
use clap::{Args, Parser, Subcommand};

const ABOUT: &str = "Inspect, verify, read, follow, append to, delete from, scavenge and back up annal event stores.";

const LONG_ABOUT: &str = "\
Inspect, verify, read, follow, append to, delete from, scavenge and back up annal event stores.

An annal store is a directory of segment files holding one totally ordered log shared by many
streams. Read-only commands (stats, verify, read, read-all, tail, backup, and metadata without
--set options) take no lock, change nothing and work while another process has the store open.
append, delete, metadata with --set options and scavenge need the store for themselves and
fail with exit code 6 while another process holds it.";

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  any other error (I/O failure, unusable store, …)
  2  invalid command line or input
  3  not found: no such store directory, or no such stream, or the stream was deleted
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
  annal delete ./events order-1
  annal metadata ./events order-1 --set-max-count 100
  annal scavenge ./events
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

The source is opened read-only (no lock); every segment copied is checked. Then the persistent
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

    /// Delete a stream: soft (it can be written again) or, with --hard, for good (a tombstone).
    #[command(
        long_about = "\
Delete a stream, if it is at --expected-version. Prints the position of the record of the
delete.

A soft delete (the default) hides the stream's events from stream reads and subscriptions at
once: the stream reads as not found (exit 3). Appending to it later brings it back with only
the new events, their versions continuing the old numbering. With --hard the stream is
tombstoned: it reads as deleted and every later append to it fails (exit 3), for good.

$all keeps the deleted events until `annal scavenge` removes them; positions never change.
The store must not be open in another process (exit 6 if it is).",
        after_help = "\
Examples:
  annal delete ./events order-1
  annal delete ./events order-1 --expected-version 7
  annal delete ./events order-1 --hard --json"
    )]
    Delete(DeleteArgs),

    /// Show or change a stream's metadata: max count, max age, truncate-before, custom keys.
    #[command(
        long_about = "\
Show or change a stream's metadata: rules that hide old events from stream reads (and let
`annal scavenge` remove them from the log) and free-form keys.

  max-count N        keep only the last N events
  max-age SECONDS    hide events committed longer ago than this
  truncate-before V  hide events with a version below V (a soft delete sets this)

Without --set options it prints the metadata and its version (the version of the stream's
metadata stream), from a read-only open. With them it reads the metadata, applies the changes
(--clear first starts from no metadata at all), writes the result with the version it read as
the expected version and prints the new version. That needs the store for itself (exit 6 if
another process has it open).",
        after_help = "\
Examples:
  annal metadata ./events order-1
  annal metadata ./events order-1 --set-max-count 100 --set owner=billing
  annal metadata ./events order-1 --clear --set-max-age 86400 --json"
    )]
    Metadata(MetadataArgs),

    /// Reclaim the space of deleted and expired events by rewriting sealed segments.
    #[command(
        long_about = "\
Reclaim the space of events no read can return any more, by rewriting the sealed segments
without them. Removed: every event of a tombstoned stream (delete --hard); events below a
stream's truncate-before or before its last max-count ones; the events of soft-deleted
streams; events older than max-age; replaced metadata. Never removed: the last event of each
stream that is not tombstoned (it carries the stream's version), anything in the active
(last) segment, and the --keep-recent most recent events of the log (default 100000).

Positions never change: what remains keeps its position, and reading $all skips the gaps.
Each segment is replaced atomically, so a crash leaves it either as it was or scavenged.

The store must not be open in another process (exit 6 if it is). A progress bar shows on a
terminal; the result is printed at the end.",
        after_help = "\
Examples:
  annal scavenge ./events
  annal scavenge ./events --keep-recent 1000 --json"
    )]
    Scavenge(ScavengeArgs),

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

/// `annal delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The store directory.
    pub dir: PathBuf,
    /// The stream to delete.
    pub stream: String,
    /// What the stream must be at for the delete to happen: any, no-stream, exists, or the
    /// version of its last event.
    #[arg(long, value_name = "any|no-stream|exists|N", default_value = "any",
          value_parser = parse_expected)]
    pub expected_version: ExpectedVersion,
    /// Delete for good (a tombstone): the stream can never be read or written again.
    #[arg(long)]
    pub hard: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `annal metadata`.
#[derive(Debug, Args)]
pub struct MetadataArgs {
    /// The store directory.
    pub dir: PathBuf,
    /// The stream whose metadata to show or change.
    pub stream: String,
    /// Keep only the stream's last N events.
    #[arg(long, value_name = "N")]
    pub set_max_count: Option<u64>,
    /// Hide the stream's events committed longer ago than this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub set_max_age: Option<u64>,
    /// Hide the stream's events with a version below V.
    #[arg(long, value_name = "V")]
    pub set_truncate_before: Option<u64>,
    /// Set a custom key; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,
    /// Start from no metadata at all, then apply the --set options (alone: remove every rule
    /// and key).
    #[arg(long)]
    pub clear: bool,
    /// Print one JSON object instead of lines.
    #[arg(long)]
    pub json: bool,
}

impl MetadataArgs {
    /// Whether the command changes the metadata (and so opens the store for writing).
    pub fn changes(&self) -> bool {
        self.clear
            || self.set_max_count.is_some()
            || self.set_max_age.is_some()
            || self.set_truncate_before.is_some()
            || !self.set.is_empty()
    }
}

/// `annal scavenge`.
#[derive(Debug, Args)]
pub struct ScavengeArgs {
    /// The store directory.
    pub dir: PathBuf,
    /// Never remove any of the N most recent events of the log: a retried append is checked
    /// for duplicates against them (the idempotency window). Default: the library's, 100000.
    #[arg(long, value_name = "N")]
    pub keep_recent: Option<u32>,
    /// Print the report as one JSON object.
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

/// Parses `KEY=VALUE` (the value may contain `=`; the key must not be empty).
fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
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
    fn key_values_split_at_the_first_equals_sign() {
        assert_eq!(parse_key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_key_value("a="), Ok(("a".into(), String::new())));
        assert!(parse_key_value("=b").is_err());
        assert!(parse_key_value("ab").is_err());
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
