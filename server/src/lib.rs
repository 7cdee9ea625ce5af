//! # annal-server: an annal event store behind the KurrentDB gRPC protocol (v1 + v2 AppendSession)
//!
//! A single-node server that lets the official KurrentDB clients (Node, Python, Rust, .NET,
//! Java, Go) use an annal store: they connect with `kurrentdb://127.0.0.1:2113?tls=false`.
//! What of the protocol is implemented, and how positions, versions and metadata map, is in
//! `docs/server.md`.
//!
//! Layers: `proto` (generated messages) → `wire`, `content`, `errors`, `v2_errors`, `filter`
//! (the protocol's values, errors and filters, each rule once), `outbox`, `sink` (reply queues)
//! → `append`, `batch`, `read`, `subscribe`, `delete`, `session` (v2 AppendSession),
//! `features`, `gossip` (one job per call; `encoded`, `reply` and `read_call` serve counted
//! reads from pre-encoded bytes) → `service` (tonic's traits); `psub` is the
//! PersistentSubscriptions service with its own layers (definitions, groups, consumers)
//! → `server` (listening, connection limits and shutdown; `tls` for its certificate, `auth`
//! and `users` for basic authentication). `metrics` counts what the handlers do,
//! `metrics_store` adds the store's figures, and `metrics_http` serves them to Prometheus.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = annal::Store::open("/tmp/annal-demo")?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:2113").await?;
//! annal_server::serve(store, listener, annal_server::Limits::default(), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(())
//! # }
//! ```

mod append;
mod auth;
mod batch;
mod connection;
mod content;
mod context;
mod delete;
mod encoded;
mod errors;
mod features;
mod filter;
mod gossip;
mod metadata;
pub mod metrics;
mod metrics_http;
mod metrics_store;
mod outbox;
pub mod proto;
mod psub;
mod read;
mod read_call;
mod recorded;
mod reply;
mod server;
mod service;
mod session;
mod sink;
mod subscribe;
pub mod tls;
pub mod users;
mod v2_errors;
mod wire;

pub use auth::User;
pub use context::{
    APPEND_BYTES_MAX_DEFAULT, CONNECTIONS_MAX_DEFAULT, Limits, SUBSCRIPTIONS_MAX_DEFAULT,
    SUBSCRIPTIONS_PER_CONNECTION_MAX_DEFAULT,
};
pub use features::SERVER_VERSION;
pub use metrics_http::serve_metrics;
pub use psub::{CONFIG_EVENT_TYPE, CONFIG_STREAM};
pub use server::{
    MESSAGE_BYTES_SLACK, ServeError, ServeOptions, serve, serve_with_metrics, serve_with_options,
};
