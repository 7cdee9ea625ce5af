//! Operating the server: the Prometheus endpoint counts exactly what was done, and the
//! connection, per-connection subscription and message size limits refuse with the protocol's
//! errors.

use std::time::Duration;

use annal_server::{
    Limits,
    proto::streams::{
        append_req::options::ExpectedStreamRevision as Expected,
        read_req::options::{
            CountOption, FilterOption, SubscriptionOptions, all_options::AllOption,
            stream_options::RevisionOption,
        },
        read_resp::Content,
        streams_client::StreamsClient,
    },
};
use tonic::transport::Channel;

use crate::harness::{
    TestServer, all_from, append, append_options, empty, read_all_replies, read_request,
    stream_from,
};

const REPLY_WAIT: Duration = Duration::from_secs(30);

fn subscribe_all() -> annal_server::proto::streams::ReadReq {
    read_request(
        all_from(AllOption::Start(empty())),
        false,
        CountOption::Subscription(SubscriptionOptions {}),
        FilterOption::NoFilter(empty()),
    )
}

/// Waits until the metric `name` reads `value` (gauges move when a task notices a close).
async fn settles(server: &TestServer, name: &str, value: f64) {
    for _ in 0..300 {
        if server.metric(name).await == value {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.metric(name).await, value, "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_appends_and_reads_count_exactly_what_was_done() {
    let server = TestServer::start().await;
    let mut client = server.streams().await;
    for _ in 0..5 {
        append(&mut client, "a", Expected::Any(empty()), &["E"]).await.unwrap();
    }
    append(&mut client, "b", Expected::NoStream(empty()), &["E", "F", "G"]).await.unwrap();
    let conflict = append(&mut client, "b", Expected::Revision(0), &["H"]).await.unwrap();
    assert!(conflict.result.is_some());
    let read = || {
        read_request(
            stream_from("a", RevisionOption::Start(empty())),
            false,
            CountOption::Count(100),
            FilterOption::NoFilter(empty()),
        )
    };
    read_all_replies(&mut client, read()).await.unwrap();
    read_all_replies(&mut client, read()).await.unwrap();
    let mut live = client.read(subscribe_all()).await.unwrap().into_inner();
    let first = tokio::time::timeout(REPLY_WAIT, live.message()).await.unwrap().unwrap();
    assert!(matches!(first.unwrap().content, Some(Content::Confirmation(_))));

    let expect = [
        ("annal_server_appends_total{outcome=\"committed\"}", 6.0),
        ("annal_server_appends_total{outcome=\"wrong_expected_version\"}", 1.0),
        ("annal_server_appends_total{outcome=\"failed\"}", 0.0),
        ("annal_server_events_appended_total", 8.0),
        ("annal_server_append_seconds_count", 7.0),
        ("annal_server_append_events_count", 6.0),
        ("annal_server_append_events_bucket{le=\"1\"}", 5.0),
        ("annal_server_append_events_bucket{le=\"2\"}", 5.0),
        ("annal_server_append_events_bucket{le=\"4\"}", 6.0),
        ("annal_server_append_events_sum", 8.0),
        ("annal_server_reads_total", 2.0),
        ("annal_server_subscriptions_total", 1.0),
        ("annal_server_subscriptions_open", 1.0),
        ("annal_server_connections_total", 1.0),
        ("annal_server_connections_open", 1.0),
        ("annal_store_head_position", 8.0),
        ("annal_store_streams", 2.0),
    ];
    for (name, value) in expect {
        assert_eq!(server.metric(name).await, value, "{name}");
    }
    drop(live);
    settles(&server, "annal_server_subscriptions_open", 0.0).await;
    let (status, _) = server.http_get("/other").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_are_closed_and_a_closed_one_frees_its_place() {
    let server = TestServer::start_with(Limits { connections_max: 1, ..Limits::default() }).await;
    let mut first = server.streams().await;
    append(&mut first, "s", Expected::Any(empty()), &["E"]).await.unwrap();
    let endpoint = Channel::from_shared(format!("http://{}", server.addr)).unwrap();
    let refused = match endpoint.connect().await {
        Err(_) => None,
        Ok(channel) => {
            let mut second = StreamsClient::new(channel);
            Some(append(&mut second, "s", Expected::Any(empty()), &["E"]).await.unwrap_err())
        }
    };
    if let Some(status) = refused {
        // A connection closed under it (the code, UNAVAILABLE, CANCELLED or UNKNOWN, depends on
        // when the client notices): a transport error, not a reply of the server's.
        let source = std::error::Error::source(&status);
        let transport = source.is_some_and(|s| s.is::<tonic::transport::Error>());
        assert!(transport, "{status:?}");
    }
    // The client may have tried again before giving up: each attempt is refused and counted.
    assert!(server.metric("annal_server_connections_refused_total").await >= 1.0);
    drop(first);
    settles(&server, "annal_server_connections_open", 0.0).await;
    let mut third = server.streams().await;
    append(&mut third, "s", Expected::Any(empty()), &["E"]).await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_past_the_per_connection_limit_are_refused_on_that_connection_only() {
    let limits = Limits { subscriptions_per_connection_max: 1, ..Limits::default() };
    let server = TestServer::start_with(limits).await;
    let mut client = server.streams().await;
    let mut first = client.read(subscribe_all()).await.unwrap().into_inner();
    let confirmed = tokio::time::timeout(REPLY_WAIT, first.message()).await.unwrap().unwrap();
    assert!(matches!(confirmed.unwrap().content, Some(Content::Confirmation(_))));
    let status = client.read(subscribe_all()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    let mut other = server.streams().await;
    let mut elsewhere = other.read(subscribe_all()).await.unwrap().into_inner();
    let confirmed = tokio::time::timeout(REPLY_WAIT, elsewhere.message()).await.unwrap().unwrap();
    assert!(matches!(confirmed.unwrap().content, Some(Content::Confirmation(_))));
    assert_eq!(server.metric("annal_server_subscriptions_refused_total").await, 1.0);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_message_past_the_transport_limit_is_refused_and_nothing_is_written() {
    let server =
        TestServer::start_with(Limits { append_bytes_max: 1000, ..Limits::default() }).await;
    let mut client = server.streams().await;
    let huge = "x".repeat(annal_server::MESSAGE_BYTES_SLACK + 4096);
    let requests =
        vec![append_options("big", Expected::Any(empty())), crate::harness::proposed("E", &huge)];
    let status = client.append(tokio_stream::iter(requests)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    append(&mut client, "big", Expected::NoStream(empty()), &["E"]).await.unwrap();
    server.stop().await.unwrap();
}
