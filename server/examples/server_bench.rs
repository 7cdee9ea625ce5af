//! Issue #15 §5 over loopback, in one run: 64 concurrent clients appending single events with
//! expected versions through the server against the embedded W2 (64 threads calling
//! `Store::append`), interleaved round by round; 100 live gRPC subscribers' delay from an
//! append's return to its receipt; and `$all` read through the server against the embedded
//! `read_all_forward`. Prints medians with their ranges over the rounds.
//!
//! `cargo run --release -p annal-server --example server_bench [-- --quick] [--rounds N]
//! [--only appends|embedded|served|live|all] [--all-events N] [--append-ms N]
//! [--server-process]`
//!
//! `--only` runs one part (for profiling one path under callgrind); `--all-events` sets how many
//! events the `$all` read has (default 1M, 100k with `--quick`); `--append-ms` how long each
//! append part runs (default 2000, 500 with `--quick`); `--server-process` runs the server of
//! the served appends in a child process (this binary again), so client and server have
//! runtimes of their own, as over a real network (the same 2 cores serve both either way).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use annal::{ExpectedVersion, NewEvent, Position, Store, StreamAppend};
use annal_server::{
    Limits,
    proto::{
        shared::{Empty, StreamIdentifier},
        streams::{
            AppendReq, ReadReq,
            append_req::{self, options::ExpectedStreamRevision},
            append_resp,
            read_req::{self, options},
            read_resp,
            streams_client::StreamsClient,
        },
    },
};
use tokio::sync::oneshot;
use tonic::transport::Channel;

const WRITERS: usize = 64;
const SUBSCRIBERS: usize = 100;
const PAYLOAD: &str = r#"{"account":"acc-0042","amount":125,"currency":"EUR","note":"bench"}"#;

struct Config {
    rounds: usize,
    only: Option<String>,
    server_process: bool,
    append_for: Duration,
    live_events: usize,
    all_events: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let config = Config::from_args(&args);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    if args.iter().any(|a| a == CHILD_FLAG) {
        runtime.block_on(serve_child());
        return;
    }
    // Each figure's name and its value in every round, in the order they are printed.
    let mut rows: Vec<(&str, Vec<f64>)> = Vec::new();
    for round in 0..config.rounds {
        let figures = one_round(&config, &runtime);
        let text: Vec<String> = figures.iter().map(|(name, v)| format!("{name} {v:.3}")).collect();
        println!("round {round}: {}", text.join(" | "));
        for (i, (name, value)) in figures.into_iter().enumerate() {
            if rows.len() == i {
                rows.push((name, Vec::new()));
            }
            rows[i].1.push(value);
        }
    }
    println!("\nmedian (min–max) over {} rounds:", config.rounds);
    for (name, mut v) in rows {
        v.sort_by(f64::total_cmp);
        println!("  {name}: {:.3} ({:.3}–{:.3})", v[v.len() / 2], v[0], v[v.len() - 1]);
    }
}

impl Config {
    /// The run's configuration from the command line (see the module doc).
    fn from_args(args: &[String]) -> Config {
        let quick = args.iter().any(|a| a == "--quick");
        let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1));
        let number = |flag: &str, quick_default: u64, default: u64| {
            value(flag).and_then(|n| n.parse().ok()).unwrap_or(if quick {
                quick_default
            } else {
                default
            })
        };
        Config {
            rounds: number("--rounds", 1, 5) as usize,
            only: value("--only").cloned(),
            server_process: args.iter().any(|a| a == "--server-process"),
            append_for: Duration::from_millis(number("--append-ms", 500, 2000)),
            live_events: if quick { 50 } else { 200 },
            all_events: number("--all-events", 100_000, 1_000_000) as usize,
        }
    }

    /// Whether this run measures `part`: `--only appends` runs both append parts, `embedded`
    /// or `served` one of them.
    fn runs(&self, part: &str) -> bool {
        self.only.as_deref().is_none_or(|only| {
            only == part || (only == "appends" && ["embedded", "served"].contains(&part))
        })
    }
}

/// One round of every part the configuration runs (NaN for a part it skips): each figure's
/// name and value.
fn one_round(config: &Config, runtime: &tokio::runtime::Runtime) -> Vec<(&'static str, f64)> {
    let nan = (f64::NAN, f64::NAN);
    let embedded = if config.runs("embedded") { embedded_appends(config) } else { nan };
    let served = if !config.runs("served") {
        nan
    } else if config.server_process {
        runtime.block_on(served_appends_from_child(config))
    } else {
        runtime.block_on(served_appends(config))
    };
    let live = if config.runs("live") { runtime.block_on(live_delays(config)) } else { f64::NAN };
    let (all_served, all_raw, all_catch_up, all_embedded) = if config.runs("all") {
        runtime.block_on(read_all(config))
    } else {
        (f64::NAN, f64::NAN, f64::NAN, f64::NAN)
    };
    vec![
        ("W2 embedded appends/s", embedded.0),
        ("W2 embedded p99 ms", embedded.1),
        ("server appends/s", served.0),
        ("server p99 ms", served.1),
        ("server ÷ embedded rate", served.0 / embedded.0),
        ("server p99 − embedded p99 ms", served.1 - embedded.1),
        ("live delay p99 ms", live),
        ("$all via server events/s", all_served),
        ("$all via server, counting client events/s", all_raw),
        ("$all subscription catch-up, counting client events/s", all_catch_up),
        ("$all embedded events/s", all_embedded),
    ]
}

fn event() -> NewEvent {
    NewEvent::new("Deposited", PAYLOAD.as_bytes().to_vec())
}

/// The 99th percentile of `latencies`, in milliseconds.
fn p99_ms(latencies: &mut [Duration]) -> f64 {
    latencies.sort();
    latencies.get(latencies.len() * 99 / 100).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

/// W2: 64 threads, each appending single events with the exact expected version to its stream.
fn embedded_appends(config: &Config) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let started = Instant::now();
    let deadline = started + config.append_for;
    let workers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                let (stream, mut latencies) = (format!("w-{w}"), Vec::new());
                let mut expected = ExpectedVersion::NoStream;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let done = store.append(&stream, expected, [event()]).unwrap();
                    latencies.push(t.elapsed());
                    expected = ExpectedVersion::Exact(done.last_version.get());
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> =
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
    store.close();
    (rate, p99_ms(&mut latencies))
}

struct Served {
    addr: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), annal_server::ServeError>>,
    store: Store,
    _dir: tempfile::TempDir,
}

async fn start() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel();
    let task =
        tokio::spawn(annal_server::serve(store.clone(), listener, Limits::default(), async {
            let _ = stopped.await;
        }));
    Served { addr, stop, task, store, _dir: dir }
}

impl Served {
    async fn client(&self) -> StreamsClient<Channel> {
        connect(self.addr).await
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

fn id(stream: &str) -> Option<StreamIdentifier> {
    Some(StreamIdentifier { stream_name: stream.as_bytes().to_vec() })
}

fn append_request(stream: &str, expected: ExpectedStreamRevision) -> Vec<AppendReq> {
    let options = append_req::Options {
        stream_identifier: id(stream),
        expected_stream_revision: Some(expected),
    };
    let metadata = HashMap::from([
        ("type".to_owned(), "Deposited".to_owned()),
        ("content-type".to_owned(), "application/json".to_owned()),
    ]);
    let proposed = append_req::ProposedMessage {
        id: None,
        metadata,
        custom_metadata: Vec::new(),
        data: PAYLOAD.as_bytes().to_vec(),
    };
    vec![
        AppendReq { content: Some(append_req::Content::Options(options)) },
        AppendReq { content: Some(append_req::Content::ProposedMessage(proposed)) },
    ]
}

/// Appends one event through `client`; its new revision.
async fn append_one(
    client: &mut StreamsClient<Channel>,
    stream: &str,
    expected: ExpectedStreamRevision,
) -> u64 {
    let reply = client.append(tokio_stream::iter(append_request(stream, expected))).await;
    match reply.unwrap().into_inner().result {
        Some(append_resp::Result::Success(s)) => match s.current_revision_option {
            Some(append_resp::success::CurrentRevisionOption::CurrentRevision(r)) => r,
            other => panic!("no revision: {other:?}"),
        },
        other => panic!("append failed: {other:?}"),
    }
}

/// 64 clients, one connection each, appending single events with exact expected revisions.
async fn served_appends(config: &Config) -> (f64, f64) {
    let server = start().await;
    let figures = run_appends(config, server.addr).await;
    server.stop().await;
    figures
}

async fn connect(addr: std::net::SocketAddr) -> StreamsClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap();
    StreamsClient::new(channel.connect().await.unwrap())
}

/// The served appends' clients against the server at `addr`: appends per second and p99 ms.
async fn run_appends(config: &Config, addr: std::net::SocketAddr) -> (f64, f64) {
    let mut clients = Vec::new();
    for _ in 0..WRITERS {
        clients.push(connect(addr).await);
    }
    let started = Instant::now();
    let deadline = started + config.append_for;
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(w, mut client)| {
            tokio::spawn(async move {
                let (stream, mut latencies) = (format!("w-{w}"), Vec::new());
                let mut expected = ExpectedStreamRevision::NoStream(Empty {});
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let revision = append_one(&mut client, &stream, expected).await;
                    latencies.push(t.elapsed());
                    expected = ExpectedStreamRevision::Revision(revision);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
    (rate, p99_ms(&mut latencies))
}

/// The argument that makes this binary the child process serving a fresh store.
const CHILD_FLAG: &str = "--serve-child";

/// The child: serves a fresh store on a loopback port, prints the port, stops when its stdin
/// closes.
async fn serve_child() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("{}", listener.local_addr().unwrap().port());
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
    });
    let stop = async {
        let _ = stdin_closed.await;
    };
    annal_server::serve(store, listener, Limits::default(), stop).await.unwrap();
}

/// [`served_appends`] against a server in a child process.
async fn served_appends_from_child(config: &Config) -> (f64, f64) {
    use std::{io::BufRead, process::Stdio};
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg(CHILD_FLAG)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut port).unwrap();
    let addr = format!("127.0.0.1:{}", port.trim()).parse().unwrap();
    let figures = run_appends(config, addr).await;
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success(), "the server process stopped cleanly");
    figures
}

fn subscribe_request(stream: &str) -> ReadReq {
    use options::{CountOption, FilterOption, StreamOption, StreamOptions, stream_options};
    ReadReq {
        options: Some(read_req::Options {
            stream_option: Some(StreamOption::Stream(StreamOptions {
                stream_identifier: id(stream),
                revision_option: Some(stream_options::RevisionOption::End(Empty {})),
            })),
            read_direction: options::ReadDirection::Forwards as i32,
            resolve_links: false,
            count_option: Some(CountOption::Subscription(options::SubscriptionOptions {})),
            filter_option: Some(FilterOption::NoFilter(Empty {})),
            uuid_option: Some(options::UuidOption {
                content: Some(options::uuid_option::Content::String(Empty {})),
            }),
        }),
    }
}

/// 100 live subscribers to one stream; events appended one at a time, 2 ms apart. The p99 over
/// every (subscriber, event) of receipt time minus the append's return (0 if it came first).
async fn live_delays(config: &Config) -> f64 {
    let server = start().await;
    let returned: Arc<Mutex<Vec<Option<Instant>>>> =
        Arc::new(Mutex::new(vec![None; config.live_events]));
    let mut subscribers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut client = server.client().await;
        let mut replies = client.read(subscribe_request("live")).await.unwrap().into_inner();
        // The confirmation: the subscription is open before the first append.
        replies.message().await.unwrap().unwrap();
        let wanted = config.live_events;
        subscribers.push(tokio::spawn(async move {
            let mut received = Vec::with_capacity(wanted);
            while received.len() < wanted {
                let reply = replies.message().await.unwrap().unwrap();
                if let Some(read_resp::Content::Event(e)) = reply.content {
                    let revision = e.event.unwrap().stream_revision;
                    received.push((revision, Instant::now()));
                }
            }
            received
        }));
    }
    let mut writer = server.client().await;
    let mut expected = ExpectedStreamRevision::NoStream(Empty {});
    for _ in 0..config.live_events {
        let revision = append_one(&mut writer, "live", expected).await;
        returned.lock().unwrap()[revision as usize] = Some(Instant::now());
        expected = ExpectedStreamRevision::Revision(revision);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let returned = returned.lock().unwrap().clone();
    let mut delays = Vec::new();
    for subscriber in subscribers {
        for (revision, at) in subscriber.await.unwrap() {
            let back = returned[revision as usize].unwrap();
            delays.push(at.saturating_duration_since(back));
        }
    }
    server.stop().await;
    p99_ms(&mut delays)
}

/// `$all` read forward through the server in one call, decoded by the generated client, then
/// again by a client that only counts the event replies (so the figure is the server's more
/// than the client's decoding), then a `$all` subscription from the start caught up by that
/// client, against `read_all_forward` embedded.
async fn read_all(config: &Config) -> (f64, f64, f64, f64) {
    let server = start().await;
    let batch: Vec<NewEvent> = (0..1000).map(|_| event()).collect();
    for i in 0..config.all_events / batch.len() {
        let part = StreamAppend::new(format!("s-{i}"), ExpectedVersion::Any, batch.clone());
        server.store.append_multi([part]).unwrap();
    }
    let t = Instant::now();
    let mut n = 0usize;
    for e in server.store.read_all_forward(Position::START, usize::MAX) {
        std::hint::black_box(e.unwrap());
        n += 1;
    }
    let embedded = n as f64 / t.elapsed().as_secs_f64();
    let mut client = server.client().await;
    let t = Instant::now();
    let mut replies = client.read(read_all_request(config)).await.unwrap().into_inner();
    let mut events = 0usize;
    while let Some(reply) = replies.message().await.unwrap() {
        if let Some(read_resp::Content::Event(_)) = reply.content {
            events += 1;
        }
    }
    let served = events as f64 / t.elapsed().as_secs_f64();
    assert_eq!(events, n, "the server read every event");
    let t = Instant::now();
    let counted = counting::read(server.addr, read_all_request(config), false).await;
    let raw = counted as f64 / t.elapsed().as_secs_f64();
    assert_eq!(counted, n, "the counting client saw every event");
    let t = Instant::now();
    let mut subscribe = read_all_request(config);
    let options = subscribe.options.as_mut().unwrap();
    options.count_option =
        Some(options::CountOption::Subscription(options::SubscriptionOptions {}));
    let caught_up = counting::read(server.addr, subscribe, true).await;
    let catch_up = caught_up as f64 / t.elapsed().as_secs_f64();
    assert_eq!(caught_up, n, "the subscription caught up over every event");
    server.stop().await;
    (served, raw, catch_up, embedded)
}

fn read_all_request(config: &Config) -> ReadReq {
    use options::{AllOptions, CountOption, FilterOption, StreamOption, all_options};
    ReadReq {
        options: Some(read_req::Options {
            stream_option: Some(StreamOption::All(AllOptions {
                all_option: Some(all_options::AllOption::Start(Empty {})),
            })),
            read_direction: options::ReadDirection::Forwards as i32,
            resolve_links: false,
            count_option: Some(CountOption::Count(config.all_events as u64)),
            filter_option: Some(FilterOption::NoFilter(Empty {})),
            uuid_option: Some(options::UuidOption {
                content: Some(options::uuid_option::Content::String(Empty {})),
            }),
        }),
    }
}

/// A Read client that decodes no reply: it counts those that are events (`ReadResp` field 1,
/// length-delimited: first byte 0x0a).
mod counting {
    use annal_server::proto::streams::ReadReq;
    use prost::bytes::Buf;
    use tonic::{
        Status,
        codec::{BufferSettings, Codec, DecodeBuf, Decoder},
        codegen::http::uri::PathAndQuery,
        transport::Channel,
    };
    use tonic_prost::ProstEncoder;

    struct Counting;

    impl Codec for Counting {
        type Encode = ReadReq;
        type Decode = u8;
        type Encoder = ProstEncoder<ReadReq>;
        type Decoder = FirstByte;

        fn encoder(&mut self) -> Self::Encoder {
            ProstEncoder::new(BufferSettings::default())
        }

        fn decoder(&mut self) -> FirstByte {
            FirstByte
        }
    }

    /// A reply's first byte: its `content` field's key (0 for an empty reply).
    struct FirstByte;

    impl Decoder for FirstByte {
        type Item = u8;
        type Error = Status;

        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<u8>, Status> {
            let first = src.chunk().first().copied().unwrap_or(0);
            src.advance(src.remaining());
            Ok(Some(first))
        }
    }

    /// `ReadResp.event` (field 1, length-delimited).
    const EVENT: u8 = 0x0a;
    /// `ReadResp.caught_up` (field 8, length-delimited).
    const CAUGHT_UP: u8 = 0x42;

    /// Reads with `request` from the server at `addr` until the call ends or, if
    /// `until_caught_up`, a `caught_up` arrives; how many replies were events.
    pub async fn read(
        addr: std::net::SocketAddr,
        request: ReadReq,
        until_caught_up: bool,
    ) -> usize {
        let channel = Channel::from_shared(format!("http://{addr}")).unwrap();
        let mut grpc = tonic::client::Grpc::new(channel.connect().await.unwrap());
        grpc.ready().await.unwrap();
        let path = PathAndQuery::from_static("/event_store.client.streams.Streams/Read");
        let request = tonic::Request::new(request);
        let mut replies =
            grpc.server_streaming(request, path, Counting).await.unwrap().into_inner();
        let mut events = 0;
        while let Some(first) = replies.message().await.unwrap() {
            match first {
                EVENT => events += 1,
                CAUGHT_UP if until_caught_up => break,
                _ => {}
            }
        }
        events
    }
}
