//! The store's figures in a scrape, read when it renders: sizes and counts from
//! [`annal::Store::stats`], the group-commit histograms (fdatasync count and latency, events
//! per group) from its [`annal::CommitStats`], and each connected consumer group's lag.

use std::fmt::Write as _;

use annal::{CommitStats, FSYNC_MICROS_BOUNDS, GROUP_EVENTS_BOUNDS, Stats, Store};

use crate::metrics::{Family, histogram, metric};

/// Most consumer groups a scrape lists (each is a few lines; a limit on a scrape's size).
pub const GROUPS_RENDERED_MAX: usize = 1000;

/// Writes the store's figures, its commit histograms and its consumer groups.
pub fn render(out: &mut String, store: &Store) {
    let stats = store.stats();
    render_stats(out, &stats);
    render_commits(out, &stats.commits);
    render_groups(out, store);
}

fn render_stats(out: &mut String, stats: &Stats) {
    let figures = [
        ("annal_store_head_position", "The position the next event will get.", stats.head.get()),
        ("annal_store_events", "Positions committed in the log.", stats.events),
        ("annal_store_streams", "Streams the index knows.", stats.streams as u64),
        ("annal_store_segments", "Segment files.", stats.segments as u64),
        ("annal_store_disk_bytes", "Committed bytes in segment files.", stats.disk_bytes),
        (
            "annal_store_index_memory_bytes",
            "Heap bytes held by the indexes.",
            stats.index_memory_bytes as u64,
        ),
        (
            "annal_store_inline_commits_total",
            "Commits made by the appending thread itself.",
            stats.inline_commits,
        ),
        (
            "annal_store_group_commits_total",
            "Groups written and published (one write and one fdatasync each).",
            stats.commits.groups,
        ),
        (
            "annal_store_fsyncs_total",
            "fdatasync calls made to commit groups.",
            stats.commits.fsyncs,
        ),
    ];
    for (name, help, value) in figures {
        let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
        metric(out, name, help, kind, value);
    }
}

fn render_commits(out: &mut String, commits: &CommitStats) {
    let fsync = Family {
        name: "annal_store_fsync_seconds",
        help: "Time of each group commit's fdatasync.",
        scale: 1e6,
    };
    histogram(
        out,
        fsync,
        &FSYNC_MICROS_BOUNDS,
        &commits.fsync_micros_buckets,
        commits.fsync_micros_sum,
    );
    let size = Family {
        name: "annal_store_group_events",
        help: "Events per group commit (per fdatasync).",
        scale: 1.0,
    };
    histogram(
        out,
        size,
        &GROUP_EVENTS_BOUNDS,
        &commits.group_events_buckets,
        commits.group_events_sum,
    );
}

/// Each consumer group with a consumer connected: its lag (head minus checkpoint), events in
/// flight and parked, and consumers.
fn render_groups(out: &mut String, store: &Store) {
    let families = [
        ("annal_persistent_subscription_lag", "Positions between the head and the checkpoint."),
        ("annal_persistent_subscription_in_flight", "Events delivered and not yet acknowledged."),
        ("annal_persistent_subscription_parked", "Parked events."),
        ("annal_persistent_subscription_consumers", "Consumers connected."),
    ];
    let groups: Vec<_> = store
        .list_groups()
        .iter()
        .take(GROUPS_RENDERED_MAX)
        .filter_map(|name| store.group_info(name))
        .collect();
    for (index, (name, help)) in families.into_iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for group in &groups {
            let value = match index {
                0 => group.lag,
                1 => group.in_flight as u64,
                2 => group.parked as u64,
                _ => group.consumers as u64,
            };
            let label = escape_label(&group.name);
            let _ = writeln!(out, "{name}{{group=\"{label}\"}} {value}");
        }
    }
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_label_escapes_backslash_quote_and_newline() {
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }

    #[test]
    fn render_commits_buckets_are_cumulative_with_the_count_at_inf() {
        let mut commits = CommitStats { groups: 3, group_events_sum: 7, ..CommitStats::default() };
        commits.group_events_buckets[0] = 2;
        commits.group_events_buckets[2] = 1;
        let mut out = String::new();
        render_commits(&mut out, &commits);
        assert!(out.contains("annal_store_group_events_bucket{le=\"1\"} 2\n"), "{out}");
        assert!(out.contains("annal_store_group_events_bucket{le=\"2\"} 2\n"), "{out}");
        assert!(out.contains("annal_store_group_events_bucket{le=\"4\"} 3\n"), "{out}");
        assert!(out.contains("annal_store_group_events_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("annal_store_group_events_sum 7\nannal_store_group_events_count 3\n"));
    }
}
