//! Temporary credentials that s3gate's STS issues, sealed into their own session token.
//!
//! Nothing about a session is stored: everything s3gate needs to verify and authorize a request
//! made with it (the access key id, its secret, the expiry, the role, the session name, the web
//! identity's subject, source identity, tags and session policy) travels inside the token,
//! sealed with AES-256-GCM. Any replica holding the key opens any token, so sessions survive
//! restarts and need no shared store. Several keys are accepted so that a key can be rotated:
//! the first seals, all open, and a token names the key that sealed it by a short fingerprint.
//!
//! The token is authenticated, not just encrypted: a flipped bit anywhere fails to open, so the
//! claims inside are exactly what s3gate issued. Pure: no clock is read here, `now` is passed.

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::credentials::SecretKey;

/// The format byte every token starts with; a new layout gets a new one.
const VERSION: u8 = 1;
/// Bytes of the key fingerprint a token carries.
const KEY_ID_LEN: usize = 8;
/// A token longer than this is refused before any decoding: an honest one, with the largest
/// session policy and tags s3gate accepts, stays well under it.
pub const MAX_TOKEN_LEN: usize = 12 * 1024;

/// One sealing key: 32 bytes, wiped on drop, never printed.
#[derive(Clone)]
pub struct SessionKey {
    id: [u8; KEY_ID_LEN],
    key: Zeroizing<[u8; 32]>,
}

impl SessionKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        let digest = Sha256::new().chain_update(b"s3gate session key id\0").chain_update(bytes).finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self { id, key: Zeroizing::new(bytes) }
    }

    /// A key as operators write it: 64 hex digits, or the base64 of 32 bytes (`openssl rand
    /// -hex 32`, `head -c32 /dev/urandom | base64`). Surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let mut bytes = Zeroizing::new([0u8; 32]);
        if text.len() == 64 && hex::decode_to_slice(text, &mut *bytes).is_ok() {
            return Ok(Self::new(*bytes));
        }
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| "a session key must be 64 hex digits or the base64 of 32 bytes".to_owned())?,
        );
        if decoded.len() != 32 {
            return Err(format!("a session key must be 32 bytes, this one is {}", decoded.len()));
        }
        bytes.copy_from_slice(&decoded);
        Ok(Self::new(*bytes))
    }

    fn aead(&self) -> LessSafeKey {
        // AES-256-GCM takes any 32-byte key.
        let Ok(key) = UnboundKey::new(&AES_256_GCM, &*self.key) else { unreachable!("a 32-byte AES-256 key") };
        LessSafeKey::new(key)
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({}, <redacted>)", hex::encode(self.id))
    }
}

/// The keys that open tokens; the first also seals.
#[derive(Clone, Debug)]
pub struct SessionKeys {
    keys: Vec<SessionKey>,
}

/// What a session is, and everything a request made with it is judged by.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionClaims {
    /// The temporary access key id (`ASIA...`): a request must be signed with it.
    pub access_key_id: String,
    /// The secret that signs with it. Inside the sealed token only.
    pub secret: Secret,
    /// Unix seconds.
    pub issued: i64,
    pub expires: i64,
    /// The s3gate credential that called GetSessionToken or AssumeRole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The role's ARN, for AssumeRole and AssumeRoleWithWebIdentity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_name: Option<String>,
    /// The web identity's `iss` and `sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_identity: Option<String>,
    /// Session tags, `aws:PrincipalTag/<key>` in policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    /// The session policy as the caller passed it (JSON): it narrows the role's policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// A session's secret in the claims: serialized into the sealed token, never printed.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl SessionClaims {
    pub fn secret_key(&self) -> SecretKey {
        SecretKey::new(self.secret.0.clone())
    }
}

/// Why a token was refused. Each maps to the S3 code AWS answers with (`error.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Not a token s3gate could have made: bad encoding, too long, wrong version.
    #[error("the provided token is malformed or otherwise invalid")]
    Malformed,
    /// Sealed with a key this replica does not hold (retired, or another deployment's).
    #[error("the provided token is malformed or otherwise invalid")]
    UnknownKey,
    /// The seal does not open: the token was changed.
    #[error("the provided token is malformed or otherwise invalid")]
    Tampered,
    #[error("the provided token has expired")]
    Expired,
}

impl SessionKeys {
    /// `None` for an empty list: with no key, no session can be sealed or opened.
    pub fn new(keys: Vec<SessionKey>) -> Option<Self> {
        (!keys.is_empty()).then_some(Self { keys })
    }

    /// The token for `claims`, sealed with the first key.
    pub fn seal(&self, claims: &SessionClaims) -> String {
        let key = &self.keys[0];
        let plain = Zeroizing::new(serde_json::to_vec(claims).unwrap_or_default());
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut out = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + plain.len() + 16);
        out.push(VERSION);
        out.extend_from_slice(&key.id);
        let header_len = out.len();
        out.extend_from_slice(&nonce_bytes);
        let mut sealed = plain.to_vec();
        let nonce = Nonce::assume_unique_for_key(nonce_bytes);
        // Sealing fails only for inputs beyond GCM's 64 GiB bound.
        if key.aead().seal_in_place_append_tag(nonce, Aad::from(&out[..header_len]), &mut sealed).is_err() {
            unreachable!("a session fits AES-GCM's input bound");
        }
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens `token`, then checks it has not expired at `now` (unix seconds).
    pub fn open(&self, token: &str, now: i64) -> Result<SessionClaims, SessionError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(SessionError::Malformed);
        }
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| SessionError::Malformed)?;
        let header_len = 1 + KEY_ID_LEN;
        if raw.len() < header_len + NONCE_LEN + 16 || raw[0] != VERSION {
            return Err(SessionError::Malformed);
        }
        let (header, rest) = raw.split_at(header_len);
        let key = self.keys.iter().find(|k| k.id[..] == header[1..]).ok_or(SessionError::UnknownKey)?;
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SessionError::Malformed)?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let plain = key.aead().open_in_place(nonce, Aad::from(header), &mut buf).map_err(|_| SessionError::Tampered)?;
        // Sealed by s3gate, so this parses; a failure means a key was shared with something else.
        let claims: SessionClaims = serde_json::from_slice(plain).map_err(|_| SessionError::Malformed)?;
        if now >= claims.expires {
            return Err(SessionError::Expired);
        }
        Ok(claims)
    }
}

/// A new temporary access key id: `ASIA` and 16 base32 characters, as AWS's look.
pub fn new_access_key_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut id = String::from("ASIA");
    for b in rand::random::<[u8; 16]>() {
        id.push(ALPHABET[(b & 31) as usize] as char);
    }
    id
}

/// A new secret: 30 random bytes, 40 base64 characters, as long as AWS's.
pub fn new_secret() -> Secret {
    let bytes = Zeroizing::new(rand::random::<[u8; 30]>());
    Secret(base64::engine::general_purpose::STANDARD.encode(*bytes))
}

/// A role's stable unique id (`AROA` and 17 base32 characters, as IAM's look), derived from its
/// ARN so every replica agrees on it with nothing stored. `AssumedRoleId` and `aws:userid`
/// are `<role id>:<session name>`, as in AWS.
pub fn role_id(arn: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::new().chain_update(b"s3gate role id\0").chain_update(arn.as_bytes()).finalize();
    let mut id = String::from("AROA");
    id.extend(digest.iter().take(17).map(|b| ALPHABET[(b & 31) as usize] as char));
    id
}
