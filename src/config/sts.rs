//! s3gate's own STS: the `[sts]` options (`--sts-*`, `S3GATE_STS_*`), the `[[oidc_provider]]`
//! identity providers whose tokens it accepts, and the `[[role]]` entries clients assume.
//!
//! Roles live in the configuration, not in a store, for the same reason credentials do: a
//! reload (SIGHUP) is the one way the rules change, and a replica needs nothing but its config
//! and the session key to verify any session another replica issued.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use super::declare::{settings, Env};
use super::{invalid, ConfigError, FileUse, Files};
use crate::policy::Policy;
use crate::session::{SessionKey, SessionKeys};

/// The longest session a role may grant, as in IAM: 12 hours.
pub const MAX_ROLE_SESSION_SECONDS: u64 = 43_200;
/// The shortest session STS issues: 15 minutes.
pub const MIN_SESSION_SECONDS: u64 = 900;
const DEFAULT_ROLE_SESSION_SECONDS: u64 = 3_600;

settings! {
    keys in "sts" {
        /// Answer the STS Query API (AssumeRoleWithWebIdentity, AssumeRole, GetSessionToken) on
        /// the endpoint listener [default: false].
        #[arg(value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
        sts_enabled as enabled: Option<bool> = false,
        /// File holding the key that seals session tokens: 64 hex digits or the base64 of 32
        /// random bytes; must not be readable by others.
        #[arg(value_name = "FILE")]
        sts_session_key_file as session_key_file: Option<PathBuf>,
        /// Older keys that still open session tokens but seal none, for rotation (repeatable).
        #[arg(value_name = "FILE")]
        sts_session_key_files as session_key_files: Vec<PathBuf>,
        /// The sealing key itself (64 hex digits), for an environment variable from a secret
        /// store; used instead of session-key-file.
        #[arg(value_name = "HEX")]
        sts_session_key as session_key: Option<String>,
        /// The upstream STS that roles with an upstream_role_arn are assumed at (regional
        /// endpoints, S3-compatible stores with an STS) [default: https://sts.<region>.amazonaws.com].
        #[arg(value_name = "URL")]
        sts_upstream_endpoint as upstream_endpoint: Option<String>,
    }

    /// `s3gate serve --sts-*` flags.
    #[derive(Debug, Clone, Default, Args)]
    pub struct StsArgs {
        ..
    }

    /// The `[sts]` table of the TOML file: the flag names without `sts-`, `_` for `-`.
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct StsFile {}

    /// STS settings merged from the three sources, before any file they name is read.
    #[derive(Debug, Clone, Default)]
    pub struct StsResolved {}
}

/// Merges CLI > env > file > default for the STS options. Reads nothing.
pub fn resolve(args: &StsArgs, env: &Env, file: Option<StsFile>) -> Result<StsResolved, ConfigError> {
    Ok(StsResolved::merge(args, env, &mut file.unwrap_or_default())?.0)
}

/// An OpenID Connect issuer whose ID tokens AssumeRoleWithWebIdentity accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderFile {
    /// `https://...`, exactly as the tokens' `iss` claim; discovery is at
    /// `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// A private CA for the issuer's TLS, besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// How long fetched keys are used before they are fetched again [default: 3600].
    pub jwks_cache_seconds: Option<u64>,
    /// The shortest time between two fetches, however many tokens name an unknown key id or
    /// find the keys old [default: 30].
    pub jwks_min_refresh_seconds: Option<u64>,
    /// How long past `jwks_cache_seconds` the last keys fetched are still used while fetching
    /// them again fails (the provider is down) [default: 86400; 0: never].
    pub jwks_max_stale_seconds: Option<u64>,
}

/// A role clients assume: who may (`trust`), what it allows (`policy`), for how long.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleFile {
    /// `arn:aws:iam::<account>:role/<name>`: what clients pass as RoleArn.
    pub arn: String,
    pub trust: TrustFile,
    /// [default: 3600; 900 to 43200]
    pub max_session_seconds: Option<u64>,
    pub policy: Option<String>,
    pub policy_file: Option<PathBuf>,
    /// An IAM role s3gate assumes upstream for each client of this role, so that CloudTrail
    /// and the bucket policy see the client.
    pub upstream_role_arn: Option<String>,
    /// The ExternalId the upstream role's trust policy asks for.
    pub upstream_external_id: Option<String>,
}

/// Who may assume a role: web identities matching every rule given, or the listed credentials.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustFile {
    /// The identity provider's issuer; required for AssumeRoleWithWebIdentity.
    pub issuer: Option<String>,
    /// A value the token's `aud` must contain.
    pub audience: Option<String>,
    /// Pattern (`*`, `?`) the token's `sub` must match.
    pub subject: Option<String>,
    /// Further claims, each a pattern the claim's string value must match.
    pub claims: Option<std::collections::BTreeMap<String, String>>,
    /// s3gate credentials that may call AssumeRole for this role.
    pub access_keys: Option<Vec<String>>,
}

/// The validated STS configuration.
#[derive(Debug, Clone, Default)]
pub struct StsConfig {
    /// Whether the STS Query API answers on the endpoint listener. Session tokens are verified
    /// whenever keys are set, so a replica can accept sessions without issuing any.
    pub enabled: bool,
    pub keys: Option<SessionKeys>,
    pub providers: Vec<OidcProvider>,
    pub roles: Vec<Arc<Role>>,
    /// Where upstream roles are assumed; `None`: the upstream region's AWS STS.
    pub upstream_endpoint: Option<http::Uri>,
    /// `[[client]]` credentials that reach S3 as an upstream role of their own, by access key id.
    pub client_upstream_roles: std::collections::HashMap<String, UpstreamRole>,
}

/// An upstream IAM role s3gate assumes for each client: a `[[role]]`'s, a `[[client]]`'s or a
/// `[[route]]`'s `upstream_role_arn` and `upstream_external_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRole {
    pub role_arn: String,
    pub external_id: Option<String>,
}

impl UpstreamRole {
    /// The AWS account the role is in (`123456789012`): a route's role gives way to a client's
    /// own in the same account (see `proxy/send.rs`).
    pub fn account(&self) -> &str {
        self.role_arn.split(':').nth(4).unwrap_or_default()
    }
}

/// An `upstream_role_arn` and `upstream_external_id`, checked: the ARN of an IAM role, and an
/// external id only with one.
pub(super) fn upstream_role(
    who: &str,
    arn: Option<&str>,
    external_id: Option<&str>,
) -> Result<Option<UpstreamRole>, ConfigError> {
    match (arn, external_id) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(invalid(format!("{who}: upstream_external_id needs an upstream_role_arn"))),
        (Some(arn), _) if role_name(arn).is_none() => {
            Err(invalid(format!("{who}: upstream_role_arn must be arn:aws:iam::<account>:role/<name>")))
        }
        (Some(_), Some(id)) if !external_id_ok(id) => Err(invalid(format!(
            "{who}: upstream_external_id must be 2 to 1224 of letters, digits and _+=,.@:/-, as STS requires"
        ))),
        (Some(arn), external_id) => {
            Ok(Some(UpstreamRole { role_arn: arn.to_owned(), external_id: external_id.map(str::to_owned) }))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcProvider {
    pub issuer: String,
    pub ca_file: Option<PathBuf>,
    /// How long fetched keys are fresh.
    pub jwks_cache: Duration,
    /// The shortest time between two fetches of the keys.
    pub jwks_min_refresh: Duration,
    /// How long past `jwks_cache` keys are still used while the provider cannot be reached.
    pub jwks_max_stale: Duration,
}

const DEFAULT_JWKS_CACHE_SECONDS: u64 = 3_600;
const DEFAULT_JWKS_MIN_REFRESH_SECONDS: u64 = 30;
const DEFAULT_JWKS_MAX_STALE_SECONDS: u64 = 86_400;

#[derive(Debug, Clone)]
pub struct Role {
    pub arn: String,
    /// The last part of the ARN (`ci-writer`), as IAM's role name.
    pub name: String,
    pub trust: Trust,
    pub max_session_seconds: u64,
    pub policy: Arc<Policy>,
    /// The upstream IAM role this role's sessions reach S3 as, one session per client.
    pub upstream_role: Option<UpstreamRole>,
}

#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub subject: Option<String>,
    pub claims: Vec<(String, String)>,
    pub access_keys: Vec<String>,
}

impl StsConfig {
    pub fn role(&self, arn: &str) -> Option<&Arc<Role>> {
        self.roles.iter().find(|r| r.arn == arn)
    }
}

/// The files `[sts]`, `[[oidc_provider]]` and `[[role]]` name, with how each is read.
pub(super) fn named_files<'a>(
    sts: &'a StsResolved,
    providers: &'a [OidcProviderFile],
    roles: &'a [RoleFile],
) -> impl Iterator<Item = (&'a std::path::Path, FileUse)> {
    let keys = sts.session_key_file.iter().chain(&sts.session_key_files).map(|p| (p.as_path(), FileUse::Secret));
    let cas = providers.iter().filter_map(|p| p.ca_file.as_deref()).map(|p| (p, FileUse::Present));
    let policies = roles.iter().filter_map(|r| r.policy_file.as_deref()).map(|p| (p, FileUse::Text));
    keys.chain(cas).chain(policies)
}

/// Checks the STS settings and builds what they describe. Pure: files come from `files`.
pub(super) fn validate(
    sts: &StsResolved,
    providers: &[OidcProviderFile],
    roles: &[RoleFile],
    files: &Files,
) -> Result<StsConfig, ConfigError> {
    let keys = session_keys(sts, files)?;
    if sts.enabled && keys.is_none() {
        return Err(invalid("sts-enabled: a session key is needed (sts-session-key-file or sts-session-key)"));
    }
    let providers = providers.iter().map(|p| provider(p, files)).collect::<Result<Vec<_>, _>>()?;
    let roles = (roles.iter().enumerate())
        .map(|(i, r)| role(i, r, &providers, files).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(dup) = roles.iter().enumerate().find(|(i, r)| roles[..*i].iter().any(|o| o.arn == r.arn)) {
        return Err(invalid(format!("role {:?} is declared twice", dup.1.arn)));
    }
    let upstream_endpoint = sts.upstream_endpoint.as_deref().map(upstream_endpoint).transpose()?;
    Ok(StsConfig { enabled: sts.enabled, keys, providers, roles, upstream_endpoint, ..StsConfig::default() })
}

fn session_keys(sts: &StsResolved, files: &Files) -> Result<Option<SessionKeys>, ConfigError> {
    let mut keys = Vec::new();
    let parse = |what: &str, text: &str| SessionKey::parse(text).map_err(|e| invalid(format!("{what}: {e}")));
    match (&sts.session_key, &sts.session_key_file) {
        (Some(_), Some(_)) => return Err(invalid("give one of sts-session-key and sts-session-key-file")),
        (Some(text), None) => keys.push(parse("sts-session-key", text)?),
        (None, Some(path)) => keys.push(parse(&path.display().to_string(), files.get(path, FileUse::Secret)?)?),
        (None, None) if !sts.session_key_files.is_empty() => {
            return Err(invalid("sts-session-key-files: older keys need a current one (sts-session-key-file)"));
        }
        (None, None) => {}
    }
    for path in &sts.session_key_files {
        keys.push(parse(&path.display().to_string(), files.get(path, FileUse::Secret)?)?);
    }
    Ok(SessionKeys::new(keys))
}

fn provider(p: &OidcProviderFile, files: &Files) -> Result<OidcProvider, ConfigError> {
    let issuer: http::Uri =
        p.issuer.parse().map_err(|_| invalid(format!("oidc_provider: not a URL: {:?}", p.issuer)))?;
    if issuer.scheme_str() != Some("https") || issuer.host().is_none() || issuer.query().is_some() {
        return Err(invalid(format!("oidc_provider: the issuer must be an https:// URL: {:?}", p.issuer)));
    }
    if let Some(ca) = &p.ca_file {
        files.get(ca, FileUse::Present)?;
    }
    let who = format!("oidc_provider {:?}", p.issuer);
    let cache = p.jwks_cache_seconds.unwrap_or(DEFAULT_JWKS_CACHE_SECONDS);
    let min_refresh = p.jwks_min_refresh_seconds.unwrap_or(DEFAULT_JWKS_MIN_REFRESH_SECONDS.min(cache));
    if cache == 0 {
        return Err(invalid(format!("{who}: jwks_cache_seconds must be at least 1")));
    }
    if min_refresh > cache {
        return Err(invalid(format!("{who}: jwks_min_refresh_seconds must not exceed jwks_cache_seconds")));
    }
    Ok(OidcProvider {
        issuer: p.issuer.clone(),
        ca_file: p.ca_file.clone(),
        jwks_cache: Duration::from_secs(cache),
        jwks_min_refresh: Duration::from_secs(min_refresh),
        jwks_max_stale: Duration::from_secs(p.jwks_max_stale_seconds.unwrap_or(DEFAULT_JWKS_MAX_STALE_SECONDS)),
    })
}

fn role(i: usize, r: &RoleFile, providers: &[OidcProvider], files: &Files) -> Result<Role, ConfigError> {
    let who = format!("role #{} ({:?})", i + 1, r.arn);
    let name =
        role_name(&r.arn).ok_or_else(|| invalid(format!("{who}: arn must be arn:aws:iam::<account>:role/<name>")))?;
    let max = r.max_session_seconds.unwrap_or(DEFAULT_ROLE_SESSION_SECONDS);
    if !(MIN_SESSION_SECONDS..=MAX_ROLE_SESSION_SECONDS).contains(&max) {
        return Err(invalid(format!("{who}: max_session_seconds must be between 900 and 43200")));
    }
    let text = match (&r.policy, &r.policy_file) {
        (Some(p), None) => p.clone(),
        (None, Some(path)) => files.get(path, FileUse::Text)?.to_owned(),
        // A role without a policy would allow nothing, as in IAM: almost surely a mistake.
        _ => return Err(invalid(format!("{who}: give exactly one of policy and policy_file"))),
    };
    let policy = Policy::from_json(&text).map_err(|e| invalid(format!("{who}: {e}")))?;
    let t = &r.trust;
    if t.issuer.is_none() && t.access_keys.as_ref().is_none_or(Vec::is_empty) {
        return Err(invalid(format!("{who}: trust names no issuer and no access_keys: nobody could assume it")));
    }
    if let Some(issuer) = &t.issuer {
        if !providers.iter().any(|p| &p.issuer == issuer) {
            return Err(invalid(format!("{who}: trust issuer {issuer:?} is not an [[oidc_provider]]")));
        }
        if t.audience.is_none() {
            // Without it, any token the issuer minted for any application would do.
            return Err(invalid(format!("{who}: a web-identity trust needs an audience")));
        }
    } else if t.audience.is_some() || t.subject.is_some() || t.claims.is_some() {
        return Err(invalid(format!("{who}: audience, subject and claims need a trust issuer")));
    }
    let trust = Trust {
        issuer: t.issuer.clone(),
        audience: t.audience.clone(),
        subject: t.subject.clone(),
        claims: t.claims.clone().unwrap_or_default().into_iter().collect(),
        access_keys: t.access_keys.clone().unwrap_or_default(),
    };
    let upstream_role = upstream_role(&who, r.upstream_role_arn.as_deref(), r.upstream_external_id.as_deref())?;
    Ok(Role { arn: r.arn.clone(), name, trust, max_session_seconds: max, policy: Arc::new(policy), upstream_role })
}

fn upstream_endpoint(text: &str) -> Result<http::Uri, ConfigError> {
    let uri: http::Uri = text.parse().map_err(|_| invalid(format!("sts-upstream-endpoint: not a URL: {text:?}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(invalid(format!("sts-upstream-endpoint: must be an http:// or https:// URL: {text:?}")));
    }
    Ok(uri)
}

/// An ExternalId STS accepts; anything else would only fail later, at every request.
fn external_id_ok(id: &str) -> bool {
    (2..=1224).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c))
}

/// `arn:aws:iam::123456789012:role/path/name` -> `name`.
fn role_name(arn: &str) -> Option<String> {
    let rest = arn.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let (_partition, service, region, account, resource) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if service != "iam" || !region.is_empty() || account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let path = resource.strip_prefix("role/")?;
    let name = path.rsplit('/').next()?;
    let ok = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    (!name.is_empty() && name.len() <= 64 && name.chars().all(ok)).then(|| name.to_owned())
}
