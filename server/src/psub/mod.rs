//! `PersistentSubscriptions`: consumer groups over the library's groups
//! (`Store::connect_to_group`), with definitions that outlive their consumers and restarts.
//!
//! - `definition` — a group's definition and how its settings map onto the library's;
//! - `config` — the definitions stream that keeps them in the store;
//! - `request` — Create and Update requests read into a definition's parts;
//! - `groups` — the groups a server knows, their consumers, Create/Update/Delete;
//! - `consumer` — one consumer's Read call;
//! - `info` — GetInfo and List replies;
//! - `service` — tonic's trait.

mod config;
mod consumer;
mod definition;
mod groups;
mod info;
mod request;
mod service;

pub use config::{CONFIG_EVENT_TYPE, CONFIG_STREAM};
pub use groups::Groups;
pub use service::PersistentService;
