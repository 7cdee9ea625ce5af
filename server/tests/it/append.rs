//! Append: each expected-revision kind, the conflict as a reply message, the size limit.

use annal_server::{
    Limits,
    proto::streams::{
        append_req::options::ExpectedStreamRevision as Expected,
        append_resp::{self, success, wrong_expected_version as wev},
    },
};

use crate::harness::{TestServer, append, empty, exception, trailer};

fn success(resp: append_resp::Result) -> append_resp::Success {
    match resp {
        append_resp::Result::Success(s) => s,
        other => panic!("expected success, got {other:?}"),
    }
}

fn revision(s: &append_resp::Success) -> u64 {
    match s.current_revision_option {
        Some(success::CurrentRevisionOption::CurrentRevision(r)) => r,
        ref other => panic!("no revision: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_each_expected_kind_succeeds_when_it_holds() {
    let server = TestServer::start().await;
    let mut client = server.streams().await;
    let r = append(&mut client, "s", Expected::NoStream(empty()), &["A", "B"]).await.unwrap();
    let first = success(r.result.unwrap());
    assert_eq!(revision(&first), 1);
    let Some(success::PositionOption::Position(p)) = first.position_option else { panic!() };
    assert_eq!(p.commit_position, p.prepare_position);
    assert_eq!(p.commit_position, 1, "annal positions start at 0: B is the second event");

    let r = append(&mut client, "s", Expected::Revision(1), &["C"]).await.unwrap();
    assert_eq!(revision(&success(r.result.unwrap())), 2);
    let r = append(&mut client, "s", Expected::StreamExists(empty()), &["D"]).await.unwrap();
    assert_eq!(revision(&success(r.result.unwrap())), 3);
    let r = append(&mut client, "s", Expected::Any(empty()), &["E"]).await.unwrap();
    assert_eq!(revision(&success(r.result.unwrap())), 4);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_with_a_wrong_expected_revision_replies_with_the_current_one() {
    let server = TestServer::start().await;
    let mut client = server.streams().await;
    append(&mut client, "s", Expected::Any(empty()), &["A", "B"]).await.unwrap();

    let r = append(&mut client, "s", Expected::Revision(0), &["X"]).await.unwrap();
    let Some(append_resp::Result::WrongExpectedVersion(w)) = r.result else { panic!("{r:?}") };
    assert_eq!(w.current_revision_option, Some(wev::CurrentRevisionOption::CurrentRevision(1)));
    assert_eq!(w.expected_revision_option, Some(wev::ExpectedRevisionOption::ExpectedRevision(0)));

    let r = append(&mut client, "s", Expected::NoStream(empty()), &["X"]).await.unwrap();
    let Some(append_resp::Result::WrongExpectedVersion(w)) = r.result else { panic!("{r:?}") };
    assert!(matches!(
        w.expected_revision_option,
        Some(wev::ExpectedRevisionOption::ExpectedNoStream(_))
    ));

    let r = append(&mut client, "missing", Expected::StreamExists(empty()), &["X"]).await.unwrap();
    let Some(append_resp::Result::WrongExpectedVersion(w)) = r.result else { panic!("{r:?}") };
    assert!(matches!(
        w.current_revision_option,
        Some(wev::CurrentRevisionOption::CurrentNoStream(_))
    ));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_over_the_size_limit_is_maximum_append_size_exceeded_and_writes_nothing() {
    let server =
        TestServer::start_with(Limits { append_bytes_max: 1000, ..Limits::default() }).await;
    let mut client = server.streams().await;
    let big = "x".repeat(600);
    let mut requests = vec![crate::harness::append_options("big", Expected::Any(empty()))];
    requests.push(crate::harness::proposed("A", &big));
    requests.push(crate::harness::proposed("A", &big));
    let status = client.append(tokio_stream::iter(requests)).await.unwrap_err();
    assert_eq!(exception(&status).as_deref(), Some("maximum-append-size-exceeded"));
    assert_eq!(trailer(&status, "maximum-append-size").as_deref(), Some("1000"));
    let r = append(&mut client, "big", Expected::NoStream(empty()), &["A"]).await.unwrap();
    assert_eq!(revision(&success(r.result.unwrap())), 0, "the refused append left nothing");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_to_a_tombstoned_stream_is_stream_deleted() {
    let server = TestServer::start().await;
    let mut client = server.streams().await;
    append(&mut client, "t", Expected::Any(empty()), &["A"]).await.unwrap();
    crate::delete::tombstone(&mut client, "t").await.unwrap();
    let status = append(&mut client, "t", Expected::Any(empty()), &["B"]).await.unwrap_err();
    assert_eq!(exception(&status).as_deref(), Some("stream-deleted"));
    assert_eq!(trailer(&status, "stream-name").as_deref(), Some("t"));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_without_an_event_type_is_invalid_argument() {
    let server = TestServer::start().await;
    let mut client = server.streams().await;
    let status = append(&mut client, "s", Expected::Any(empty()), &[""]).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    server.stop().await.unwrap();
}
