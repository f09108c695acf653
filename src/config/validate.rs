//! From resolved settings and the contents of the files they name to a [`Config`]: every value
//! parsed and checked, each error naming its setting. Pure: reads nothing.

use std::net::SocketAddr;
use std::time::Duration;

use super::routes::{self, UpstreamSettings};
use super::settings::{Resolved, DEFAULT_LISTEN};
use super::{invalid, Config, ConfigError, Files, ForwardConfig, TlsFiles};
use crate::credentials::{Credential, KeyStore};

pub(super) fn config(r: Resolved, files: &Files) -> Result<Config, ConfigError> {
    let (listen, endpoint) = listen(&r.listen)?;
    let max_connections = max_connections(r.max_connections)?;
    // The forward listener has the same cap as the endpoint, counted on its own.
    let forward = r.forward.clone().validate(files)?.map(|f| ForwardConfig { max_connections, ..f });
    let transparent = r.transparent.validate()?.map(|t| super::TransparentConfig { max_connections, ..t });
    let dns = r.dns.validate(r.transparent.names()?)?;
    let resolvers = r.dns.upstreams()?;
    if !endpoint && forward.is_none() && transparent.is_none() && dns.is_none() {
        return Err(invalid(
            "listen is none and neither forward-listen, transparent-listen nor dns-listen is set: nothing to serve",
        ));
    }
    let timeouts =
        (Duration::from_secs(r.upstream_connect_timeout.max(1)), Duration::from_secs(r.upstream_timeout.max(1)));
    let default_upstream = UpstreamSettings {
        what: "upstream",
        url: r.upstream.as_deref(),
        region: &r.region,
        credentials: r.upstream_credentials.as_deref(),
        addressing: r.upstream_addressing,
        ca_file: r.upstream_ca.clone(),
    };
    let upstream = routes::upstream(default_upstream, timeouts, files)?;
    let mut sts = super::sts::validate(&r.sts, &r.oidc_providers, &r.roles, files)?;
    for client in &r.clients {
        let who = format!("client {:?}", client.access_key_id);
        let arn = client.upstream_role_arn.as_deref();
        if let Some(role) = super::sts::upstream_role(&who, arn, client.upstream_external_id.as_deref())? {
            sts.client_upstream_roles.insert(client.access_key_id.clone(), role);
        }
    }
    let keys = client_keys(&r, files, endpoint && !sts.enabled)?;
    let domains = domains(&r.domain)?;
    let tls = tls(&r)?;
    let public_url = r
        .public_url
        .as_deref()
        .map(crate::net::parse_public_url)
        .transpose()
        .map_err(|e| invalid(format!("public URL: {e}")))?;
    let storage_class = r.storage_class.as_deref().map(routes::storage_class).transpose()?;
    let routes = (r.routes.iter().enumerate())
        .map(|(i, route)| routes::route(i, route, &upstream, &r.region, timeouts, files))
        .collect::<Result<Vec<_>, _>>()?;
    let metrics_listen = r
        .metrics_listen
        .as_deref()
        .map(|a| a.parse::<SocketAddr>().map_err(|_| invalid(format!("metrics-listen: not an address: {a:?}"))))
        .transpose()?;

    Ok(Config {
        listen,
        upstream,
        keys,
        domains,
        tls,
        max_clock_skew: Duration::from_secs(r.max_clock_skew),
        verify_body_hash: r.verify_body_hash,
        shutdown_grace: Duration::from_secs(r.shutdown_grace),
        drain_delay: r.drain_delay.duration(),
        max_connections,
        serving_threads: serving_threads(r.serving_threads)?,
        public_url,
        storage_class,
        routes,
        access: routes::access(&r.allowed_source_subnet, &r.allowed_endpoint, &r.trusted_proxy)?,
        metrics_listen,
        audit_log: r.audit_log,
        endpoint,
        forward,
        transparent,
        dns,
        resolvers,
        sts,
    })
}

/// The endpoint's address, and whether it runs: `none` turns it off, so the forward proxy can
/// run alone.
fn listen(text: &str) -> Result<(SocketAddr, bool), ConfigError> {
    let endpoint = !text.eq_ignore_ascii_case("none");
    let listen = if endpoint { text } else { DEFAULT_LISTEN }
        .parse()
        .map_err(|_| invalid(format!("listen: not an address (IP:PORT) or none: {text:?}")))?;
    Ok((listen, endpoint))
}

fn serving_threads(setting: Option<u64>) -> Result<Option<usize>, ConfigError> {
    match setting {
        Some(n) if n == 0 || n > 1024 => Err(invalid(format!("serving-threads: out of range (1 to 1024): {n}"))),
        other => Ok(other.map(|n| n as usize)),
    }
}

fn max_connections(setting: Option<u64>) -> Result<usize, ConfigError> {
    match setting {
        None => Ok(crate::listener::limits::default_max_connections()),
        Some(n) if n == 0 || n > tokio::sync::Semaphore::MAX_PERMITS as u64 => {
            Err(invalid(format!("max-connections: out of range: {n}")))
        }
        Some(n) => Ok(n as usize),
    }
}

/// `--credentials`, the credentials file and `[[client]]` tables, in that order (a later one
/// replaces an earlier one with the same access key id). `required`: an endpoint without its
/// own STS needs at least one, since nobody could sign a request otherwise.
fn client_keys(r: &Resolved, files: &Files, required: bool) -> Result<KeyStore, ConfigError> {
    let mut keys = KeyStore::default();
    for (i, pair) in r.credentials.iter().enumerate() {
        let c =
            Credential::parse(pair).ok_or_else(|| invalid(format!("credentials #{}: expected AKID:SECRET", i + 1)))?;
        keys.insert(c, None);
    }
    if let Some(path) = &r.credentials_file {
        for c in files.credentials(path)? {
            keys.insert(c, None);
        }
    }
    for client in &r.clients {
        let (c, policy) = routes::client(client, files)?;
        keys.insert(c, policy);
    }
    if keys.is_empty() && required {
        return Err(invalid(
            "no client credentials: give --credentials AKID:SECRET or --credentials-file FILE \
             (or --listen none to run only the forward proxy)",
        ));
    }
    Ok(keys)
}

fn tls(r: &Resolved) -> Result<Option<TlsFiles>, ConfigError> {
    match (&r.tls_cert, &r.tls_key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert: cert.clone(), key: key.clone() })),
        (None, None) => Ok(None),
        _ => Err(invalid("tls-cert and tls-key must be given together")),
    }
}

/// Lower-cased; a domain is a bare DNS name.
fn domains(list: &[String]) -> Result<Vec<String>, ConfigError> {
    for d in list {
        if d.is_empty() || d.contains('/') || d.contains(':') {
            return Err(invalid(format!("domain: expected a DNS name without port or scheme: {d:?}")));
        }
    }
    Ok(list.iter().map(|d| d.to_ascii_lowercase()).collect())
}
