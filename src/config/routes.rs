//! The access-control and routing parts of the configuration: upstreams, client credentials
//! with their policies, `[[route]]` entries, network rules and the forced storage class.
//! Pure: the files they name come from [`Files`].

use std::path::PathBuf;
use std::time::Duration;

use super::settings::{ClientFile, RouteFile};
use super::sts::UpstreamRole;
use super::{invalid, ConfigError, FileUse, Files};
use super::{UpstreamAddressing, UpstreamConfig, UpstreamCredentials};
use crate::credentials::Credential;
use crate::net::{Cidr, CidrSet};
use crate::policy::Policy;

/// Who may talk to s3gate, and whom s3gate believes about the client's address.
#[derive(Debug, Clone, Default)]
pub struct AccessConfig {
    /// Empty: every source is allowed.
    pub allowed_source_subnets: CidrSet,
    /// Lower-case `host` or `host:port` values; empty: any Host.
    pub allowed_endpoints: Vec<String>,
    /// Peers whose PROXY protocol header and X-Forwarded-For are believed.
    pub trusted_proxies: CidrSet,
}

/// Buckets matching `bucket` go to `upstream`.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    /// `*` and `?` wildcards.
    pub bucket: String,
    pub upstream: UpstreamConfig,
    /// The upstream's name for the bucket.
    pub alias: Option<String>,
    pub storage_class: Option<String>,
    /// The IAM role the route's requests reach the upstream as, one session per client.
    pub upstream_role: Option<UpstreamRole>,
}

/// One upstream as the settings give it.
pub(super) struct UpstreamSettings<'a> {
    /// How errors name it: `upstream`, `route #2 ("logs-*")`.
    pub what: &'a str,
    /// [default: https://s3.<region>.amazonaws.com]
    pub url: Option<&'a str>,
    pub region: &'a str,
    /// `AKID:SECRET`; `None`: the default credential chain.
    pub credentials: Option<&'a str>,
    pub addressing: UpstreamAddressing,
    pub ca_file: Option<PathBuf>,
}

/// One upstream: URL (default from the region), region, credentials, addressing, CA.
pub(super) fn upstream(
    settings: UpstreamSettings<'_>,
    (connect_timeout, idle_timeout): (Duration, Duration),
    files: &Files,
) -> Result<UpstreamConfig, ConfigError> {
    let UpstreamSettings { what, url, region, credentials, addressing, ca_file } = settings;
    if region.is_empty() || !region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(invalid(format!("{what}: region: not a region name: {region:?}")));
    }
    let text = url.map(str::to_owned).unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
    let url: http::Uri = text.parse().map_err(|_| invalid(format!("{what}: not a URL: {text:?}")))?;
    match url.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(invalid(format!("{what}: must be an http:// or https:// URL: {text:?}"))),
    }
    if url.host().is_none() {
        return Err(invalid(format!("{what}: no host in {text:?}")));
    }
    if !matches!(url.path(), "" | "/") {
        return Err(invalid(format!("{what}: a path prefix is not supported: {text:?}")));
    }
    let credentials = match credentials {
        Some(pair) => UpstreamCredentials::Static(
            Credential::parse(pair)
                .ok_or_else(|| invalid(format!("{what}: upstream-credentials: expected AKID:SECRET")))?,
        ),
        None => UpstreamCredentials::DefaultChain,
    };
    if let Some(ca) = &ca_file {
        files.get(ca, FileUse::Present)?;
    }
    Ok(UpstreamConfig {
        url,
        region: region.to_owned(),
        addressing,
        ca_file,
        credentials,
        connect_timeout,
        idle_timeout,
    })
}

/// The storage classes S3 knows; a typo here would otherwise only show as upstream 400s.
const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
    "GLACIER_IR",
    "SNOW",
    "EXPRESS_ONEZONE",
];

pub(super) fn storage_class(class: &str) -> Result<String, ConfigError> {
    let upper = class.trim().to_ascii_uppercase();
    if STORAGE_CLASSES.contains(&upper.as_str()) {
        Ok(upper)
    } else {
        Err(invalid(format!("storage-class: {class:?} is not one of {}", STORAGE_CLASSES.join(", "))))
    }
}

fn cidrs(what: &str, list: &[String]) -> Result<CidrSet, ConfigError> {
    list.iter()
        .map(|c| c.parse::<Cidr>().map_err(|e| invalid(format!("{what}: {e}"))))
        .collect::<Result<Vec<_>, _>>()
        .map(|v| v.into_iter().collect())
}

pub(super) fn access(
    subnets: &[String],
    endpoints: &[String],
    trusted: &[String],
) -> Result<AccessConfig, ConfigError> {
    let mut allowed_endpoints = Vec::new();
    for e in endpoints {
        let e = e.trim().to_ascii_lowercase();
        if e.is_empty() || e.contains('/') {
            return Err(invalid(format!("allowed-endpoint: expected HOST or HOST:PORT, got {e:?}")));
        }
        allowed_endpoints.push(e);
    }
    Ok(AccessConfig {
        allowed_source_subnets: cidrs("allowed-source-subnet", subnets)?,
        allowed_endpoints,
        trusted_proxies: cidrs("trusted-proxy", trusted)?,
    })
}

/// A `[[client]]` entry: its credential and parsed policy.
pub(super) fn client(c: &ClientFile, files: &Files) -> Result<(Credential, Option<Policy>), ConfigError> {
    let who = format!("client {:?}", c.access_key_id);
    if c.access_key_id.is_empty() {
        return Err(invalid("client: access_key_id is empty"));
    }
    let secret = match (&c.secret_access_key, &c.secret_file) {
        (Some(s), None) => s.clone(),
        (None, Some(path)) => files.get(path, FileUse::Secret)?.trim().to_owned(),
        _ => return Err(invalid(format!("{who}: give exactly one of secret_access_key and secret_file"))),
    };
    if secret.is_empty() {
        return Err(invalid(format!("{who}: the secret is empty")));
    }
    let text = match (&c.policy, &c.policy_file) {
        (Some(p), None) => Some(p.clone()),
        (None, Some(path)) => Some(files.get(path, FileUse::Text)?.to_owned()),
        (None, None) => None,
        _ => return Err(invalid(format!("{who}: give at most one of policy and policy_file"))),
    };
    let policy = text.map(|t| Policy::from_json(&t).map_err(|e| invalid(format!("{who}: {e}")))).transpose()?;
    Ok((Credential::new(c.access_key_id.clone(), secret), policy))
}

/// A `[[route]]` entry. Unset fields inherit from the default upstream, except that a route
/// naming only a region goes to that region's AWS endpoint.
pub(super) fn route(
    i: usize,
    r: &RouteFile,
    default: &UpstreamConfig,
    default_region: &str,
    timeouts: (Duration, Duration),
    files: &Files,
) -> Result<RouteConfig, ConfigError> {
    let what = format!("route #{} ({:?})", i + 1, r.bucket);
    if r.bucket.is_empty() {
        return Err(invalid(format!("{what}: bucket pattern is empty")));
    }
    let region = r.region.clone().unwrap_or_else(|| default_region.to_owned());
    let url = match (&r.upstream, &r.region) {
        (Some(u), _) => Some(u.clone()),
        (None, Some(_)) => None,
        (None, None) => Some(default.url.to_string()),
    };
    let credentials = match (&r.upstream_credentials, &default.credentials) {
        (Some(c), _) => Some(c.clone()),
        (None, UpstreamCredentials::Static(c)) => Some(format!("{}:{}", c.access_key_id, c.secret.expose())),
        (None, UpstreamCredentials::DefaultChain) => None,
    };
    let ca: Option<PathBuf> = r.upstream_ca.clone().or_else(|| default.ca_file.clone());
    let addressing: UpstreamAddressing = r.upstream_addressing.unwrap_or(default.addressing);
    let settings = UpstreamSettings {
        what: &what,
        url: url.as_deref(),
        region: &region,
        credentials: credentials.as_deref(),
        addressing,
        ca_file: ca,
    };
    let upstream = upstream(settings, timeouts, files)?;
    let upstream_role =
        super::sts::upstream_role(&what, r.upstream_role_arn.as_deref(), r.upstream_external_id.as_deref())?;
    Ok(RouteConfig {
        name: r.name.clone().unwrap_or_else(|| r.bucket.clone()),
        bucket: r.bucket.clone(),
        upstream,
        alias: r.alias.clone(),
        storage_class: r.storage_class.as_deref().map(storage_class).transpose()?,
        upstream_role,
    })
}
