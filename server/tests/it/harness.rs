//! Starts a server on 127.0.0.1:0 over a fresh store, and builds the requests tests send.

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use annal_server::{
    Limits, ServeError,
    metrics::Metrics,
    proto::{
        shared::{Empty, StreamIdentifier, Uuid as WireUuid, uuid},
        streams::{
            AppendReq, AppendResp, ReadReq, ReadResp,
            append_req::{self, options::ExpectedStreamRevision},
            read_req::{self, options},
            streams_client::StreamsClient,
        },
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::oneshot,
    task::JoinHandle,
};
use tonic::{Status, transport::Channel};

/// A running server and its store directory.
pub struct TestServer {
    pub addr: SocketAddr,
    /// Where `GET /metrics` is served.
    pub metrics_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(Limits::default()).await
    }

    pub async fn start_with(limits: Limits) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut server = TestServer::start_in(dir.path(), limits).await;
        server._dir = Some(dir);
        server
    }

    /// A server over the store in `dir`, which outlives it (to start another over it later).
    pub async fn start_in(dir: &std::path::Path, limits: Limits) -> TestServer {
        let store = annal::Store::open(dir).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let scrape = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_addr = scrape.local_addr().unwrap();
        let metrics = Arc::new(Metrics::default());
        let forever = std::future::pending();
        tokio::spawn(annal_server::serve_metrics(scrape, metrics.clone(), store.clone(), forever));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(annal_server::serve_with_metrics(
            store,
            listener,
            limits,
            metrics,
            async {
                let _ = stopped.await;
            },
        ));
        TestServer { addr, metrics_addr, stop: Some(stop), task: Some(task), _dir: None }
    }

    /// Sends `GET path` to the metrics endpoint: the status line and the body.
    pub async fn http_get(&self, path: &str) -> (String, String) {
        let mut stream = tokio::net::TcpStream::connect(self.metrics_addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap();
        (head.lines().next().unwrap().to_owned(), body.to_owned())
    }

    /// The value of the sample `name` (with its labels, as rendered) in a scrape.
    pub async fn metric(&self, name: &str) -> f64 {
        let (status, body) = self.http_get("/metrics").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        let line = body
            .lines()
            .find(|l| l.rsplit_once(' ').is_some_and(|(n, _)| n == name))
            .unwrap_or_else(|| panic!("{name} not in\n{body}"));
        line.rsplit_once(' ').unwrap().1.parse().unwrap()
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.unwrap()
    }

    pub async fn streams(&self) -> StreamsClient<Channel> {
        StreamsClient::new(self.channel().await)
    }

    /// Asks the server to stop and waits until it has.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap()
    }
}

pub fn id(stream: &str) -> Option<StreamIdentifier> {
    Some(StreamIdentifier { stream_name: stream.as_bytes().to_vec() })
}

pub fn empty() -> Empty {
    Empty {}
}

/// An event proposal of `event_type` with JSON `data`.
pub fn proposed(event_type: &str, data: &str) -> AppendReq {
    proposed_with_id(event_type, data, ::uuid::Uuid::new_v4())
}

pub fn proposed_with_id(event_type: &str, data: &str, event_id: ::uuid::Uuid) -> AppendReq {
    let metadata = HashMap::from([
        ("type".to_owned(), event_type.to_owned()),
        ("content-type".to_owned(), "application/json".to_owned()),
    ]);
    AppendReq {
        content: Some(append_req::Content::ProposedMessage(append_req::ProposedMessage {
            id: Some(WireUuid { value: Some(uuid::Value::String(event_id.to_string())) }),
            metadata,
            custom_metadata: b"{\"by\":\"test\"}".to_vec(),
            data: data.as_bytes().to_vec(),
        })),
    }
}

/// The options message opening an append.
pub fn append_options(stream: &str, expected: ExpectedStreamRevision) -> AppendReq {
    AppendReq {
        content: Some(append_req::Content::Options(append_req::Options {
            stream_identifier: id(stream),
            expected_stream_revision: Some(expected),
        })),
    }
}

/// Appends `events` (types) to `stream` with `expected`.
pub async fn append(
    client: &mut StreamsClient<Channel>,
    stream: &str,
    expected: ExpectedStreamRevision,
    types: &[&str],
) -> Result<AppendResp, Status> {
    let mut requests = vec![append_options(stream, expected)];
    requests.extend(types.iter().map(|t| proposed(t, "{}")));
    client.append(tokio_stream::iter(requests)).await.map(tonic::Response::into_inner)
}

/// A counted read request.
pub fn read_request(
    stream_option: options::StreamOption,
    backwards: bool,
    count_option: options::CountOption,
    filter_option: options::FilterOption,
) -> ReadReq {
    let direction = if backwards {
        options::ReadDirection::Backwards
    } else {
        options::ReadDirection::Forwards
    };
    ReadReq {
        options: Some(read_req::Options {
            stream_option: Some(stream_option),
            read_direction: direction as i32,
            resolve_links: false,
            count_option: Some(count_option),
            filter_option: Some(filter_option),
            uuid_option: Some(options::UuidOption {
                content: Some(options::uuid_option::Content::String(empty())),
            }),
        }),
    }
}

pub fn stream_from(
    stream: &str,
    revision: options::stream_options::RevisionOption,
) -> options::StreamOption {
    options::StreamOption::Stream(options::StreamOptions {
        stream_identifier: id(stream),
        revision_option: Some(revision),
    })
}

pub fn all_from(at: options::all_options::AllOption) -> options::StreamOption {
    options::StreamOption::All(options::AllOptions { all_option: Some(at) })
}

/// Reads until the server ends the call.
pub async fn read_all_replies(
    client: &mut StreamsClient<Channel>,
    request: ReadReq,
) -> Result<Vec<ReadResp>, Status> {
    let mut stream = client.read(request).await?.into_inner();
    let mut replies = Vec::new();
    while let Some(reply) = stream.message().await? {
        replies.push(reply);
    }
    Ok(replies)
}

/// The events of `replies` as (stream, revision, type).
pub fn events(replies: &[ReadResp]) -> Vec<(String, u64, String)> {
    use annal_server::proto::streams::read_resp::Content;
    replies
        .iter()
        .filter_map(|r| match &r.content {
            Some(Content::Event(e)) => {
                let e = e.event.as_ref().unwrap();
                let stream =
                    String::from_utf8(e.stream_identifier.clone().unwrap().stream_name).unwrap();
                Some((stream, e.stream_revision, e.metadata["type"].clone()))
            }
            _ => None,
        })
        .collect()
}

/// The `exception` trailer of a status.
pub fn exception(status: &Status) -> Option<String> {
    trailer(status, "exception")
}

pub fn trailer(status: &Status, key: &str) -> Option<String> {
    status.metadata().get(key).map(|v| v.to_str().unwrap().to_owned())
}
