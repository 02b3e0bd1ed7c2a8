//! The write fence: a replica writes only while its hold on the Lease was
//! confirmed recently enough that nobody else can have taken it.
//!
//! Leader election alone does not stop a stale leader: a process paused (a
//! SIGSTOP, a long GC-like stall, a frozen VM) keeps its reconciles in
//! flight, and when it resumes they write before the lease library has
//! looked at the Lease again. The fence sits in the controller's kube client
//! and refuses every mutating request unless
//! `now < last confirmed renewal + lease duration - margin`, on the
//! monotonic clock, which keeps running while the process is stopped: a
//! resumed process finds its fence expired before it can send anything.
//!
//! A renewal is confirmed by the API server's answer to a write of our Lease
//! that names this replica as holder; the time counted is when that write was
//! sent, which is no earlier than the `renewTime` it carried. Other replicas
//! take the Lease only after `renewTime + lease duration` on their own clock,
//! so the margin covers clock skew between replicas plus a request in flight.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Either, Full};
use k8s_openapi::api::coordination::v1::Lease;
use kube::client::Body;
use prometheus_client::metrics::counter::Counter;
use tower::{BoxError, Layer, Service};

/// A mutating request the fence refused.
#[derive(Debug, thiserror::Error)]
#[error("{method} {path} refused: this replica has not confirmed its hold on the Lease within {valid_for:?}")]
pub struct FenceExpired {
    pub method: Method,
    pub path: String,
    pub valid_for: Duration,
}

/// Whether `error` (a kube client error, or one of its sources) is a write
/// the fence refused.
pub fn is_fenced(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<FenceExpired>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// The fence of one replica; clones share it. Use it as a tower layer on
/// the client that also carries the lease manager's requests.
#[derive(Clone)]
pub struct Fence(Arc<State>);

struct State {
    identity: String,
    /// The path of our Lease, and of the Lease collection it is created in.
    lease: String,
    leases: String,
    valid_for: Duration,
    times: Mutex<Times>,
    /// Set while refusing, so one expiry is logged once, not per request.
    refusing: AtomicBool,
    refused: Counter,
}

#[derive(Default)]
struct Times {
    /// When the last write that confirmed our hold was sent.
    renewed: Option<Instant>,
    /// When the hold was last given up or seen taken; confirmations sent
    /// before it no longer count.
    revoked: Option<Instant>,
}

/// What a request is to the fence.
#[derive(Debug, PartialEq)]
enum Kind {
    Read,
    /// Any request for the Lease: always let through, and watched for
    /// confirmations of our hold.
    Lease {
        write: bool,
    },
    Write,
}

impl Fence {
    /// A fence for `identity`'s hold on Lease `namespace/lease`, valid for
    /// `valid_for` after each confirmed renewal; refusals count in `refused`.
    pub fn new(identity: &str, namespace: &str, lease: &str, valid_for: Duration, refused: Counter) -> Self {
        let leases = format!("/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases");
        Fence(Arc::new(State {
            identity: identity.to_string(),
            lease: format!("{leases}/{lease}"),
            leases,
            valid_for,
            times: Mutex::default(),
            refusing: AtomicBool::new(false),
            refused,
        }))
    }

    /// Whether a write may go out now.
    pub fn is_valid(&self) -> bool {
        self.is_valid_at(Instant::now())
    }

    pub fn is_valid_at(&self, now: Instant) -> bool {
        self.since_renewal(now).is_some_and(|since| since < self.0.valid_for)
    }

    /// How long ago our hold was last confirmed, if it still counts.
    pub fn since_renewal(&self, now: Instant) -> Option<Duration> {
        let times = self.0.times.lock().unwrap_or_else(PoisonError::into_inner);
        times.renewed.map(|at| now.saturating_duration_since(at))
    }

    /// How long a confirmed renewal keeps the fence open.
    pub fn valid_for(&self) -> Duration {
        self.0.valid_for
    }

    /// Closes the fence at once: the Lease is lost or given up.
    pub fn revoke(&self) {
        let mut times = self.0.times.lock().unwrap_or_else(PoisonError::into_inner);
        times.renewed = None;
        times.revoked = Some(Instant::now());
    }

    /// A write of our Lease sent at `sent` came back naming us holder.
    pub(crate) fn confirm(&self, sent: Instant) {
        let mut times = self.0.times.lock().unwrap_or_else(PoisonError::into_inner);
        if times.revoked.is_some_and(|revoked| sent < revoked) {
            return;
        }
        times.renewed = Some(times.renewed.map_or(sent, |at| at.max(sent)));
        if self.0.refusing.swap(false, Ordering::Relaxed) {
            tracing::info!(identity = %self.0.identity, "hold on the Lease confirmed; writes go out again");
        }
    }

    fn kind(&self, request: &Request<Body>) -> Kind {
        let write = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        let path = request.uri().path();
        if path == self.0.lease || path == self.0.leases {
            Kind::Lease { write }
        } else if write {
            Kind::Write
        } else {
            Kind::Read
        }
    }

    /// Lets a write through, or refuses it (counted; logged once per expiry).
    fn admit(&self, request: &Request<Body>) -> Result<(), FenceExpired> {
        if self.is_valid() {
            return Ok(());
        }
        self.0.refused.inc();
        let refused = FenceExpired {
            method: request.method().clone(),
            path: request.uri().path().to_string(),
            valid_for: self.0.valid_for,
        };
        if !self.0.refusing.swap(true, Ordering::Relaxed) {
            let since = self.since_renewal(Instant::now());
            tracing::warn!(
                identity = %self.0.identity, error = %refused, since_renewal = ?since,
                "write fence closed: refusing writes until the Lease is renewed"
            );
        }
        Err(refused)
    }

    /// Reads who holds the Lease from the server's answer about it.
    fn observe_lease(&self, write: bool, sent: Instant, body: &[u8]) {
        let Ok(lease) = serde_json::from_slice::<Lease>(body) else {
            return;
        };
        let holder = lease.spec.and_then(|s| s.holder_identity);
        match holder {
            Some(holder) if holder == self.0.identity => {
                // A read only repeats an older renewal; a write is a new one.
                if write {
                    self.confirm(sent);
                }
            }
            _ => {
                if self.since_renewal(Instant::now()).is_some() {
                    self.revoke();
                }
            }
        }
    }
}

impl<S> Layer<S> for Fence {
    type Service = Fenced<S>;

    fn layer(&self, inner: S) -> Fenced<S> {
        Fenced {
            inner,
            fence: self.clone(),
        }
    }
}

/// A kube client service behind the [`Fence`].
#[derive(Clone)]
pub struct Fenced<S> {
    inner: S,
    fence: Fence,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

impl<S, B> Service<Request<Body>> for Fenced<S>
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Either<B, Full<Bytes>>>;
    type Error = BoxError;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let kind = self.fence.kind(&request);
        if kind == Kind::Write
            && let Err(refused) = self.fence.admit(&request)
        {
            return Box::pin(async move { Err(refused.into()) });
        }
        let sent = Instant::now();
        let response = self.inner.call(request);
        let Kind::Lease { write } = kind else {
            return Box::pin(async move { Ok(response.await.map_err(Into::into)?.map(Either::Left)) });
        };
        let fence = self.fence.clone();
        Box::pin(async move {
            let response = response.await.map_err(Into::into)?;
            if !response.status().is_success() {
                return Ok(response.map(Either::Left));
            }
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(Into::into)?.to_bytes();
            fence.observe_lease(write, sent, &body);
            Ok(Response::from_parts(parts, Either::Right(Full::new(body))))
        })
    }
}

#[cfg(test)]
mod tests;
