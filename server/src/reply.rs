//! What a `Streams.Read` call sends: each reply either already encoded (the events of a
//! counted read, see [`encoded`](crate::encoded)) or a message for prost to encode (everything
//! else), through [`ReadCodec`], which decodes the request as prost does.
//!
//! A counted read hands its replies over in batches ([`Batch`]): one queue hand-off per batch
//! instead of one per event, and the reply stream then has many replies ready at once, which
//! tonic's encoder packs into one HTTP/2 write (up to its 32 KiB yield threshold).

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use prost::{
    Message,
    bytes::{BufMut, Bytes},
};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
};

use crate::proto::streams::{ReadReq, ReadResp};

/// One reply of a Read call.
#[derive(Debug)]
pub enum Reply {
    /// A `ReadResp`'s protobuf bytes.
    Encoded(Bytes),
    /// A `ReadResp` prost encodes (boxed: a batch's vector holds mostly encoded replies).
    Message(Box<ReadResp>),
}

impl Reply {
    /// The reply as a message (decoding encoded bytes), for callers that need the type.
    pub fn into_message(self) -> Result<ReadResp, Status> {
        match self {
            Reply::Message(message) => Ok(*message),
            Reply::Encoded(bytes) => ReadResp::decode(bytes)
                .map_err(|e| Status::internal(format!("an encoded reply does not decode: {e}"))),
        }
    }
}

/// The Read method's codec: prost for the request, [`Reply`] for the replies.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadCodec;

impl Codec for ReadCodec {
    type Encode = Reply;
    type Decode = ReadReq;
    type Encoder = ReplyEncoder;
    type Decoder = RequestDecoder;

    fn encoder(&mut self) -> ReplyEncoder {
        ReplyEncoder
    }

    fn decoder(&mut self) -> RequestDecoder {
        RequestDecoder
    }
}

/// Writes a [`Reply`]'s bytes.
#[derive(Debug)]
pub struct ReplyEncoder;

impl Encoder for ReplyEncoder {
    type Item = Reply;
    type Error = Status;

    fn encode(&mut self, item: Reply, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        match item {
            Reply::Encoded(bytes) => dst.put_slice(&bytes),
            Reply::Message(message) => message
                .encode(dst)
                .map_err(|e| Status::internal(format!("encoding a reply: {e}")))?,
        }
        Ok(())
    }
}

/// Decodes a `ReadReq` as prost does.
#[derive(Debug)]
pub struct RequestDecoder;

impl Decoder for RequestDecoder {
    type Item = ReadReq;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<ReadReq>, Status> {
        ReadReq::decode(src).map(Some).map_err(|e| Status::internal(e.to_string()))
    }
}

/// The largest buffer a batch passes on to the next one.
const BATCH_CAPACITY_KEPT_MAX: usize = 64 << 10;

/// Encoded replies gathered for one queue hand-off, in one buffer.
#[derive(Debug, Default)]
pub struct Batch {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    /// Appends one reply, written by `write` at the end of the batch's buffer.
    pub fn push(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        write(&mut self.bytes);
        self.ends.push(self.bytes.len());
    }

    /// The bytes gathered so far.
    pub fn bytes_len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the batch holds no reply.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The replies gathered, leaving the batch empty; each shares the batch's one buffer.
    pub fn take(&mut self) -> Vec<Reply> {
        // The next batch starts with a buffer as large as this one's (no regrowing), unless a
        // large event made this one larger than batches usually grow.
        let capacity = self.bytes.capacity().min(BATCH_CAPACITY_KEPT_MAX);
        let mut all = Bytes::from(std::mem::replace(&mut self.bytes, Vec::with_capacity(capacity)));
        let mut start = 0;
        let replies = self
            .ends
            .drain(..)
            .map(|end| {
                let reply = all.split_to(end - start);
                start = end;
                Reply::Encoded(reply)
            })
            .collect();
        debug_assert!(all.is_empty(), "every byte belongs to a reply");
        replies
    }
}

/// The replies of a queue of batches, one at a time, in order; an error ends the batch it
/// follows.
pub struct Unbatched {
    queue: mpsc::Receiver<Result<Vec<Reply>, Status>>,
    current: std::vec::IntoIter<Reply>,
}

impl Unbatched {
    /// The replies queued in `queue`.
    pub fn new(queue: mpsc::Receiver<Result<Vec<Reply>, Status>>) -> Unbatched {
        Unbatched { queue, current: Vec::new().into_iter() }
    }
}

impl Stream for Unbatched {
    type Item = Result<Reply, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(reply) = self.current.next() {
                return Poll::Ready(Some(Ok(reply)));
            }
            match std::task::ready!(self.queue.poll_recv(cx)) {
                Some(Ok(batch)) => self.current = batch.into_iter(),
                Some(Err(status)) => return Poll::Ready(Some(Err(status))),
                None => return Poll::Ready(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt;

    use super::*;

    fn bytes(reply: Reply) -> Bytes {
        match reply {
            Reply::Encoded(bytes) => bytes,
            Reply::Message(_) => panic!("a message"),
        }
    }

    #[test]
    fn batch_splits_into_its_replies_in_order_and_empties() {
        let mut batch = Batch::default();
        batch.push(|out| out.extend_from_slice(b"one"));
        batch.push(|out| out.extend_from_slice(b""));
        batch.push(|out| out.extend_from_slice(b"three"));
        assert_eq!(batch.bytes_len(), 8);
        let replies: Vec<Bytes> = batch.take().into_iter().map(bytes).collect();
        assert_eq!(replies, [&b"one"[..], b"", b"three"]);
        assert!(batch.is_empty());
        assert_eq!(batch.bytes_len(), 0);
    }

    #[tokio::test]
    async fn unbatched_yields_every_reply_then_the_error() {
        let (tx, rx) = mpsc::channel(4);
        let mut batch = Batch::default();
        batch.push(|out| out.extend_from_slice(b"a"));
        batch.push(|out| out.extend_from_slice(b"b"));
        tx.send(Ok(batch.take())).await.unwrap();
        tx.send(Ok(Vec::new())).await.unwrap();
        tx.send(Err(Status::not_found("gone"))).await.unwrap();
        drop(tx);
        let got: Vec<_> = Unbatched::new(rx).collect().await;
        assert_eq!(got.len(), 3);
        let mut got = got.into_iter();
        assert_eq!(bytes(got.next().unwrap().unwrap()), &b"a"[..]);
        assert_eq!(bytes(got.next().unwrap().unwrap()), &b"b"[..]);
        assert_eq!(got.next().unwrap().unwrap_err().code(), tonic::Code::NotFound);
    }

    #[test]
    fn an_encoded_reply_turns_back_into_its_message() {
        use crate::proto::streams::read_resp::{Content, SubscriptionConfirmation};
        let confirmation = SubscriptionConfirmation { subscription_id: "s".into() };
        let message = ReadResp { content: Some(Content::Confirmation(confirmation)) };
        let reply = Reply::Encoded(message.encode_to_vec().into());
        assert_eq!(reply.into_message().unwrap(), message);
        let garbage = Reply::Encoded(Bytes::from_static(b"\xff\xff"));
        assert_eq!(garbage.into_message().unwrap_err().code(), tonic::Code::Internal);
    }
}
