//! Graceful shutdown: a live subscription is ended (not left hanging) and serving returns.

use std::time::Duration;

use annal_server::proto::streams::{
    append_req::options::ExpectedStreamRevision as Expected,
    read_req::options::{CountOption, FilterOption, SubscriptionOptions, all_options::AllOption},
    read_resp::Content,
};

use crate::harness::{TestServer, all_from, append, empty, read_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_live_subscriptions_and_returns() {
    let server = TestServer::start().await;
    let mut client = server.streams().await;
    append(&mut client, "s", Expected::Any(empty()), &["A"]).await.unwrap();
    let request = read_request(
        all_from(AllOption::Start(empty())),
        false,
        CountOption::Subscription(SubscriptionOptions {}),
        FilterOption::NoFilter(empty()),
    );
    let mut stream = client.read(request).await.unwrap().into_inner();
    loop {
        let reply = stream.message().await.unwrap().unwrap();
        if matches!(reply.content, Some(Content::CaughtUp(_))) {
            break;
        }
    }
    let stopped = tokio::time::timeout(Duration::from_secs(30), server.stop()).await;
    stopped.expect("shutdown finished").unwrap();
    let end = tokio::time::timeout(Duration::from_secs(30), stream.message()).await.unwrap();
    match end {
        Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable),
        Ok(None) => {}
        Ok(Some(reply)) => panic!("unexpected reply after shutdown: {reply:?}"),
    }
}
