//! The group-commit counters in `Store::stats().commits`: exact counts for a single writer
//! (each append its own group and its own fdatasync), none for an append refused before
//! writing, no fsyncs without durability, and consistent sums under concurrent appends.

use annal::{Durability, ExpectedVersion, FSYNC_BUCKETS, GROUP_BUCKETS, Options};

use crate::common::{event, open};

#[test]
fn commit_stats_sequential_appends_count_one_fsync_and_one_group_each() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Options::default());
    for n in 0..10 {
        store.append("s", ExpectedVersion::Any, [event(n)]).unwrap();
    }
    store.append("s", ExpectedVersion::Any, [event(10), event(11), event(12)]).unwrap();
    let commits = store.stats().commits;
    assert_eq!(commits.fsyncs, 11);
    assert_eq!(commits.groups, 11);
    assert_eq!(commits.group_events_sum, 13);
    let mut groups_by_size = [0; GROUP_BUCKETS];
    groups_by_size[0] = 10; // at most 1 event
    groups_by_size[2] = 1; // 3 events: above 2, at most 4
    assert_eq!(commits.group_events_buckets, groups_by_size);
    assert_eq!(commits.fsync_micros_buckets.iter().sum::<u64>(), 11);
    store.close();
}

#[test]
fn commit_stats_append_refused_by_its_expected_version_counts_no_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Options::default());
    store.append("s", ExpectedVersion::NoStream, [event(0)]).unwrap();
    let wrong = ExpectedVersion::Exact(5);
    assert!(store.append("s", wrong, [event(1)]).is_err());
    let commits = store.stats().commits;
    assert_eq!((commits.groups, commits.fsyncs), (1, 1));
    store.close();
}

#[test]
fn commit_stats_without_durability_count_groups_and_no_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Options { durability: Durability::None, ..Options::default() });
    for n in 0..5 {
        store.append("s", ExpectedVersion::Any, [event(n)]).unwrap();
    }
    let commits = store.stats().commits;
    assert_eq!((commits.groups, commits.group_events_sum), (5, 5));
    assert_eq!(commits.fsyncs, 0);
    assert_eq!(commits.fsync_micros_buckets, [0; FSYNC_BUCKETS]);
    store.close();
}

#[test]
fn commit_stats_concurrent_appends_sum_to_the_events_and_one_fsync_per_group() {
    const THREADS: u64 = 4;
    const APPENDS: u64 = 25;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Options::default());
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let store = store.clone();
            scope.spawn(move || {
                for n in 0..APPENDS {
                    store.append(&format!("s-{t}"), ExpectedVersion::Any, [event(n)]).unwrap();
                }
            });
        }
    });
    let commits = store.stats().commits;
    assert_eq!(commits.group_events_sum, THREADS * APPENDS);
    assert_eq!(commits.fsyncs, commits.groups);
    assert!(commits.groups <= THREADS * APPENDS);
    assert_eq!(commits.group_events_buckets.iter().sum::<u64>(), commits.groups);
    assert_eq!(commits.fsync_micros_buckets.iter().sum::<u64>(), commits.fsyncs);
    store.close();
}
