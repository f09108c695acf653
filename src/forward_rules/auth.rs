//! Optional proxy authentication: `Proxy-Authorization: Basic` against `--forward-user`.
//!
//! Passwords are kept only as SHA-256 digests of `name:password`, and a presented pair is
//! compared with every user's digest in constant time, so neither the timing nor a memory dump
//! of the config tells a password, and the loop does not stop early at the matching user.

use std::fmt;

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::credentials::Credential;

/// The proxy's users. Empty means no authentication is asked for.
#[derive(Clone, Default)]
pub struct ProxyUsers {
    users: Vec<(String, [u8; 32])>,
}

impl fmt::Debug for ProxyUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.users.iter().map(|(name, _)| name)).finish()
    }
}

/// Why a request was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Wrong,
}

impl ProxyUsers {
    pub fn new(users: impl IntoIterator<Item = Credential>) -> Self {
        let users =
            users.into_iter().map(|c| (c.access_key_id.clone(), digest(&c.access_key_id, c.secret.expose()))).collect();
        Self { users }
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// The user a `Proxy-Authorization` value names, when its password is right. `Ok(None)` when
    /// no users are configured.
    pub fn check(&self, header: Option<&http::HeaderValue>) -> Result<Option<String>, AuthFailure> {
        if self.users.is_empty() {
            return Ok(None);
        }
        let header = header.ok_or(AuthFailure::Missing)?;
        let (name, password) = parse_basic(header).ok_or(AuthFailure::Wrong)?;
        let presented = digest(&name, &password);
        let mut found: Option<&str> = None;
        for (user, expected) in &self.users {
            if bool::from(expected.ct_eq(&presented)) {
                found = Some(user);
            }
        }
        found.map(|u| Some(u.to_owned())).ok_or(AuthFailure::Wrong)
    }
}

fn digest(name: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    h.finalize().into()
}

/// `Basic base64(name:password)`; the scheme is case-insensitive (RFC 9110 11.1).
fn parse_basic(value: &http::HeaderValue) -> Option<(String, zeroize::Zeroizing<String>)> {
    let value = value.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(token.trim()).ok()?);
    let text = std::str::from_utf8(&decoded).ok()?;
    let (name, password) = text.split_once(':')?;
    Some((name.to_owned(), zeroize::Zeroizing::new(password.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(pair: &str) -> http::HeaderValue {
        let token = base64::engine::general_purpose::STANDARD.encode(pair);
        http::HeaderValue::from_str(&format!("Basic {token}")).expect("header")
    }

    #[test]
    fn no_users_means_no_authentication() {
        assert_eq!(ProxyUsers::default().check(None), Ok(None));
    }

    #[test]
    fn the_right_password_names_the_user() {
        let users = ProxyUsers::new([Credential::new("alice", "pa:ss"), Credential::new("bob", "hunter2")]);
        assert_eq!(users.check(Some(&basic("alice:pa:ss"))), Ok(Some("alice".into())));
        assert_eq!(users.check(Some(&basic("bob:hunter2"))), Ok(Some("bob".into())));
        let lower =
            http::HeaderValue::from_str(&basic("bob:hunter2").to_str().expect("ascii").replace("Basic", "basic"))
                .expect("header");
        assert_eq!(users.check(Some(&lower)), Ok(Some("bob".into())));
    }

    #[test]
    fn missing_or_wrong_credentials_are_refused() {
        let users = ProxyUsers::new([Credential::new("alice", "secret")]);
        assert_eq!(users.check(None), Err(AuthFailure::Missing));
        for bad in ["alice:wrong", "bob:secret", "alice", "alice:secret "] {
            assert_eq!(users.check(Some(&basic(bad))), Err(AuthFailure::Wrong), "{bad}");
        }
        let bearer = http::HeaderValue::from_static("Bearer abc");
        assert_eq!(users.check(Some(&bearer)), Err(AuthFailure::Wrong));
        let garbage = http::HeaderValue::from_static("Basic !!!");
        assert_eq!(users.check(Some(&garbage)), Err(AuthFailure::Wrong));
    }

    #[test]
    fn debug_prints_names_only() {
        let users = ProxyUsers::new([Credential::new("alice", "very-secret")]);
        let shown = format!("{users:?}");
        assert!(shown.contains("alice") && !shown.contains("very-secret"), "{shown}");
    }
}
