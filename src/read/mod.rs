//! Reading the committed log: events as cheap handles onto mapped segment bytes, and the
//! iterators over `$all` and over one stream. Readers take no lock the writer waits on for
//! longer than a copy of a few index entries, and see only what the writer has published.

mod all;
mod event;
mod event_ref;
mod locator;
mod positions;
mod source;
mod stream;
mod text;

pub use all::{ReadAll, ReadAllBackward};
pub use event::RecordedEvent;
pub use event_ref::EventRef;
pub use stream::ReadStream;

pub(crate) use locator::Locator;
pub(crate) use positions::StreamPositions;
