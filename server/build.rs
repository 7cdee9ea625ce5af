//! Compiles annal-server's own `.proto` files (under `proto/`) into Rust with tonic and prost.
//! `protox` parses them in pure Rust, so building needs no `protoc` on the machine.

use std::path::PathBuf;

const PROTOS: [&str; 8] = [
    "kurrent/v1/shared.proto",
    "kurrent/v1/status.proto",
    "kurrent/v1/streams.proto",
    "kurrent/v1/serverfeatures.proto",
    "kurrent/v1/gossip.proto",
    "kurrent/v1/persistent.proto",
    "kurrent/v2/streams.proto",
    "kurrent/v2/errors.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from("proto");
    println!("cargo:rerun-if-changed=proto");
    let files = protox::compile(PROTOS, [&root])?;
    tonic_prost_build::configure().build_server(true).build_client(true).compile_fds(files)?;
    Ok(())
}
