//! `timeouts`: the request deadline. A request still running when `request_deadline` passes is
//! dropped (its database query cancelled with it) and answered 503 with
//! `deadline-exceeded`. tower-http's `TimeoutLayer` is not used because it answers 408 Request
//! Timeout, which blames the client; here the server was too slow.
//!
//! A tower layer rather than an axum `from_fn` middleware: it wraps the route's own future
//! instead of boxing it and cloning the route for every request, which showed in the
//! throughput of cheap requests (cached catalogue reads).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::AppState;
use crate::error::AppError;

#[derive(Clone)]
pub struct DeadlineLayer(pub Arc<AppState>);

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            state: Arc::clone(&self.0),
        }
    }
}

#[derive(Clone)]
pub struct Deadline<S> {
    inner: S,
    state: Arc<AppState>,
}

impl<S> Service<Request> for Deadline<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = DeadlineFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Read per request: a reload changes the deadline of the next request.
        let limit = self.state.tunables.get().request_deadline;
        DeadlineFuture {
            inner: tokio::time::timeout(limit, self.inner.call(request)),
            limit,
        }
    }
}

pin_project_lite::pin_project! {
    pub struct DeadlineFuture<F> {
        #[pin]
        inner: tokio::time::Timeout<F>,
        limit: Duration,
    }
}

impl<F, E> Future for DeadlineFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(answered)) => Poll::Ready(answered),
            Poll::Ready(Err(_elapsed)) => {
                Poll::Ready(Ok(AppError::Deadline(*this.limit).into_response()))
            }
        }
    }
}
