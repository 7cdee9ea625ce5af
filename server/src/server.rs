//! Serving a store: the listener (under the connection limit, plaintext or TLS), the services
//! (v1 Streams, PersistentSubscriptions, ServerFeatures, Gossip; v2 StreamsService) behind
//! basic authentication when a users file is given, and a graceful shutdown (stop accepting,
//! end subscriptions, let in-flight calls finish, then close the store).

use std::{future::Future, net::SocketAddr, sync::Arc};

use annal::Store;
use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
};
use tokio_stream::{StreamExt, wrappers::TcpListenerStream};
use tonic::transport::Server;
use uuid::Uuid;

use crate::{
    auth::{AuthLayer, Gate},
    connection::Connection,
    context::{Context, Limits},
    metrics::Metrics,
    proto::{
        gossip::gossip_server::GossipServer,
        persistent::persistent_subscriptions_server::PersistentSubscriptionsServer,
        server_features::server_features_server::ServerFeaturesServer,
        streams::streams_server::StreamsServer, v2::streams_service_server::StreamsServiceServer,
    },
    psub::{Groups, PersistentService},
    read_call::ReadRoute,
    service::{FeaturesService, GossipService, StreamsService, V2StreamsService},
    tls::TlsIdentity,
    users::Users,
};

/// Room above the append limit for one gRPC message (so an append just over the limit gets the
/// protocol's `maximum-append-size-exceeded`, and only far larger messages are cut off by the
/// transport).
pub const MESSAGE_BYTES_SLACK: usize = 4 << 20;

/// Why serving stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listener's address could not be read.
    #[error("listener: {0}")]
    Listener(#[from] std::io::Error),
    /// The gRPC transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Users were given without TLS: their passwords would cross the network in clear.
    #[error(
        "basic authentication needs TLS (--tls-cert and --tls-key): without it passwords \
         would cross the network in plaintext"
    )]
    UsersWithoutTls,
    /// The persistent subscription groups could not be read from the store.
    #[error("persistent subscription groups: {0}")]
    Groups(#[from] annal::Error),
}

/// How to serve: limits, where to count, and the optional TLS identity and users.
#[derive(Default)]
pub struct ServeOptions {
    /// Limits on appends, subscriptions and connections.
    pub limits: Limits,
    /// Where the handlers count (what [`serve_metrics`](crate::serve_metrics) exposes).
    pub metrics: Arc<Metrics>,
    /// Serve TLS with this certificate and key; plaintext HTTP/2 if `None`.
    pub tls: Option<TlsIdentity>,
    /// Require basic authentication by these users on every call but `Gossip` and
    /// `ServerFeatures`; needs [`tls`](ServeOptions::tls).
    pub users: Option<Users>,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("limits", &self.limits)
            .field("tls", &self.tls.is_some())
            .field("users", &self.users)
            .finish_non_exhaustive()
    }
}

/// Serves `store` on `listener` until `shutdown` completes, then closes the store.
pub async fn serve(
    store: Store,
    listener: TcpListener,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    serve_with_metrics(store, listener, limits, Arc::default(), shutdown).await
}

/// [`serve`], counting into `metrics` (which [`serve_metrics`](crate::serve_metrics) can
/// expose).
pub async fn serve_with_metrics(
    store: Store,
    listener: TcpListener,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let options = ServeOptions { limits, metrics, ..ServeOptions::default() };
    serve_with_options(store, listener, options, shutdown).await
}

/// [`serve`] as `options` say: limits, metrics, TLS and basic authentication. Fails at once,
/// before serving, with [`ServeError::UsersWithoutTls`] if users are given without TLS (the
/// store is closed then too).
pub async fn serve_with_options(
    store: Store,
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let ServeOptions { limits, metrics, tls, users } = options;
    let builder = match transport(tls.as_ref(), users.is_some()) {
        Ok(builder) => builder,
        Err(e) => {
            store.close();
            return Err(e);
        }
    };
    let advertised: SocketAddr = listener.local_addr()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let subscriptions = Arc::new(Semaphore::new(limits.subscriptions_max));
    let connections = Arc::new(Semaphore::new(limits.connections_max));
    let ctx = Context {
        store: store.clone(),
        limits,
        shutdown: stop_rx,
        subscriptions,
        metrics: Arc::clone(&metrics),
    };
    let message_max = usize::try_from(limits.append_bytes_max)
        .unwrap_or(usize::MAX)
        .saturating_add(MESSAGE_BYTES_SLACK);
    let v2 = StreamsServiceServer::new(V2StreamsService { ctx: ctx.clone() })
        .max_decoding_message_size(message_max);
    let groups = load_groups(&store).await?;
    let persistent = PersistentSubscriptionsServer::new(PersistentService {
        ctx: ctx.clone(),
        groups: Arc::new(groups),
    });
    let streams = StreamsServer::new(StreamsService { ctx: ctx.clone() })
        .max_decoding_message_size(message_max)
        .max_encoding_message_size(usize::MAX);
    // Read goes around the generated service: its replies are mostly pre-encoded bytes.
    let streams = ReadRoute::new(streams, ctx, message_max);
    let gossip = GossipServer::new(GossipService { instance: Uuid::new_v4(), advertised });
    let gate = users.map(|users| AuthLayer::new(Arc::new(Gate::new(users, Arc::clone(&metrics)))));
    let incoming =
        admitted(listener, connections, limits.subscriptions_per_connection_max, metrics);
    let (secure, authenticated) = (tls.is_some(), gate.is_some());
    tracing::info!(%advertised, ?limits, tls = secure, basic_auth = authenticated, "serving");
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: no new calls, subscriptions end");
        // Subscriptions and reads watch this and end, so the connections can drain.
        let _ = stop_tx.send(true);
    };
    let served = builder
        .trace_fn(|request| tracing::debug_span!("call", method = request.uri().path()))
        .layer(tower::util::option_layer(gate))
        .add_service(streams)
        .add_service(v2)
        .add_service(ServerFeaturesServer::new(FeaturesService))
        .add_service(gossip)
        .add_service(persistent)
        .serve_with_incoming_shutdown(incoming, signal)
        .await;
    let closing = store.clone();
    let _ = tokio::task::spawn_blocking(move || closing.close()).await;
    match &served {
        Ok(()) => tracing::info!("stopped; store closed"),
        Err(e) => tracing::error!(error = %e, "transport failed; store closed"),
    }
    served.map_err(ServeError::from)
}

/// The transport: TLS with `tls`, else plaintext; users (`authenticated`) only with TLS.
fn transport(tls: Option<&TlsIdentity>, authenticated: bool) -> Result<Server, ServeError> {
    match tls {
        Some(identity) => Ok(Server::builder().tls_config(identity.server_config())?),
        None if authenticated => Err(ServeError::UsersWithoutTls),
        None => Ok(Server::builder()),
    }
}

/// The connections accepted on `listener` that the connection limit admits (the others are
/// closed at once), each with its own subscription limit.
fn admitted(
    listener: TcpListener,
    connections: Arc<Semaphore>,
    subscriptions_per_connection: usize,
    metrics: Arc<Metrics>,
) -> impl tokio_stream::Stream<Item = std::io::Result<Connection>> {
    TcpListenerStream::new(listener).filter_map(move |stream| {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => return Some(Err(e)),
        };
        // Replies are small and latency matters more than packet count.
        if let Err(e) = stream.set_nodelay(true) {
            return Some(Err(e));
        }
        Connection::admit(stream, &connections, subscriptions_per_connection, &metrics).map(Ok)
    })
}

/// The persistent subscription groups defined in `store`, read off the async workers; on a
/// failure the store is closed, as for every refusal to serve.
async fn load_groups(store: &Store) -> Result<Groups, ServeError> {
    let reading = store.clone();
    let loaded = match tokio::task::spawn_blocking(move || Groups::load(reading)).await {
        Ok(loaded) => loaded.map_err(ServeError::Groups),
        // The load panicked (a defect): reported as an I/O failure of serving.
        Err(e) => Err(ServeError::Listener(std::io::Error::other(e.to_string()))),
    };
    if loaded.is_err() {
        store.close();
    }
    loaded
}
