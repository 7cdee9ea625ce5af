//! The indexes: per segment, where each record lies (persisted in the segment's index file once
//! it is sealed, `persisted`; a sparse in-memory index until then, `sparse`), and per stream,
//! its versions and where their positions are (`stream`: streams changed since the persisted
//! stream table, in memory; the rest, in the mapped table). `build` makes a segment's index from
//! its bytes; `files` names the derived files and writes them atomically.
//!
//! Records enter the stream index only through [`StreamIndex::write`]'s `index_record`, on open
//! and when the writer publishes alike; everything else looks things up, trims, or moves a
//! persisted segment's positions out of memory. Every index here is derived: the segments alone
//! can rebuild it.

mod build;
pub(crate) mod files;
mod hash;
mod persisted;
mod sparse;
mod stream;

pub(crate) use build::{BuildError, build_index, stored_header_crc, stored_record_crc};
pub(crate) use persisted::{Origin, SegmentIndex};

pub(crate) use hash::NameHash;
pub(crate) use sparse::SparseIndex;
pub use stream::StreamState;
pub(crate) use stream::{Continuity, Layers, MISSING, StreamIndex};
