//! The signature chain of a signed aws-chunked stream.

use super::super::{signatures_equal, PayloadMode, Scope, SigV4Error, SigningKey, Verified};

/// How chunks are authenticated.
pub enum ChunkSigning {
    Unsigned,
    /// Each chunk's signature chains from the previous one, starting at the seed (the request's
    /// own signature), so chunks cannot be reordered, dropped or replayed.
    Signed {
        key: SigningKey,
        scope: Scope,
        amz_date: String,
        seed_signature: [u8; 32],
    },
}

impl ChunkSigning {
    /// The signing a verified request calls for: `Signed` for the signed streaming modes.
    pub fn from_verified(verified: &Verified) -> Self {
        match verified.payload {
            PayloadMode::StreamingSigned { .. } => Self::Signed {
                key: verified.signing_key.clone(),
                scope: verified.scope.clone(),
                amz_date: verified.amz_date.clone(),
                seed_signature: verified.seed_signature,
            },
            _ => Self::Unsigned,
        }
    }
}

/// The running signature chain of a signed stream.
pub(super) struct Chain {
    pub key: SigningKey,
    pub scope: String,
    pub amz_date: String,
    pub previous: [u8; 32],
}

impl Chain {
    pub fn verify(&mut self, algorithm: &str, hashes: &str, claimed: &[u8; 32]) -> Result<(), SigV4Error> {
        let sts = streaming_string_to_sign(algorithm, &self.amz_date, &self.scope, &self.previous, hashes);
        let computed = self.key.sign(&sts);
        if !signatures_equal(&computed, claimed) {
            return Err(SigV4Error::SignatureDoesNotMatch);
        }
        self.previous = computed;
        Ok(())
    }
}

/// `<algorithm>\n<amz_date>\n<scope>\n<previous signature hex>\n<hashes>`, where `algorithm` is
/// `AWS4-HMAC-SHA256-PAYLOAD` (hashes: sha256("") and sha256(chunk), one per line) or
/// `AWS4-HMAC-SHA256-TRAILER` (hashes: sha256 of the canonical trailers).
pub(crate) fn streaming_string_to_sign(
    algorithm: &str,
    amz_date: &str,
    scope: &str,
    previous: &[u8; 32],
    hashes: &str,
) -> String {
    format!("{algorithm}\n{amz_date}\n{scope}\n{}\n{hashes}", hex::encode(previous))
}
