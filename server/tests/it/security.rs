//! TLS and basic authentication: a TLS server serves a client that trusts its CA and nothing
//! to a plaintext one; with users, a call needs valid credentials (refusals carry the status
//! and `exception` trailer the clients map to their access errors) except Gossip and
//! ServerFeatures; users without TLS, and bad certificate files, stop the server before it
//! serves.

use std::{process::Command, sync::Arc};

use annal_server::{
    Limits, ServeError, ServeOptions,
    metrics::Metrics,
    proto::{
        server_features::server_features_client::ServerFeaturesClient,
        streams::{
            append_req::options::ExpectedStreamRevision as Expected,
            read_req::options::{
                CountOption, FilterOption, SubscriptionOptions, all_options::AllOption,
            },
            streams_client::StreamsClient,
        },
    },
    tls::{TlsError, TlsIdentity},
    users::{Users, hash_line},
};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{
    Code, Request, Status,
    metadata::MetadataValue,
    transport::{Certificate, Channel, ClientTlsConfig},
};

use crate::{
    certs::{self, Certs},
    harness::{all_from, append, append_options, empty, exception, proposed, read_request},
};

/// A server started with `options` on a fresh store, and what a test needs to reach it.
pub struct Secured {
    pub addr: std::net::SocketAddr,
    pub metrics: Arc<Metrics>,
    pub store: annal::Store,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServeError>>,
    _dir: tempfile::TempDir,
}

impl Secured {
    pub async fn start(tls: Option<TlsIdentity>, users: Option<Users>) -> Secured {
        Secured::start_with(Limits::default(), tls, users).await
    }

    pub async fn start_with(
        limits: Limits,
        tls: Option<TlsIdentity>,
        users: Option<Users>,
    ) -> Secured {
        let dir = tempfile::tempdir().unwrap();
        let store = annal::Store::open(dir.path()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::default());
        let options = ServeOptions { limits, metrics: Arc::clone(&metrics), tls, users };
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(annal_server::serve_with_options(
            store.clone(),
            listener,
            options,
            async {
                let _ = stopped.await;
            },
        ));
        Secured { addr, metrics, store, stop, task, _dir: dir }
    }

    /// A channel over TLS trusting `ca_pem`, for the name `localhost`.
    async fn tls_channel(&self, ca_pem: &str) -> Channel {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca_pem))
            .domain_name("localhost");
        Channel::from_shared(format!("https://{}", self.addr))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

fn identity(certs: &Certs) -> TlsIdentity {
    TlsIdentity::from_pem(certs.cert_pem.as_bytes(), certs.key_pem.as_bytes()).unwrap()
}

/// An append of one event to `stream`, with `authorization` if given.
async fn append_as(
    client: &mut StreamsClient<Channel>,
    stream: &str,
    authorization: Option<&str>,
) -> Result<(), Status> {
    let requests = vec![append_options(stream, Expected::Any(empty())), proposed("E", "{}")];
    let mut request = Request::new(tokio_stream::iter(requests));
    if let Some(value) = authorization {
        request.metadata_mut().insert("authorization", MetadataValue::try_from(value).unwrap());
    }
    client.append(request).await.map(|_| ())
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_server_serves_a_client_trusting_its_ca_and_refuses_plaintext() {
    let certs = certs::generate();
    let server = Secured::start(Some(identity(&certs)), None).await;
    let mut client = StreamsClient::new(server.tls_channel(&certs.ca_pem).await);
    append(&mut client, "s", Expected::NoStream(empty()), &["E", "F"]).await.unwrap();
    assert_eq!(server.store.head().get(), 2);

    // A plaintext HTTP/2 client gets no answer from the TLS listener: its connection or its
    // call fails at the transport, and nothing is written. (Which status code the client makes
    // of the cut connection depends on when it sees it: under load it was once none of
    // Unavailable, Unknown and Internal, so only the failure is asserted.)
    let plain = Channel::from_shared(format!("http://{}", server.addr)).unwrap().connect().await;
    if let Ok(channel) = plain {
        let refused = append_as(&mut StreamsClient::new(channel), "s", None).await;
        assert!(refused.is_err(), "a plaintext call to a TLS listener went through");
    }
    assert_eq!(server.store.head().get(), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connection_keeps_its_per_connection_subscription_limit() {
    // Over TLS tonic puts the connection's info in each request both as it is and wrapped
    // (`TlsConnectInfo`): the limit finds it either way.
    let certs = certs::generate();
    let limits = Limits { subscriptions_per_connection_max: 1, ..Limits::default() };
    let server = Secured::start_with(limits, Some(identity(&certs)), None).await;
    let mut client = StreamsClient::new(server.tls_channel(&certs.ca_pem).await);
    let subscribe = || {
        read_request(
            all_from(AllOption::Start(empty())),
            false,
            CountOption::Subscription(SubscriptionOptions {}),
            FilterOption::NoFilter(empty()),
        )
    };
    let mut first = client.read(subscribe()).await.unwrap().into_inner();
    assert!(first.message().await.unwrap().is_some(), "the confirmation");
    let refused = client.read(subscribe()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    drop(first);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_trusting_another_ca_is_refused() {
    let (certs, other) = (certs::generate(), certs::generate());
    let server = Secured::start(Some(identity(&certs)), None).await;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&other.ca_pem))
        .domain_name("localhost");
    let endpoint = Channel::from_shared(format!("https://{}", server.addr)).unwrap();
    assert!(endpoint.tls_config(tls).unwrap().connect().await.is_err());
    server.stop().await;
}

#[test]
fn tls_identity_bad_files_are_refused_with_their_reason() {
    let (certs, other) = (certs::generate(), certs::generate());
    let dir = tempfile::tempdir().unwrap();
    let missing = TlsIdentity::from_files(&dir.path().join("no.pem"), &dir.path().join("k.pem"));
    assert!(matches!(missing, Err(TlsError::CertificateUnreadable { .. })), "{missing:?}");
    let swapped = TlsIdentity::from_pem(certs.key_pem.as_bytes(), certs.cert_pem.as_bytes());
    assert!(matches!(swapped, Err(TlsError::NoCertificate(_))), "{swapped:?}");
    let no_key = TlsIdentity::from_pem(certs.cert_pem.as_bytes(), certs.cert_pem.as_bytes());
    assert!(matches!(no_key, Err(TlsError::NoPrivateKey(_))), "{no_key:?}");
    let foreign = TlsIdentity::from_pem(certs.cert_pem.as_bytes(), other.key_pem.as_bytes());
    assert!(matches!(foreign, Err(TlsError::Refused(_))), "{foreign:?}");
    // A certificate cut short: its PEM frame is intact, its DER is not.
    let lines: Vec<&str> = certs.cert_pem.lines().collect();
    let garbled = [lines[0], lines[1], lines[lines.len() - 1]].join("\n");
    let garbled = TlsIdentity::from_pem(garbled.as_bytes(), certs.key_pem.as_bytes());
    assert!(matches!(garbled, Err(TlsError::Refused(_))), "{garbled:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_passes_listed_users_and_refuses_missing_or_wrong_credentials() {
    let certs = certs::generate();
    let users = Users::parse(&hash_line("ops", "s3cret", 1000).unwrap()).unwrap();
    let server = Secured::start(Some(identity(&certs)), Some(users)).await;
    let channel = server.tls_channel(&certs.ca_pem).await;
    let mut client = StreamsClient::new(channel.clone());

    append_as(&mut client, "s", Some(&basic("ops", "s3cret"))).await.unwrap();
    // The second call with the same header is answered from the remembered check.
    append_as(&mut client, "s", Some(&basic("ops", "s3cret"))).await.unwrap();

    let missing = append_as(&mut client, "s", None).await.unwrap_err();
    assert_eq!(missing.code(), Code::PermissionDenied, "{missing:?}");
    assert_eq!(exception(&missing).as_deref(), Some("access-denied"));
    for header in [
        basic("ops", "wrong"),
        basic("nobody", "s3cret"),
        "Basic !!!".to_owned(),
        "Bearer abc".to_owned(),
    ] {
        let refused = append_as(&mut client, "s", Some(&header)).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{header}: {refused:?}");
        assert_eq!(exception(&refused).as_deref(), Some("not-authenticated"), "{header}");
    }
    assert_eq!(server.store.head().get(), 2, "only the two authenticated appends");

    // The clients probe ServerFeatures (and Gossip) without credentials.
    let mut features = ServerFeaturesClient::new(channel);
    features.get_supported_methods(empty()).await.unwrap();

    let scrape = server.metrics.render(&server.store);
    assert!(scrape.contains("annal_server_auth_refused_total{reason=\"no_credentials\"} 1\n"));
    assert!(scrape.contains("annal_server_auth_refused_total{reason=\"bad_credentials\"} 4\n"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_without_tls_refuses_to_serve() {
    let users = Users::parse(&hash_line("ops", "s3cret", 1).unwrap()).unwrap();
    let server = Secured::start(None, Some(users)).await;
    let served = server.task.await.unwrap();
    assert!(matches!(served, Err(ServeError::UsersWithoutTls)), "{served:?}");
}

#[test]
fn binary_with_users_but_no_tls_or_a_bad_certificate_exits_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, hash_line("ops", "s3cret", 1).unwrap()).unwrap();
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let run = |extra: &[&std::ffi::OsStr]| {
        let output = Command::new(env!("CARGO_BIN_EXE_annal-server"))
            .arg("--dir")
            .arg(dir.path().join("store"))
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8(output.stderr).unwrap()
    };
    let stderr = run(&["--users".as_ref(), users.as_os_str()]);
    assert!(stderr.contains("basic authentication needs TLS"), "{stderr}");
    let pem = not_pem.as_os_str();
    let stderr = run(&["--tls-cert".as_ref(), pem, "--tls-key".as_ref(), pem]);
    assert!(stderr.contains("holds no PEM certificate"), "{stderr}");
    assert!(!dir.path().join("store").exists(), "nothing is opened before the checks");
}

#[test]
fn binary_hash_password_prints_a_line_the_users_file_accepts() {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_annal-server"))
        .args(["--hash-password", "ops", "--hash-iterations", "10"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let users = Users::parse(&String::from_utf8(output.stdout).unwrap()).unwrap();
    assert!(users.check("ops", "s3cret"));
    assert!(!users.check("ops", "s3cret\n"));
}
