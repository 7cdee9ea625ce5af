//! `annal-server --dir DIR [--listen 127.0.0.1:2113]`: serves an annal store over the
//! KurrentDB gRPC protocol until SIGINT or SIGTERM, then shuts down gracefully.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use annal_server::{APPEND_BYTES_MAX_DEFAULT, Limits, SUBSCRIPTIONS_MAX_DEFAULT};
use clap::Parser;

/// Serve an annal event store over the KurrentDB gRPC protocol (v1, plaintext HTTP/2).
#[derive(Parser, Debug)]
#[command(name = "annal-server", version)]
struct Args {
    /// The store's directory (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// The address to listen on; port 0 picks a free one. Clients connect with
    /// `kurrentdb://HOST:PORT?tls=false`.
    #[arg(long, default_value = "127.0.0.1:2113")]
    listen: SocketAddr,
    /// Largest append accepted, in bytes of event data, metadata and type.
    #[arg(long, default_value_t = APPEND_BYTES_MAX_DEFAULT)]
    max_append_bytes: u64,
    /// Most subscriptions open at once (each an async task with a bounded reply queue).
    #[arg(long, default_value_t = SUBSCRIPTIONS_MAX_DEFAULT)]
    max_subscriptions: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("annal-server: {message}");
    ExitCode::FAILURE
}

async fn run(args: Args) -> Result<(), String> {
    let store = annal::Store::open(&args.dir)
        .map_err(|e| format!("cannot open {}: {e}", args.dir.display()))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    // One line a script can wait for and read the port from.
    println!("annal-server listening on {local}");
    let limits = Limits {
        append_bytes_max: args.max_append_bytes,
        subscriptions_max: args.max_subscriptions,
    };
    annal_server::serve(store, listener, limits, shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    eprintln!("annal-server: stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
