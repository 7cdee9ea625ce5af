//! Subscriptions: confirmation, catch-up, `caught_up`, live events, filters with checkpoints,
//! and a start after the revision or position given.

use std::time::Duration;

use annal_server::proto::streams::{
    ReadResp,
    append_req::options::ExpectedStreamRevision as Expected,
    read_req::{
        self,
        options::{
            CountOption, FilterOption, FilterOptions, SubscriptionOptions, all_options::AllOption,
            filter_options, stream_options::RevisionOption,
        },
    },
    read_resp::Content,
};
use tonic::Streaming;

use crate::harness::{TestServer, all_from, append, empty, events, read_request, stream_from};

/// How long a test waits for a reply that must come (a hang fails instead of blocking CI).
const REPLY_WAIT: Duration = Duration::from_secs(30);

async fn next(stream: &mut Streaming<ReadResp>) -> Content {
    let reply = tokio::time::timeout(REPLY_WAIT, stream.message()).await.expect("a reply in time");
    reply.unwrap().unwrap().content.unwrap()
}

/// Replies up to and including the first one `stop` accepts.
async fn until(stream: &mut Streaming<ReadResp>, stop: impl Fn(&Content) -> bool) -> Vec<ReadResp> {
    let mut replies = Vec::new();
    loop {
        let content = next(stream).await;
        let done = stop(&content);
        replies.push(ReadResp { content: Some(content) });
        if done {
            return replies;
        }
    }
}

fn subscription() -> CountOption {
    CountOption::Subscription(SubscriptionOptions {})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_subscription_catches_up_then_delivers_live_events() {
    let server = TestServer::start().await;
    let mut client = server.streams().await;
    append(&mut client, "s", Expected::Any(empty()), &["A", "B"]).await.unwrap();
    let request = read_request(
        stream_from("s", RevisionOption::Start(empty())),
        false,
        subscription(),
        FilterOption::NoFilter(empty()),
    );
    let mut stream = client.read(request).await.unwrap().into_inner();
    assert!(matches!(next(&mut stream).await, Content::Confirmation(_)));
    let history = until(&mut stream, |c| matches!(c, Content::CaughtUp(_))).await;
    assert_eq!(events(&history), vec![("s".into(), 0, "A".into()), ("s".into(), 1, "B".into())]);

    append(&mut client, "s", Expected::Revision(1), &["C"]).await.unwrap();
    let live = until(&mut stream, |c| matches!(c, Content::Event(_))).await;
    assert_eq!(events(&live), vec![("s".into(), 2, "C".into())]);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_from_a_revision_starts_after_it() {
    let server = TestServer::start().await;
    let mut client = server.streams().await;
    append(&mut client, "s", Expected::Any(empty()), &["A", "B", "C"]).await.unwrap();
    let request = read_request(
        stream_from("s", RevisionOption::Revision(1)),
        false,
        subscription(),
        FilterOption::NoFilter(empty()),
    );
    let mut stream = client.read(request).await.unwrap().into_inner();
    let replies = until(&mut stream, |c| matches!(c, Content::CaughtUp(_))).await;
    assert_eq!(events(&replies), vec![("s".into(), 2, "C".into())]);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_all_subscription_delivers_matching_events_and_checkpoints() {
    let server = TestServer::start().await;
    let mut client = server.streams().await;
    for i in 0..5 {
        append(&mut client, &format!("noise-{i}"), Expected::Any(empty()), &["Noise"])
            .await
            .unwrap();
    }
    append(&mut client, "order-1", Expected::Any(empty()), &["Placed"]).await.unwrap();
    let filter = FilterOptions {
        filter: Some(filter_options::Filter::StreamIdentifier(filter_options::Expression {
            regex: String::new(),
            prefix: vec!["order-".into()],
        })),
        window: Some(filter_options::Window::Max(2)),
        checkpoint_interval_multiplier: 1,
    };
    let request = read_request(
        all_from(AllOption::Start(empty())),
        false,
        subscription(),
        FilterOption::Filter(filter),
    );
    let mut stream = client.read(request).await.unwrap().into_inner();
    let history = until(&mut stream, |c| matches!(c, Content::CaughtUp(_))).await;
    assert_eq!(events(&history), vec![("order-1".into(), 0, "Placed".into())]);
    let checkpoints: Vec<u64> = history
        .iter()
        .filter_map(|r| match &r.content {
            Some(Content::Checkpoint(c)) => Some(c.commit_position),
            _ => None,
        })
        .collect();
    // Every 2 scanned events, and the last scanned one when caught up.
    assert_eq!(checkpoints, vec![1, 3, 5]);

    append(&mut client, "noise-9", Expected::Any(empty()), &["Noise"]).await.unwrap();
    append(&mut client, "order-2", Expected::Any(empty()), &["Placed"]).await.unwrap();
    let live = until(&mut stream, |c| matches!(c, Content::Event(_))).await;
    assert_eq!(events(&live), vec![("order-2".into(), 0, "Placed".into())]);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_subscription_by_event_type_regex_from_a_position_starts_after_it() {
    let server = TestServer::start().await;
    let mut client = server.streams().await;
    append(&mut client, "a", Expected::Any(empty()), &["Keep", "Drop", "Keep"]).await.unwrap();
    let filter = FilterOptions {
        filter: Some(filter_options::Filter::EventType(filter_options::Expression {
            regex: "^Ke+p$".into(),
            prefix: vec![],
        })),
        window: Some(filter_options::Window::Count(empty())),
        checkpoint_interval_multiplier: 100,
    };
    let from = AllOption::Position(read_req::options::Position {
        commit_position: 0,
        prepare_position: 0,
    });
    let request = read_request(all_from(from), false, subscription(), FilterOption::Filter(filter));
    let mut stream = client.read(request).await.unwrap().into_inner();
    let history = until(&mut stream, |c| matches!(c, Content::CaughtUp(_))).await;
    assert_eq!(events(&history), vec![("a".into(), 2, "Keep".into())]);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_to_a_tombstoned_stream_fails_with_stream_deleted() {
    let server = TestServer::start().await;
    let mut client = server.streams().await;
    append(&mut client, "t", Expected::Any(empty()), &["A"]).await.unwrap();
    crate::delete::tombstone(&mut client, "t").await.unwrap();
    let request = read_request(
        stream_from("t", RevisionOption::Start(empty())),
        false,
        subscription(),
        FilterOption::NoFilter(empty()),
    );
    let mut stream = client.read(request).await.unwrap().into_inner();
    let status = tokio::time::timeout(REPLY_WAIT, stream.message()).await.unwrap().unwrap_err();
    assert_eq!(crate::harness::exception(&status).as_deref(), Some("stream-deleted"));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_past_the_limit_are_refused_and_a_closed_one_frees_its_place() {
    let limits = annal_server::Limits { subscriptions_max: 1, ..annal_server::Limits::default() };
    let server = TestServer::start_with(limits).await;
    let mut client = server.streams().await;
    let request = || {
        read_request(
            all_from(AllOption::Start(empty())),
            false,
            subscription(),
            FilterOption::NoFilter(empty()),
        )
    };
    let mut first = client.read(request()).await.unwrap().into_inner();
    assert!(matches!(next(&mut first).await, Content::Confirmation(_)));
    let status = client.read(request()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    drop(first);
    // The dropped subscription's task notices within its poll interval and lets go.
    let mut retries = 0;
    let mut second = loop {
        match client.read(request()).await {
            Ok(reply) => break reply.into_inner(),
            Err(status) if status.code() == tonic::Code::ResourceExhausted && retries < 300 => {
                retries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => panic!("{status:?}"),
        }
    };
    assert!(matches!(next(&mut second).await, Content::Confirmation(_)));
    server.stop().await.unwrap();
}
