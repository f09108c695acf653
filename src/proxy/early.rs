//! An upstream that answers before the request body has all arrived.
//!
//! S3 does that when it refuses an upload early (`403`, `400 EntityTooLarge`, `503 SlowDown`),
//! and so do many S3-compatible stores and plain HTTP servers. Its answer is final: whatever the
//! client still sends cannot change it. So once the answer is in, s3gate stops forwarding the
//! body, and what the client still sends is read and discarded within a bound
//! ([`super::respond::discard`]: 8 MiB or 2 s), then the connection is closed. That is what nginx
//! does too; it keeps the client from seeing a reset in place of the answer, and it keeps
//! memory and the upstream connection from being held by bytes nobody will read.
//!
//! The body handed to the upstream client is a [`Forwarded`]: it streams the client's (verified)
//! body until [`Handoff::stop`] takes the rest back, then waits, sending nothing more, and fails
//! once the answer has been relayed (the [`Handoff`] is dropped), which makes the upstream client
//! close that connection rather than reuse one with half a request on it.

use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::body::{Body, BoxError};

const FLOWING: u8 = 0;
/// The answer is in: nothing more goes upstream.
const STOPPED: u8 = 1;
/// The answer has been relayed: fail, so the upstream connection is closed.
const ABORTED: u8 = 2;

struct Shared {
    /// The client's body; `None` once taken back.
    body: Mutex<Option<Body>>,
    state: AtomicU8,
    waker: AtomicWaker,
}

impl Shared {
    fn body(&self) -> MutexGuard<'_, Option<Body>> {
        // Polling a body cannot leave the option half-changed: a poisoned lock is still sound.
        self.body.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Splits a request body into what the upstream client sends and the handle that stops it.
pub(super) fn split(body: Body) -> (Forwarded, Handoff) {
    let hint = body.size_hint();
    let shared =
        Arc::new(Shared { body: Mutex::new(Some(body)), state: AtomicU8::new(FLOWING), waker: AtomicWaker::new() });
    (Forwarded { shared: shared.clone(), hint }, Handoff { shared })
}

/// The request body as the upstream client sends it.
pub(super) struct Forwarded {
    shared: Arc<Shared>,
    hint: SizeHint,
}

impl HttpBody for Forwarded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            match self.shared.state.load(Ordering::Acquire) {
                FLOWING => {
                    let mut body = self.shared.body();
                    // Checked again under the lock: `stop` takes the body under it.
                    if self.shared.state.load(Ordering::Acquire) != FLOWING {
                        continue;
                    }
                    let Some(b) = body.as_mut() else { return Poll::Ready(None) };
                    let polled = Pin::new(b).poll_frame(cx);
                    // A body that has ended (or failed) is let go here, so that `stop` finds
                    // nothing left to discard: many bodies cannot tell their end in advance.
                    if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
                        *body = None;
                    }
                    return polled;
                }
                STOPPED => {
                    self.shared.waker.register(cx.waker());
                    if self.shared.state.load(Ordering::Acquire) == STOPPED {
                        return Poll::Pending;
                    }
                }
                _ => return Poll::Ready(Some(Err("the upstream answered before the request body ended".into()))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.shared.state.load(Ordering::Acquire) == FLOWING
            && self.shared.body().as_ref().is_some_and(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

/// Held by the proxy while the upstream has the request; dropping it (once the answer has been
/// relayed) fails a body that was stopped.
pub(super) struct Handoff {
    shared: Arc<Shared>,
}

impl Handoff {
    /// The upstream's final answer is in: stop sending the body upstream and give back what the
    /// client has not sent yet, if anything.
    pub fn stop(&self) -> Option<Body> {
        let mut body = self.shared.body();
        if self.shared.state.compare_exchange(FLOWING, STOPPED, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return None;
        }
        body.take().filter(|b| !b.is_end_stream())
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        if self.shared.state.swap(ABORTED, Ordering::AcqRel) == STOPPED {
            self.shared.waker.wake();
        }
    }
}

/// A response body that keeps the [`Handoff`] until the answer has been relayed.
pub(super) struct Relayed<B> {
    inner: B,
    _handoff: Handoff,
}

impl<B> Relayed<B> {
    pub fn new(inner: B, handoff: Handoff) -> Self {
        Self { inner, _handoff: handoff }
    }
}

impl<B> HttpBody for Relayed<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use http_body_util::{BodyExt, StreamBody};

    use super::*;
    use crate::body;

    /// A body of `n` one-byte frames that are all ready at once.
    fn frames(n: usize) -> Body {
        let stream =
            futures_util::stream::iter((0..n).map(|_| Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"x")))));
        body::boxed(StreamBody::new(stream))
    }

    #[tokio::test]
    async fn a_body_that_is_not_stopped_streams_whole() {
        let (forwarded, handoff) = split(frames(5));
        let all = forwarded.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"xxxxx");
        assert!(handoff.stop().is_none(), "nothing is left once the body has ended");
    }

    #[tokio::test]
    async fn a_stopped_body_sends_nothing_more_and_fails_once_the_answer_is_relayed() {
        let (mut forwarded, handoff) = split(frames(5));
        let first = forwarded.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "x");
        let rest = handoff.stop().expect("the rest comes back");
        let rest = rest.collect().await.unwrap().to_bytes();
        assert_eq!(&rest[..], b"xxxx", "the rest is the client's, not the upstream's");

        // Stopped: the upstream side waits, sending nothing.
        let pending = tokio::time::timeout(std::time::Duration::from_millis(50), forwarded.frame()).await;
        assert!(pending.is_err(), "a stopped body must not end or fail while the answer is relayed");
        drop(handoff);
        let failed = forwarded.frame().await.unwrap();
        assert!(failed.is_err(), "after the answer, the upstream request is failed so its connection closes");
    }

    #[tokio::test]
    async fn the_waiting_upstream_side_is_woken_when_the_answer_has_been_relayed() {
        let (mut forwarded, handoff) = split(frames(3));
        forwarded.frame().await.unwrap().unwrap();
        let _rest = handoff.stop();
        let waiter = tokio::spawn(async move { forwarded.frame().await.map(|f| f.is_err()) });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let relayed = Relayed::new(body::empty(), handoff);
        drop(relayed);
        assert_eq!(waiter.await.unwrap(), Some(true));
    }
}
