//! The v2 AppendSession: several streams appended atomically, each against its own expected
//! revision, with the v2 errors (one detail in `grpc-status-details-bin`, repeating the status).

use std::collections::HashMap;

use annal_server::{
    Limits,
    proto::{
        google::rpc,
        streams::{
            append_req::options::ExpectedStreamRevision as Expected,
            read_req::options::{
                CountOption, FilterOption, all_options::AllOption, stream_options::RevisionOption,
            },
            read_resp::Content,
        },
        v2::{
            AppendRecord, AppendRequest, AppendSessionResponse, SchemaFormat, SchemaInfo,
            errors::{
                AppendTransactionSizeExceededErrorDetails, StreamRevisionConflictErrorDetails,
                StreamTombstonedErrorDetails,
            },
            streams_service_client::StreamsServiceClient,
        },
    },
};
use prost::Message;
use tonic::{Code, Status, transport::Channel};

use crate::harness::{
    TestServer, all_from, append, empty, events, read_all_replies, read_request, stream_from,
};

fn record(event_type: &str, data: &str) -> AppendRecord {
    let tag =
        prost_types::Value { kind: Some(prost_types::value::Kind::StringValue("test".to_owned())) };
    AppendRecord {
        record_id: Some(uuid::Uuid::new_v4().to_string()),
        properties: HashMap::from([("by".to_owned(), tag)]),
        schema: Some(SchemaInfo {
            format: SchemaFormat::Json as i32,
            name: event_type.to_owned(),
            id: None,
        }),
        data: data.as_bytes().to_vec(),
        stream: String::new(),
    }
}

fn part(stream: &str, expected: Option<i64>, types: &[&str]) -> AppendRequest {
    AppendRequest {
        stream: stream.to_owned(),
        records: types.iter().map(|t| record(t, "{}")).collect(),
        expected_revision: expected,
    }
}

async fn session(
    client: &mut StreamsServiceClient<Channel>,
    parts: Vec<AppendRequest>,
) -> Result<AppendSessionResponse, Status> {
    client.append_session(tokio_stream::iter(parts)).await.map(tonic::Response::into_inner)
}

/// The one detail of a v2 error, checked to repeat the status's code and message.
fn detail(status: &Status) -> prost_types::Any {
    let inner = rpc::Status::decode(status.details()).expect("grpc-status-details-bin");
    assert_eq!((inner.code, inner.message.as_str()), (status.code() as i32, status.message()));
    inner.details.expect("one detail")
}

async fn all_events(server: &TestServer) -> Vec<(String, u64, String)> {
    let mut client = server.streams().await;
    let request = read_request(
        all_from(AllOption::Start(empty())),
        false,
        CountOption::Count(1000),
        FilterOption::NoFilter(empty()),
    );
    events(&read_all_replies(&mut client, request).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_appends_every_stream_atomically_and_reports_each() {
    let server = TestServer::start().await;
    let mut streams = server.streams().await;
    append(&mut streams, "b", Expected::Any(empty()), &["B0"]).await.unwrap();
    let mut client = StreamsServiceClient::new(server.channel().await);
    let parts = vec![part("a", Some(-1), &["A0", "A1"]), part("b", Some(0), &["B1"])];
    let reply = session(&mut client, parts).await.unwrap();
    let output: Vec<_> =
        reply.output.iter().map(|o| (o.stream.as_str(), o.stream_revision, o.position)).collect();
    assert_eq!(output, [("a", 1, Some(2)), ("b", 1, Some(3))]);
    assert_eq!(reply.position, 3);

    let request = read_request(
        stream_from("a", RevisionOption::Start(empty())),
        false,
        CountOption::Count(10),
        FilterOption::NoFilter(empty()),
    );
    let replies = read_all_replies(&mut streams, request).await.unwrap();
    let Some(Content::Event(first)) = &replies[0].content else { panic!("an event") };
    let first = first.event.as_ref().unwrap();
    assert_eq!(first.metadata["content-type"], "application/json");
    assert_eq!(first.custom_metadata, br#"{"by":"test"}"#);
    assert_eq!(events(&replies), [("a".into(), 0, "A0".into()), ("a".into(), 1, "A1".into())]);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_with_one_revision_conflict_appends_nothing() {
    let server = TestServer::start().await;
    let mut streams = server.streams().await;
    append(&mut streams, "b", Expected::Any(empty()), &["B0", "B1"]).await.unwrap();
    let mut client = StreamsServiceClient::new(server.channel().await);
    let parts = vec![part("a", Some(-1), &["A0"]), part("b", Some(0), &["B2"])];
    let status = session(&mut client, parts).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let detail = detail(&status);
    assert!(
        detail
            .type_url
            .ends_with("/kurrentdb.protocol.v2.streams.errors.StreamRevisionConflictErrorDetails")
    );
    let details = StreamRevisionConflictErrorDetails::decode(detail.value.as_slice()).unwrap();
    assert_eq!(
        (details.stream.as_str(), details.expected_revision, details.actual_revision),
        ("b", 0, 1)
    );
    let types: Vec<String> = all_events(&server).await.into_iter().map(|e| e.2).collect();
    assert_eq!(types, ["B0", "B1"]);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_to_a_tombstoned_stream_fails_with_stream_tombstoned() {
    let server = TestServer::start().await;
    let mut client = StreamsServiceClient::new(server.channel().await);
    session(&mut client, vec![part("gone", None, &["X"])]).await.unwrap();
    let mut v1 = server.streams().await;
    crate::delete::tombstone(&mut v1, "gone").await.unwrap();
    let status = session(&mut client, vec![part("ok", None, &["Y"]), part("gone", None, &["Z"])])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let detail = detail(&status);
    assert!(detail.type_url.ends_with(".StreamTombstonedErrorDetails"));
    let details = StreamTombstonedErrorDetails::decode(detail.value.as_slice()).unwrap();
    assert_eq!(details.stream, "gone");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_over_the_size_limit_is_aborted_with_its_size() {
    let limits = Limits { append_bytes_max: 1000, ..Limits::default() };
    let server = TestServer::start_with(limits).await;
    let mut client = StreamsServiceClient::new(server.channel().await);
    let big = format!("\"{}\"", "x".repeat(600));
    let mut parts = vec![part("a", None, &[]), part("b", None, &[])];
    parts[0].records.push(record("T", &big));
    parts[1].records.push(record("T", &big));
    let status = session(&mut client, parts).await.unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    let detail = detail(&status);
    assert!(detail.type_url.ends_with(".AppendTransactionSizeExceededErrorDetails"));
    let details =
        AppendTransactionSizeExceededErrorDetails::decode(detail.value.as_slice()).unwrap();
    assert_eq!(details.max_size, 1000);
    assert!(details.size > 1000, "{}", details.size);
    assert!(all_events(&server).await.is_empty());
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_naming_a_stream_twice_is_aborted() {
    let server = TestServer::start().await;
    let mut client = StreamsServiceClient::new(server.channel().await);
    let parts = vec![part("a", None, &["A"]), part("a", None, &["B"])];
    let status = session(&mut client, parts).await.unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    assert!(detail(&status).type_url.ends_with(".StreamAlreadyInAppendSessionErrorDetails"));
    assert!(all_events(&server).await.is_empty());
    server.stop().await.unwrap();
}
