//! Request bodies on their way upstream, checked as they stream.
//!
//! Nothing is buffered whole. What makes a bad body harmless is *hold-back*: the frame that
//! would complete the upstream request (the last data frame, or the aws-chunked terminator) is
//! released only once the whole body has been verified. If verification fails the stream ends
//! with an error instead, the upstream connection is cut mid-body, and the upstream stores
//! nothing. The failure is left in a [`FailureSlot`] so the handler can answer the client with
//! the right S3 error rather than a generic upstream failure.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use sha2::{Digest, Sha256};

use crate::body::BoxError;
use crate::checksum::{Algorithm, Checksummer};
use crate::error::FailureSlot;
use crate::error::{S3Error, S3ErrorCode};
use crate::sigv4::chunked::{ChunkSigning, ChunkedDecoder, Decoded};
use crate::sigv4::{signatures_equal, SigV4Error};

fn client_read_error(e: impl std::fmt::Display) -> S3Error {
    S3Error::incomplete_body(format!("reading the request body failed: {e}"))
}

/// A plain body whose SHA-256 must equal the signed `x-amz-content-sha256`.
pub struct Sha256Body<B> {
    inner: B,
    hasher: Sha256,
    expected: [u8; 32],
    expected_len: Option<u64>,
    seen: u64,
    pending: Option<Bytes>,
    done: bool,
    slot: FailureSlot,
}

impl<B> Sha256Body<B> {
    pub fn new(inner: B, expected: [u8; 32], expected_len: Option<u64>, slot: FailureSlot) -> Self {
        Self { inner, hasher: Sha256::new(), expected, expected_len, seen: 0, pending: None, done: false, slot }
    }

    fn finish(&mut self) -> Result<(), S3Error> {
        if let Some(len) = self.expected_len {
            if self.seen != len {
                return Err(SigV4Error::IncompleteBody(format!("got {} of {len} bytes", self.seen)).into());
            }
        }
        let digest: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        if !signatures_equal(&digest, &self.expected) {
            return Err(SigV4Error::ContentSha256Mismatch.into());
        }
        Ok(())
    }
}

impl<B> HttpBody for Sha256Body<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else { continue };
                    if data.is_empty() {
                        continue;
                    }
                    this.hasher.update(&data);
                    this.seen += data.len() as u64;
                    if let Some(prev) = this.pending.replace(data) {
                        return Poll::Ready(Some(Ok(Frame::data(prev))));
                    }
                }
                Some(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(this.slot.set(client_read_error(e)))));
                }
                None => {
                    this.done = true;
                    if let Err(e) = this.finish() {
                        return Poll::Ready(Some(Err(this.slot.set(e))));
                    }
                    return Poll::Ready(this.pending.take().map(|d| Ok(Frame::data(d))));
                }
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.expected_len {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// How a decoded aws-chunked body goes upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedOutput {
    /// Plain bytes with `Content-Length` = decoded length (no trailer to carry).
    Decoded,
    /// Unsigned aws-chunked (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`) so trailing checksums reach
    /// the upstream; the terminator and trailer go out only after every signature checked.
    UnsignedTrailer,
}

/// An aws-chunked client body: chunk and trailer signatures verified, framing removed or
/// rewritten unsigned.
pub struct AwsChunkedBody<B> {
    inner: B,
    decoder: ChunkedDecoder,
    output: ChunkedOutput,
    expected_len: u64,
    out: VecDeque<Bytes>,
    pending: Option<Bytes>,
    trailers: Vec<(String, String)>,
    checksum: Option<Checksummer>,
    input_done: bool,
    ended: bool,
    failed: bool,
    slot: FailureSlot,
}

impl<B> AwsChunkedBody<B> {
    /// `checksum`: the algorithm the client's `x-amz-trailer` announced, verified here.
    pub fn new(
        inner: B,
        signing: ChunkSigning,
        trailer: bool,
        output: ChunkedOutput,
        expected_len: u64,
        checksum: Option<Algorithm>,
        slot: FailureSlot,
    ) -> Self {
        Self {
            inner,
            decoder: ChunkedDecoder::new(signing, trailer),
            output,
            expected_len,
            out: VecDeque::new(),
            pending: None,
            trailers: Vec::new(),
            checksum: checksum.map(Checksummer::new),
            input_done: false,
            ended: false,
            failed: false,
            slot,
        }
    }

    fn on_decoded(&mut self, item: Decoded) -> Result<(), S3Error> {
        match item {
            Decoded::Data(d) => {
                if d.is_empty() {
                    return Ok(());
                }
                if self.decoder.decoded_len() > self.expected_len {
                    return Err(SigV4Error::IncompleteBody(format!(
                        "body is longer than x-amz-decoded-content-length {}",
                        self.expected_len
                    ))
                    .into());
                }
                if let Some(c) = self.checksum.as_mut() {
                    c.update(&d);
                }
                match self.output {
                    ChunkedOutput::Decoded => {
                        if let Some(prev) = self.pending.replace(d) {
                            self.out.push_back(prev);
                        }
                    }
                    ChunkedOutput::UnsignedTrailer => {
                        self.out.push_back(Bytes::from(format!("{:x}\r\n", d.len())));
                        self.out.push_back(d);
                        self.out.push_back(Bytes::from_static(b"\r\n"));
                    }
                }
            }
            Decoded::Trailers(t) => self.trailers = t,
            Decoded::End => {
                if self.decoder.decoded_len() != self.expected_len {
                    return Err(SigV4Error::IncompleteBody(format!(
                        "decoded {} bytes, x-amz-decoded-content-length says {}",
                        self.decoder.decoded_len(),
                        self.expected_len
                    ))
                    .into());
                }
                self.verify_trailing_checksum()?;
                self.ended = true;
                match self.output {
                    ChunkedOutput::Decoded => self.out.extend(self.pending.take()),
                    ChunkedOutput::UnsignedTrailer => {
                        let mut end = String::from("0\r\n");
                        for (name, value) in &self.trailers {
                            end.push_str(name);
                            end.push(':');
                            end.push_str(value);
                            end.push_str("\r\n");
                        }
                        end.push_str("\r\n");
                        self.out.push_back(Bytes::from(end));
                    }
                }
            }
        }
        Ok(())
    }
}

impl<B> AwsChunkedBody<B> {
    fn verify_trailing_checksum(&mut self) -> Result<(), S3Error> {
        let Some(c) = self.checksum.take() else { return Ok(()) };
        let alg = c.algorithm;
        let sent = self
            .trailers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(alg.header_name()))
            .map(|(_, v)| v.trim().to_owned())
            .ok_or_else(|| {
                S3Error::new(
                    S3ErrorCode::InvalidRequest,
                    format!("The {} trailer announced in x-amz-trailer was not sent.", alg.header_name()),
                )
            })?;
        if c.finalize_base64() != sent {
            return Err(S3Error::new(
                S3ErrorCode::BadDigest,
                format!("The {} you specified did not match the calculated checksum.", alg.display_name()),
            ));
        }
        Ok(())
    }
}

impl<B> HttpBody for AwsChunkedBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.failed {
                return Poll::Ready(None);
            }
            if let Some(b) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(b))));
            }
            if this.ended {
                if !this.input_done {
                    // Anything after the terminator is a framing error; drain to find out.
                    match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                        Some(Ok(f)) => match f.into_data() {
                            Ok(d) if !d.is_empty() => {
                                this.failed = true;
                                let e = SigV4Error::InvalidChunk("data after the final chunk".into());
                                return Poll::Ready(Some(Err(this.slot.set(e.into()))));
                            }
                            _ => continue,
                        },
                        Some(Err(e)) => {
                            this.failed = true;
                            return Poll::Ready(Some(Err(this.slot.set(client_read_error(e)))));
                        }
                        None => this.input_done = true,
                    }
                }
                return Poll::Ready(None);
            }
            match this.decoder.next() {
                Ok(Some(item)) => {
                    if let Err(e) = this.on_decoded(item) {
                        this.failed = true;
                        return Poll::Ready(Some(Err(this.slot.set(e))));
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    this.failed = true;
                    return Poll::Ready(Some(Err(this.slot.set(e.into()))));
                }
            }
            if this.input_done {
                let e = match this.decoder.finish() {
                    Err(e) => e,
                    Ok(()) => SigV4Error::IncompleteBody("the aws-chunked body ended early".into()),
                };
                this.failed = true;
                return Poll::Ready(Some(Err(this.slot.set(e.into()))));
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(d) = frame.into_data() {
                        this.decoder.feed(d);
                    }
                }
                Some(Err(e)) => {
                    this.failed = true;
                    return Poll::Ready(Some(Err(this.slot.set(client_read_error(e)))));
                }
                None => this.input_done = true,
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.output {
            ChunkedOutput::Decoded => SizeHint::with_exact(self.expected_len),
            ChunkedOutput::UnsignedTrailer => SizeHint::default(),
        }
    }
}
