//! The `aws-chunked` body decoder: sans-IO, zero-copy, bounded memory.
//!
//! Framing: `hex-size[;chunk-signature=<64 hex>]\r\n<data>\r\n` repeated, then a final
//! `0[;chunk-signature=..]\r\n`, trailing headers (`name:value\r\n`, maybe none) and `\r\n`.
//! Data comes back as slices of the `Bytes` fed in, so a 5 GiB upload never sits in memory. A
//! chunk's signature is checked as soon as its data is complete, and the last piece of a chunk is
//! only released once it verified; pieces before it have already gone out, so any error means
//! the consumer must abandon the whole upload.

use std::collections::VecDeque;

use bytes::{Buf, Bytes};
use sha2::{Digest, Sha256};

use super::{parse_hex32, sha256_hex, SigV4Error, Verified, EMPTY_SHA256};

/// Longest size line or trailer line accepted: real ones are under 100 bytes.
const MAX_LINE: usize = 4096;
/// Most trailing headers accepted (SDKs send one checksum and a signature).
const MAX_TRAILERS: usize = 32;
const TRAILER_SIGNATURE: &str = "x-amz-trailer-signature";

mod signing;
#[cfg(test)]
pub(crate) use signing::streaming_string_to_sign;
use signing::Chain;
pub use signing::ChunkSigning;

/// One step of the decoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Data(Bytes),
    /// Trailing headers, names lowercased, without `x-amz-trailer-signature`.
    Trailers(Vec<(String, String)>),
    End,
}

enum State {
    Size,
    Data { remaining: u64 },
    DataEnd { cr_seen: bool },
    Trailers,
    Done { end_returned: bool },
}

pub struct ChunkedDecoder {
    chain: Option<Chain>,
    expect_trailer: bool,
    expected_len: Option<u64>,
    input: VecDeque<Bytes>,
    line: Vec<u8>,
    state: State,
    decoded: u64,
    chunk_signature: [u8; 32],
    chunk_hash: Sha256,
    trailers: Vec<(String, String)>,
    trailer_signature: Option<[u8; 32]>,
    /// Errors are sticky: after one, the stream position means nothing.
    failed: Option<SigV4Error>,
}

impl ChunkedDecoder {
    pub fn new(signing: ChunkSigning, expect_trailer: bool) -> Self {
        let chain = match signing {
            ChunkSigning::Unsigned => None,
            ChunkSigning::Signed { key, scope, amz_date, seed_signature } => {
                Some(Chain { key, scope: scope.to_string_scope(), amz_date, previous: seed_signature })
            }
        };
        Self {
            chain,
            expect_trailer,
            expected_len: None,
            input: VecDeque::new(),
            line: Vec::new(),
            state: State::Size,
            decoded: 0,
            chunk_signature: [0; 32],
            chunk_hash: Sha256::new(),
            trailers: Vec::new(),
            trailer_signature: None,
            failed: None,
        }
    }

    /// The decoder a verified request needs, or `None` if its body is not aws-chunked.
    pub fn for_request(verified: &Verified) -> Option<Self> {
        verified
            .payload
            .is_streaming()
            .then(|| Self::new(ChunkSigning::from_verified(verified), verified.payload.has_trailer()))
    }

    /// Also require the decoded length to equal `x-amz-decoded-content-length`.
    pub fn with_decoded_length(mut self, len: u64) -> Self {
        self.expected_len = Some(len);
        self
    }

    /// Appends more input.
    pub fn feed(&mut self, input: Bytes) {
        if !input.is_empty() {
            self.input.push_back(input);
        }
    }

    pub fn decoded_len(&self) -> u64 {
        self.decoded
    }

    /// The next piece of the body; `Ok(None)` means more input is needed (or, after `End`,
    /// that there is nothing more). Not an `Iterator`: "no more for now" and failure both need
    /// saying, and `None` could not tell "feed me" from "done".
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Decoded>, SigV4Error> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.step();
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }

    /// Call at EOF: the body is complete only if the final chunk and its trailers were read.
    pub fn finish(&self) -> Result<(), SigV4Error> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        match self.state {
            State::Done { .. } if !self.input.is_empty() => Err(invalid("data after the final chunk")),
            State::Done { .. } => Ok(()),
            _ => Err(SigV4Error::IncompleteBody(format!(
                "the aws-chunked body ended after {} decoded bytes, before its final chunk",
                self.decoded
            ))),
        }
    }

    fn step(&mut self) -> Result<Option<Decoded>, SigV4Error> {
        loop {
            match self.state {
                State::Size => {
                    let Some(line) = self.read_line()? else {
                        return Ok(None);
                    };
                    self.start_chunk(&line)?;
                }
                State::Data { remaining } => return self.take_data(remaining),
                State::DataEnd { cr_seen } => {
                    let Some(byte) = self.next_byte() else {
                        return Ok(None);
                    };
                    self.state = match (cr_seen, byte) {
                        (false, b'\r') => State::DataEnd { cr_seen: true },
                        (true, b'\n') => State::Size,
                        _ => return Err(invalid("chunk data is not followed by CRLF")),
                    };
                }
                State::Trailers => {
                    let Some(line) = self.read_line()? else {
                        return Ok(None);
                    };
                    if !line.is_empty() {
                        self.add_trailer(&line)?;
                        continue;
                    }
                    self.finish_body()?;
                    self.state = State::Done { end_returned: false };
                    if self.expect_trailer {
                        return Ok(Some(Decoded::Trailers(std::mem::take(&mut self.trailers))));
                    }
                }
                State::Done { end_returned } => {
                    if !self.input.is_empty() {
                        return Err(invalid("data after the final chunk"));
                    }
                    if end_returned {
                        return Ok(None);
                    }
                    self.state = State::Done { end_returned: true };
                    return Ok(Some(Decoded::End));
                }
            }
        }
    }

    fn take_data(&mut self, remaining: u64) -> Result<Option<Decoded>, SigV4Error> {
        let Some(front) = self.input.front_mut() else {
            return Ok(None);
        };
        let take = usize::try_from(remaining).map_or(front.len(), |r| r.min(front.len()));
        let piece = front.split_to(take);
        if front.is_empty() {
            self.input.pop_front();
        }
        self.decoded += take as u64;
        if self.expected_len.is_some_and(|expected| self.decoded > expected) {
            return Err(SigV4Error::IncompleteBody("more data than x-amz-decoded-content-length".to_owned()));
        }
        let remaining = remaining - take as u64;
        if self.chain.is_some() {
            self.chunk_hash.update(&piece);
            if remaining == 0 {
                self.verify_chunk()?;
            }
        }
        self.state = match remaining {
            0 => State::DataEnd { cr_seen: false },
            _ => State::Data { remaining },
        };
        Ok(Some(Decoded::Data(piece)))
    }

    fn start_chunk(&mut self, line: &[u8]) -> Result<(), SigV4Error> {
        let line = std::str::from_utf8(line).map_err(|_| invalid("chunk header is not UTF-8"))?;
        let (size, extension) = match line.split_once(';') {
            Some((size, extension)) => (size, Some(extension)),
            None => (line, None),
        };
        if size.is_empty() || size.len() > 16 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("chunk size must be 1 to 16 hex digits"));
        }
        let size = u64::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
        if self.chain.is_some() {
            let signature = extension
                .and_then(|e| e.strip_prefix("chunk-signature="))
                .ok_or_else(|| invalid("signed chunk lacks chunk-signature"))?;
            self.chunk_signature = parse_hex32(signature).ok_or_else(|| invalid("chunk-signature must be 64 hex"))?;
        }
        self.chunk_hash = Sha256::new();
        if size == 0 {
            self.verify_chunk()?;
            self.state = State::Trailers;
        } else {
            self.state = State::Data { remaining: size };
        }
        Ok(())
    }

    fn verify_chunk(&mut self) -> Result<(), SigV4Error> {
        let Some(chain) = self.chain.as_mut() else {
            return Ok(());
        };
        let data_hash = hex::encode(std::mem::take(&mut self.chunk_hash).finalize());
        let hashes = format!("{EMPTY_SHA256}\n{data_hash}");
        chain.verify("AWS4-HMAC-SHA256-PAYLOAD", &hashes, &self.chunk_signature)
    }

    fn add_trailer(&mut self, line: &[u8]) -> Result<(), SigV4Error> {
        if !self.expect_trailer {
            return Err(invalid("trailing headers sent, but the request declared none"));
        }
        if self.trailers.len() >= MAX_TRAILERS {
            return Err(invalid("too many trailing headers"));
        }
        let line = std::str::from_utf8(line).map_err(|_| invalid("trailer is not UTF-8"))?;
        let (name, value) = line.split_once(':').ok_or_else(|| invalid("trailer lacks ':'"))?;
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name.is_empty() {
            return Err(invalid("trailer with an empty name"));
        }
        if self.trailer_signature.is_some() {
            return Err(invalid("trailing header after x-amz-trailer-signature"));
        }
        if name == TRAILER_SIGNATURE {
            let signature = parse_hex32(value).ok_or_else(|| invalid("trailer signature must be 64 hex"))?;
            self.trailer_signature = Some(signature);
        } else {
            self.trailers.push((name, value.to_owned()));
        }
        Ok(())
    }

    /// Checks what can only be checked at the end: the trailer signature and the length.
    fn finish_body(&mut self) -> Result<(), SigV4Error> {
        if let (Some(chain), true) = (self.chain.as_mut(), self.expect_trailer) {
            let claimed =
                self.trailer_signature.ok_or_else(|| invalid("signed trailer lacks x-amz-trailer-signature"))?;
            // As the SDKs hash it: sorted by name, `name:value\n` each.
            let mut sorted: Vec<&(String, String)> = self.trailers.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            let canonical: String = sorted.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
            chain.verify("AWS4-HMAC-SHA256-TRAILER", &sha256_hex(canonical.as_bytes()), &claimed)?;
        }
        match self.expected_len {
            Some(expected) if expected != self.decoded => Err(SigV4Error::IncompleteBody(format!(
                "decoded {} bytes, x-amz-decoded-content-length says {expected}",
                self.decoded
            ))),
            _ => Ok(()),
        }
    }

    /// A CRLF-terminated line without its CRLF, or `None` if it is not all here yet.
    fn read_line(&mut self) -> Result<Option<Vec<u8>>, SigV4Error> {
        while let Some(front) = self.input.front_mut() {
            let room = MAX_LINE + 2 - self.line.len();
            let window = &front[..front.len().min(room)];
            if let Some(end) = window.iter().position(|&b| b == b'\n') {
                self.line.extend_from_slice(&front[..=end]);
                front.advance(end + 1);
                if front.is_empty() {
                    self.input.pop_front();
                }
                let mut line = std::mem::take(&mut self.line);
                if line.len() < 2 || line[line.len() - 2] != b'\r' {
                    return Err(invalid("line does not end in CRLF"));
                }
                line.truncate(line.len() - 2);
                return Ok(Some(line));
            }
            if window.len() == room {
                return Err(invalid("line longer than 4 KiB"));
            }
            self.line.extend_from_slice(front);
            self.input.pop_front();
        }
        Ok(None)
    }

    fn next_byte(&mut self) -> Option<u8> {
        let front = self.input.front_mut()?;
        let byte = front.get_u8();
        if front.is_empty() {
            self.input.pop_front();
        }
        Some(byte)
    }
}

fn invalid(reason: &str) -> SigV4Error {
    SigV4Error::InvalidChunk(reason.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;
