//! Telling HTTP/2 from HTTP/1 on a new connection by its first bytes, so each is served by
//! hyper's own builder for it.
//!
//! hyper-util's auto server does the same, but its HTTP/1 side cannot bound a request head
//! apart from the read buffer: capping heads at 64 KiB that way also capped every body read at
//! 64 KiB and cost uploads about a fifth of their CPU. hyper's `http1::Builder` has both bounds.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// What every HTTP/2 connection starts with (RFC 9113, 3.4), with or without TLS.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads until the first bytes differ from the HTTP/2 preface or hold all of it; `None` if the
/// client closes first. Nothing read is lost: the returned stream replays it.
pub(super) async fn sniff<I: AsyncRead + Unpin>(mut io: I) -> io::Result<Option<(bool, Replay<I>)>> {
    let mut seen = Vec::with_capacity(H2_PREFACE.len());
    let mut buf = [0u8; 24];
    while seen.len() < H2_PREFACE.len() {
        let n = io.read(&mut buf[..H2_PREFACE.len() - seen.len()]).await?;
        if n == 0 {
            return Ok(None);
        }
        seen.extend_from_slice(&buf[..n]);
        if H2_PREFACE[..seen.len()] != seen[..] {
            return Ok(Some((false, Replay { prefix: seen, at: 0, inner: io })));
        }
    }
    Ok(Some((true, Replay { prefix: seen, at: 0, inner: io })))
}

/// A stream that first gives back the bytes [`sniff`] read, then reads on from the connection.
pub(super) struct Replay<I> {
    prefix: Vec<u8>,
    at: usize,
    inner: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Replay<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.prefix.len() {
            let rest = &this.prefix[this.at..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Replay<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sniffed(sent: &[u8]) -> (bool, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(sent).await.expect("write");
        drop(client);
        let (h2, mut replay) = sniff(server).await.expect("read").expect("bytes");
        let mut back = Vec::new();
        replay.read_to_end(&mut back).await.expect("replay");
        (h2, back)
    }

    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn http1_is_told_at_its_first_byte_and_replayed_whole() {
        let req = b"GET /bucket/key HTTP/1.1\r\nhost: x\r\n\r\n";
        assert_eq!(sniffed(req).await, (false, req.to_vec()));
        // A head that starts like the preface but is not it.
        let odd = b"PRI * HTTP/1.1\r\n\r\n";
        assert_eq!(sniffed(odd).await, (false, odd.to_vec()));
    }

    #[tokio::test]
    async fn the_http2_preface_is_recognised_and_replayed() {
        let mut sent = H2_PREFACE.to_vec();
        sent.extend_from_slice(b"\0\0\0\x04\0\0\0\0\0");
        assert_eq!(sniffed(&sent).await, (true, sent.clone()));
    }

    #[tokio::test]
    async fn a_client_that_closes_early_is_none() {
        let (client, server) = tokio::io::duplex(64);
        drop(client);
        assert!(sniff(server).await.expect("read").is_none());
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"PRI * HT").await.expect("write");
        drop(client);
        assert!(sniff(server).await.expect("read").is_none());
    }
}
