//! The PersistentSubscriptions service: tonic's trait over `groups` and `consumer`.

use std::sync::{Arc, atomic::AtomicBool};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{
    consumer::{self, Pick},
    definition::CONSUMER_BUFFER_MAX,
    groups::{Groups, Key, not_found, when_free},
    info::info,
    request,
};
use crate::{
    connection::{self, ConnectionInfo},
    context::{Context, READ_QUEUE_REPLIES},
    errors::from_store,
    proto::{
        persistent::{
            CreateReq, CreateResp, DeleteReq, DeleteResp, GetInfoReq, GetInfoResp, ListReq,
            ListResp, ReadReq, ReadResp, ReplayParkedReq, ReplayParkedResp, UpdateReq, UpdateResp,
            delete_req, get_info_req, list_req,
            persistent_subscriptions_server::PersistentSubscriptions, read_req, replay_parked_req,
        },
        shared::Empty,
    },
};

/// The PersistentSubscriptions service.
pub struct PersistentService {
    /// Shared state.
    pub ctx: Context,
    /// The groups.
    pub groups: Arc<Groups>,
}

fn missing_options() -> Status {
    Status::invalid_argument("options are missing")
}

type ReplyStream<T> =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send + 'static>>;

impl PersistentService {
    fn info_of(&self, key: &Key) -> Result<crate::proto::persistent::SubscriptionInfo, Status> {
        let (d, connections) = self
            .groups
            .list()
            .into_iter()
            .find(|(d, _)| (d.source.clone(), d.group.clone()) == *key)
            .ok_or_else(|| not_found(key))?;
        let saved = self.groups.saved_checkpoint(&d).map(annal::Position::get);
        Ok(info(&self.ctx.store, &d, &connections, saved.or(Some(d.start_position))))
    }
}

#[tonic::async_trait]
impl PersistentSubscriptions for PersistentService {
    type ReadStream = ReplyStream<ReadResp>;

    async fn create(&self, request: Request<CreateReq>) -> Result<Response<CreateResp>, Status> {
        let options = request.into_inner().options.ok_or_else(missing_options)?;
        self.groups.create(request::create(options)?).await?;
        Ok(Response::new(CreateResp {}))
    }

    async fn update(&self, request: Request<UpdateReq>) -> Result<Response<UpdateResp>, Status> {
        let options = request.into_inner().options.ok_or_else(missing_options)?;
        self.groups.update(request::update(options)?).await?;
        Ok(Response::new(UpdateResp {}))
    }

    async fn delete(&self, request: Request<DeleteReq>) -> Result<Response<DeleteResp>, Status> {
        let o = request.into_inner().options.ok_or_else(missing_options)?;
        let (stream, all) = match &o.stream_option {
            Some(delete_req::options::StreamOption::StreamIdentifier(s)) => (Some(s), false),
            Some(delete_req::options::StreamOption::All(_)) => (None, true),
            None => (None, false),
        };
        let key = (request::source(stream, all)?, o.group_name);
        self.groups.delete(key).await?;
        Ok(Response::new(DeleteResp {}))
    }

    async fn read(
        &self,
        request: Request<Streaming<ReadReq>>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        let connection = request.extensions().get::<ConnectionInfo>().cloned();
        let from = connection
            .as_ref()
            .and_then(|c| c.tcp.remote_addr())
            .map_or_else(String::new, |a| a.to_string());
        let mut requests = request.into_inner();
        let first = requests.message().await?.ok_or_else(missing_options)?;
        let Some(read_req::Content::Options(o)) = first.content else {
            return Err(missing_options());
        };
        let (stream, all) = match &o.stream_option {
            Some(read_req::options::StreamOption::StreamIdentifier(s)) => (Some(s), false),
            Some(read_req::options::StreamOption::All(_)) => (None, true),
            None => (None, false),
        };
        let structured = matches!(
            o.uuid_option.and_then(|u| u.content),
            Some(read_req::options::uuid_option::Content::Structured(_))
        );
        let key = (request::source(stream, all)?, o.group_name);
        let permit = connection::admit_subscription(&self.ctx, connection.as_ref())?;
        let registration = self.groups.register(&key, from)?;
        let definition = registration.definition.clone();
        let (pick, library_filter) = Pick::new(&definition)?;
        let store = self.ctx.store.clone();
        let d = definition.clone();
        // The client's buffer is this consumer's own; without one, the group's.
        let buffer = u32::try_from(o.buffer_size).ok().filter(|&b| b > 0);
        let buffer =
            buffer.map_or(d.group_settings().consumer_buffer, |b| b.min(CONSUMER_BUFFER_MAX));
        let consumer = tokio::task::spawn_blocking(move || {
            let name = d.library_name();
            let (filter, settings) = (&library_filter, d.group_settings());
            when_free(|| {
                store.connect_to_group_with_buffer(&name, filter.clone(), settings.clone(), buffer)
            })
        })
        .await
        .map_err(crate::errors::task_failed)?
        .map_err(from_store)?;
        let consumer = Arc::new(consumer);
        let (tx, rx) = mpsc::channel(READ_QUEUE_REPLIES);
        tx.try_send(Ok(consumer::confirmation(&definition))).expect("an empty queue has room");
        let stop = Arc::new(AtomicBool::new(false));
        let (c, replies, s) = (Arc::clone(&consumer), tx.clone(), Arc::clone(&stop));
        tokio::task::spawn_blocking(move || consumer::deliver(c, pick, structured, replies, s));
        let shutdown = self.ctx.shutdown.clone();
        tokio::spawn(async move {
            consumer::serve(consumer, requests, registration, shutdown, tx, stop).await;
            drop(permit);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_info(
        &self,
        request: Request<GetInfoReq>,
    ) -> Result<Response<GetInfoResp>, Status> {
        let o = request.into_inner().options.ok_or_else(missing_options)?;
        let (stream, all) = match &o.stream_option {
            Some(get_info_req::options::StreamOption::StreamIdentifier(s)) => (Some(s), false),
            Some(get_info_req::options::StreamOption::All(_)) => (None, true),
            None => (None, false),
        };
        let key = (request::source(stream, all)?, o.group_name);
        let info = self.info_of(&key)?;
        Ok(Response::new(GetInfoResp { subscription_info: Some(info) }))
    }

    async fn replay_parked(
        &self,
        request: Request<ReplayParkedReq>,
    ) -> Result<Response<ReplayParkedResp>, Status> {
        use replay_parked_req::options::StreamOption;
        let o = request.into_inner().options.ok_or_else(missing_options)?;
        let (stream, all) = match &o.stream_option {
            Some(StreamOption::StreamIdentifier(s)) => (Some(s), false),
            Some(StreamOption::All(_)) => (None, true),
            None => (None, false),
        };
        let key = (request::source(stream, all)?, o.group_name);
        let d = self.groups.get(&key).ok_or_else(|| not_found(&key))?;
        // With no consumer connected there is no live group and nothing parked: the library
        // keeps parked events only while the group lives (they hold its checkpoint back, so
        // the next consumer gets them again).
        let replayed = self.ctx.store.replay_parked(&d.library_name()).unwrap_or(0);
        tracing::debug!(group = %d.group, replayed, "parked events replayed");
        Ok(Response::new(ReplayParkedResp {}))
    }

    async fn list(&self, request: Request<ListReq>) -> Result<Response<ListResp>, Status> {
        use list_req::{options::ListOption, stream_option::StreamOption};
        let o = request.into_inner().options.ok_or_else(missing_options)?;
        let wanted = match o.list_option {
            Some(ListOption::ListAllSubscriptions(_)) | None => None,
            Some(ListOption::ListForStream(s)) => Some(match s.stream_option {
                Some(StreamOption::Stream(id)) => request::source(Some(&id), false)?,
                Some(StreamOption::All(_)) | None => super::definition::Source::All,
            }),
        };
        let subscriptions = self
            .groups
            .list()
            .into_iter()
            .filter(|(d, _)| wanted.as_ref().is_none_or(|w| *w == d.source))
            .map(|(d, connections)| {
                let saved = self.groups.saved_checkpoint(&d).map(annal::Position::get);
                info(&self.ctx.store, &d, &connections, saved.or(Some(d.start_position)))
            })
            .collect();
        Ok(Response::new(ListResp { subscriptions }))
    }

    async fn restart_subsystem(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        // Nothing to restart: groups are opened by their consumers and closed with the last.
        Ok(Response::new(Empty {}))
    }
}
