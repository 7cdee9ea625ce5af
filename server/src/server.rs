//! Serving a store: the listener (under the connection limit), the services (v1 Streams,
//! PersistentSubscriptions, ServerFeatures, Gossip; v2 StreamsService), and a graceful
//! shutdown (stop accepting, end subscriptions, let in-flight calls finish, then close the
//! store).

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
    service::{FeaturesService, GossipService, StreamsService, V2StreamsService},
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
    /// The persistent subscription groups could not be read from the store.
    #[error("persistent subscription groups: {0}")]
    Groups(#[from] annal::Error),
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
    let groups = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || Groups::load(store))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??
    };
    let persistent = PersistentSubscriptionsServer::new(PersistentService {
        ctx: ctx.clone(),
        groups: Arc::new(groups),
    });
    let streams = StreamsServer::new(StreamsService { ctx })
        .max_decoding_message_size(message_max)
        .max_encoding_message_size(usize::MAX);
    let gossip = GossipServer::new(GossipService { instance: Uuid::new_v4(), advertised });
    let per_connection = limits.subscriptions_per_connection_max;
    let incoming = TcpListenerStream::new(listener).filter_map(move |stream| {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => return Some(Err(e)),
        };
        // Replies are small and latency matters more than packet count.
        if let Err(e) = stream.set_nodelay(true) {
            return Some(Err(e));
        }
        Connection::admit(stream, &connections, per_connection, &metrics).map(Ok)
    });
    tracing::info!(%advertised, ?limits, "serving");
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: no new calls, subscriptions end");
        // Subscriptions and reads watch this and end, so the connections can drain.
        let _ = stop_tx.send(true);
    };
    let served = Server::builder()
        .trace_fn(|request| tracing::debug_span!("call", method = request.uri().path()))
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
