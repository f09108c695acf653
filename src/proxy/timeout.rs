//! Silence limits, so that neither a stalled client nor a stalled upstream holds a connection
//! (and a pooled upstream socket) forever.
//!
//! Total durations are not limited: a 5 TB upload may take hours. What is limited is *silence*:
//! no byte from the client body, no response from the upstream once the body is sent, no byte of
//! the upstream's response body, for longer than `--upstream-timeout`.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::body::BoxError;
use crate::error::FailureSlot;
use crate::error::{S3Error, S3ErrorCode};

/// When the request body was fully handed to the upstream connection.
#[derive(Clone, Default)]
pub struct BodySent(Arc<Mutex<Option<Instant>>>);

impl BodySent {
    pub fn mark(&self) {
        if let Ok(mut at) = self.0.lock() {
            at.get_or_insert_with(Instant::now);
        }
    }

    pub fn at(&self) -> Option<Instant> {
        self.0.lock().ok().and_then(|at| *at)
    }
}

/// Which side went quiet: decides the error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The client stopped sending its request body.
    ClientBody,
    /// The upstream stopped sending its response body.
    UpstreamBody,
}

/// A body that fails after `limit` without a frame.
pub struct IdleTimeout<B> {
    inner: B,
    limit: Duration,
    /// Armed only once the body has to wait: a body whose frames are ready costs no timer.
    sleep: Option<Pin<Box<Sleep>>>,
    side: Side,
    slot: Option<FailureSlot>,
    sent: Option<BodySent>,
    done: bool,
}

impl<B> IdleTimeout<B> {
    /// For a request body on its way upstream: a client stall becomes `RequestTimeout`, and the
    /// end of the body is recorded in `sent`.
    pub fn client_body(inner: B, limit: Duration, slot: FailureSlot, sent: BodySent) -> Self {
        Self::new(inner, limit, Side::ClientBody, Some(slot), Some(sent))
    }

    /// For an upstream response body on its way to the client.
    pub fn upstream_body(inner: B, limit: Duration) -> Self {
        Self::new(inner, limit, Side::UpstreamBody, None, None)
    }

    fn new(inner: B, limit: Duration, side: Side, slot: Option<FailureSlot>, sent: Option<BodySent>) -> Self {
        Self { inner, limit, sleep: None, side, slot, sent, done: false }
    }
}

impl<B> HttpBody for IdleTimeout<B>
where
    B: HttpBody<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(item) => {
                if let Some(sleep) = this.sleep.as_mut() {
                    sleep.as_mut().reset(Instant::now() + this.limit);
                }
                if item.is_none() {
                    this.done = true;
                    if let Some(sent) = &this.sent {
                        sent.mark();
                    }
                }
                Poll::Ready(item)
            }
            Poll::Pending => {
                match this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(this.limit))).as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.done = true;
                        let secs = this.limit.as_secs();
                        let err: BoxError = match this.side {
                            Side::ClientBody => {
                                let e = S3Error::new(
                                    S3ErrorCode::RequestTimeout,
                                    "Your socket connection to the server was not read from or written to within the \
                                 timeout period.",
                                );
                                match &this.slot {
                                    Some(slot) => slot.set(e),
                                    None => Box::new(e),
                                }
                            }
                            Side::UpstreamBody => format!("upstream response body idle for {secs}s").into(),
                        };
                        Poll::Ready(Some(Err(err)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

use std::future::Future as _;
