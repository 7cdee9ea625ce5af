//! PersistentSubscriptions: groups defined, listed, changed and deleted; consumers that ack,
//! nack (retry, park, skip) and compete; definitions and checkpoints across a restart.

use std::time::Duration;

use annal_server::{
    Limits,
    proto::{
        persistent::{
            CreateReq, DeleteReq, GetInfoReq, ListReq, ReadReq, ReadResp, ReplayParkedReq,
            SubscriptionInfo, UpdateReq, create_req, delete_req, get_info_req, list_req,
            persistent_subscriptions_client::PersistentSubscriptionsClient, read_req, read_resp,
            replay_parked_req, update_req,
        },
        shared::{Uuid as WireUuid, uuid},
        streams::append_req::options::ExpectedStreamRevision,
    },
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status, Streaming, transport::Channel};

use crate::harness::{TestServer, append, empty, exception, id, trailer};

type Client = PersistentSubscriptionsClient<Channel>;

/// The longest a test waits for one reply before failing (a lost event fails, never hangs).
const REPLY_WAIT: Duration = Duration::from_secs(20);

fn settings(strategy: &str, max_retry_count: i32) -> create_req::Settings {
    create_req::Settings {
        max_retry_count,
        max_checkpoint_count: 1,
        history_buffer_size: 10,
        consumer_strategy: strategy.to_owned(),
        ..Default::default()
    }
}

async fn create_on_stream(
    client: &mut Client,
    stream: &str,
    group: &str,
    settings: create_req::Settings,
) -> Result<(), Status> {
    let options = create_req::Options {
        stream_option: Some(create_req::options::StreamOption::Stream(create_req::StreamOptions {
            stream_identifier: id(stream),
            revision_option: Some(create_req::stream_options::RevisionOption::Start(empty())),
        })),
        stream_identifier: None,
        group_name: group.to_owned(),
        settings: Some(settings),
    };
    client.create(CreateReq { options: Some(options) }).await.map(|_| ())
}

async fn info(client: &mut Client, stream: &str, group: &str) -> Result<SubscriptionInfo, Status> {
    let options = get_info_req::Options {
        stream_option: Some(get_info_req::options::StreamOption::StreamIdentifier(
            id(stream).unwrap(),
        )),
        group_name: group.to_owned(),
    };
    let reply = client.get_info(GetInfoReq { options: Some(options) }).await?.into_inner();
    Ok(reply.subscription_info.unwrap())
}

async fn list(client: &mut Client) -> Vec<(String, String)> {
    let options = list_req::Options {
        list_option: Some(list_req::options::ListOption::ListAllSubscriptions(empty())),
    };
    let reply = client.list(ListReq { options: Some(options) }).await.unwrap().into_inner();
    reply.subscriptions.into_iter().map(|s| (s.event_source, s.group_name)).collect()
}

async fn append_n(server: &TestServer, stream: &str, n: usize) {
    let mut streams = server.streams().await;
    let types: Vec<String> = (0..n).map(|i| format!("E{i}")).collect();
    let types: Vec<&str> = types.iter().map(String::as_str).collect();
    append(&mut streams, stream, ExpectedStreamRevision::Any(empty()), &types).await.unwrap();
}

/// One consumer's Read call.
struct Consumer {
    requests: mpsc::Sender<ReadReq>,
    replies: Streaming<ReadResp>,
}

/// An event as a consumer got it: id, stream revision, retry count.
type Got = (String, u64, i32);

impl Consumer {
    async fn connect(client: &mut Client, stream: &str, group: &str) -> Result<Consumer, Status> {
        Consumer::connect_with(client, stream, group, 10).await
    }

    /// A consumer that holds at most `buffer` events unacknowledged.
    async fn connect_with(
        client: &mut Client,
        stream: &str,
        group: &str,
        buffer: i32,
    ) -> Result<Consumer, Status> {
        let (requests, rx) = mpsc::channel(16);
        let options = read_req::Options {
            stream_option: Some(read_req::options::StreamOption::StreamIdentifier(
                id(stream).unwrap(),
            )),
            group_name: group.to_owned(),
            buffer_size: buffer,
            uuid_option: Some(read_req::options::UuidOption {
                content: Some(read_req::options::uuid_option::Content::String(empty())),
            }),
        };
        let first = ReadReq { content: Some(read_req::Content::Options(options)) };
        requests.send(first).await.unwrap();
        let mut replies = client.read(ReceiverStream::new(rx)).await?.into_inner();
        match replies.message().await?.and_then(|r| r.content) {
            Some(read_resp::Content::SubscriptionConfirmation(c)) => {
                assert_eq!(c.subscription_id, format!("{stream}::{group}"));
            }
            other => panic!("expected a confirmation, got {other:?}"),
        }
        Ok(Consumer { requests, replies })
    }

    /// The next reply: an event, or the call's end (`Ok(None)`) or error.
    async fn reply(&mut self) -> Result<Option<Got>, Status> {
        let reply = tokio::time::timeout(REPLY_WAIT, self.replies.message())
            .await
            .expect("a reply in time")?;
        let Some(reply) = reply else { return Ok(None) };
        let Some(read_resp::Content::Event(e)) = reply.content else { panic!("{reply:?}") };
        let recorded = e.event.unwrap();
        let Some(uuid::Value::String(id)) = recorded.id.unwrap().value else { panic!() };
        let Some(read_resp::read_event::Count::RetryCount(retries)) = e.count else { panic!() };
        Ok(Some((id, recorded.stream_revision, retries)))
    }

    async fn next(&mut self) -> Got {
        self.reply().await.unwrap().expect("an event")
    }

    fn ids(ids: &[&Got]) -> Vec<WireUuid> {
        ids.iter().map(|g| WireUuid { value: Some(uuid::Value::String(g.0.clone())) }).collect()
    }

    async fn ack(&self, events: &[&Got]) {
        let ack = read_req::Ack { id: Vec::new(), ids: Consumer::ids(events) };
        self.requests.send(ReadReq { content: Some(read_req::Content::Ack(ack)) }).await.unwrap();
    }

    async fn nack(&self, events: &[&Got], action: read_req::nack::Action) {
        let nack = read_req::Nack {
            id: Vec::new(),
            ids: Consumer::ids(events),
            action: action as i32,
            reason: "test".into(),
        };
        let request = ReadReq { content: Some(read_req::Content::Nack(nack)) };
        self.requests.send(request).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_create_list_info_update_delete_round_trip() {
    let server = TestServer::start().await;
    let mut client = Client::new(server.channel().await);
    create_on_stream(&mut client, "orders", "billing", settings("RoundRobin", 4)).await.unwrap();
    let dup = create_on_stream(&mut client, "orders", "billing", settings("RoundRobin", 4)).await;
    let dup = dup.unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);
    assert_eq!(exception(&dup).as_deref(), Some("persistent-subscription-exists"));
    create_on_stream(&mut client, "other", "billing", settings("DispatchToSingle", 1))
        .await
        .unwrap();
    assert_eq!(
        list(&mut client).await,
        [("orders".to_owned(), "billing".to_owned()), ("other".into(), "billing".into())]
    );
    let got = info(&mut client, "orders", "billing").await.unwrap();
    assert_eq!((got.named_consumer_strategy.as_str(), got.max_retry_count), ("RoundRobin", 4));
    assert_eq!((got.start_from.as_str(), got.status.as_str()), ("0", "Live"));
    assert!(got.connections.is_empty());

    let update = update_req::Options {
        stream_option: Some(update_req::options::StreamOption::Stream(update_req::StreamOptions {
            stream_identifier: id("orders"),
            revision_option: Some(update_req::stream_options::RevisionOption::Start(empty())),
        })),
        stream_identifier: None,
        group_name: "billing".into(),
        settings: Some(update_req::Settings {
            max_retry_count: 9,
            named_consumer_strategy: update_req::ConsumerStrategy::DispatchToSingle as i32,
            ..Default::default()
        }),
    };
    client.update(UpdateReq { options: Some(update) }).await.unwrap();
    let got = info(&mut client, "orders", "billing").await.unwrap();
    assert_eq!(
        (got.named_consumer_strategy.as_str(), got.max_retry_count),
        ("DispatchToSingle", 9)
    );

    let delete = delete_req::Options {
        stream_option: Some(delete_req::options::StreamOption::StreamIdentifier(
            id("orders").unwrap(),
        )),
        group_name: "billing".into(),
    };
    client.delete(DeleteReq { options: Some(delete.clone()) }).await.unwrap();
    let missing = info(&mut client, "orders", "billing").await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(exception(&missing).as_deref(), Some("persistent-subscription-does-not-exist"));
    assert_eq!(trailer(&missing, "group-name").as_deref(), Some("billing"));
    let again = client.delete(DeleteReq { options: Some(delete) }).await.unwrap_err();
    assert_eq!(exception(&again).as_deref(), Some("persistent-subscription-does-not-exist"));
    assert_eq!(list(&mut client).await, [("other".to_owned(), "billing".to_owned())]);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_nack_retry_park_skip_and_replay_parked() {
    use read_req::nack::Action;
    let server = TestServer::start().await;
    let mut client = Client::new(server.channel().await);
    create_on_stream(&mut client, "jobs", "g", settings("RoundRobin", 5)).await.unwrap();
    append_n(&server, "jobs", 3).await;
    let mut c = Consumer::connect(&mut client, "jobs", "g").await.unwrap();
    let e: [Got; 3] = [c.next().await, c.next().await, c.next().await];
    assert_eq!(e.iter().map(|g| (g.1, g.2)).collect::<Vec<_>>(), [(0, 0), (1, 0), (2, 0)]);
    c.ack(&[&e[1]]).await;
    c.nack(&[&e[0]], Action::Retry).await;
    let retried = c.next().await;
    assert_eq!((retried.0.as_str(), retried.1, retried.2), (e[0].0.as_str(), 0, 1));
    c.nack(&[&retried], Action::Retry).await;
    assert_eq!(c.next().await.2, 2, "the retry count grows with each retry");
    c.nack(&[&e[2]], Action::Park).await;
    c.nack(&[&e[0]], Action::Park).await;
    // Parked events come back only when replayed.
    append_n(&server, "jobs", 1).await;
    let fourth = c.next().await;
    assert_eq!(fourth.1, 3);
    let got = info(&mut client, "jobs", "g").await.unwrap();
    assert_eq!(got.parked_message_count, 2);
    assert_eq!(got.connections.len(), 1);
    c.nack(&[&fourth], Action::Skip).await;

    let replay = replay_parked_req::Options {
        group_name: "g".into(),
        stream_option: Some(replay_parked_req::options::StreamOption::StreamIdentifier(
            id("jobs").unwrap(),
        )),
        stop_at_option: Some(replay_parked_req::options::StopAtOption::NoLimit(empty())),
    };
    client.replay_parked(ReplayParkedReq { options: Some(replay) }).await.unwrap();
    let mut replayed = [c.next().await, c.next().await];
    replayed.sort_by_key(|g| g.1);
    assert_eq!(replayed.iter().map(|g| (g.1, g.2)).collect::<Vec<_>>(), [(0, 0), (2, 0)]);
    c.ack(&[&replayed[0], &replayed[1]]).await;
    // The skipped event is not delivered again: the next one is new.
    append_n(&server, "jobs", 1).await;
    assert_eq!(c.next().await.1, 4);
    assert_eq!(info(&mut client, "jobs", "g").await.unwrap().parked_message_count, 0);
    server.stop().await.unwrap();
}

/// Both consumers' events until `n` distinct ones were seen, each acked as it comes.
async fn drain_both(a: &mut Consumer, b: &mut Consumer, n: usize) -> (Vec<Got>, Vec<Got>) {
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    while got_a.len() + got_b.len() < n {
        tokio::select! {
            g = a.next() => { a.ack(&[&g]).await; got_a.push(g); }
            g = b.next() => { b.ack(&[&g]).await; got_b.push(g); }
        }
    }
    (got_a, got_b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_two_round_robin_consumers_share_every_event_exactly_once() {
    let server = TestServer::start().await;
    let mut client = Client::new(server.channel().await);
    create_on_stream(&mut client, "work", "pool", settings("RoundRobin", 3)).await.unwrap();
    let mut a = Consumer::connect(&mut client, "work", "pool").await.unwrap();
    let mut b = Consumer::connect(&mut client, "work", "pool").await.unwrap();
    assert_eq!(info(&mut client, "work", "pool").await.unwrap().connections.len(), 2);
    append_n(&server, "work", 40).await;
    let (got_a, got_b) = drain_both(&mut a, &mut b, 40).await;
    assert!(!got_a.is_empty() && !got_b.is_empty(), "{} / {}", got_a.len(), got_b.len());
    let mut all: Vec<u64> = got_a.iter().chain(&got_b).map(|g| g.1).collect();
    all.sort_unstable();
    assert_eq!(all, (0..40).collect::<Vec<u64>>(), "every event exactly once");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_a_dropped_consumers_events_go_to_the_other() {
    let server = TestServer::start().await;
    let mut client = Client::new(server.channel().await);
    create_on_stream(&mut client, "work", "pool", settings("RoundRobin", 3)).await.unwrap();
    let mut a = Consumer::connect(&mut client, "work", "pool").await.unwrap();
    let mut b = Consumer::connect(&mut client, "work", "pool").await.unwrap();
    append_n(&server, "work", 6).await;
    // `a` takes one event and leaves without acknowledging it.
    let held = a.next().await;
    drop(a);
    let mut got = Vec::new();
    while !got.iter().any(|g: &Got| g.0 == held.0) {
        let g = b.next().await;
        b.ack(&[&g]).await;
        got.push(g);
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_missing_group_and_full_group_are_refused() {
    let server = TestServer::start().await;
    let mut client = Client::new(server.channel().await);
    let Err(missing) = Consumer::connect(&mut client, "s", "nobody").await else { panic!() };
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(exception(&missing).as_deref(), Some("persistent-subscription-does-not-exist"));
    let one = create_req::Settings { max_subscriber_count: 1, ..settings("RoundRobin", 1) };
    create_on_stream(&mut client, "s", "solo", one).await.unwrap();
    let _first = Consumer::connect(&mut client, "s", "solo").await.unwrap();
    let Err(full) = Consumer::connect(&mut client, "s", "solo").await else { panic!() };
    assert_eq!(full.code(), Code::FailedPrecondition);
    assert_eq!(exception(&full).as_deref(), Some("maximum-subscribers-reached"));
    let pinned = create_on_stream(&mut client, "s", "p", settings("Pinned", 1)).await;
    assert_eq!(pinned.unwrap_err().code(), Code::InvalidArgument);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_update_ends_the_groups_read_calls() {
    let server = TestServer::start().await;
    let mut client = Client::new(server.channel().await);
    create_on_stream(&mut client, "s", "g", settings("RoundRobin", 1)).await.unwrap();
    let mut c = Consumer::connect(&mut client, "s", "g").await.unwrap();
    let update = update_req::Options {
        stream_option: Some(update_req::options::StreamOption::Stream(update_req::StreamOptions {
            stream_identifier: id("s"),
            revision_option: None,
        })),
        stream_identifier: None,
        group_name: "g".into(),
        settings: Some(update_req::Settings { max_retry_count: 2, ..Default::default() }),
    };
    client.update(UpdateReq { options: Some(update) }).await.unwrap();
    let ended = c.reply().await.unwrap_err();
    assert_eq!(exception(&ended).as_deref(), Some("persistent-subscription-dropped"));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_all_group_with_a_filter_delivers_only_matching_events() {
    let server = TestServer::start().await;
    let mut client = Client::new(server.channel().await);
    let filter = create_req::all_options::FilterOptions {
        filter: Some(create_req::all_options::filter_options::Filter::StreamIdentifier(
            create_req::all_options::filter_options::Expression {
                regex: String::new(),
                prefix: vec!["orders-".into()],
            },
        )),
        window: None,
        checkpoint_interval_multiplier: 1,
    };
    let options = create_req::Options {
        stream_option: Some(create_req::options::StreamOption::All(create_req::AllOptions {
            all_option: Some(create_req::all_options::AllOption::Start(empty())),
            filter_option: Some(create_req::all_options::FilterOption::Filter(filter)),
        })),
        stream_identifier: None,
        group_name: "audit".into(),
        settings: Some(settings("RoundRobin", 1)),
    };
    client.create(CreateReq { options: Some(options) }).await.unwrap();
    append_n(&server, "users-1", 2).await;
    append_n(&server, "orders-1", 1).await;
    append_n(&server, "users-2", 2).await;
    append_n(&server, "orders-2", 1).await;
    let (requests, rx) = mpsc::channel(4);
    let options = read_req::Options {
        stream_option: Some(read_req::options::StreamOption::All(empty())),
        group_name: "audit".into(),
        buffer_size: 10,
        uuid_option: None,
    };
    requests.send(ReadReq { content: Some(read_req::Content::Options(options)) }).await.unwrap();
    let mut c = Consumer {
        requests,
        replies: client.read(ReceiverStream::new(rx)).await.unwrap().into_inner(),
    };
    let Some(read_resp::Content::SubscriptionConfirmation(confirmed)) =
        c.replies.message().await.unwrap().unwrap().content
    else {
        panic!()
    };
    assert_eq!(confirmed.subscription_id, "$all::audit");
    let mut streams = Vec::new();
    for _ in 0..2 {
        let reply = c.replies.message().await.unwrap().unwrap();
        let Some(read_resp::Content::Event(e)) = reply.content else { panic!() };
        let name = e.event.unwrap().stream_identifier.unwrap().stream_name;
        streams.push(String::from_utf8(name).unwrap());
    }
    assert_eq!(streams, ["orders-1", "orders-2"]);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_a_restart_keeps_definitions_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), Limits::default()).await;
    let mut client = Client::new(server.channel().await);
    create_on_stream(&mut client, "s", "kept", settings("DispatchToSingle", 2)).await.unwrap();
    append_n(&server, "s", 3).await;
    let mut c = Consumer::connect(&mut client, "s", "kept").await.unwrap();
    let (first, second) = (c.next().await, c.next().await);
    c.ack(&[&first, &second]).await;
    // Acks are applied in order: once the info shows nothing but the third in flight, the
    // first two are checkpointed (one ack per checkpoint write).
    while info(&mut client, "s", "kept").await.unwrap().total_in_flight_messages > 1 {
        tokio::task::yield_now().await;
    }
    drop(c);
    drop(client);
    server.stop().await.unwrap();

    let server = TestServer::start_in(dir.path(), Limits::default()).await;
    let mut client = Client::new(server.channel().await);
    assert_eq!(list(&mut client).await, [("s".to_owned(), "kept".to_owned())]);
    let got = info(&mut client, "s", "kept").await.unwrap();
    assert_eq!(
        (got.named_consumer_strategy.as_str(), got.max_retry_count),
        ("DispatchToSingle", 2)
    );
    let mut c = Consumer::connect(&mut client, "s", "kept").await.unwrap();
    assert_eq!(c.next().await.1, 2, "resumes after the acknowledged events");
    drop(c);
    server.stop().await.unwrap();
}

/// The story: Delete answered "already held" (and had already removed the definition, so the
/// client's retry got "does not exist") when it came right after the last consumer left: the
/// library closes the group before it writes the checkpoint and frees the name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_delete_right_after_the_last_consumer_leaves_succeeds() {
    let server = TestServer::start().await;
    let mut client = Client::new(server.channel().await);
    append_n(&server, "s", 1).await;
    for round in 0..20 {
        let group = format!("g{round}");
        create_on_stream(&mut client, "s", &group, settings("RoundRobin", 1)).await.unwrap();
        let mut c = Consumer::connect(&mut client, "s", &group).await.unwrap();
        let got = c.next().await;
        c.ack(&[&got]).await;
        drop(c);
        let delete = delete_req::Options {
            stream_option: Some(delete_req::options::StreamOption::StreamIdentifier(
                id("s").unwrap(),
            )),
            group_name: group.clone(),
        };
        client.delete(DeleteReq { options: Some(delete) }).await.unwrap();
        assert_eq!(info(&mut client, "s", &group).await.unwrap_err().code(), Code::NotFound);
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_nack_stop_ends_the_call_and_hands_the_event_to_another_consumer() {
    let server = TestServer::start().await;
    let mut client = Client::new(server.channel().await);
    create_on_stream(&mut client, "s", "g", settings("RoundRobin", 5)).await.unwrap();
    append_n(&server, "s", 1).await;
    let mut a = Consumer::connect(&mut client, "s", "g").await.unwrap();
    let got = a.next().await;
    let mut b = Consumer::connect(&mut client, "s", "g").await.unwrap();
    a.nack(&[&got], read_req::nack::Action::Stop).await;
    assert_eq!(a.reply().await.unwrap(), None, "the stopping consumer's call ends");
    let again = b.next().await;
    assert_eq!((again.0.as_str(), again.2), (got.0.as_str(), 1), "retried by the other");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_each_consumer_holds_at_most_the_buffer_its_call_asked_for() {
    let server = TestServer::start().await;
    let mut client = Client::new(server.channel().await);
    // The group's own buffer (history_buffer_size) is 10: the calls' buffers rule.
    create_on_stream(&mut client, "s", "g", settings("DispatchToSingle", 1)).await.unwrap();
    let mut a = Consumer::connect_with(&mut client, "s", "g", 2).await.unwrap();
    let mut b = Consumer::connect_with(&mut client, "s", "g", 10).await.unwrap();
    append_n(&server, "s", 5).await;
    assert_eq!([a.next().await.1, a.next().await.1], [0, 1]);
    let got_b = [b.next().await.1, b.next().await.1, b.next().await.1];
    assert_eq!(got_b, [2, 3, 4], "the first consumer is full at 2");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_message_timeout_retries_an_unacked_event_on_another_consumer() {
    let server = TestServer::start().await;
    let mut client = Client::new(server.channel().await);
    let mut timed = settings("RoundRobin", 5);
    timed.message_timeout = Some(create_req::settings::MessageTimeout::MessageTimeoutMs(1_000));
    create_on_stream(&mut client, "s", "g", timed).await.unwrap();
    // Both connected before the event exists, so round robin gives it to `a` first.
    let mut a = Consumer::connect(&mut client, "s", "g").await.unwrap();
    let mut b = Consumer::connect(&mut client, "s", "g").await.unwrap();
    append_n(&server, "s", 1).await;
    let got = a.next().await;
    assert_eq!((got.1, got.2), (0, 0));
    let again = b.next().await;
    assert_eq!((again.0.as_str(), again.2), (got.0.as_str(), 1), "a never acked: retried");
    // A late ack is ignored (the reference server does the same) and ends nothing.
    a.ack(&[&got]).await;
    b.ack(&[&again]).await;
    for _ in 0..400 {
        if info(&mut client, "s", "g").await.unwrap().total_in_flight_messages == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(info(&mut client, "s", "g").await.unwrap().total_in_flight_messages, 0);
    append_n(&server, "s", 2).await;
    assert_eq!((a.next().await.1, b.next().await.1), (1, 2), "both calls live on");
    server.stop().await.unwrap();
}
