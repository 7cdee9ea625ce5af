//! Live subscriptions at scale and under a slow client: many concurrent subscribers each get
//! every event in order (no thread per subscriber), and a client that stops reading is told
//! `fell_behind`, loses nothing, and hears `caught_up` again once it has read to the head.

use std::time::Duration;

use annal_server::proto::streams::{
    AppendReq, ReadResp,
    append_req::options::ExpectedStreamRevision as Expected,
    read_req::options::{
        CountOption, FilterOption, SubscriptionOptions, all_options::AllOption,
        stream_options::RevisionOption,
    },
    read_resp::Content,
    streams_client::StreamsClient,
};
use tonic::{Streaming, transport::Channel};

use crate::harness::{
    TestServer, all_from, append, append_options, empty, events, proposed, read_request,
    stream_from,
};

/// How long a test waits for a reply that must come (a hang fails instead of blocking CI).
const REPLY_WAIT: Duration = Duration::from_secs(60);

async fn next(stream: &mut Streaming<ReadResp>) -> Content {
    let reply = tokio::time::timeout(REPLY_WAIT, stream.message()).await.expect("a reply in time");
    reply.unwrap().unwrap().content.unwrap()
}

/// Opens a subscription to `$all` (even `n`) or to stream `s` (odd `n`) from the start, and
/// waits for its confirmation and `caught_up`.
async fn subscribe(client: &mut StreamsClient<Channel>, n: usize) -> Streaming<ReadResp> {
    let from = if n.is_multiple_of(2) {
        all_from(AllOption::Start(empty()))
    } else {
        stream_from("s", RevisionOption::Start(empty()))
    };
    let subscription = CountOption::Subscription(SubscriptionOptions {});
    let request = read_request(from, false, subscription, FilterOption::NoFilter(empty()));
    let mut stream = client.read(request).await.unwrap().into_inner();
    assert!(matches!(next(&mut stream).await, Content::Confirmation(_)));
    assert!(matches!(next(&mut stream).await, Content::CaughtUp(_)));
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_thousand_subscribers_each_receive_every_event_in_order() {
    const SUBSCRIBERS: usize = 1_000;
    const APPENDS: usize = 20;
    const PER_APPEND: usize = 5;
    let server = TestServer::start().await;
    // Several connections: one HTTP/2 connection carries a bounded number of calls.
    let mut clients = Vec::new();
    for _ in 0..10 {
        clients.push(server.streams().await);
    }
    let mut subscribers = Vec::with_capacity(SUBSCRIBERS);
    let connections = clients.len();
    for n in 0..SUBSCRIBERS {
        subscribers.push(subscribe(&mut clients[n % connections], n).await);
    }
    let readers: Vec<_> = subscribers
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let mut got = Vec::new();
                while got.len() < APPENDS * PER_APPEND {
                    if let Content::Event(e) = next(&mut stream).await {
                        let e = e.event.unwrap();
                        got.push((e.stream_revision, e.metadata["type"].clone()));
                    }
                }
                got
            })
        })
        .collect();
    let types: Vec<String> = (0..APPENDS * PER_APPEND).map(|i| format!("E{i}")).collect();
    for chunk in types.chunks(PER_APPEND) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        append(&mut clients[0], "s", Expected::Any(empty()), &chunk).await.unwrap();
    }
    let expected: Vec<(u64, String)> =
        types.iter().enumerate().map(|(i, t)| (i as u64, t.clone())).collect();
    for reader in readers {
        assert_eq!(reader.await.unwrap(), expected);
    }
    server.stop().await.unwrap();
}

/// One append of `count` events of `bytes` of data each to `stream`.
fn big_append(stream: &str, count: usize, bytes: usize) -> Vec<AppendReq> {
    let data = format!("\"{}\"", "x".repeat(bytes));
    let mut requests = vec![append_options(stream, Expected::Any(empty()))];
    requests.extend((0..count).map(|_| proposed("Big", &data)));
    requests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_subscriber_that_stops_reading_falls_behind_then_catches_up_losing_nothing() {
    // 32 MiB: more than the HTTP/2 windows, the socket buffers and the reply queue hold.
    const APPENDS: usize = 32;
    const PER_APPEND: usize = 64;
    const BYTES: usize = 15 * 1024;
    let server = TestServer::start().await;
    let mut writer = server.streams().await;
    let mut reader = server.streams().await;
    let mut stream = subscribe(&mut reader, 1).await;
    for _ in 0..APPENDS {
        let requests = big_append("s", PER_APPEND, BYTES);
        writer.append(tokio_stream::iter(requests)).await.unwrap();
    }
    let total = APPENDS * PER_APPEND;
    let mut replies = Vec::new();
    let mut fell_behind_at = None;
    loop {
        let content = next(&mut stream).await;
        match &content {
            Content::FellBehind(_) => fell_behind_at = Some(replies.len()),
            Content::CaughtUp(_) if events(&replies).len() == total => break,
            _ => {}
        }
        replies.push(ReadResp { content: Some(content) });
    }
    let fell_behind_at = fell_behind_at.expect("a fell_behind reply");
    assert!(fell_behind_at < replies.len(), "fell_behind before the last event");
    let revisions: Vec<u64> = events(&replies).into_iter().map(|(_, r, _)| r).collect();
    assert_eq!(revisions, (0..total as u64).collect::<Vec<_>>());
    server.stop().await.unwrap();
}
