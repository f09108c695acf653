//! The flexible checksums S3 accepts (`x-amz-checksum-*`), computed while a body streams.
//!
//! An unsigned aws-chunked upload's only integrity check is its trailing checksum. s3gate
//! verifies it itself before releasing the body's last frame, so a corrupted upload is refused
//! with `BadDigest` and nothing is stored, even behind an S3-compatible store that ignores
//! trailers.

use base64::Engine;
use sha1::Digest as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl Algorithm {
    /// From a header name such as `x-amz-checksum-crc32` (any case).
    pub fn from_header_name(name: &str) -> Option<Self> {
        let lower = name.trim().to_ascii_lowercase();
        Some(match lower.strip_prefix("x-amz-checksum-")? {
            "crc32" => Self::Crc32,
            "crc32c" => Self::Crc32c,
            "crc64nvme" => Self::Crc64Nvme,
            "sha1" => Self::Sha1,
            "sha256" => Self::Sha256,
            _ => return None,
        })
    }

    pub fn header_name(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }
}

enum State {
    Crc(crc_fast::Digest),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

/// A running checksum of one algorithm.
pub struct Checksummer {
    pub algorithm: Algorithm,
    state: State,
}

impl Checksummer {
    pub fn new(algorithm: Algorithm) -> Self {
        use crc_fast::CrcAlgorithm as C;
        let state = match algorithm {
            Algorithm::Crc32 => State::Crc(crc_fast::Digest::new(C::Crc32IsoHdlc)),
            Algorithm::Crc32c => State::Crc(crc_fast::Digest::new(C::Crc32Iscsi)),
            Algorithm::Crc64Nvme => State::Crc(crc_fast::Digest::new(C::Crc64Nvme)),
            Algorithm::Sha1 => State::Sha1(sha1::Sha1::new()),
            Algorithm::Sha256 => State::Sha256(sha2::Sha256::new()),
        };
        Self { algorithm, state }
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::Crc(d) => d.update(data),
            State::Sha1(d) => d.update(data),
            State::Sha256(d) => d.update(data),
        }
    }

    /// The value as S3 writes it in the header: base64 of the big-endian bytes.
    pub fn finalize_base64(self) -> String {
        let bytes: Vec<u8> = match self.state {
            State::Crc(d) => match self.algorithm {
                Algorithm::Crc64Nvme => d.finalize().to_be_bytes().to_vec(),
                _ => (d.finalize() as u32).to_be_bytes().to_vec(),
            },
            State::Sha1(d) => d.finalize().to_vec(),
            State::Sha256(d) => d.finalize().to_vec(),
        };
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(alg: Algorithm, data: &[u8]) -> String {
        let mut c = Checksummer::new(alg);
        for piece in data.chunks(3) {
            c.update(piece);
        }
        c.finalize_base64()
    }

    #[test]
    fn known_values_of_the_check_string() {
        // The standard check input "123456789": CRC32 cbf43926, CRC32C e3069283,
        // CRC64/NVME ae8b14860a799888.
        let data = b"123456789";
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        assert_eq!(sum(Algorithm::Crc32, data), b64(&0xcbf4_3926u32.to_be_bytes()));
        assert_eq!(sum(Algorithm::Crc32c, data), b64(&0xe306_9283u32.to_be_bytes()));
        assert_eq!(sum(Algorithm::Crc64Nvme, data), b64(&0xae8b_1486_0a79_9888u64.to_be_bytes()));
        assert_eq!(sum(Algorithm::Sha256, b""), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
        assert_eq!(sum(Algorithm::Sha1, b""), "2jmj7l5rSw0yVb/vlWAYkK/YBwk=");
    }

    #[test]
    fn header_names_round_trip() {
        for alg in [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme, Algorithm::Sha1, Algorithm::Sha256] {
            assert_eq!(Algorithm::from_header_name(alg.header_name()), Some(alg));
        }
        assert_eq!(Algorithm::from_header_name("X-Amz-Checksum-CRC32"), Some(Algorithm::Crc32));
        assert_eq!(Algorithm::from_header_name("x-amz-checksum-md5"), None);
    }
}
