//! The aws-chunked body decoder (`sigv4::ChunkedDecoder`).
//!
//! Input: a flags byte (bit 0: trailers declared, bit 1: signed chunks, bit 2: an
//! `x-amz-decoded-content-length` follows as 2 bytes, little endian), a byte giving the size of
//! the pieces the body is fed in (1 to 256), then the body. Signed mode uses the unit tests'
//! key and seed signature, so the seed corpus can hold validly signed bodies.
//!
//! Checks: the decoder never yields more bytes than it was fed; what it yields, and whether it
//! fails, does not depend on how the body is split into pieces; a body it accepts decodes the
//! same once re-framed as a single chunk.

use bytes::Bytes;
use s3gate::sigv4::{ChunkSigning, ChunkedDecoder, Decoded, Scope, SigV4Error, SigningKey};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const AMZ_DATE: &str = "20130524T000000Z";

#[derive(Clone, Copy)]
struct Setup {
    trailer: bool,
    signed: bool,
    decoded_length: Option<u64>,
}

impl Setup {
    fn decoder(self) -> ChunkedDecoder {
        let signing = if self.signed {
            let scope = Scope::new("20130524", "us-east-1", "s3");
            let key = SigningKey::derive(SECRET, &scope);
            ChunkSigning::Signed { key, scope, amz_date: AMZ_DATE.into(), seed_signature: [7; 32] }
        } else {
            ChunkSigning::Unsigned
        };
        let decoder = ChunkedDecoder::new(signing, self.trailer);
        match self.decoded_length {
            Some(len) => decoder.with_decoded_length(len),
            None => decoder,
        }
    }
}

/// Everything a decoder yielded, joined, and how it ended.
#[derive(Debug, PartialEq)]
struct Outcome {
    data: Vec<u8>,
    trailers: Vec<Vec<(String, String)>>,
    ended: bool,
    result: Result<(), SigV4Error>,
}

/// Feeds `body` in `piece`-byte pieces, taking all the decoder yields after each; then `finish`.
fn decode(setup: Setup, body: &[u8], piece: usize) -> Outcome {
    let mut decoder = setup.decoder();
    let mut out = Outcome { data: Vec::new(), trailers: Vec::new(), ended: false, result: Ok(()) };
    'feed: for input in body.chunks(piece) {
        decoder.feed(Bytes::copy_from_slice(input));
        loop {
            match decoder.next() {
                Ok(Some(Decoded::Data(data))) => {
                    assert!(!data.is_empty(), "an empty Data piece");
                    assert!(!out.ended && out.trailers.is_empty(), "data after the trailers or the end");
                    out.data.extend_from_slice(&data);
                }
                Ok(Some(Decoded::Trailers(t))) => {
                    assert!(setup.trailer, "trailers from a body that declared none");
                    assert!(!out.ended && out.trailers.is_empty(), "trailers twice, or after the end");
                    out.trailers.push(t);
                }
                Ok(Some(Decoded::End)) => {
                    assert!(!out.ended, "End twice");
                    out.ended = true;
                }
                Ok(None) => break,
                Err(e) => {
                    out.result = Err(e);
                    break 'feed;
                }
            }
        }
    }
    if out.result.is_ok() {
        out.result = decoder.finish();
    } else {
        assert_eq!(decoder.next().err(), out.result.clone().err(), "errors are sticky");
    }
    // A piece that fails its chunk signature is counted but never handed out.
    assert!(decoder.decoded_len() <= body.len() as u64, "decoded more bytes than were fed");
    if out.result.is_ok() {
        assert_eq!(decoder.decoded_len(), out.data.len() as u64);
    } else {
        assert!(decoder.decoded_len() >= out.data.len() as u64);
    }
    if out.result.is_err() {
        // Fed whole, a body with bytes after its end fails before `End`; fed in pieces, `End`
        // may come out first. Either way the body is refused.
        out.ended = false;
    }
    out
}

/// One input, checked as described above; panics on a failed check.
pub fn run(input: &[u8]) {
    let [flags, piece, rest @ ..] = input else {
        return;
    };
    let (decoded_length, body) = match rest {
        [lo, hi, body @ ..] if flags & 4 != 0 => (Some(u64::from(u16::from_le_bytes([*lo, *hi]))), body),
        _ => (None, rest),
    };
    let setup = Setup { trailer: flags & 1 != 0, signed: flags & 2 != 0, decoded_length };

    let whole = decode(setup, body, body.len().max(1));
    let pieces = decode(setup, body, usize::from(*piece) + 1);
    if whole.result.is_ok() || pieces.result.is_ok() {
        assert_eq!(whole, pieces, "the outcome depends on how the body was split");
    } else {
        // A failed chunk's earlier pieces may already be out; how many depends on the split.
        assert_eq!(whole.result, pieces.result, "the error depends on how the body was split");
        let shorter = whole.data.len().min(pieces.data.len());
        assert_eq!(whole.data[..shorter], pieces.data[..shorter], "different data before the error");
    }

    if whole.result.is_ok() {
        assert!(whole.ended);
        assert_eq!(whole.trailers.len(), usize::from(setup.trailer));
        if let Some(len) = decoded_length {
            assert_eq!(whole.data.len() as u64, len);
        }
        if !setup.signed {
            let reframed = decode(setup, &reframe(&whole), 7);
            assert_eq!(reframed, whole, "a single-chunk framing of the same body decodes differently");
        }
    }
}

/// The decoded body as one data chunk and the final chunk, with the same trailers.
fn reframe(outcome: &Outcome) -> Vec<u8> {
    let mut body = Vec::new();
    if !outcome.data.is_empty() {
        body.extend_from_slice(format!("{:x}\r\n", outcome.data.len()).as_bytes());
        body.extend_from_slice(&outcome.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n");
    for (name, value) in outcome.trailers.iter().flatten() {
        body.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
    }
    body.extend_from_slice(b"\r\n");
    body
}
