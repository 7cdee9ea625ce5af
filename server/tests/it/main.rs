//! annal-server over real gRPC: an in-process server on a free loopback port, driven by a tonic
//! client generated from the same protocol files.

mod append;
mod certs;
mod delete;
mod features;
mod harness;
mod live;
mod metadata;
mod ops;
mod persistent;
mod read;
mod security;
mod session;
mod shutdown;
mod store_metrics;
mod subscribe;
