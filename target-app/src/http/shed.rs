//! `load-shed`: a shop request that the service cannot take on now is refused at once with 503
//! and Retry-After, instead of waiting in a queue that only grows, for one of three reasons:
//! - its connection was accepted on the reserve descriptor (see [`listener`](super::listener)):
//!   it would need descriptors (database connections, files) the process does not have;
//! - memory is short (resident size above `max_rss_bytes`, or the memory cgroup's working set
//!   above `max_memory_fraction` of its limit; see [`memory`]): a request refused now is
//!   better than the whole process killed by the OOM killer a little later;
//! - `concurrency_limit` shop requests are already in flight.
//!
//! One tower layer with a counter, rather than tower's `ConcurrencyLimit` + `LoadShed` stack
//! and an axum `from_fn` middleware per reason: a cached catalogue read is cheap enough that
//! their boxing and cloning per request showed in its throughput.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::error::{AppError, ShedReason};
use crate::{AppState, memory};

#[derive(Clone)]
pub struct ShedLayer(pub Arc<AppState>);

impl<S> Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Shed<S> {
        Shed {
            inner,
            state: Arc::clone(&self.0),
        }
    }
}

#[derive(Clone)]
pub struct Shed<S> {
    inner: S,
    state: Arc<AppState>,
}

impl<S> Service<Request> for Shed<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ShedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match admit(&self.state, &request) {
            Ok(slot) => ShedFuture::Admitted {
                inner: self.inner.call(request),
                _slot: slot,
            },
            Err(reason) => ShedFuture::Refused {
                answer: Some(AppError::Overloaded(reason).into_response()),
            },
        }
    }
}

/// A place among the shop requests in flight, or why there is none.
fn admit(state: &Arc<AppState>, request: &Request) -> Result<InFlight, ShedReason> {
    if super::admission(request).refused {
        return Err(ShedReason::Descriptors);
    }
    let t = state.tunables.get();
    if let Some(why) = memory::pressure(t.max_rss_bytes, t.max_memory_fraction) {
        tracing::debug!(%why, "shedding a request for memory");
        return Err(ShedReason::Memory);
    }
    state
        .shop_in_flight
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < t.concurrency_limit).then_some(n + 1)
        })
        .map(|_| InFlight(Arc::clone(state)))
        .map_err(|_| ShedReason::Concurrency)
}

/// Given back when the request ends, or when it is dropped (a client that went away).
pub struct InFlight(Arc<AppState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.shop_in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project_lite::pin_project! {
    #[project = ShedProjection]
    pub enum ShedFuture<F> {
        Admitted { #[pin] inner: F, _slot: InFlight },
        Refused { answer: Option<Response> },
    }
}

impl<F, E> Future for ShedFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ShedProjection::Admitted { inner, .. } => inner.poll(cx),
            ShedProjection::Refused { answer } => Poll::Ready(Ok(answer
                .take()
                .expect("a refused request's future is not polled after it answered"))),
        }
    }
}
