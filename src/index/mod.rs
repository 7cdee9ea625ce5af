//! In-memory indexes rebuilt from the segments on open: a sparse global index per segment
//! (position → byte offset) and a per-stream index (stream → positions of its events).
//!
//! Both sit behind narrow interfaces so a later version can persist them per sealed segment.

mod hash;
mod sparse;
mod stream;

pub(crate) use hash::NameHash;
pub(crate) use sparse::SparseIndex;
pub(crate) use stream::{Continuity, MISSING, StreamIndex, StreamIndexWriter, StreamState};
