//! Stream metadata through `$$stream`: a `$metadata` JSON event sets annal's metadata, which
//! reads apply at once, and a read of `$$stream` returns it as JSON.

use std::collections::HashMap;

use annal_server::proto::{
    shared::{Uuid as WireUuid, uuid},
    streams::{
        AppendReq,
        append_req::{self, options::ExpectedStreamRevision as Expected},
        append_resp,
        read_req::options::{CountOption, FilterOption, stream_options::RevisionOption},
        read_resp::Content,
    },
};

use crate::harness::{
    TestServer, append, append_options, empty, events, read_all_replies, read_request, stream_from,
};

fn metadata_event(json: &str) -> AppendReq {
    AppendReq {
        content: Some(append_req::Content::ProposedMessage(append_req::ProposedMessage {
            id: Some(WireUuid {
                value: Some(uuid::Value::String(::uuid::Uuid::new_v4().to_string())),
            }),
            metadata: HashMap::from([
                ("type".to_owned(), "$metadata".to_owned()),
                ("content-type".to_owned(), "application/json".to_owned()),
            ]),
            custom_metadata: Vec::new(),
            data: json.as_bytes().to_vec(),
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_max_count_set_through_the_metadata_stream_applies_and_reads_back_as_json() {
    let server = TestServer::start().await;
    let mut client = server.streams().await;
    let json = r#"{"$maxCount":2,"owner":"ops"}"#;
    let requests = vec![append_options("$$m", Expected::NoStream(empty())), metadata_event(json)];
    let reply = client.append(tokio_stream::iter(requests)).await.unwrap().into_inner();
    assert!(matches!(reply.result, Some(append_resp::Result::Success(_))), "{reply:?}");
    append(&mut client, "m", Expected::Any(empty()), &["A", "B", "C"]).await.unwrap();

    let read = read_request(
        stream_from("m", RevisionOption::Start(empty())),
        false,
        CountOption::Count(10),
        FilterOption::NoFilter(empty()),
    );
    let replies = read_all_replies(&mut client, read).await.unwrap();
    assert_eq!(events(&replies), vec![("m".into(), 1, "B".into()), ("m".into(), 2, "C".into())]);

    let read = read_request(
        stream_from("$$m", RevisionOption::End(empty())),
        true,
        CountOption::Count(1),
        FilterOption::NoFilter(empty()),
    );
    let replies = read_all_replies(&mut client, read).await.unwrap();
    let Some(Content::Event(e)) = &replies[0].content else { panic!("{replies:?}") };
    let e = e.event.as_ref().unwrap();
    assert_eq!(e.metadata["type"], "$metadata");
    assert_eq!(e.metadata["content-type"], "application/json");
    assert_eq!(e.stream_revision, 0);
    let back: serde_json::Value = serde_json::from_slice(&e.data).unwrap();
    assert_eq!(back, serde_json::from_str::<serde_json::Value>(json).unwrap());

    // The metadata stream is at revision 0 now: expecting no stream is a conflict.
    let requests = vec![append_options("$$m", Expected::NoStream(empty())), metadata_event("{}")];
    let reply = client.append(tokio_stream::iter(requests)).await.unwrap().into_inner();
    assert!(
        matches!(reply.result, Some(append_resp::Result::WrongExpectedVersion(_))),
        "{reply:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_of_a_stream_without_any_reads_as_not_found_and_bad_json_is_refused() {
    let server = TestServer::start().await;
    let mut client = server.streams().await;
    let read = read_request(
        stream_from("$$none", RevisionOption::End(empty())),
        true,
        CountOption::Count(1),
        FilterOption::NoFilter(empty()),
    );
    let replies = read_all_replies(&mut client, read).await.unwrap();
    assert!(matches!(replies[0].content, Some(Content::StreamNotFound(_))), "{replies:?}");

    let requests = vec![append_options("$$bad", Expected::Any(empty())), metadata_event("[1,2]")];
    let status = client.append(tokio_stream::iter(requests)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    server.stop().await.unwrap();
}
