//! In-memory indexes rebuilt from the segments on open: a sparse global index per segment
//! (position → byte offset) and a per-stream index (stream → positions of its events).
//!
//! Both sit behind narrow interfaces so a later version can persist them per sealed segment:
//! records enter the stream index only through [`StreamIndex::write`]'s `index_record`, on open
//! and when the writer publishes alike, and everything else only looks things up or trims.

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
