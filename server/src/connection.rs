//! Accepted connections under a limit: each holds a permit of the server-wide connection
//! semaphore and its own subscription semaphore (the per-connection limit), handed to handlers
//! as a request extension. A connection beyond the limit is closed at once: its client gets a
//! transport error (`UNAVAILABLE`, `CANCELLED` or `UNKNOWN`, depending on when it notices)
//! rather than a call that waits forever.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context as TaskContext, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::metrics::Metrics;

/// What handlers learn about the connection a request came on.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    /// The peer's and our addresses.
    pub tcp: TcpConnectInfo,
    /// One permit per subscription this connection may have open.
    pub subscriptions: Arc<Semaphore>,
}

/// An accepted TCP connection that counts against the connection limit until dropped.
pub struct Connection {
    stream: TcpStream,
    info: ConnectionInfo,
    metrics: Arc<Metrics>,
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    /// Admits `stream` if a connection permit is free; otherwise counts the refusal and drops
    /// (closes) it.
    pub fn admit(
        stream: TcpStream,
        connections: &Arc<Semaphore>,
        subscriptions_per_connection: usize,
        metrics: &Arc<Metrics>,
    ) -> Option<Connection> {
        let Ok(permit) = Arc::clone(connections).try_acquire_owned() else {
            metrics.connection_refused();
            tracing::warn!(peer = ?stream.peer_addr().ok(), "connection refused: limit reached");
            return None;
        };
        metrics.connection_opened();
        let info = ConnectionInfo {
            tcp: stream.connect_info(),
            subscriptions: Arc::new(Semaphore::new(subscriptions_per_connection)),
        };
        Some(Connection { stream, info, metrics: Arc::clone(metrics), _permit: permit })
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.metrics.connection_closed();
    }
}

impl Connected for Connection {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        self.info.clone()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The permits an open subscription holds: one of the server's and one of its connection's.
/// Dropping it (when the subscription ends) frees both and lowers the open-subscriptions gauge.
pub struct SubscriptionPermit {
    _server: OwnedSemaphorePermit,
    _connection: Option<OwnedSemaphorePermit>,
    metrics: Arc<Metrics>,
}

impl Drop for SubscriptionPermit {
    fn drop(&mut self) {
        self.metrics.subscription_closed();
    }
}

/// Admits a subscription under the server-wide and the per-connection limits, or refuses it
/// with `RESOURCE_EXHAUSTED` (what the clients surface as a resource error, not a hang).
/// `connection` is absent only for calls that did not come through [`Connection`].
pub fn admit_subscription(
    ctx: &crate::context::Context,
    connection: Option<&ConnectionInfo>,
) -> Result<SubscriptionPermit, tonic::Status> {
    let refuse = |message: String| {
        ctx.metrics.subscription_refused();
        let peer = connection.and_then(|info| info.tcp.remote_addr());
        tracing::warn!(?peer, %message, "subscription refused");
        tonic::Status::resource_exhausted(message)
    };
    let local = match connection {
        Some(info) => Some(Arc::clone(&info.subscriptions).try_acquire_owned().map_err(|_| {
            refuse(format!(
                "at most {} subscriptions may be open on one connection",
                ctx.limits.subscriptions_per_connection_max
            ))
        })?),
        None => None,
    };
    let server = Arc::clone(&ctx.subscriptions).try_acquire_owned().map_err(|_| {
        refuse(format!(
            "at most {} subscriptions may be open at once",
            ctx.limits.subscriptions_max
        ))
    })?;
    ctx.metrics.subscription_opened();
    Ok(SubscriptionPermit {
        _server: server,
        _connection: local,
        metrics: Arc::clone(&ctx.metrics),
    })
}
