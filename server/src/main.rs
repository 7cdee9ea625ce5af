//! `annal-server --dir DIR [--listen 127.0.0.1:2113] [--metrics-listen 127.0.0.1:PORT]
//! [--tls-cert PEM --tls-key PEM [--users FILE]]`: serves an annal store over the KurrentDB
//! gRPC protocol until SIGINT or SIGTERM, then shuts down gracefully. Logs go to stderr,
//! filtered by `RUST_LOG` (default `info`). `annal-server --hash-password NAME` prints a
//! users-file line for the password read from standard input.

use std::{io::IsTerminal, net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc};

use annal_server::{
    APPEND_BYTES_MAX_DEFAULT, CONNECTIONS_MAX_DEFAULT, Limits, SUBSCRIPTIONS_MAX_DEFAULT,
    SUBSCRIPTIONS_PER_CONNECTION_MAX_DEFAULT, ServeOptions,
    metrics::Metrics,
    tls::TlsIdentity,
    users::{self, Users},
};
use clap::Parser;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

/// Serve an annal event store over the KurrentDB gRPC protocol (v1; plaintext HTTP/2, or TLS).
#[derive(Parser, Debug)]
#[command(name = "annal-server", version)]
struct Args {
    /// The store's directory (created if missing).
    #[arg(long, required_unless_present = "hash_password")]
    dir: Option<PathBuf>,
    /// The address to listen on; port 0 picks a free one. Clients connect with
    /// `kurrentdb://HOST:PORT?tls=false` (or `?tls=true&tlsCAFile=CA.pem` with TLS).
    #[arg(long, default_value = "127.0.0.1:2113")]
    listen: SocketAddr,
    /// Largest append accepted, in bytes of event data, metadata and type.
    #[arg(long, default_value_t = APPEND_BYTES_MAX_DEFAULT)]
    max_append_bytes: u64,
    /// Most subscriptions open at once (each an async task with a bounded reply queue).
    #[arg(long, default_value_t = SUBSCRIPTIONS_MAX_DEFAULT)]
    max_subscriptions: usize,
    /// Most subscriptions one connection may have open at once.
    #[arg(long, default_value_t = SUBSCRIPTIONS_PER_CONNECTION_MAX_DEFAULT)]
    max_subscriptions_per_connection: usize,
    /// Most connections open at once; further ones are closed when accepted.
    #[arg(long, default_value_t = CONNECTIONS_MAX_DEFAULT)]
    max_connections: usize,
    /// Serve Prometheus metrics (`GET /metrics`, plain HTTP) on this address; off if absent.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Serve TLS (rustls) with this PEM certificate chain, leaf first; needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require basic authentication by the users of this file (lines
    /// `NAME:pbkdf2-sha256:ITERATIONS:SALT:HASH`, see --hash-password); only with TLS.
    #[arg(long)]
    users: Option<PathBuf>,
    /// Print a users-file line for user NAME, with the password read from standard input
    /// (its first line), and exit.
    #[arg(long, value_name = "NAME", conflicts_with = "dir")]
    hash_password: Option<String>,
    /// PBKDF2 iterations for --hash-password.
    #[arg(long, default_value_t = users::ITERATIONS_DEFAULT, requires = "hash_password")]
    hash_iterations: u32,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(name) = &args.hash_password {
        return match hash_password(name, args.hash_iterations) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(message) => fail(&message),
        };
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
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

/// A users-file line for `name` and the first line of standard input.
fn hash_password(name: &str, iterations: u32) -> Result<String, String> {
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err("no password on standard input".into());
    }
    users::hash_line(name, password, iterations).map_err(str::to_owned)
}

/// The TLS identity and users the flags name, checked before anything is opened: a bad file,
/// or users without TLS, stops the server with its reason.
fn security(args: &Args) -> Result<(Option<TlsIdentity>, Option<Users>), String> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            Some(TlsIdentity::from_files(cert, key).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let users = match &args.users {
        Some(_) if tls.is_none() => {
            return Err(annal_server::ServeError::UsersWithoutTls.to_string());
        }
        Some(path) => Some(Users::from_file(path).map_err(|e| e.to_string())?),
        None => None,
    };
    Ok((tls, users))
}

async fn run(args: Args) -> Result<(), String> {
    let (tls, users) = security(&args)?;
    let dir = args.dir.clone().ok_or("--dir is required")?;
    let store =
        annal::Store::open(&dir).map_err(|e| format!("cannot open {}: {e}", dir.display()))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let metrics = Arc::new(Metrics::default());
    let (stopped_tx, mut stopped) = watch::channel(false);
    if let Some(address) = args.metrics_listen {
        let scrape = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| format!("cannot listen on {address} for metrics: {e}"))?;
        let scrape_addr = scrape.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(%scrape_addr, "metrics at http://{scrape_addr}/metrics");
        let until = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        tokio::spawn(annal_server::serve_metrics(
            scrape,
            Arc::clone(&metrics),
            store.clone(),
            until,
        ));
    }
    // One line a script can wait for and read the port from.
    println!("annal-server listening on {local}");
    let limits = Limits {
        append_bytes_max: args.max_append_bytes,
        subscriptions_max: args.max_subscriptions,
        subscriptions_per_connection_max: args.max_subscriptions_per_connection,
        connections_max: args.max_connections,
    };
    let options = ServeOptions { limits, metrics, tls, users };
    let served =
        annal_server::serve_with_options(store, listener, options, shutdown_signal()).await;
    let _ = stopped_tx.send(true);
    served.map_err(|e| e.to_string())?;
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
