//! Delete and Tombstone: success, and their errors as statuses with the protocol's trailers.

use annal_server::proto::{
    shared::StreamIdentifier,
    streams::DeleteReq,
    streams::{
        TombstoneReq, append_req::options::ExpectedStreamRevision as Expected, delete_req,
        streams_client::StreamsClient, tombstone_req,
    },
};
use tonic::{Status, transport::Channel};

use crate::harness::{TestServer, append, empty, events, exception, id, read_all_replies, trailer};

pub async fn tombstone(client: &mut StreamsClient<Channel>, stream: &str) -> Result<(), Status> {
    let options = tombstone_req::Options {
        stream_identifier: id(stream),
        expected_stream_revision: Some(
            tombstone_req::options::ExpectedStreamRevision::Any(empty()),
        ),
    };
    client.tombstone(TombstoneReq { options: Some(options) }).await.map(|_| ())
}

async fn delete(
    client: &mut StreamsClient<Channel>,
    stream: &str,
    expected: delete_req::options::ExpectedStreamRevision,
) -> Result<(), Status> {
    let options = delete_req::Options {
        stream_identifier: Some(StreamIdentifier { stream_name: stream.as_bytes().to_vec() }),
        expected_stream_revision: Some(expected),
    };
    client.delete(DeleteReq { options: Some(options) }).await.map(|_| ())
}

fn read_stream(stream: &str) -> annal_server::proto::streams::ReadReq {
    use annal_server::proto::streams::read_req::options::{
        CountOption, FilterOption, stream_options::RevisionOption,
    };
    crate::harness::read_request(
        crate::harness::stream_from(stream, RevisionOption::Start(empty())),
        false,
        CountOption::Count(100),
        FilterOption::NoFilter(empty()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_hides_the_stream_and_an_append_brings_it_back() {
    use delete_req::options::ExpectedStreamRevision as D;
    let server = TestServer::start().await;
    let mut client = server.streams().await;
    append(&mut client, "d", Expected::Any(empty()), &["A", "B"]).await.unwrap();
    delete(&mut client, "d", D::Revision(1)).await.unwrap();
    let replies = read_all_replies(&mut client, read_stream("d")).await.unwrap();
    assert!(matches!(
        replies[0].content,
        Some(annal_server::proto::streams::read_resp::Content::StreamNotFound(_))
    ));
    append(&mut client, "d", Expected::NoStream(empty()), &["C"]).await.unwrap();
    let replies = read_all_replies(&mut client, read_stream("d")).await.unwrap();
    assert_eq!(events(&replies), vec![("d".to_owned(), 2, "C".to_owned())]);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_with_a_wrong_revision_is_wrong_expected_version_with_its_details() {
    use delete_req::options::ExpectedStreamRevision as D;
    let server = TestServer::start().await;
    let mut client = server.streams().await;
    append(&mut client, "d", Expected::Any(empty()), &["A", "B"]).await.unwrap();
    let status = delete(&mut client, "d", D::Revision(5)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert_eq!(exception(&status).as_deref(), Some("wrong-expected-version"));
    assert_eq!(trailer(&status, "stream-name").as_deref(), Some("d"));
    assert_eq!(trailer(&status, "expected-version").as_deref(), Some("5"));
    assert_eq!(trailer(&status, "actual-version").as_deref(), Some("1"));
    assert!(status.message().contains("WrongExpectedVersion"), "{}", status.message());

    let status = delete(&mut client, "never", D::Any(empty())).await.unwrap_err();
    assert_eq!(exception(&status).as_deref(), Some("wrong-expected-version"));
    assert_eq!(trailer(&status, "actual-version").as_deref(), Some("-1"));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tombstoned_stream_reads_deletes_and_tombstones_as_stream_deleted() {
    use delete_req::options::ExpectedStreamRevision as D;
    let server = TestServer::start().await;
    let mut client = server.streams().await;
    append(&mut client, "t", Expected::Any(empty()), &["A"]).await.unwrap();
    tombstone(&mut client, "t").await.unwrap();

    let status = read_all_replies(&mut client, read_stream("t")).await.unwrap_err();
    assert_eq!(exception(&status).as_deref(), Some("stream-deleted"));
    let status = delete(&mut client, "t", D::Any(empty())).await.unwrap_err();
    assert_eq!(exception(&status).as_deref(), Some("stream-deleted"));
    assert_eq!(trailer(&status, "stream-name").as_deref(), Some("t"));
    let status = tombstone(&mut client, "t").await.unwrap_err();
    assert_eq!(exception(&status).as_deref(), Some("stream-deleted"));
    server.stop().await.unwrap();
}
