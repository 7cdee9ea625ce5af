//! Basic authentication of gRPC calls (served only over TLS): a tower layer in front of every
//! service that lets a call through only with an `authorization: Basic …` header naming a
//! listed user and their password. `Gossip` and `ServerFeatures` stay open: the Node client
//! calls both without credentials (its discovery and its capability probe), as KurrentDB
//! allows.
//!
//! Refusals carry the status and `exception` trailer KurrentDB sends, which the clients turn
//! into their access errors: no credentials → `PERMISSION_DENIED`, `exception: access-denied`
//! (Node `AccessDeniedError`, Python `AccessDeniedError`); credentials that do not check →
//! `UNAUTHENTICATED`, `exception: not-authenticated` (Node `AccessDeniedError`, Python
//! `UnauthenticatedError`). A header that checked is remembered (by its SHA-256, never in
//! clear), so a client pays the password hash's cost once, not per call.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use http::{HeaderValue, header::AUTHORIZATION};
use tonic::{Status, metadata::MetadataValue};

use crate::{metrics::Metrics, users::Users};

/// Services any caller may use: the clients call them before (or without) credentials.
const OPEN_SERVICES: [&str; 2] =
    ["/event_store.client.gossip.Gossip/", "/event_store.client.server_features.ServerFeatures/"];

/// Most accepted headers remembered; past it the memory starts over.
const ACCEPTED_MAX: usize = 1024;

/// Checks credentials against the users file, remembering those that checked.
pub struct Gate {
    users: Users,
    /// SHA-256 of an accepted header value → its user.
    accepted: Mutex<HashMap<[u8; 32], Arc<str>>>,
    metrics: Arc<Metrics>,
}

/// The authenticated user of a call, as a request extension for handlers.
#[derive(Clone, Debug)]
pub struct User(pub Arc<str>);

impl Gate {
    /// A gate for `users`, counting refusals into `metrics`.
    pub fn new(users: Users, metrics: Arc<Metrics>) -> Gate {
        Gate { users, accepted: Mutex::new(HashMap::new()), metrics }
    }

    /// What can be decided without hashing a password: a missing header (refused) or one
    /// that checked before (its user). `None`: [`check`](Gate::check) must decide.
    fn quick(&self, header: Option<&HeaderValue>) -> Option<Result<Arc<str>, Status>> {
        let Some(header) = header else {
            self.metrics.auth_refused(false);
            let denied = refusal(tonic::Code::PermissionDenied, "Access denied", "access-denied");
            return Some(Err(denied));
        };
        lock(&self.accepted).get(&fingerprint(header)).map(|user| Ok(Arc::clone(user)))
    }

    /// Checks `header`'s name and password against the users file (a password hash: call it
    /// off the runtime's worker threads) and remembers it if it checks.
    fn check(&self, header: &HeaderValue) -> Result<Arc<str>, Status> {
        let Some((name, password)) = basic_credentials(header) else {
            return Err(self.unauthenticated());
        };
        if !self.users.check(&name, &password) {
            return Err(self.unauthenticated());
        }
        let user: Arc<str> = name.into();
        let mut accepted = lock(&self.accepted);
        if accepted.len() >= ACCEPTED_MAX {
            accepted.clear();
        }
        accepted.insert(fingerprint(header), Arc::clone(&user));
        Ok(user)
    }

    fn unauthenticated(&self) -> Status {
        self.metrics.auth_refused(true);
        refusal(tonic::Code::Unauthenticated, "Bad credentials", "not-authenticated")
    }

    fn is_open(path: &str) -> bool {
        OPEN_SERVICES.iter().any(|service| path.starts_with(service))
    }
}

/// The key under which an accepted header is remembered.
fn fingerprint(header: &HeaderValue) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, header.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// The map, even if a thread panicked holding it (it holds no invariant across entries).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The name and password of a `Basic` authorization header.
fn basic_credentials(header: &HeaderValue) -> Option<(String, String)> {
    let text = header.to_str().ok()?;
    let (scheme, encoded) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(BASE64.decode(encoded.trim()).ok()?).ok()?;
    let (name, password) = decoded.split_once(':')?;
    Some((name.to_owned(), password.to_owned()))
}

fn refusal(code: tonic::Code, message: &str, exception: &'static str) -> Status {
    let mut status = Status::new(code, message);
    status.metadata_mut().insert("exception", MetadataValue::from_static(exception));
    status
}

/// The tower layer that puts a [`Gate`] in front of the server's services.
#[derive(Clone)]
pub struct AuthLayer {
    gate: Arc<Gate>,
}

impl AuthLayer {
    /// A layer checking calls at `gate`.
    pub fn new(gate: Arc<Gate>) -> AuthLayer {
        AuthLayer { gate }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Authenticated<S> {
        Authenticated { inner, gate: Arc::clone(&self.gate) }
    }
}

/// A service behind the gate.
#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    gate: Arc<Gate>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Authenticated<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if Gate::is_open(request.uri().path()) {
            return Box::pin(self.inner.call(request));
        }
        // The service that was polled ready serves this call; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let gate = Arc::clone(&self.gate);
        Box::pin(async move {
            let header = request.headers().get(AUTHORIZATION).cloned();
            let admitted = match gate.quick(header.as_ref()) {
                Some(decided) => decided,
                None => {
                    // A header not seen before costs a password hash (milliseconds): off the
                    // runtime's worker threads.
                    let header = header.expect("quick decides on a missing header");
                    tokio::task::spawn_blocking(move || gate.check(&header))
                        .await
                        .unwrap_or_else(|_| Err(Status::internal("the credential check panicked")))
                }
            };
            match admitted {
                Ok(user) => {
                    request.extensions_mut().insert(User(user));
                    inner.call(request).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}
