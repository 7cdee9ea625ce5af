//! The `Streams.Read` call: admitting it (a subscription holds permits), planning it, starting
//! its reader (a blocking task for a counted read, an async task for a subscription), and the
//! route that serves it with [`ReadCodec`] in front of the generated Streams service, so a
//! counted read's events go out as the bytes `encoded` wrote, never as messages.

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context as TaskContext, Poll},
};

use tokio::sync::mpsc;
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{
    Request, Response, Status,
    body::Body,
    codegen::{BoxFuture, Service, http},
    server::{Grpc, NamedService},
};

use crate::{
    connection::{self, ConnectionInfo},
    context::{Context, READ_QUEUE_REPLIES},
    outbox::Outbox,
    proto::streams::ReadReq,
    read::{self, READ_QUEUE_BATCHES, Replies},
    reply::{ReadCodec, Reply, Unbatched},
    sink::Sink,
    subscribe,
};

/// The path of the Read method.
const READ_PATH: &str = "/event_store.client.streams.Streams/Read";

/// A Read call's replies.
pub type ReplyStream = Pin<Box<dyn Stream<Item = Result<Reply, Status>> + Send + 'static>>;

/// Starts the Read call `request`: its replies, or why it was refused.
pub fn start(ctx: &Context, request: Request<ReadReq>) -> Result<ReplyStream, Status> {
    let connection = request.extensions().get::<ConnectionInfo>().cloned();
    let plan = read::plan(request.into_inner())?;
    tracing::debug!(subscription = plan.count.is_none(), "read");
    let store = ctx.store.clone();
    let shutdown = ctx.shutdown.clone();
    // A panic in a task drops its queue: the client sees the stream end, never a hang.
    match plan.count {
        Some(count) => {
            ctx.metrics.read();
            let (tx, rx) = mpsc::channel(READ_QUEUE_BATCHES);
            let outbox = Outbox::new(tx, shutdown, tokio::runtime::Handle::current());
            tokio::task::spawn_blocking(move || {
                read::run_counted(&store, &plan, count, &mut Replies::new(outbox));
            });
            Ok(Box::pin(Unbatched::new(rx)))
        }
        None => {
            // A subscription holds its permits until it ends.
            let permit = connection::admit_subscription(ctx, connection.as_ref())?;
            let (tx, rx) = mpsc::channel(READ_QUEUE_REPLIES);
            let mut sink = Sink::new(tx, shutdown);
            // An async task over the library's stream; it ends (dropping the stream) when the
            // client drops the call.
            tokio::spawn(async move {
                subscribe::run(&store, &plan, &mut sink).await;
                drop(permit);
            });
            Ok(Box::pin(ReceiverStream::new(rx)))
        }
    }
}

/// The Read method as tonic's server-streaming service.
#[derive(Clone)]
struct ReadMethod {
    ctx: Context,
}

impl Service<Request<ReadReq>> for ReadMethod {
    type Response = Response<ReplyStream>;
    type Error = Status;
    type Future = std::future::Ready<Result<Response<ReplyStream>, Status>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReadReq>) -> Self::Future {
        std::future::ready(start(&self.ctx, request).map(Response::new))
    }
}

/// A service (the generated Streams server) with its Read method served by [`ReadMethod`].
#[derive(Clone)]
pub struct ReadRoute<S> {
    inner: S,
    read: ReadMethod,
    decoding_bytes_max: usize,
}

impl<S> ReadRoute<S> {
    /// `inner`, with Read served from `ctx`; requests larger than `decoding_bytes_max` are
    /// refused as the generated service refuses them.
    pub fn new(inner: S, ctx: Context, decoding_bytes_max: usize) -> ReadRoute<S> {
        ReadRoute { inner, read: ReadMethod { ctx }, decoding_bytes_max }
    }
}

impl<S: NamedService> NamedService for ReadRoute<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for ReadRoute<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<http::Response<Body>, Infallible>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != READ_PATH {
            let response = self.inner.call(request);
            return Box::pin(response);
        }
        let method = self.read.clone();
        // The generated service's limits: requests up to the decoding limit, replies unlimited.
        let mut grpc = Grpc::new(ReadCodec)
            .apply_max_message_size_config(Some(self.decoding_bytes_max), Some(usize::MAX));
        Box::pin(async move { Ok(grpc.server_streaming(method, request).await) })
    }
}
