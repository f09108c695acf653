//! Entry points for the fuzz targets in `fuzz/`, compiled only with the `fuzzing` feature.
//!
//! The fuzz crate links this library like any other user and so sees only public items. Most
//! parsers it fuzzes are public already (`s3_request::classify`, `sigv4::ChunkedDecoder`,
//! `sigv4::verify_presigned`, `policy::Policy`, `forward::allow`) and are fuzzed as they are.
//! The few that are crate-private are reached through the thin wrappers here: each calls the
//! real parser and hands back its result in public types, so no parsing logic is copied, and
//! nothing is made public for good just to be fuzzed.

use std::collections::HashMap;

use futures_util::FutureExt;
use time::OffsetDateTime;

use crate::config::{Config, ConfigError, ServeArgs};
use crate::error::S3Error;
use crate::presign::post::policy::PostPolicy;
use crate::proxy_protocol::{ProxyHeader, ProxyProtocolError};
use crate::sigv4::{Scope, SigV4Error};

/// What `parse_authorization` read from an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationFields {
    pub access_key_id: String,
    pub scope: Scope,
    pub signed_headers: Vec<String>,
    pub signature: [u8; 32],
}

/// Parses an `Authorization` header value as header auth does, for service `s3`.
pub fn authorization_header(value: &str) -> Result<AuthorizationFields, SigV4Error> {
    let claim = crate::sigv4::parse_authorization(value, "s3")?;
    Ok(AuthorizationFields {
        access_key_id: claim.access_key_id,
        scope: claim.scope,
        signed_headers: claim.signed_headers.iter().map(str::to_owned).collect(),
        signature: claim.signature,
    })
}

/// A POST policy document as parsed: its expiry and each condition as S3 quotes it
/// (`["eq", "$key", "a.txt"]`), which is itself a condition the parser accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostPolicyFields {
    pub expiration: OffsetDateTime,
    pub conditions: Vec<String>,
}

/// Decodes a form's `policy` field (base64 of the JSON document).
pub fn post_policy(encoded: &str) -> Result<PostPolicyFields, S3Error> {
    let policy = PostPolicy::from_base64(encoded)?;
    Ok(PostPolicyFields {
        expiration: policy.expiration,
        conditions: policy.conditions.iter().map(|c| c.render()).collect(),
    })
}

/// Decodes the policy and checks a form against it, as a POST upload does: `fields` are the
/// form's (lower-case name, value) pairs in order; returns the content-length bounds.
pub fn post_policy_check(
    encoded: &str,
    now: OffsetDateTime,
    fields: &[(String, String)],
) -> Result<(u64, u64), S3Error> {
    let policy = PostPolicy::from_base64(encoded)?;
    let value = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    policy.check(now, fields.iter().map(|(n, _)| n.as_str()), value)
}

/// Reads a PROXY protocol header from `input` with `proxy_protocol::read_header`; returns its
/// result and how many bytes it consumed. The read must finish without waiting: the input is
/// all there, so a read that would block is a bug and panics.
pub fn proxy_protocol_header(input: &[u8]) -> (Result<Option<ProxyHeader>, ProxyProtocolError>, usize) {
    thread_local! {
        // `read_header` sets a timeout, which needs a runtime's timer to exist, never to fire.
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime builds");
    }
    let mut rest = input;
    let result = RUNTIME.with(|runtime| {
        let _entered = runtime.enter();
        crate::proxy_protocol::read_header(&mut rest, std::time::Duration::from_secs(1))
            .now_or_never()
            .expect("reading a PROXY header from memory never waits")
    });
    (result, input.len() - rest.len())
}

/// Loads a config from TOML text as `s3gate serve --config FILE` does, with no flags and no
/// environment. Files the config names (credentials, secrets, policies, CAs, users) are not
/// read: a fuzzed path could name `/dev/zero`. When it names any, their keys are dropped before
/// validation, so the rest of the file is still checked. Keep this list in step with the
/// config's path fields.
pub fn config_from_toml(text: &str) -> Result<Config, ConfigError> {
    let mut resolved = Config::resolve(&ServeArgs::default(), &HashMap::new(), Some(text))?;
    resolved.credentials_file = None;
    resolved.upstream_ca = None;
    resolved.forward.users_file = None;
    // A client naming both a value and a file is refused before either is read: keep those.
    for client in &mut resolved.clients {
        if client.secret_access_key.is_none() && client.secret_file.take().is_some() {
            client.secret_access_key = Some("fuzz-secret".to_owned());
        }
        if client.policy.is_none() {
            client.policy_file = None;
        }
    }
    for route in &mut resolved.routes {
        route.upstream_ca = None;
    }
    Config::validate(resolved)
}

/// Text as XML character data that reads back as exactly `text`: markup characters and
/// control characters as references. The XML targets write parsed requests back out with it.
pub fn xml_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("&#x{:X};", c as u32)),
            c => out.push(c),
        }
    }
    out
}
