//! The store's figures in a scrape: group commits (fdatasync count and latency, events per
//! group) counted exactly for one client appending in sequence, and a consumer group's lag.

use annal::{Filter, GroupSettings};
use annal_server::proto::streams::{
    append_req::options::ExpectedStreamRevision as Expected, streams_client::StreamsClient,
};
use tonic::transport::Channel;

use crate::{
    harness::{append, empty},
    security::Secured,
};

/// The value of the sample `name` (labels included, as rendered) in `scrape`.
fn sample(scrape: &str, name: &str) -> f64 {
    let line = scrape
        .lines()
        .find(|l| l.rsplit_once(' ').is_some_and(|(n, _)| n == name))
        .unwrap_or_else(|| panic!("{name} not in\n{scrape}"));
    line.rsplit_once(' ').unwrap().1.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_metrics_sequential_appends_count_one_fsync_and_one_group_each() {
    let server = Secured::start(None, None).await;
    let channel = Channel::from_shared(format!("http://{}", server.addr)).unwrap();
    let mut client = StreamsClient::new(channel.connect().await.unwrap());
    for _ in 0..7 {
        append(&mut client, "s", Expected::Any(empty()), &["E"]).await.unwrap();
    }
    append(&mut client, "s", Expected::Any(empty()), &["E", "F", "G"]).await.unwrap();
    let scrape = server.metrics.render(&server.store);
    let expect = [
        ("annal_store_fsyncs_total", 8.0),
        ("annal_store_group_commits_total", 8.0),
        ("annal_store_fsync_seconds_count", 8.0),
        ("annal_store_group_events_bucket{le=\"1\"}", 7.0),
        ("annal_store_group_events_bucket{le=\"2\"}", 7.0),
        ("annal_store_group_events_bucket{le=\"4\"}", 8.0),
        ("annal_store_group_events_bucket{le=\"+Inf\"}", 8.0),
        ("annal_store_group_events_sum", 10.0),
        ("annal_store_group_events_count", 8.0),
    ];
    for (name, value) in expect {
        assert_eq!(sample(&scrape, name), value, "{name}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_metrics_consumer_group_lag_is_the_head_minus_its_checkpoint() {
    let server = Secured::start(None, None).await;
    let scrape = server.metrics.render(&server.store);
    assert!(scrape.contains("# TYPE annal_persistent_subscription_lag gauge\n"));
    assert!(!scrape.contains("annal_persistent_subscription_lag{"), "no group yet");
    let consumer =
        server.store.connect_to_group("audit.log", Filter::all(), GroupSettings::default());
    let consumer = consumer.unwrap();
    let channel = Channel::from_shared(format!("http://{}", server.addr)).unwrap();
    let mut client = StreamsClient::new(channel.connect().await.unwrap());
    append(&mut client, "s", Expected::Any(empty()), &["E", "F", "G", "H", "I"]).await.unwrap();
    let scrape = server.metrics.render(&server.store);
    // Nothing was acknowledged: the checkpoint is still at the start.
    assert_eq!(sample(&scrape, "annal_persistent_subscription_lag{group=\"audit.log\"}"), 5.0);
    assert_eq!(
        sample(&scrape, "annal_persistent_subscription_consumers{group=\"audit.log\"}"),
        1.0
    );
    drop(consumer);
    server.stop().await;
}
