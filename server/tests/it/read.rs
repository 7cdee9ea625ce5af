//! Counted reads: a stream and `$all`, both ways, from a revision or position, not found, ids
//! in the form asked for, and the metadata map clients read.

use annal_server::proto::{
    shared::uuid,
    streams::{
        append_req::options::ExpectedStreamRevision as Expected,
        read_req::{
            self,
            options::{
                CountOption, FilterOption, all_options::AllOption, stream_options::RevisionOption,
            },
        },
        read_resp::Content,
    },
};

use crate::harness::{
    TestServer, all_from, append, empty, events, read_all_replies, read_request, stream_from,
};

fn ev(stream: &str, revision: u64, event_type: &str) -> (String, u64, String) {
    (stream.to_owned(), revision, event_type.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_stream_forwards_and_backwards_from_a_revision() {
    let server = TestServer::start().await;
    let mut client = server.streams().await;
    append(&mut client, "s", Expected::Any(empty()), &["A", "B", "C"]).await.unwrap();
    append(&mut client, "other", Expected::Any(empty()), &["X"]).await.unwrap();

    let forward = read_request(
        stream_from("s", RevisionOption::Revision(1)),
        false,
        CountOption::Count(10),
        FilterOption::NoFilter(empty()),
    );
    let replies = read_all_replies(&mut client, forward).await.unwrap();
    assert_eq!(events(&replies), vec![ev("s", 1, "B"), ev("s", 2, "C")]);

    let backward = read_request(
        stream_from("s", RevisionOption::End(empty())),
        true,
        CountOption::Count(2),
        FilterOption::NoFilter(empty()),
    );
    let replies = read_all_replies(&mut client, backward).await.unwrap();
    assert_eq!(events(&replies), vec![ev("s", 2, "C"), ev("s", 1, "B")]);

    let from_one_back = read_request(
        stream_from("s", RevisionOption::Revision(1)),
        true,
        CountOption::Count(10),
        FilterOption::NoFilter(empty()),
    );
    let replies = read_all_replies(&mut client, from_one_back).await.unwrap();
    assert_eq!(events(&replies), vec![ev("s", 1, "B"), ev("s", 0, "A")]);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_of_a_missing_stream_replies_stream_not_found() {
    let server = TestServer::start().await;
    let mut client = server.streams().await;
    let request = read_request(
        stream_from("nope", RevisionOption::Start(empty())),
        false,
        CountOption::Count(10),
        FilterOption::NoFilter(empty()),
    );
    let replies = read_all_replies(&mut client, request).await.unwrap();
    assert_eq!(replies.len(), 1);
    let Some(Content::StreamNotFound(nf)) = &replies[0].content else { panic!("{replies:?}") };
    assert_eq!(nf.stream_identifier.as_ref().unwrap().stream_name, b"nope");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_all_both_ways_with_positions_as_commit_and_prepare() {
    let server = TestServer::start().await;
    let mut client = server.streams().await;
    append(&mut client, "a", Expected::Any(empty()), &["A1", "A2"]).await.unwrap();
    append(&mut client, "b", Expected::Any(empty()), &["B1"]).await.unwrap();

    let forward = read_request(
        all_from(AllOption::Start(empty())),
        false,
        CountOption::Count(10),
        FilterOption::NoFilter(empty()),
    );
    let replies = read_all_replies(&mut client, forward).await.unwrap();
    assert_eq!(events(&replies), vec![ev("a", 0, "A1"), ev("a", 1, "A2"), ev("b", 0, "B1")]);
    let positions: Vec<(u64, u64)> = replies
        .iter()
        .map(|r| match &r.content {
            Some(Content::Event(e)) => {
                let e = e.event.as_ref().unwrap();
                (e.commit_position, e.prepare_position)
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(positions, vec![(0, 0), (1, 1), (2, 2)]);

    let backward = read_request(
        all_from(AllOption::End(empty())),
        true,
        CountOption::Count(2),
        FilterOption::NoFilter(empty()),
    );
    let replies = read_all_replies(&mut client, backward).await.unwrap();
    assert_eq!(events(&replies), vec![ev("b", 0, "B1"), ev("a", 1, "A2")]);

    // Forwards from a position includes it; backwards from it returns what is before it.
    let at = |p| {
        read_req::options::all_options::AllOption::Position(read_req::options::Position {
            commit_position: p,
            prepare_position: p,
        })
    };
    let replies = read_all_replies(
        &mut client,
        read_request(
            all_from(at(1)),
            false,
            CountOption::Count(10),
            FilterOption::NoFilter(empty()),
        ),
    )
    .await
    .unwrap();
    assert_eq!(events(&replies), vec![ev("a", 1, "A2"), ev("b", 0, "B1")]);
    let replies = read_all_replies(
        &mut client,
        read_request(
            all_from(at(2)),
            true,
            CountOption::Count(10),
            FilterOption::NoFilter(empty()),
        ),
    )
    .await
    .unwrap();
    assert_eq!(events(&replies), vec![ev("a", 1, "A2"), ev("a", 0, "A1")]);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_events_carry_type_content_type_created_and_ids_in_the_form_asked() {
    let server = TestServer::start().await;
    let mut client = server.streams().await;
    let id = ::uuid::Uuid::new_v4();
    let requests = vec![
        crate::harness::append_options("m", Expected::Any(empty())),
        crate::harness::proposed_with_id("Typed", "{\"k\":1}", id),
    ];
    client.append(tokio_stream::iter(requests)).await.unwrap();

    let mut request = read_request(
        stream_from("m", RevisionOption::Start(empty())),
        false,
        CountOption::Count(1),
        FilterOption::NoFilter(empty()),
    );
    request.options.as_mut().unwrap().uuid_option = Some(read_req::options::UuidOption {
        content: Some(read_req::options::uuid_option::Content::Structured(empty())),
    });
    let replies = read_all_replies(&mut client, request).await.unwrap();
    let Some(Content::Event(e)) = &replies[0].content else { panic!() };
    let e = e.event.as_ref().unwrap();
    assert_eq!(e.metadata["type"], "Typed");
    assert_eq!(e.metadata["content-type"], "application/json");
    let created: u64 = e.metadata["created"].parse().unwrap();
    let now_ticks =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            / 100;
    assert!(
        u128::from(created) <= now_ticks && u128::from(created) > now_ticks - 600_000_000,
        "created {created} is not ticks of now"
    );
    assert_eq!(e.data, b"{\"k\":1}");
    assert_eq!(e.custom_metadata, b"{\"by\":\"test\"}");
    let Some(uuid::Value::Structured(s)) = &e.id.as_ref().unwrap().value else { panic!() };
    let (high, low) = id.as_u64_pair();
    assert_eq!((s.most_significant_bits as u64, s.least_significant_bits as u64), (high, low));
    server.stop().await.unwrap();
}

/// Replies go out in batches of ~32 KiB (about 250 of these events each): a read spanning many
/// batches returns every event once, in order, and stops at its count in the middle of one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_spanning_many_batches_returns_every_event_in_order_up_to_the_count() {
    let server = TestServer::start().await;
    let mut client = server.streams().await;
    let types: Vec<String> = (0..500).map(|i| format!("T{i}")).collect();
    let types: Vec<&str> = types.iter().map(String::as_str).collect();
    for stream in ["a", "b", "c", "d"] {
        append(&mut client, stream, Expected::Any(empty()), &types).await.unwrap();
    }
    let forward = read_request(
        all_from(AllOption::Start(empty())),
        false,
        CountOption::Count(1_777),
        FilterOption::NoFilter(empty()),
    );
    let replies = read_all_replies(&mut client, forward).await.unwrap();
    let expected: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .flat_map(|s| (0..500).map(move |r| ev(s, r, &format!("T{r}"))))
        .take(1_777)
        .collect();
    assert_eq!(replies.len(), 1_777, "events only");
    assert_eq!(events(&replies), expected);

    let backward = read_request(
        stream_from("c", RevisionOption::End(empty())),
        true,
        CountOption::Count(1_000),
        FilterOption::NoFilter(empty()),
    );
    let replies = read_all_replies(&mut client, backward).await.unwrap();
    let expected: Vec<_> = (0..500).rev().map(|r| ev("c", r, &format!("T{r}"))).collect();
    assert_eq!(events(&replies), expected);
    server.stop().await.unwrap();
}
