//! What `x-amz-content-sha256` promises about the body, and the check of a plain body against it.

use sha2::{Digest, Sha256};

use super::{
    parse_hex32, signatures_equal, SigV4Error, STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER,
    UNSIGNED_PAYLOAD,
};

/// Parsed `x-amz-content-sha256`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadMode {
    /// The body's SHA-256, which the body layer must check before committing the upload.
    Sha256([u8; 32]),
    Unsigned,
    /// aws-chunked with a signature per chunk (and, with `trailer`, signed trailing headers).
    StreamingSigned {
        trailer: bool,
    },
    /// aws-chunked without chunk signatures, ending in trailing headers (boto3, checksums).
    StreamingUnsignedTrailer,
}

impl PayloadMode {
    pub fn parse(value: &str) -> Result<Self, SigV4Error> {
        match value {
            UNSIGNED_PAYLOAD => Ok(Self::Unsigned),
            STREAMING_SIGNED => Ok(Self::StreamingSigned { trailer: false }),
            STREAMING_SIGNED_TRAILER => Ok(Self::StreamingSigned { trailer: true }),
            STREAMING_UNSIGNED_TRAILER => Ok(Self::StreamingUnsignedTrailer),
            _ => parse_hex32(value).map(Self::Sha256).ok_or_else(|| {
                // Echo only a bounded prefix: the value is client input headed for an error body.
                let shown: String = value.chars().take(80).collect();
                SigV4Error::InvalidContentSha256(shown)
            }),
        }
    }

    /// The header value that selects this mode (lowercase hex for a digest).
    pub fn as_header_value(&self) -> String {
        match self {
            Self::Sha256(digest) => hex::encode(digest),
            Self::Unsigned => UNSIGNED_PAYLOAD.to_owned(),
            Self::StreamingSigned { trailer: false } => STREAMING_SIGNED.to_owned(),
            Self::StreamingSigned { trailer: true } => STREAMING_SIGNED_TRAILER.to_owned(),
            Self::StreamingUnsignedTrailer => STREAMING_UNSIGNED_TRAILER.to_owned(),
        }
    }

    /// Whether the body is aws-chunked framed and must go through [`super::ChunkedDecoder`].
    pub fn is_streaming(&self) -> bool {
        matches!(self, Self::StreamingSigned { .. } | Self::StreamingUnsignedTrailer)
    }

    /// Whether the aws-chunked body ends with trailing headers.
    pub fn has_trailer(&self) -> bool {
        matches!(self, Self::StreamingSigned { trailer: true } | Self::StreamingUnsignedTrailer)
    }
}

/// Hashes a plain body as it streams past, for `PayloadMode::Sha256`. The signature only covers
/// the hash the client claimed, so without this check a body could be swapped in flight.
#[derive(Clone)]
pub struct PayloadHash {
    expected: [u8; 32],
    hasher: Sha256,
}

impl PayloadHash {
    pub fn new(expected: [u8; 32]) -> Self {
        Self { expected, hasher: Sha256::new() }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
    }

    /// Call at the end of the body; `ContentSha256Mismatch` means the body must be discarded.
    pub fn finish(self) -> Result<(), SigV4Error> {
        let actual: [u8; 32] = self.hasher.finalize().into();
        if signatures_equal(&actual, &self.expected) {
            Ok(())
        } else {
            Err(SigV4Error::ContentSha256Mismatch)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::sigv4::EMPTY_SHA256;

    #[test]
    fn parses_every_mode_and_round_trips() {
        for value in
            [EMPTY_SHA256, UNSIGNED_PAYLOAD, STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER]
        {
            assert_eq!(PayloadMode::parse(value).unwrap().as_header_value(), value);
        }
        assert!(PayloadMode::parse(STREAMING_SIGNED).unwrap().is_streaming());
        assert!(PayloadMode::parse(STREAMING_UNSIGNED_TRAILER).unwrap().has_trailer());
        assert!(!PayloadMode::parse(UNSIGNED_PAYLOAD).unwrap().is_streaming());
    }

    #[test]
    fn rejects_anything_else() {
        for value in ["", "abc", &EMPTY_SHA256[1..], "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"] {
            assert!(matches!(PayloadMode::parse(value), Err(SigV4Error::InvalidContentSha256(_))));
        }
        let long = "x".repeat(10_000);
        let Err(SigV4Error::InvalidContentSha256(shown)) = PayloadMode::parse(&long) else {
            panic!("expected InvalidContentSha256");
        };
        assert_eq!(shown.len(), 80);
    }

    #[test]
    fn payload_hash_checks_the_body() {
        let expected =
            crate::sigv4::parse_hex32("44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072").unwrap();
        let mut ok = PayloadHash::new(expected);
        ok.update(b"Welcome to ");
        ok.update(b"Amazon S3.");
        assert_eq!(ok.finish(), Ok(()));
        let mut bad = PayloadHash::new(expected);
        bad.update(b"Welcome to Amazon S4.");
        assert_eq!(bad.finish(), Err(SigV4Error::ContentSha256Mismatch));
    }
}
