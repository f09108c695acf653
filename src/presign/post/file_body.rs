//! The two streams of a form upload: the request body as the multipart parser reads it (capped
//! until the file starts), and the file part as it goes upstream (checked against the policy's
//! `content-length-range` while it streams).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use http_body::{Body as HttpBody, Frame};

use crate::body::BoxError;
use crate::error::{S3Error, S3ErrorCode};

/// Where the file body records why it failed, for the handler to answer with that S3 error
/// once the upstream PUT it cut short has failed: the proxy's own failure slot.
pub use crate::error::FailureSlot as PostFailure;

/// How much of the request the parser may pull before the file part starts: the form fields
/// (S3 allows 20 KiB of them) plus what the parser reads ahead of the file's first bytes.
/// Without a cap, a body with no boundary in it would be buffered whole while it searches.
pub(super) const MAX_PRE_FILE_BYTES: u64 = 1024 * 1024;

/// The request body as a byte stream for the multipart parser, refusing to yield more than
/// [`MAX_PRE_FILE_BYTES`] until `file_reached` is set.
pub(super) struct FormStream<B> {
    inner: B,
    pulled: u64,
    file_reached: Arc<AtomicBool>,
}

impl<B> FormStream<B> {
    pub fn new(inner: B, file_reached: Arc<AtomicBool>) -> Self {
        Self { inner, pulled: 0, file_reached }
    }
}

/// Raised (inside the parser's error) when the form before the file is too large.
#[derive(Debug, thiserror::Error)]
#[error("the form fields before the file are too large")]
pub(super) struct PreDataTooLarge;

impl<B> Stream for FormStream<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let frame = match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
                None => return Poll::Ready(None),
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                Some(Ok(frame)) => frame,
            };
            // Trailers carry nothing the form needs.
            let Ok(data) = frame.into_data() else { continue };
            self.pulled = self.pulled.saturating_add(data.len() as u64);
            if self.pulled > MAX_PRE_FILE_BYTES && !self.file_reached.load(Ordering::Acquire) {
                return Poll::Ready(Some(Err(Box::new(PreDataTooLarge))));
            }
            return Poll::Ready(Some(Ok(data)));
        }
    }
}

/// The file part, streamed. More than `max_len` bytes fails at once with `EntityTooLarge`;
/// fewer than `min_len` at the end with `EntityTooSmall`. The last chunk is held back until the
/// end is checked, so that a failed upload never completes upstream whatever its framing: with
/// a known length the upstream would store the object on its last byte.
pub struct FileBody {
    field: multer::Field<'static>,
    min_len: u64,
    max_len: u64,
    seen: u64,
    pending: Option<Bytes>,
    done: bool,
    failure: PostFailure,
}

impl FileBody {
    pub(super) fn new(field: multer::Field<'static>, min_len: u64, max_len: u64, failure: PostFailure) -> Self {
        Self { field, min_len, max_len, seen: 0, pending: None, done: false, failure }
    }

    fn fail(&mut self, e: S3Error) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.done = true;
        self.pending = None;
        Poll::Ready(Some(Err(self.failure.set(e))))
    }
}

/// The S3 error for a parser error inside the file part. A read error that is already an S3
/// error (the proxy's idle timeout around the request body) is kept as it is.
pub(super) fn file_error(e: &multer::Error) -> S3Error {
    match e {
        multer::Error::StreamReadFailed(inner) => match inner.downcast_ref::<S3Error>() {
            Some(s3) => s3.clone(),
            None => S3Error::incomplete_body("The request body could not be read to its end."),
        },
        multer::Error::IncompleteFieldData { .. } | multer::Error::IncompleteStream => {
            S3Error::incomplete_body("The request body ended before the file part did.")
        }
        _ => S3Error::malformed_post_request(super::MALFORMED),
    }
}

impl HttpBody for FileBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut self.field).poll_next(cx)) {
                Some(Ok(chunk)) => {
                    self.seen = self.seen.saturating_add(chunk.len() as u64);
                    if self.seen > self.max_len {
                        return self.fail(S3Error::new(
                            S3ErrorCode::EntityTooLarge,
                            "Your proposed upload exceeds the maximum allowed size",
                        ));
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    if let Some(previous) = self.pending.replace(chunk) {
                        return Poll::Ready(Some(Ok(Frame::data(previous))));
                    }
                }
                Some(Err(e)) => return self.fail(file_error(&e)),
                None => {
                    if self.seen < self.min_len {
                        return self.fail(S3Error::new(
                            S3ErrorCode::EntityTooSmall,
                            "Your proposed upload is smaller than the minimum allowed size",
                        ));
                    }
                    self.done = true;
                    if let Some(last) = self.pending.take() {
                        return Poll::Ready(Some(Ok(Frame::data(last))));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.pending.is_none()
    }
}
