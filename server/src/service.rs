//! The gRPC service implementations: thin adapters from tonic's traits to the modules that do
//! the work (`append`, `batch`, `read_call`, `delete`, `session`, `features`,
//! `gossip`).

use std::{net::SocketAddr, pin::Pin};

use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use crate::{
    append, batch,
    context::Context,
    delete::{self, Expected, Kind},
    features, gossip,
    proto::{
        gossip::{ClusterInfo, gossip_server::Gossip},
        server_features::{SupportedMethods, server_features_server::ServerFeatures},
        shared::Empty,
        streams::{
            AppendReq, AppendResp, BatchAppendReq, BatchAppendResp, DeleteReq, DeleteResp, ReadReq,
            ReadResp, TombstoneReq, TombstoneResp, delete_req, delete_resp,
            streams_server::Streams, tombstone_req, tombstone_resp,
        },
        v2::{
            AppendRequest, AppendSessionResponse,
            streams_service_server::StreamsService as StreamsServiceV2,
        },
    },
    read_call, session,
};

/// A boxed reply stream.
type ReplyStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The Streams service.
pub struct StreamsService {
    /// Shared state.
    pub ctx: Context,
}

#[tonic::async_trait]
impl Streams for StreamsService {
    type ReadStream = ReplyStream<ReadResp>;
    type BatchAppendStream = ReplyStream<BatchAppendResp>;

    /// Served by [`ReadRoute`](crate::read_call::ReadRoute) in the server; here for callers
    /// of the generated service alone, with encoded replies decoded back into messages.
    async fn read(&self, request: Request<ReadReq>) -> Result<Response<Self::ReadStream>, Status> {
        let replies = read_call::start(&self.ctx, request)?;
        Ok(Response::new(Box::pin(replies.map(|reply| reply?.into_message()))))
    }

    async fn append(
        &self,
        request: Request<Streaming<AppendReq>>,
    ) -> Result<Response<AppendResp>, Status> {
        append::append(&self.ctx, request.into_inner()).await.map(Response::new)
    }

    async fn delete(&self, request: Request<DeleteReq>) -> Result<Response<DeleteResp>, Status> {
        use delete_req::options::ExpectedStreamRevision as E;
        let options = request.into_inner().options.ok_or_else(missing_options)?;
        let expected = options.expected_stream_revision.map(|e| match e {
            E::Revision(v) => Expected::Revision(v),
            E::NoStream(_) => Expected::NoStream,
            E::Any(_) => Expected::Any,
            E::StreamExists(_) => Expected::StreamExists,
        });
        let at = delete::run(
            &self.ctx.store,
            Kind::Delete,
            options.stream_identifier.as_ref(),
            expected,
        )
        .await?;
        let position = delete_resp::Position { commit_position: at, prepare_position: at };
        Ok(Response::new(DeleteResp {
            position_option: Some(delete_resp::PositionOption::Position(position)),
        }))
    }

    async fn tombstone(
        &self,
        request: Request<TombstoneReq>,
    ) -> Result<Response<TombstoneResp>, Status> {
        use tombstone_req::options::ExpectedStreamRevision as E;
        let options = request.into_inner().options.ok_or_else(missing_options)?;
        let expected = options.expected_stream_revision.map(|e| match e {
            E::Revision(v) => Expected::Revision(v),
            E::NoStream(_) => Expected::NoStream,
            E::Any(_) => Expected::Any,
            E::StreamExists(_) => Expected::StreamExists,
        });
        let stream = options.stream_identifier.as_ref();
        let at = delete::run(&self.ctx.store, Kind::Tombstone, stream, expected).await?;
        let position = tombstone_resp::Position { commit_position: at, prepare_position: at };
        Ok(Response::new(TombstoneResp {
            position_option: Some(tombstone_resp::PositionOption::Position(position)),
        }))
    }

    async fn batch_append(
        &self,
        request: Request<Streaming<BatchAppendReq>>,
    ) -> Result<Response<Self::BatchAppendStream>, Status> {
        let replies = batch::start(self.ctx.clone(), request.into_inner());
        Ok(Response::new(Box::pin(ReceiverStream::new(replies))))
    }
}

fn missing_options() -> Status {
    Status::invalid_argument("options missing")
}

/// The v2 StreamsService (AppendSession).
pub struct V2StreamsService {
    /// Shared state.
    pub ctx: Context,
}

#[tonic::async_trait]
impl StreamsServiceV2 for V2StreamsService {
    async fn append_session(
        &self,
        request: Request<Streaming<AppendRequest>>,
    ) -> Result<Response<AppendSessionResponse>, Status> {
        session::append_session(&self.ctx, request.into_inner()).await.map(Response::new)
    }
}

/// The ServerFeatures service.
pub struct FeaturesService;

#[tonic::async_trait]
impl ServerFeatures for FeaturesService {
    async fn get_supported_methods(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<SupportedMethods>, Status> {
        Ok(Response::new(features::supported_methods()))
    }
}

/// The Gossip service.
pub struct GossipService {
    /// This server process's id.
    pub instance: Uuid,
    /// The address clients reach this node on.
    pub advertised: SocketAddr,
}

#[tonic::async_trait]
impl Gossip for GossipService {
    async fn read(&self, _request: Request<Empty>) -> Result<Response<ClusterInfo>, Status> {
        Ok(Response::new(gossip::cluster_info(self.instance, self.advertised)))
    }
}
