//! Byte counts and the idle clock of one tunnel or request, and the stream and body wrappers
//! that feed them.
//!
//! The idle timeout is measured as silence in both directions together: a long download while
//! the client sends nothing is not idle. So every wrapper touches the same clock, and the
//! watchdog ([`Traffic::idle`]) sleeps until the last touch plus the limit, as many times as it
//! takes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::body::BoxError;

/// Shared by the two directions of one tunnel or request.
#[derive(Debug)]
pub struct Traffic {
    start: Instant,
    /// Nanoseconds after `start` of the last byte either way.
    last: AtomicU64,
    up: AtomicU64,
    down: AtomicU64,
}

/// Which way bytes go: up is client to destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

impl Default for Traffic {
    fn default() -> Self {
        Self { start: Instant::now(), last: AtomicU64::new(0), up: AtomicU64::new(0), down: AtomicU64::new(0) }
    }
}

impl Traffic {
    pub fn add(&self, dir: Direction, n: usize) {
        let counter = if dir == Direction::Up { &self.up } else { &self.down };
        counter.fetch_add(n as u64, Ordering::Relaxed);
        self.touch();
    }

    pub fn touch(&self) {
        let now = self.start.elapsed().as_nanos().min(u64::MAX as u128) as u64;
        self.last.fetch_max(now, Ordering::Relaxed);
    }

    pub fn up(&self) -> u64 {
        self.up.load(Ordering::Relaxed)
    }

    pub fn down(&self) -> u64 {
        self.down.load(Ordering::Relaxed)
    }

    pub fn started(&self) -> Instant {
        self.start
    }

    /// When the idle limit runs out, counting from the last byte.
    fn deadline(&self, limit: Duration) -> Instant {
        self.start + Duration::from_nanos(self.last.load(Ordering::Relaxed)) + limit
    }

    /// Resolves once nothing has moved either way for `limit`.
    pub async fn idle(&self, limit: Duration) {
        loop {
            let deadline = self.deadline(limit);
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A stream that counts what is written to it as `dir` and touches the clock on every read and
/// write.
pub struct MeteredIo<'a, S> {
    inner: S,
    traffic: &'a Traffic,
    dir: Direction,
}

impl<'a, S> MeteredIo<'a, S> {
    /// `dir` is the direction of the bytes written into this stream.
    pub fn new(inner: S, traffic: &'a Traffic, dir: Direction) -> Self {
        Self { inner, traffic, dir }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for MeteredIo<'_, S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.traffic.touch();
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for MeteredIo<'_, S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            self.traffic.add(self.dir, n);
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A body that counts its data frames as `dir`, optionally fails after the idle limit, and
/// keeps `K` (a log record, a tunnel permit) alive until it is dropped.
pub struct MeteredBody<B, K> {
    inner: B,
    traffic: std::sync::Arc<Traffic>,
    dir: Direction,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
    _keep: K,
}

impl<B, K> MeteredBody<B, K> {
    pub fn new(inner: B, traffic: std::sync::Arc<Traffic>, dir: Direction, keep: K) -> Self {
        Self { inner, traffic, dir, idle: None, _keep: keep }
    }

    /// Fails the body when nothing moved either way for `limit`.
    pub fn with_idle_timeout(mut self, limit: Duration) -> Self {
        self.idle = Some((limit, Box::pin(tokio::time::sleep_until(self.traffic.deadline(limit)))));
        self
    }
}

impl<B, K> HttpBody for MeteredBody<B, K>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    K: Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.traffic.add(this.dir, data.len());
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let Some((limit, sleep)) = &mut this.idle else { return Poll::Pending };
                // The other direction may have moved the deadline since the sleep was set.
                loop {
                    let deadline = this.traffic.deadline(*limit);
                    if Instant::now() >= deadline {
                        return Poll::Ready(Some(Err(format!("no byte either way for {limit:?}").into())));
                    }
                    sleep.as_mut().reset(deadline);
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
