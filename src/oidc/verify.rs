//! Checking an OpenID Connect ID token against the issuer's keys: pure, the keys and the clock
//! are passed in, so every refusal is a unit test.
//!
//! The checks are the ones that matter against a forged or misused token: the signature, with
//! an algorithm from a short allow list (never `none`, never an HMAC one, which a public key
//! would otherwise "verify"), with the key the header names whose type fits the algorithm;
//! `iss` exactly; `exp`, `nbf` and `iat` within a small skew. The audience, subject and other
//! claims are the role's business (`sts`), since they differ per role.

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Signature algorithms accepted from an identity provider.
const ALLOWED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Clock difference tolerated between the identity provider and s3gate, in seconds.
pub const SKEW_SECONDS: u64 = 60;

/// The verified claims of an ID token.
#[derive(Debug, Clone, Deserialize)]
pub struct IdToken {
    pub iss: String,
    pub sub: String,
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    pub exp: i64,
    #[serde(default)]
    pub iat: Option<i64>,
    /// Every claim, for trust rules on other claims and the session tags claim.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Aud::deserialize(d)? {
        Aud::One(a) => vec![a],
        Aud::Many(a) => a,
    })
}

/// Why a token was refused. `Expired` is its own STS code; `UnknownKey` makes the caller
/// refresh the issuer's keys once before giving up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's signing algorithm is not allowed")]
    Algorithm,
    #[error("no key of the issuer matches the token's key id")]
    UnknownKey,
    #[error("the token's signature is not valid")]
    Signature,
    #[error("the token's issuer is not the one expected")]
    Issuer,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token lacks a required claim: {0}")]
    MissingClaim(String),
}

/// The header's algorithm and key id, once the algorithm is known to be allowed.
pub fn header(token: &str) -> Result<(Algorithm, Option<String>), TokenError> {
    // `decode_header` does not know `none`: such a token is malformed here.
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if !ALLOWED.contains(&header.alg) {
        return Err(TokenError::Algorithm);
    }
    Ok((header.alg, header.kid))
}

/// The issuer's keys that could have signed a token with this header: the one with its key id
/// (or, without one, every key), of a type that fits the algorithm, never a symmetric key.
pub fn candidates<'k>(keys: &'k [Jwk], alg: Algorithm, kid: Option<&str>) -> Vec<&'k Jwk> {
    keys.iter().filter(|k| kid.is_none() || k.common.key_id.as_deref() == kid).filter(|k| fits(k, alg)).collect()
}

fn fits(key: &Jwk, alg: Algorithm) -> bool {
    let family_fits = match &key.algorithm {
        AlgorithmParameters::RSA(_) => matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ),
        AlgorithmParameters::EllipticCurve(_) => matches!(alg, Algorithm::ES256 | Algorithm::ES384),
        AlgorithmParameters::OctetKeyPair(_) => alg == Algorithm::EdDSA,
        AlgorithmParameters::OctetKey(_) => false,
    };
    // A key that names its algorithm is used with that one only.
    let named = key.common.key_algorithm.map(|a| format!("{a:?}"));
    family_fits && named.is_none_or(|n| n == format!("{alg:?}"))
}

/// Verifies `token` with `keys` (the issuer's JWKS) for `issuer` at `now` (unix seconds).
pub fn verify(token: &str, keys: &[Jwk], issuer: &str, now: i64) -> Result<IdToken, TokenError> {
    let (alg, kid) = header(token)?;
    let candidates = candidates(keys, alg, kid.as_deref());
    if candidates.is_empty() {
        return Err(TokenError::UnknownKey);
    }
    let mut validation = Validation::new(alg);
    validation.algorithms = vec![alg];
    validation.leeway = SKEW_SECONDS;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    // The audience is checked per role, by the caller.
    validation.validate_aud = false;
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let mut last = TokenError::Signature;
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
        match jsonwebtoken::decode::<IdToken>(token, &key, &validation) {
            Ok(data) => return check_times(data.claims, now),
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind as K;
                last = match e.kind() {
                    K::InvalidSignature | K::InvalidEcdsaKey | K::InvalidRsaKey(_) | K::InvalidAlgorithm => {
                        TokenError::Signature
                    }
                    K::ExpiredSignature => return Err(TokenError::Expired),
                    K::ImmatureSignature => return Err(TokenError::NotYetValid),
                    K::InvalidIssuer => return Err(TokenError::Issuer),
                    K::MissingRequiredClaim(c) => return Err(TokenError::MissingClaim(c.clone())),
                    _ => return Err(TokenError::Malformed),
                };
            }
        }
    }
    Err(last)
}

/// `jsonwebtoken` checks `exp` and `nbf` against the system clock; these run against `now` too,
/// and `iat` is checked, which it does not: a token issued in the future is forged or from a
/// provider with a broken clock.
fn check_times(token: IdToken, now: i64) -> Result<IdToken, TokenError> {
    let skew = SKEW_SECONDS as i64;
    if token.exp + skew <= now {
        return Err(TokenError::Expired);
    }
    if token.iat.is_some_and(|iat| iat > now + skew) {
        return Err(TokenError::NotYetValid);
    }
    if let Some(nbf) = token.other.get("nbf").and_then(serde_json::Value::as_i64) {
        if nbf > now + skew {
            return Err(TokenError::NotYetValid);
        }
    }
    Ok(token)
}

/// The JWKS document's keys that this library understands; others (an unknown `kty`, an
/// encryption key) are skipped rather than failing the whole set.
pub fn parse_jwks(doc: &[u8]) -> Result<Vec<Jwk>, String> {
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(doc).map_err(|e| format!("not a JWKS document: {e}"))?;
    let keys = set
        .keys
        .into_iter()
        .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
        .filter(|k| !matches!(k.algorithm, AlgorithmParameters::OctetKey(_)))
        .filter(|k| !matches!(k.common.public_key_use, Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)))
        .collect();
    Ok(keys)
}
